package lane

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/p2pxfer/p2pxfer/peer/lane/bulk"
)

// A ride lane is a bulk stream (package bulk) that rides the first
// connection's ICE pair: the same two sockets, the same NAT mappings,
// which ICE opened and keeps open, with no handshake of its own. It is
// what a path through NAT gets instead of pion's SCTP, whose packets of
// sctpBaseMTU bytes each cost it several allocations and goroutine
// wake-ups, whose window halves at every random loss and whose
// retransmission timeout is a second; the bulk stream sends packets of
// the same size (nothing says the path carries more), paced at the rate
// the path delivers.
//
// The dialer draws the stream's keys and sends them in its sealed
// {lanes, ride} (wire.go): the signalling is end-to-end encrypted and
// authenticated with the PAKE's session key, so only the other password
// holder learns them, as it learns a direct lane's DTLS fingerprint. The
// first byte of a bulk packet is no STUN, DTLS or RTP one, so each end
// takes the packets from its socket before pion's mux sees them
// (rideTable.divert); they come from the one address the pair names.
// Relayed pairs do not get one: a TURN server forwards only what is
// wrapped for it.

// rideMTU is the datagram a ride lane sends: what a DTLS record of the
// first connection's SCTP packet takes, which the path has carried.
const rideMTU = sctpBaseMTU + dtlsOverhead

// ridePath is where a ride lane runs: the local socket of the first
// connection's selected pair, and the other end's address in it.
type ridePath struct {
	sock   *batchConn
	remote netip.AddrPort
	rtt    time.Duration
}

// ridePathOf finds pc's selected pair's socket among ours, unless either
// side of the pair is a relay.
func (t *Transport) ridePathOf(pc *webrtc.PeerConnection) (ridePath, bool) {
	pair, _, remote, ok := selectedPair(pc)
	if !ok || pair.Local.Typ == webrtc.ICECandidateTypeRelay || pair.Remote.Typ == webrtc.ICECandidateTypeRelay {
		return ridePath{}, false
	}
	port := pair.Local.Port
	if pair.Local.Typ != webrtc.ICECandidateTypeHost {
		port = pair.Local.RelatedPort // a reflexive candidate's base
	}
	sock := t.rides.sock(port, remote.Is4())
	if sock == nil {
		return ridePath{}, false
	}
	return ridePath{sock: sock, remote: netip.AddrPortFrom(remote, pair.Remote.Port), rtt: iceRTT(pc)}, true
}

// rideTable is what a Transport's sockets need to hand bulk packets to
// ride lanes: the lanes by the other end's address, and the sockets by
// port, to send from.
type rideTable struct {
	mu    sync.RWMutex
	lanes map[netip.AddrPort]func([]byte, time.Time)
	socks []*batchConn
}

// divert takes bulk packets out of a socket's stream: it hands them to
// the ride lane of their source, or drops them (a lane closed, a stray);
// false for any other packet, which goes to pion.
func (r *rideTable) divert(d []byte, from netip.AddrPort, at time.Time) bool {
	if !bulk.IsPacket(d) {
		return false
	}
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	r.mu.RLock()
	f := r.lanes[from]
	r.mu.RUnlock()
	if f != nil {
		f(d, at)
	}
	return true
}

// add registers a socket to send from.
func (r *rideTable) add(b *batchConn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Sockets of closed peer connections go as new ones come.
	live := r.socks[:0]
	for _, s := range r.socks {
		if !s.isClosed() {
			live = append(live, s)
		}
	}
	r.socks = append(live, b)
}

// sock is the open socket bound to port of the family, or nil.
func (r *rideTable) sock(port uint16, v4 bool) *batchConn {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, s := range r.socks {
		la := s.LocalAddr().(*net.UDPAddr)
		if uint16(la.Port) == port && (la.IP.To4() != nil || la.IP.IsUnspecified()) == v4 && !s.isClosed() {
			return s
		}
	}
	return nil
}

