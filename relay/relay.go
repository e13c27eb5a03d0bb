package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/turn/v5"
	"golang.org/x/time/rate"

	"github.com/p2pxfer/p2pxfer/internal/pionlog"
)

// Config sets up a relay.
type Config struct {
	// Secret keys the credentials (see Credentials): at least 16 bytes.
	Secret []byte
	// Realm is the TURN realm (DefaultRealm when empty).
	Realm string
	// RelayIPs are the addresses handed out for relayed transports, one per
	// family at most: the host's public address behind a 1:1 NAT, say.
	// Otherwise a socket's own address is used, or, for one on an
	// unspecified address, the host's first global address of its family.
	RelayIPs []netip.Addr
	// Valid reports whether the holder of a credential for id may still
	// use the relay (its room lives); nil accepts every id until expiry.
	Valid func(id string) bool
	// Deny lists more networks the relay never relays to, beyond those it
	// never does (see Allowed): the server's own LAN, say.
	Deny []netip.Prefix
	// MaxAllocations bounds one credential's allocations at once
	// (DefaultMaxAllocations when 0). Every peer connection of a member
	// takes one per TURN URL it was given: a sender serving many receivers
	// over several lanes needs dozens.
	MaxAllocations int
	// Rate bounds the bytes per second one credential's relayed traffic
	// moves, both ways together; 0 means no bound.
	Rate int64
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// Now is the clock credentials expire by; nil means time.Now.
	Now func() time.Time
}

// Defaults for Config fields left zero.
const (
	DefaultRealm          = "p2pxfer"
	DefaultMaxAllocations = 64
)

// Server is a running relay. Create it with New; Close stops it.
type Server struct {
	cfg Config
	log *slog.Logger
	ts  *turn.Server
	// relayIP is the address handed out per family (false: IPv4).
	relayIP map[bool]netip.Addr

	mu    sync.Mutex
	users map[string]*user
}

// user is what one credential's id holds now.
type user struct {
	allocs int
	lim    *rate.Limiter // nil: no bound
}

// New starts a relay on the given sockets: UDP sockets (pcs) and TCP
// listeners (lns), which it owns from then on.
func New(cfg Config, pcs []net.PacketConn, lns []net.Listener) (*Server, error) {
	if len(cfg.Secret) < 16 {
		return nil, errors.New("relay: the secret must have at least 16 bytes")
	}
	if len(pcs) == 0 && len(lns) == 0 {
		return nil, errors.New("relay: no socket to serve on")
	}
	if cfg.Realm == "" {
		cfg.Realm = DefaultRealm
	}
	if cfg.MaxAllocations <= 0 {
		cfg.MaxAllocations = DefaultMaxAllocations
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log, relayIP: map[bool]netip.Addr{}, users: map[string]*user{}}
	for _, ip := range cfg.RelayIPs {
		ip = ip.Unmap()
		if _, dup := s.relayIP[ip.Is6()]; dup || !ip.IsValid() || ip.IsUnspecified() {
			return nil, fmt.Errorf("relay: relay address %v: give one valid address per family", ip)
		}
		s.relayIP[ip.Is6()] = ip
	}
	var addrs []net.Addr
	for _, pc := range pcs {
		addrs = append(addrs, pc.LocalAddr())
	}
	for _, ln := range lns {
		addrs = append(addrs, ln.Addr())
	}
	for _, a := range addrs {
		if err := s.learnRelayIP(a); err != nil {
			return nil, err
		}
	}
	sc := turn.ServerConfig{
		Realm:         cfg.Realm,
		AuthHandler:   s.auth,
		QuotaHandler:  func(id, _ string, _ net.Addr) bool { return s.allocations(id) < cfg.MaxAllocations },
		LoggerFactory: &pionlog.Factory{Log: log},
	}
	for _, pc := range pcs {
		setBuffers(pc)
		sc.PacketConnConfigs = append(sc.PacketConnConfigs, turn.PacketConnConfig{
			PacketConn: pc, RelayAddressGenerator: s.generator(pc.LocalAddr()), PermissionHandler: s.permit,
		})
	}
	for _, ln := range lns {
		sc.ListenerConfigs = append(sc.ListenerConfigs, turn.ListenerConfig{
			Listener: ln, RelayAddressGenerator: s.generator(ln.Addr()), PermissionHandler: s.permit,
		})
	}
	ts, err := turn.NewServer(sc)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	s.ts = ts
	return s, nil
}

