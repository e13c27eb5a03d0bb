package peer

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"

	"github.com/p2pxfer/p2pxfer/room"
)

// Signaller is the signalling connection a peer talks through;
// signalclient.Conn implements it. Send must be safe for concurrent use.
type Signaller interface {
	Send(ctx context.Context, m *room.Message) error
	Recv(ctx context.Context) (*room.Message, error)
}

// Config sets up the WebRTC side of a peer.
type Config struct {
	// STUN lists stun: URLs used to learn the public address; none on a LAN
	// or in tests.
	STUN []string
	// Interfaces restricts ICE to these network interfaces (all when empty).
	Interfaces []string
	// Loopback adds loopback candidates, for two peers on one machine.
	Loopback bool
	// UDPBufferSize is the socket buffer asked for on the ICE UDP socket.
	// The kernel's default (~208 KiB) drops packets at full speed, and
	// every loss costs SCTP a retransmission timeout.
	UDPBufferSize int
	// ConnectTimeout bounds ICE, DTLS and SCTP until the channel opens.
	ConnectTimeout time.Duration
	// HandshakeTimeout bounds each PAKE round trip.
	HandshakeTimeout time.Duration
	// Lanes is how many peer connections a downloader uses to one source
	// (see wire.go), at most 4: the smaller of both ends' counts. 0 means
	// DefaultLanes; 1 turns lanes off. A downloader opens lanes only where
	// the path's round trip is at least lanesMinRTT. Where no NAT or relay
	// is between the two ends (one host, a LAN), it opens direct lanes
	// (direct.go) instead: one, or as many as lanes where lanes would open.
	Lanes int

	lanesAlways bool // tests: open lanes on loopback too
	directProbe bool // tests: direct lanes on loopback as between hosts (probing the path MTU)
	// Logger receives pion's and our diagnostics; nil discards them.
	Logger *slog.Logger
	// SharedCPUs, if set, is called with true when the first direct lane
	// to a peer on this host opens, and with false when the last one
	// closes: meanwhile the two ends of a transfer run on the same CPUs.
	// It is called with a lock held, so it must return soon and must not
	// call back into the Engine.
	SharedCPUs func(shared bool)
}

// Defaults for Config fields left zero.
const (
	DefaultUDPBufferSize    = 4 << 20
	DefaultConnectTimeout   = 30 * time.Second
	DefaultHandshakeTimeout = 30 * time.Second
	DefaultLanes            = 3
	// sctpReceiveBuffer is pion's SCTP receive window; 1 MiB by default,
	// which caps throughput at window/RTT on any real path.
	sctpReceiveBuffer = 8 << 20
	// sctpCwndCAStep is how much pion's SCTP grows its congestion window
	// per round trip once past slow start: one packet by default, so after
	// a loss on a 50 ms, 200 Mbit/s path it took tens of seconds to get back
	// to speed (and a retransmission timeout, which drops the window to one
	// packet, left a transfer at a few MB/s for the rest of its life).
	// 32 packets (~38 KB) per round trip measured, over 6 runs of 128 MiB
	// each on bench/internal/latency's path: median 13.4 MB/s against 8.8,
	// worst 11.4 against 4.1. It still halves on every loss.
	sctpCwndCAStep = 32 * sctpBaseMTU
	// sctpMinCwnd is pion's floor for the congestion window, which is also
	// where it starts: ten packets, TCP's initial window (RFC 6928), where
	// pion starts at under four. The manifest of a large transfer (175 KB
	// for 256 MiB) comes first, in slow start, so on a 50 ms path every
	// round trip saved there is 50 ms before the first piece, for each
	// lane. After a retransmission timeout pion starts again from here
	// rather than from one packet.
	sctpMinCwnd = 10 * sctpBaseMTU
	// sctpBaseMTU is the SCTP packet size of pion's peer connection, a
	// constant there: what any path that connected us carries.
	sctpBaseMTU = 1191
)

// Engine holds what all peer connections of a process share: the pion API
// and one ICE UDP socket (a mux) whose buffers we sized ourselves.
type Engine struct {
	cfg     Config
	log     *slog.Logger
	lf      *slogFactory
	keep    func(iface string) bool
	api     *webrtc.API
	mux     *ice.MultiUDPMuxDefault
	iceURLs []webrtc.ICEServer
	bufSize int

	sharedMu sync.Mutex
	shared   int // open direct lanes to peers on this host
}

