package lane

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/stun/v4"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"

	"github.com/p2pxfer/p2pxfer/internal/pionlog"
)

// Config sets up a Transport.
type Config struct {
	// STUN lists stun: URLs used to learn the public address; none on a LAN
	// or in tests.
	STUN []string
	// ICEServers are more STUN and TURN servers: those the signalling
	// server offers, with credentials for this peer. ICE prefers every
	// direct path to a relay.
	ICEServers []ICEServer
	// Interfaces restricts ICE to these network interfaces (all when empty).
	Interfaces []string
	// Loopback adds loopback candidates, for two peers on one machine.
	Loopback bool
	// UDPBufferSize is the socket buffer asked for on every UDP socket.
	// The kernel's default (~208 KiB) drops packets at full speed, and
	// every loss costs SCTP a retransmission timeout.
	UDPBufferSize int
	// ConnectTimeout bounds ICE, DTLS and SCTP until a channel opens.
	ConnectTimeout time.Duration
	// Lanes is how many connections a dialer uses to one peer (wire.go),
	// at most MaxLanes: the smaller of both ends' counts. 0 means
	// DefaultLanes; 1 turns lanes off. A dialer opens lanes only where the
	// path's round trip is at least lanesMinRTT. Where no NAT or relay is
	// between the two ends (one host, a LAN), it opens one direct lane
	// instead.
	Lanes int
	// DirectTimeout bounds a direct lane's set-up, and a dialer's wait for
	// the other end's: every step is a few round trips, so a lane that
	// takes longer will not come (another process holds the port, a
	// firewall drops the new port's packets) and the transfer goes on
	// without it. 0 means DefaultDirectTimeout.
	DirectTimeout time.Duration
	// NoDirect: never open direct lanes, whatever the path.
	NoDirect bool
	// NoRide: never open ride lanes (ride.go): a path through NAT gets
	// peer lanes where they pay, as a relayed one does.
	NoRide bool
	// Logger receives pion's and our diagnostics; nil discards them.
	Logger *slog.Logger
	// PionLogs passes pion's own diagnostics to Logger too: many lines
	// per packet, so only when asked for.
	PionLogs bool
	// SharedCPUs, if set, is called with true when the first direct lane
	// to a peer on this host opens, and with false when the last one
	// closes: meanwhile the two ends of a transfer run on the same CPUs.
	// It is called with a lock held, so it must return soon and must not
	// call back into the Transport.
	SharedCPUs func(shared bool)

	// Knobs for tests on one machine, which reach every kind of path
	// over loopback; all are off in the CLI.

	// LoopbackAs is the kind of path a connection over loopback is taken
	// for.
	LoopbackAs LoopbackPath
	// DirectUnreachable makes an accepter announce its direct lanes on
	// ports where nothing answers, as behind a firewall that lets only ICE
	// through.
	DirectUnreachable bool
	// SettleFirst makes Set.Pick wait until every lane has opened or been
	// given up on, so that even a short transfer uses them all.
	SettleFirst bool

	// lateOpen, for tests, makes an accepting end take its first channel
	// for open this much later, as on a path where the dialer's word
	// overtakes it (wire.go).
	lateOpen time.Duration
}

// ICEServer is a STUN or TURN server, as WebRTC's RTCIceServer has it.
type ICEServer struct {
	URLs                 []string
	Username, Credential string
}

// ValidateICEURL checks a stun:, stuns:, turn: or turns: URL, so that a
// mistyped one is refused at once rather than failing a connection later.
func ValidateICEURL(u string) error {
	if _, err := stun.ParseURI(u); err != nil {
		return fmt.Errorf("%q is not a STUN or TURN URL (stun:HOST[:PORT] or turn:HOST[:PORT][?transport=udp|tcp]): %v", u, err)
	}
	return nil
}

// LoopbackPath is a kind of path a connection over loopback is taken for.
type LoopbackPath int