// Close stops the relay and closes its sockets and allocations.
func (s *Server) Close() error { return s.ts.Close() }

// RelayIPs returns the addresses handed out for relayed transports.
func (s *Server) RelayIPs() []netip.Addr {
	var out []netip.Addr
	for _, is6 := range []bool{false, true} {
		if ip, ok := s.relayIP[is6]; ok {
			out = append(out, ip)
		}
	}
	return out
}

// learnRelayIP records a relay address for the family of a socket bound
// to a, unless one is known: a's own, or the host's for an unspecified a.
func (s *Server) learnRelayIP(a net.Addr) error {
	ip := addrIP(a)
	if _, ok := s.relayIP[ip.Is6()]; ok {
		return nil
	}
	if ip.IsUnspecified() {
		host, ok := hostAddr(ip.Is6())
		if !ok {
			return fmt.Errorf("relay: no global address of this host to relay from for %v: give a relay address", a)
		}
		ip = host
	}
	s.relayIP[ip.Is6()] = ip
	return nil
}

// auth checks a request's credentials and returns the key of the ones it
// accepts, with their id as the TURN user ID.
func (s *Server) auth(ra *turn.RequestAttributes) (userID string, key []byte, ok bool) {
	id, expires, err := parseUser(ra.Username)
	switch {
	case err != nil:
		s.log.Debug("relay: refused", "from", ra.SrcAddr, "err", err)
		return "", nil, false
	case !s.cfg.Now().Before(expires):
		s.log.Info("relay: expired credentials refused", "from", ra.SrcAddr, "id", id)
		return "", nil, false
	case s.cfg.Valid != nil && !s.cfg.Valid(id):
		s.log.Info("relay: credentials of a closed room refused", "from", ra.SrcAddr, "id", id)
		return "", nil, false
	}
	return id, turn.GenerateAuthKey(ra.Username, ra.Realm, password(s.cfg.Secret, ra.Username)), true
}

// permit is the relay's permission handler: whether a client may have
// the relay send to peerIP.
func (s *Server) permit(client net.Addr, peerIP net.IP) bool {
	ip, _ := netip.AddrFromSlice(peerIP)
	if s.Allowed(ip) {
		return true
	}
	s.log.Info("relay: permission refused", "client", client, "peer", ip)
	return false
}

// Allowed reports whether the relay may relay to ip. It never relays to
// loopback, link-local, multicast, unspecified or broadcast addresses, to
// the relay host's own addresses (the relay addresses included), nor into
// Config.Deny; it relays to any other address, private ones included:
// peers on one private network behind a relay of that network need it.
func (s *Server) Allowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return false
	}
	for _, p := range s.cfg.Deny {
		if p.Contains(ip) {
			return false
		}
	}
	for _, mine := range s.relayIP {
		if ip == mine {
			return false
		}
	}
	return !isHostAddr(ip)
}

func (s *Server) allocations(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.users[id]; u != nil {
		return u.allocs
	}
	return 0
}

// take counts one more allocation for id and returns its rate limiter;
// false when id already holds as many as it may.
func (s *Server) take(id string) (*rate.Limiter, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[id]
	if u == nil {
		u = &user{}
		if s.cfg.Rate > 0 {
			// A burst of a tenth of a second, and at least a datagram.
			u.lim = rate.NewLimiter(rate.Limit(s.cfg.Rate), int(max(s.cfg.Rate/10, 64<<10)))
		}
		s.users[id] = u
	}
	if u.allocs >= s.cfg.MaxAllocations {
		return nil, false
	}
	u.allocs++
	return u.lim, true
}

// drop counts one allocation of id less.
func (s *Server) drop(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.users[id]; u != nil {
		if u.allocs--; u.allocs <= 0 {
			delete(s.users, id)
		}
	}
}