// register hands the bulk packets from remote to f; false if a lane has
// that address already.
func (r *rideTable) register(remote netip.AddrPort, f func([]byte, time.Time)) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lanes == nil {
		r.lanes = map[netip.AddrPort]func([]byte, time.Time){}
	}
	if _, taken := r.lanes[remote]; taken {
		return false
	}
	r.lanes[remote] = f
	return true
}

func (r *rideTable) unregister(remote netip.AddrPort) {
	r.mu.Lock()
	delete(r.lanes, remote)
	r.mu.Unlock()
}

// rideLane is an open ride lane.
type rideLane struct {
	ep     *bulk.Endpoint
	t      *Transport
	remote netip.AddrPort
	once   sync.Once
}

func (l *rideLane) close() {
	l.once.Do(func() {
		_ = l.ep.Close()
		l.t.rides.unregister(l.remote)
	})
}

// startRide starts our end of a ride lane on path with keys: the source
// (the accepter) or the receiving end.
func (t *Transport) startRide(path ridePath, keys []byte, source bool) (*rideLane, error) {
	ep, err := bulk.New(bulk.Config{
		Send:   func(ps [][]byte) error { return path.sock.WriteBatchToAddrPort(ps, path.remote) },
		Keys:   keys,
		Source: source,
		MTU:    rideMTU,
		RTT:    path.rtt,
		Window: directWindow(path.rtt),
		Logger: t.log,
	})
	if err != nil {
		return nil, fmt.Errorf("lane: ride lane: %w", err)
	}
	// Packets that come before this are dropped; the source sends them
	// again.
	if !t.rides.register(path.remote, ep.ReceiveAt) {
		_ = ep.Close()
		return nil, fmt.Errorf("lane: a ride lane to %v is open already", path.remote)
	}
	t.log.Debug("ride lane open", "local", path.sock.LocalAddr(), "remote", path.remote, "rtt", path.rtt, "source", source)
	return &rideLane{ep: ep, t: t, remote: path.remote}, nil
}

// openRide asks the accepting end for a ride lane on path (wire.go) and
// hands it to use (see More); if it opens none, fallback peer lanes
// instead.
func (c *Conn) openRide(ctx context.Context, path ridePath, fallback int, use func(context.Context, Channel) error) error {
	keys := make([]byte, bulk.KeyLen)
	if _, err := rand.Read(keys); err != nil {
		return fmt.Errorf("lane: %w", err)
	}
	// Ours first: the source starts sending once it has answered.
	rl, err := c.t.startRide(path, keys, false)
	if err != nil {
		c.t.log.Debug("no ride lane", "err", err)
		return c.directFallback(ctx, fallback, use)
	}
	defer rl.close()
	if err := c.send(ctx, &signalMsg{T: sigLanes, Lanes: 2, Ride: keys}); err != nil {
		return err
	}
	m, err := c.awaitWord(ctx, sigRide)
	if err != nil {
		return err
	}
	if m == nil {
		rl.close()
		return c.directFallback(ctx, fallback, use)
	}
	return carry(ctx, rl.ep, nil, use)
}

// acceptRide answers a dialer's ride lane: it starts the source's end
// and says so, or says it opens none; fallback then says the dialer may
// ask for peer lanes instead.
func (c *Conn) acceptRide(ctx context.Context) (rl *rideLane, fallback bool) {
	path, ok := c.t.ridePathOf(c.pc)
	err := fmt.Errorf("no ride path")
	if ok && c.rides() {
		rl, err = c.t.startRide(path, c.theirRide, true)
	}
	if err != nil {
		c.t.log.Debug("no ride lane", "err", err)
		_ = c.send(ctx, &signalMsg{T: sigLanes, Lanes: 1})
		return nil, true
	}
	if err := c.send(ctx, &signalMsg{T: sigRide}); err != nil {
		rl.close()
		return nil, false
	}
	c.set.add(&Lane{ch: rl.ep, raw: rl.ep, direct: true})
	return rl, false
}