const (
	// LoopbackOneHost: what it is, two peers on one host: one direct lane.
	LoopbackOneHost LoopbackPath = iota
	// LoopbackNAT: a long path through NATs: peer lanes, no direct lane.
	LoopbackNAT
	// LoopbackHosts: a long path between two hosts without NAT: a direct
	// lane after probing the path MTU.
	LoopbackHosts
)

// Defaults for Config fields left zero.
const (
	DefaultUDPBufferSize = 4 << 20
	// DefaultConnectTimeout: ICE has tried every pair a few times well
	// within it, so waiting longer only delays the answer.
	DefaultConnectTimeout = 15 * time.Second
	DefaultLanes          = 3
	DefaultDirectTimeout  = 5 * time.Second
)

// SCTP settings of every association, peer connection or direct lane.
const (
	// sctpReceiveBuffer is pion's SCTP receive window; 1 MiB by default,
	// which caps throughput at window/RTT on any real path.
	sctpReceiveBuffer = 8 << 20
	// sctpCwndCAStep is how much SCTP grows its congestion window per
	// round trip once past slow start. pion's default, one packet, takes
	// tens of seconds to regain the speed of a 50 ms, 200 Mbit/s path
	// after a loss, and a retransmission timeout left a transfer at a few
	// MB/s for the rest of its life; 32 packets measured a third faster on
	// bench/latency's path (docs/performance.md). It still halves on every
	// loss.
	sctpCwndCAStep = 32 * sctpBaseMTU
	// sctpCwndCAStepOne is the growth toward a dialer that opens one
	// connection in all and cannot ride it: every browser, whose receive path is the
	// bottleneck on any fast path, behind a UDP socket buffer of 128 KiB
	// (Chromium's), which 32 packets more per round trip overflowed
	// again within a few round trips of every halving: pion -> Chromium
	// lost ~5 % of its packets to that buffer and stalled in
	// retransmission timeouts, at 60 % of the rate with one packet
	// (docs/performance.md, "Browser page"). One packet per round trip
	// is SCTP's own (RFC 4960), pion's default.
	sctpCwndCAStepOne = sctpBaseMTU
	// sctpMinCwnd is pion's floor for the congestion window, which is also
	// where it starts: ten packets, TCP's initial window (RFC 6928), where
	// pion starts at under four. On a long path every round trip of slow
	// start saved before the first piece counts, for each lane; after a
	// retransmission timeout SCTP starts again from here rather than from
	// one packet.
	sctpMinCwnd = 10 * sctpBaseMTU
	// sctpBaseMTU is the SCTP packet size of pion's peer connection, a
	// constant there: what any path that connected us carries.
	sctpBaseMTU = 1191
)

// MaxMessage bounds one message on a channel: pion's SCTP max-message-size
// is 64 KiB.
const MaxMessage = 64 << 10

// Transport holds what all connections of a process share: the pion API
// and the ICE UDP sockets (a mux) whose buffers we size ourselves.
type Transport struct {
	cfg     Config
	log     *slog.Logger
	lf      *pionlog.Factory
	keep    func(iface string) bool
	net     transport.Net // the system's, which pion makes its other sockets with
	mux     *ice.MultiUDPMuxDefault
	bufSize int

	// iceURLs are the STUN and TURN servers, their names looked up; set
	// before iceReady closes (see resolveICE).
	iceURLs     []webrtc.ICEServer
	iceReady    chan struct{}
	stopResolve context.CancelFunc

	sharedMu sync.Mutex
	shared   int // open direct lanes to peers on this host

	rides *rideTable // ride lanes and the sockets they send from

	closing sync.WaitGroup // peer connections still closing (closePC)
}