// errNoTCPRelay: relayed transports are UDP; clients may reach the relay
// over TCP all the same.
var errNoTCPRelay = errors.New("relay: TCP relayed transports are not offered")

// generator makes the relayed sockets of the allocations made through
// the socket at a: on a's address (all addresses of its family when a is
// unspecified), handed out as the family's relay address.
type generator struct {
	s    *Server
	bind netip.Addr
}

func (s *Server) generator(a net.Addr) *generator { return &generator{s: s, bind: addrIP(a)} }

func (g *generator) Validate() error { return nil }

func (g *generator) AllocatePacketConn(conf turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	is6 := conf.Network == "udp6"
	relayIP, ok := g.s.relayIP[is6]
	if !ok {
		return nil, nil, fmt.Errorf("relay: no relay address for %s", conf.Network)
	}
	bind := netip.IPv4Unspecified()
	if is6 {
		bind = netip.IPv6Unspecified()
	}
	if g.bind.Is6() == is6 {
		bind = g.bind
	}
	lim, ok := g.s.take(conf.UserID)
	if !ok {
		return nil, nil, fmt.Errorf("relay: %s holds %d allocations already", conf.UserID, g.s.cfg.MaxAllocations)
	}
	pc, err := net.ListenPacket(conf.Network, netip.AddrPortFrom(bind, uint16(conf.RequestedPort)).String()) //nolint:noctx
	if err != nil {
		g.s.drop(conf.UserID)
		return nil, nil, err
	}
	setBuffers(pc)
	port := pc.LocalAddr().(*net.UDPAddr).Port
	ctx, cancel := context.WithCancel(context.Background())
	rc := &relayedConn{PacketConn: pc, lim: lim, ctx: ctx, cancel: cancel, release: func() { g.s.drop(conf.UserID) }}
	return rc, net.UDPAddrFromAddrPort(netip.AddrPortFrom(relayIP, uint16(port))), nil
}

func (g *generator) AllocateListener(turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	return nil, nil, errNoTCPRelay
}

func (g *generator) AllocateConn(turn.AllocateConnConfig) (net.Conn, error) {
	return nil, errNoTCPRelay
}

// relayedConn is an allocation's relayed socket, held to its credential's
// rate both ways.
type relayedConn struct {
	net.PacketConn
	lim     *rate.Limiter // nil: no bound
	ctx     context.Context
	cancel  context.CancelFunc
	release func()
	once    sync.Once
}

func (c *relayedConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(p)
	if err == nil {
		c.wait(n)
	}
	return n, addr, err
}

func (c *relayedConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	c.wait(len(p))
	return c.PacketConn.WriteTo(p, addr)
}

// wait holds a datagram of n bytes until the credential's rate allows it;
// Close ends the wait.
func (c *relayedConn) wait(n int) {
	if c.lim != nil {
		_ = c.lim.WaitN(c.ctx, min(n, c.lim.Burst()))
	}
}

func (c *relayedConn) Close() error {
	c.once.Do(func() {
		c.cancel()
		c.release()
	})
	return c.PacketConn.Close()
}

// socketBuffer is asked for on every UDP socket of the relay: it takes
// bursts of a peer connection's window, and the kernel's default (~208
// KiB) drops them, each loss costing the transfer a retransmission.
const socketBuffer = 4 << 20

func setBuffers(pc net.PacketConn) {
	if u, ok := pc.(*net.UDPConn); ok {
		_ = u.SetReadBuffer(socketBuffer)
		_ = u.SetWriteBuffer(socketBuffer)
	}
}

func addrIP(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// hostAddr is the host's first global unicast address of a family.
func hostAddr(is6 bool) (netip.Addr, bool) {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			ip, ok := netip.AddrFromSlice(n.IP)
			if ip = ip.Unmap(); ok && ip.Is6() == is6 && ip.IsGlobalUnicast() {
				return ip, true
			}
		}
	}
	return netip.Addr{}, false
}

// isHostAddr reports whether ip is one of this host's addresses.
func isHostAddr(ip netip.Addr) bool {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if mine, ok := netip.AddrFromSlice(n.IP); ok && mine.Unmap() == ip {
				return true
			}
		}
	}
	return false
}