// SocketBuffer is the receive buffer the kernel actually gave the UDP
// socket; Linux caps it at net.core.rmem_max whatever we ask for.
func (e *Engine) SocketBuffer() int { return e.bufSize }

// NewEngine opens the UDP socket(s) and prepares pion. Close releases them.
func NewEngine(cfg Config) (*Engine, error) {
	if cfg.UDPBufferSize == 0 {
		cfg.UDPBufferSize = DefaultUDPBufferSize
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.Lanes == 0 {
		cfg.Lanes = DefaultLanes
	}
	if cfg.Lanes < 1 || cfg.Lanes > MaxLanes {
		return nil, fmt.Errorf("peer: %d lanes: between 1 and %d", cfg.Lanes, MaxLanes)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lf := &slogFactory{log: log}
	keep := func(name string) bool {
		return len(cfg.Interfaces) == 0 || slices.Contains(cfg.Interfaces, name)
	}
	mux, bufSize, err := openMux(keep, cfg.Loopback, cfg.UDPBufferSize, lf)
	if err != nil {
		return nil, err
	}

	e := &Engine{cfg: cfg, log: log, lf: lf, keep: keep, mux: mux, bufSize: bufSize}
	e.api = e.newAPI(mux)
	if len(cfg.STUN) > 0 {
		e.iceURLs = []webrtc.ICEServer{{URLs: cfg.STUN}}
	}
	return e, nil
}

// shareCPUs counts direct lanes to peers on this host up (+1) or down
// (-1) and tells Config.SharedCPUs when there come to be some or none.
func (e *Engine) shareCPUs(delta int) {
	e.sharedMu.Lock()
	defer e.sharedMu.Unlock()
	e.shared += delta
	if f := e.cfg.SharedCPUs; f != nil && (e.shared == 1 && delta > 0 || e.shared == 0 && delta < 0) {
		f(e.shared > 0)
	}
}

// newAPI prepares pion for peer connections over mux.
func (e *Engine) newAPI(mux ice.UDPMux) *webrtc.API {
	var se webrtc.SettingEngine
	se.LoggerFactory = e.lf
	se.DetachDataChannels()
	se.SetICEUDPMux(mux)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	se.SetInterfaceFilter(e.keep)
	se.SetIncludeLoopbackCandidate(e.cfg.Loopback)
	// Our peers never hand out .local names, so mDNS would only add
	// multicast traffic.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetSCTPMaxReceiveBufferSize(sctpReceiveBuffer)
	se.SetSCTPCwndCAStep(sctpCwndCAStep)
	se.SetSCTPMinCwnd(sctpMinCwnd)
	// DTLS's cookie exchange guards a server against spoofed sources; ICE
	// has already proved the peer's address with authenticated checks, so
	// it would only cost every connection (and lane) a round trip.
	se.SetDTLSInsecureSkipHelloVerify(true)
	// SNAP: the SCTP INIT travels in the offer and answer, which saves
	// SCTP's own two round trips of handshake (a peer without it answers
	// without one, and the handshake happens as before).
	se.EnableSctpSnap(true)
	// pion gives up on a silent peer after 30 s; a transfer whose peer died
	// should say so (and be resumable) sooner.
	se.SetICETimeouts(5*time.Second, 15*time.Second, 2*time.Second)
	return webrtc.NewAPI(webrtc.WithSettingEngine(se))
}

// Close releases the UDP socket(s). Peer connections must be closed first.
func (e *Engine) Close() error { return e.mux.Close() }

// LocalAddrs lists the UDP addresses ICE listens on.
func (e *Engine) LocalAddrs() []net.Addr { return e.mux.GetListenAddresses() }

func (e *Engine) newPeerConnection() (*webrtc.PeerConnection, error) {
	return e.newPeerConnectionOn(e.api)
}

// newPeerConnectionOn makes a peer connection with api (and so its
// sockets) and the engine's ICE servers.
func (e *Engine) newPeerConnectionOn(api *webrtc.API) (*webrtc.PeerConnection, error) {
	pc, err := api.NewPeerConnection(webrtc.Configuration{ICEServers: e.iceURLs})
	if err != nil {
		return nil, fmt.Errorf("peer: new peer connection: %w", err)
	}
	return pc, nil
}

// lanesMinRTT: on a shorter path a retransmission timeout is the only
// stall, and lanes cost CPU: three on loopback took 50 MB/s where one
// took 57 (receiver CPU +15 %).
const lanesMinRTT = 5 * time.Millisecond

// wantLanes says whether a downloader connected by pc should open lanes:
// when the round trip ICE measured is lanesMinRTT or more, or unknown.
func (e *Engine) wantLanes(pc *webrtc.PeerConnection) bool {
	if e.cfg.lanesAlways {
		return true
	}
	sctp := pc.SCTP()
	if sctp == nil || sctp.Transport() == nil || sctp.Transport().ICETransport() == nil {
		return true
	}
	st, ok := sctp.Transport().ICETransport().GetSelectedCandidatePairStats()
	if !ok || st.CurrentRoundTripTime <= 0 {
		return true
	}
	return time.Duration(st.CurrentRoundTripTime*float64(time.Second)) >= lanesMinRTT
}

// newLaneConnection makes a peer connection for a lane (see wire.go) on
// UDP sockets of its own: pion's UDP mux gives each remote address to one
// connection only, so two connections between the same two sockets would
// take each other's packets. The other end keeps its shared sockets; our
// new ones make the address pairs differ. release closes both.
func (e *Engine) newLaneConnection() (pc *webrtc.PeerConnection, release func(), err error) {
	mux, _, err := openMux(e.keep, e.cfg.Loopback, e.cfg.UDPBufferSize, e.lf)
	if err != nil {
		return nil, nil, err
	}
	pc, err = e.newPeerConnectionOn(e.newAPI(mux))
	if err != nil {
		_ = mux.Close()
		return nil, nil, err
	}
	return pc, func() {
		_ = pc.Close()
		_ = mux.Close()
	}, nil
}

// slogFactory routes pion's logs to slog at debug level (pion is chatty at
// warning level about things that are normal for us, like closed sockets).
type slogFactory struct{ log *slog.Logger }

func (f *slogFactory) NewLogger(scope string) logging.LeveledLogger {
	return &slogLogger{log: f.log.With("pion", scope)}
}

// slogLogger formats pion's messages only when debug logging is on: pion
// logs every SACK at debug level, and formatting them for nothing cost 4 %
// of a receiver's CPU.
type slogLogger struct{ log *slog.Logger }

func (l *slogLogger) on() bool { return l.log.Enabled(context.Background(), slog.LevelDebug) }

func (l *slogLogger) logf(f string, args []any, attrs ...any) {
	if l.on() {
		l.log.Debug(fmt.Sprintf(f, args...), attrs...)
	}
}

func (l *slogLogger) Trace(string)                 {}
func (l *slogLogger) Tracef(string, ...any)        {}
func (l *slogLogger) Debug(msg string)             { l.log.Debug(msg) }
func (l *slogLogger) Debugf(f string, args ...any) { l.logf(f, args) }
func (l *slogLogger) Info(msg string)              { l.log.Debug(msg) }
func (l *slogLogger) Infof(f string, args ...any)  { l.logf(f, args) }
func (l *slogLogger) Warn(msg string)              { l.log.Debug(msg, "pionlevel", "warn") }
func (l *slogLogger) Warnf(f string, args ...any)  { l.logf(f, args, "pionlevel", "warn") }
func (l *slogLogger) Error(msg string)             { l.log.Debug(msg, "pionlevel", "error") }
func (l *slogLogger) Errorf(f string, args ...any) { l.logf(f, args, "pionlevel", "error") }

// openMux listens on every address of the interfaces keep accepts, one
// batching UDP socket each with the buffer size asked for, and muxes all
// peer connections of the process over them.
func openMux(keep func(string) bool, loopback bool, bufSize int, lf *slogFactory) (*ice.MultiUDPMuxDefault, int, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, 0, fmt.Errorf("peer: list interfaces: %w", err)
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
				return nil, 0, fmt.Errorf("peer: listen on %s: %w", ipn.IP, err)
			}
			_ = c.SetReadBuffer(bufSize)
			_ = c.SetWriteBuffer(bufSize)
			if n := readBufferSize(c); got == 0 || n < got {
				got = n
			}
			muxes = append(muxes, ice.NewUDPMuxDefault(ice.UDPMuxParams{
				Logger:  lf.NewLogger("udpmux"),
				UDPConn: newBatchConn(c, ipn.IP.To4() == nil),
			}))
		}
	}
	if len(muxes) == 0 {
		return nil, 0, fmt.Errorf("peer: %w: no usable network interface", ErrConnect)
	}
	return ice.NewMultiUDPMuxDefault(muxes...), got, nil
}