// New opens the UDP sockets and prepares pion. Close releases them.
func New(cfg Config) (*Transport, error) {
	if cfg.UDPBufferSize == 0 {
		cfg.UDPBufferSize = DefaultUDPBufferSize
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.DirectTimeout == 0 {
		cfg.DirectTimeout = DefaultDirectTimeout
	}
	if cfg.Lanes == 0 {
		cfg.Lanes = DefaultLanes
	}
	if cfg.Lanes < 1 || cfg.Lanes > MaxLanes {
		return nil, fmt.Errorf("lane: %d lanes: between 1 and %d", cfg.Lanes, MaxLanes)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lf := &pionlog.Factory{Log: slog.New(slog.DiscardHandler)}
	if cfg.PionLogs {
		lf.Log = log
	}
	keep := func(name string) bool {
		return len(cfg.Interfaces) == 0 || slices.Contains(cfg.Interfaces, name)
	}
	rides := &rideTable{}
	mux, bufSize, err := openMux(keep, cfg.Loopback, cfg.UDPBufferSize, lf, rides)
	if err != nil {
		return nil, err
	}
	var servers []webrtc.ICEServer
	if len(cfg.STUN) > 0 {
		servers = []webrtc.ICEServer{{URLs: cfg.STUN}}
	}
	for _, s := range cfg.ICEServers {
		for _, u := range s.URLs {
			if err := ValidateICEURL(u); err != nil {
				_ = mux.Close()
				return nil, fmt.Errorf("lane: %w", err)
			}
		}
		servers = append(servers, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	sys, err := stdnet.NewNet()
	if err != nil {
		_ = mux.Close()
		return nil, fmt.Errorf("lane: %w", err)
	}
	t := &Transport{cfg: cfg, log: log, lf: lf, keep: keep, net: sys, mux: mux, bufSize: bufSize, iceReady: make(chan struct{}), rides: rides}
	ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
	t.stopResolve = cancel
	go func() {
		defer close(t.iceReady)
		var errs []error
		t.iceURLs, errs = resolveICE(ctx, servers, lookupHost)
		for _, err := range errs {
			log.Warn("a STUN or TURN server is left out: its name did not resolve", "err", err)
		}
	}()
	return t, nil
}

// Close releases the UDP sockets. Every Conn must be closed first; a
// peer connection still closing gets closeWait more.
func (t *Transport) Close() error {
	t.stopResolve()
	<-t.iceReady
	waitAtMost(&t.closing, closeWait)
	return t.mux.Close()
}

// closeWait bounds the wait for a peer connection to close. pion's Close
// waits for candidate gathering to end, and a TURN allocation on a path
// that drops UDP retries for seconds: a finished transfer must not wait
// for that.
const closeWait = time.Second

// closePC closes pc, waiting at most closeWait; a close that takes longer
// goes on in the background.
//
// GracefulClose, not Close: when the other end closed first, pion
// closes pc itself on a goroutine of its own (on the DTLS close_notify),
// and Close then returns at once while that close is still under way:
// the ICE agent went on pinging, reading crypto/rand, after its owner
// had closed. GracefulClose waits for any close under way, and for the
// ICE agent's goroutines.
func (t *Transport) closePC(pc *webrtc.PeerConnection) {
	t.closing.Add(1)
	done := make(chan struct{})
	go func() {
		defer t.closing.Done()
		defer close(done)
		_ = pc.GracefulClose()
	}()
	select {
	case <-done:
	case <-time.After(closeWait):
		t.log.Debug("a peer connection goes on closing in the background (candidate gathering)")
	}
}

// waitAtMost waits for wg, or for d, whichever comes first.
func waitAtMost(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// SocketBuffer is the receive buffer the kernel actually gave the UDP
// sockets; Linux caps it at net.core.rmem_max whatever we ask for.
func (t *Transport) SocketBuffer() int { return t.bufSize }

// shareCPUs counts direct lanes to peers on this host up (+1) or down
// (-1) and tells Config.SharedCPUs when there come to be some or none.
func (t *Transport) shareCPUs(delta int) {
	t.sharedMu.Lock()
	defer t.sharedMu.Unlock()
	t.shared += delta
	if f := t.cfg.SharedCPUs; f != nil && (t.shared == 1 && delta > 0 || t.shared == 0 && delta < 0) {
		f(t.shared > 0)
	}
}

// newAPI prepares pion for peer connections over mux, whose other
// sockets pn makes; caStep is SCTP's congestion window growth per round
// trip (sctpCwndCAStep, or sctpCwndCAStepOne).
func (t *Transport) newAPI(mux ice.UDPMux, pn *iceNet, caStep uint32) *webrtc.API {
	var se webrtc.SettingEngine
	se.SetNet(pn)
	se.LoggerFactory = t.lf
	se.DetachDataChannels()
	se.SetICEUDPMux(mux)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	se.SetInterfaceFilter(t.keep)
	se.SetIncludeLoopbackCandidate(t.cfg.Loopback)
	// Our peers never hand out .local names, so mDNS would only add
	// multicast traffic.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetSCTPMaxReceiveBufferSize(sctpReceiveBuffer)
	se.SetSCTPCwndCAStep(caStep)
	se.SetSCTPMinCwnd(sctpMinCwnd)
	// DTLS's cookie exchange guards a server against spoofed sources; ICE
	// has already proved the peer's address with authenticated checks, so
	// it would only cost every connection (and lane) a round trip.
	se.SetDTLSInsecureSkipHelloVerify(true)
	// SNAP: the SCTP INIT travels in the offer and answer, which saves
	// SCTP's own two round trips of handshake (a peer without it answers
	// without one, and the handshake happens as before).
	se.EnableSctpSnap(true)
	// A pair through NAT (server- or peer-reflexive) is as good as any
	// other through NAT, and a host pair that works answers within
	// milliseconds: pion's waits of 0.5 and 1 s before taking one only
	// delayed every connection through NAT. The relay, the last resort,
	// keeps a longer wait for a direct pair to answer.
	se.SetSrflxAcceptanceMinWait(200 * time.Millisecond)
	se.SetPrflxAcceptanceMinWait(200 * time.Millisecond)
	se.SetRelayAcceptanceMinWait(time.Second)
	// pion gives up on a silent peer after 30 s; a transfer whose peer died
	// should say so (and be resumable) sooner.
	se.SetICETimeouts(5*time.Second, 15*time.Second, 2*time.Second)
	return webrtc.NewAPI(webrtc.WithSettingEngine(se))
}

// newPeerConnection makes a peer connection on the transport's shared
// sockets, and the iceNet its server-reflexive sockets come from.
func (t *Transport) newPeerConnection() (*webrtc.PeerConnection, *iceNet, error) {
	return t.newPeerConnectionOn(t.mux, sctpCwndCAStep)
}

// newPeerConnectionOn makes a peer connection whose host candidates are
// on mux, with the transport's ICE servers. An API each, for the iceNet
// each: a Net is a setting of the API.
func (t *Transport) newPeerConnectionOn(mux ice.UDPMux, caStep uint32) (*webrtc.PeerConnection, *iceNet, error) {
	<-t.iceReady // at most resolveTimeout after New
	pn := &iceNet{Net: t.net, bufSize: t.bufSize, rides: t.rides}
	pc, err := t.newAPI(mux, pn, caStep).NewPeerConnection(webrtc.Configuration{ICEServers: t.iceURLs})
	if err != nil {
		return nil, nil, fmt.Errorf("lane: new peer connection: %w", err)
	}
	return pc, pn, nil
}

// newLaneConnection makes a peer connection for a lane on UDP sockets of
// its own: pion's UDP mux gives each remote address to one connection
// only, so two connections between the same two sockets would take each
// other's packets. The other end keeps its shared sockets; our new ones
// make the address pairs differ. release closes both.
func (t *Transport) newLaneConnection() (pc *webrtc.PeerConnection, pn *iceNet, release func(), err error) {
	mux, _, err := openMux(t.keep, t.cfg.Loopback, t.cfg.UDPBufferSize, t.lf, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	pc, pn, err = t.newPeerConnectionOn(mux, sctpCwndCAStep)
	if err != nil {
		_ = mux.Close()
		return nil, nil, nil, err
	}
	return pc, pn, func() {
		t.closePC(pc)
		_ = mux.Close()
	}, nil
}

// lanesMinRTT: on a shorter path a retransmission timeout is the only
// stall, and lanes cost CPU: on loopback three are slower than one
// (docs/performance.md).
const lanesMinRTT = 5 * time.Millisecond

// selectedPair returns the addresses and candidate types of the ICE pair
// pc's connection runs on.
func selectedPair(pc *webrtc.PeerConnection) (pair *webrtc.ICECandidatePair, local, remote netip.Addr, ok bool) {
	sctp := pc.SCTP()
	if sctp == nil || sctp.Transport() == nil || sctp.Transport().ICETransport() == nil {
		return nil, local, remote, false
	}
	pair, err := sctp.Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Remote == nil || pair.Local == nil {
		return nil, local, remote, false
	}
	remote, err1 := netip.ParseAddr(pair.Remote.Address)
	local, err2 := netip.ParseAddr(pair.Local.Address)
	if err1 != nil || err2 != nil {
		return nil, local, remote, false
	}
	return pair, local.Unmap(), remote.Unmap(), true
}

// wantLanes says whether a dialer connected by pc should open lanes: when
// the round trip ICE measured is lanesMinRTT or more, or unknown.
func (t *Transport) wantLanes(pc *webrtc.PeerConnection) bool {
	if _, _, remote, ok := selectedPair(pc); ok && remote.IsLoopback() && t.cfg.LoopbackAs != LoopbackOneHost {
		return true
	}
	rtt := iceRTT(pc)
	return rtt <= 0 || rtt >= lanesMinRTT
}

// iceRTT is the round trip ICE measured on pc's selected pair, 0 if it
// has none.
func iceRTT(pc *webrtc.PeerConnection) time.Duration {
	sctp := pc.SCTP()
	if sctp == nil || sctp.Transport() == nil || sctp.Transport().ICETransport() == nil {
		return 0
	}
	st, ok := sctp.Transport().ICETransport().GetSelectedCandidatePairStats()
	if !ok || st.CurrentRoundTripTime <= 0 {
		return 0
	}
	return time.Duration(st.CurrentRoundTripTime * float64(time.Second))
}

// openMux listens on every address of the interfaces keep accepts, one
// batching UDP socket each with the buffer size asked for, and muxes all
// peer connections of the process over them.
// With rides, the sockets hand bulk packets to ride lanes and are
// registered to send theirs from.
func openMux(keep func(string) bool, loopback bool, bufSize int, lf *pionlog.Factory, rides *rideTable) (*ice.MultiUDPMuxDefault, int, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, 0, fmt.Errorf("lane: list interfaces: %w", err)
	}
	var muxes []ice.UDPMux
	closeAll := func() {
		for _, m := range muxes {
			_ = m.Close()
		}
	}
	got := 0
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || !keep(ifc.Name) || (ifc.Flags&net.FlagLoopback != 0 && !loopback) {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.IsLinkLocalUnicast() || ipn.IP.IsMulticast() {
				continue
			}
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: ipn.IP})
			if err != nil {
				closeAll()
				return nil, 0, fmt.Errorf("lane: listen on %s: %w", ipn.IP, err)
			}
			_ = c.SetReadBuffer(bufSize)
			_ = c.SetWriteBuffer(bufSize)
			if n := readBufferSize(c); got == 0 || n < got {
				got = n
			}
			// GRO where ride lanes may come: their runs of packets.
			bc := newBatchConn(c, ipn.IP.To4() == nil, rides != nil)
			if rides != nil {
				bc.divert = rides.divert
				rides.add(bc)
			}
			muxes = append(muxes, ice.NewUDPMuxDefault(ice.UDPMuxParams{
				Logger:  lf.NewLogger("udpmux"),
				UDPConn: bc,
			}))
		}
	}
	if len(muxes) == 0 {
		return nil, 0, fmt.Errorf("lane: %w: no usable network interface", ErrConnect)
	}
	return ice.NewMultiUDPMuxDefault(muxes...), got, nil
}

// interfaceOf finds the network interface that holds ip.
func interfaceOf(ip netip.Addr) (net.Interface, bool) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return net.Interface{}, false
	}
	for _, ifc := range ifaces {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if mine, ok := netip.AddrFromSlice(n.IP); ok && mine.Unmap() == ip {
					return ifc, true
				}
			}
		}
	}
	return net.Interface{}, false
}
