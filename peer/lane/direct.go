package lane

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
	"github.com/pion/sctp"
	"github.com/pion/webrtc/v4"
)

// Direct lanes (wire.go) exist for one reason: pion's peer connection
// sends SCTP packets of at most sctpBaseMTU bytes, a constant no setting
// reaches, and on one host a transfer's cost is per packet. On the
// loopback interface a datagram can be 64 KiB; what limits a packet here
// is pion's read buffers, 8192 bytes in DTLS and SCTP alike, less the DTLS
// record's 37 bytes of header, nonce and tag (AES-GCM): 8155.
//
// We send less: 6875, so that the record is 6912 bytes. pion allocates
// each packet's buffers afresh, about seven per packet on the sending side
// (fragment, chunk, packet, record, sealed record), all within a few dozen
// bytes of the packet's size. At 8155 every one of them falls in Go's 8 KiB
// size class, one object per span, so each takes the allocator's slow path;
// up to 6912 bytes a span holds seven. The smaller packets are faster, and
// cost the sender less CPU, although there are more of them
// (docs/performance.md).
const directMTU = 6912 - dtlsOverhead

// directPath is where direct lanes run. On one host (loopback) both ends
// bind 127.0.0.1 and send directMTU. Between two hosts whose first
// connection's ICE pair joins two host candidates (a LAN, or two public
// addresses), each end binds the address of its side of that pair, which
// ICE has shown reaches the other; the source then probes how large a
// packet the path carries (pmtu.go), since nothing says the path takes
// more than the 1191-byte packets the first connection sends.
type directPath struct {
	local, remote netip.Addr
	probe         bool    // between hosts: probe the path MTU
	rtoMax        float64 // SCTP's RTOMax in ms (directRTOMax); 0: pion's
}

var loopbackPath = directPath{local: netip.AddrFrom4([4]byte{127, 0, 0, 1}), remote: netip.AddrFrom4([4]byte{127, 0, 0, 1}),
	rtoMax: directRTOMax(0, true)}

// A direct lane's retransmission timeout is capped on a path ICE measured
// short. pion's timeout never goes below 1 s (RFC 4960's RTO.Min, a
// constant there), and neither its fast retransmit nor RACK ever sends a
// chunk a second time, so every lost retransmission waits out the whole
// timeout: at 1 % loss a 128 MiB transfer on a LAN (one direct lane) sat
// out five of them in ten seconds. RTOMax, pion's cap on the backed-off
// timeout, also caps the timeout itself, so it works as a lower RTO.Min:
// with 250 ms, 1 % loss went from 13.4 to 20.5 MB/s, 200 Mbit/s with a
// 20 ms queue from 0.69 to 0.89 of TCP, and the two together from 0.41 to
// 0.75 (bench/paths, docs/performance.md). The cap cannot grow with the
// queue as the computed timeout does: a queue that delays packets by more
// than the cap less the round trip makes the timeout fire for nothing
// (the window back to its floor, what was in flight sent again). So it
// leaves room for directRTOQueue of queueing beyond directRTORTTs round
// trips, and long paths keep pion's timeout.
const (
	directRTOQueue = 250 * time.Millisecond
	directRTORTTs  = 4
	pionRTOMin     = time.Second
)

// directRTOMax is the RTOMax (ms, as pion takes it) of a direct lane on a
// path of round trip rtt (0: unknown; loopback: on this host), or 0 to
// keep pion's.
func directRTOMax(rtt time.Duration, loopback bool) float64 {
	if rtt <= 0 && !loopback {
		return 0
	}
	c := directRTOQueue + directRTORTTs*rtt
	if c >= pionRTOMin {
		return 0
	}
	return float64(c) / float64(time.Millisecond)
}

// directEnd is our end of a direct lane until it connects: a UDP socket
// on the path's local address and a DTLS certificate (one for all the
// lanes of a request).
type directEnd struct {
	t      *Transport
	label  string // the data channel's
	path   directPath
	conn   *probeConn
	cert   tls.Certificate
	fp     [sha256.Size]byte
	window uint32 // SCTP's receive window (directWindow)
}

// newDirectEnds binds k ends on path, sharing one certificate, for
// channels labelled label.
func (t *Transport) newDirectEnds(path directPath, k int, label string) ([]*directEnd, error) {
	cert, err := selfsign.GenerateSelfSigned()
	if err != nil {
		return nil, fmt.Errorf("lane: direct lane certificate: %w", err)
	}
	fp := sha256.Sum256(cert.Certificate[0])
	ends := make([]*directEnd, 0, k)
	for range k {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(path.local, 0)))
		if err == nil && path.probe {
			// Probes must arrive whole or not at all: with the kernel
			// fragmenting them, a path that cannot carry a size would
			// still pass it.
			if err = setDontFragment(c, path.local.Is6()); err != nil {
				_ = c.Close()
			}
		}
		if err != nil {
			closeEnds(ends)
			return nil, fmt.Errorf("lane: direct lane: %w", err)
		}
		_ = c.SetReadBuffer(t.cfg.UDPBufferSize)
		_ = c.SetWriteBuffer(t.cfg.UDPBufferSize)
		ends = append(ends, &directEnd{t: t, label: label, path: path, conn: newProbeConn(newBatchConn(c, path.local.Is6())), cert: cert, fp: fp,
			window: directWindow(readBufferSize(c), t.cfg.UDPBufferSize)})
	}
	return ends, nil
}

// directWindow is the SCTP receive window of a direct lane whose socket
// the kernel gave a receive buffer of got bytes where we asked for asked
// (got 0: unknown). On loopback a sender's burst lands in the socket all
// at once, and the kernel drops what does not fit: with the 208 KiB most
// distributions allow, the usual 8 MiB window lost thousands of datagrams
// per GiB, each loss at the end of a burst waiting out a 1 s
// retransmission timeout, where a window of the buffer's size lost next to
// none. With the buffer we ask for, the usual window loses none and is
// faster than a smaller one, so only a capped buffer shrinks the window.
// (A reader goroutine draining the socket into a queue does not help: a
// burst arrives within one system call of the sender's.) The floor lets a
// whole 64 KiB message in.
func directWindow(got, asked int) uint32 {
	if got <= 0 || got >= asked {
		return sctpReceiveBuffer
	}
	return uint32(min(sctpReceiveBuffer, max(directMinWindow, got)))
}

const directMinWindow = 128 << 10

// wireDirects is ends on the wire: the first end's port and the shared
// certificate's hash, then the other ends' ports.
func wireDirects(ends []*directEnd) *wireDirect {
	w := &wireDirect{Port: ends[0].port(), Fingerprint: ends[0].fp[:]}
	for _, d := range ends[1:] {
		w.More = append(w.More, d.port())
	}
	return w
}

func (d *directEnd) port() uint16 { return uint16(d.conn.LocalAddr().(*net.UDPAddr).Port) }

// close releases an end that never connected.
func (d *directEnd) close() { _ = d.conn.Close() }

func closeEnds(ends []*directEnd) {
	for _, d := range ends {
		d.close()
	}
}

// connectAll connects each of ends, all at once, to the other end's lane
// of the same place in theirs, which has at least as many, and calls
// opened with each lane that connects, on that lane's goroutine. It
// returns once every attempt, and every opened call, has returned.
func connectAll(ctx context.Context, ends []*directEnd, client bool, theirs *wireDirect, opened func(*directLane)) {
	ports := theirs.ports()
	var wg sync.WaitGroup
	for i, end := range ends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if dl, err := end.connect(ctx, client, ports[i], theirs.Fingerprint); err == nil {
				opened(dl)
			}
		}()
	}
	wg.Wait()
}

// directLane is a connected direct lane.
type directLane struct {
	dc    *datachannel.DataChannel
	assoc *sctp.Association
	nc    net.Conn // the DTLS connection, or a sackPacer over it
	end   *directEnd
	once  sync.Once
}

// close releases the lane, its socket last.
func (l *directLane) close() {
	l.once.Do(func() {
		if p, ok := l.nc.(*sackPacer); ok {
			plain, held := p.counts()
			l.end.t.log.Debug("direct lane closed", "plain SACKs", plain, "held back", held)
		}
		_ = l.dc.Close()
		_ = l.assoc.Close()
		_ = l.nc.Close()
		l.end.close()
		if l.end.path == loopbackPath {
			l.end.t.shareCPUs(-1)
		}
	})
}

// connect runs DTLS (pinned to the certificate whose hash fp the other
// end announced in the sealed signalling), SCTP and the data channel's
// open over d to the other end's port, the downloader as client. Between
// hosts the source (server) probes the path MTU meanwhile and sends
// packets of the largest size that got through; the downloader sends
// only acknowledgements, in packets of the first connection's size. On
// success the lane owns d; on failure d is closed.
func (d *directEnd) connect(ctx context.Context, client bool, port uint16, fp []byte) (*directLane, error) {
	ctx, cancel := context.WithTimeout(ctx, d.t.cfg.DirectTimeout)
	defer cancel()
	rap := netip.AddrPortFrom(d.path.remote, port)
	raddr := net.UDPAddrFromAddrPort(rap)
	d.conn.setRemote(rap)
	pin := func(certs [][]byte, _ [][]*x509.Certificate) error {
		if len(certs) == 0 {
			return errors.New("no certificate")
		}
		got := sha256.Sum256(certs[0])
		if subtle.ConstantTimeCompare(got[:], fp) != 1 {
			return errors.New("certificate does not match the signalled fingerprint")
		}
		return nil
	}
	shared := []dtls.Option{
		dtls.WithCertificates(d.cert),
		// Chains mean nothing between two self-signed peers; pin checks
		// the certificate itself, as WebRTC's fingerprint does.
		dtls.WithInsecureSkipVerify(true),
		dtls.WithVerifyPeerCertificate(pin),
		dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
		// directMTU counts on AES-GCM's 37 bytes of record overhead.
		dtls.WithCipherSuites(dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
		dtls.WithLoggerFactory(d.t.lf),
	}
	var tc *dtls.Conn
	var err error
	if client {
		opts := make([]dtls.ClientOption, 0, len(shared))
		for _, o := range shared {
			opts = append(opts, o)
		}
		tc, err = dtls.ClientWithOptions(d.conn, raddr, opts...)
	} else {
		opts := make([]dtls.ServerOption, 0, len(shared)+2)
		for _, o := range shared {
			opts = append(opts, o)
		}
		// The cookie exchange guards against spoofed sources; only the
		// address ICE checked may send here, and the pin keeps out
		// anyone else.
		opts = append(opts, dtls.WithClientAuth(dtls.RequireAnyClientCert), dtls.WithInsecureSkipVerifyHello(true))
		tc, err = dtls.ServerWithOptions(d.conn, raddr, opts...)
	}
	if err != nil {
		d.close()
		return nil, fmt.Errorf("lane: direct lane: dtls: %w", err)
	}
	// SCTP runs over nc: on the downloader, whose association sends
	// little but SACKs, a sackPacer over the DTLS connection.
	var nc net.Conn = tc
	if client {
		nc = newSackPacer(tc, sackGap)
	}
	// Closing the DTLS connection ends SCTP's handshake and the channel's
	// open too, which take no context.
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	fail := func(what string, err error) (*directLane, error) {
		stop()
		_ = nc.Close()
		d.close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		err = fmt.Errorf("lane: direct lane: %s: %w", what, err)
		d.t.log.Debug("no direct lane", "err", err)
		return nil, err
	}
	mtu := directMTU
	var probed <-chan int
	handshaken := make(chan struct{})
	if d.path.probe {
		mtu = sctpBaseMTU
		if !client {
			ch := make(chan int, 1)
			probed = ch
			sizes := probeSizes(d.path.local)
			go func() { ch <- d.conn.probe(ctx, rap, sizes, handshaken) }()
		}
	}
	err = tc.HandshakeContext(ctx)
	close(handshaken)
	if probed != nil {
		mtu = <-probed // ends with ctx at the latest
	}
	if err != nil {
		return fail("dtls", err)
	}
	// A Config is both a client's and a server's option.
	sc := sctp.Config{
		NetConn:              nc,
		LoggerFactory:        d.t.lf,
		MTU:                  uint32(mtu),
		MaxReceiveBufferSize: d.window,
		MinCwnd:              sctpMinCwnd,
		CwndCAStep:           sctpCwndCAStep,
		RTOMax:               d.path.rtoMax,
	}
	var assoc *sctp.Association
	if client {
		assoc, err = sctp.ClientWithOptions(sc)
	} else {
		assoc, err = sctp.ServerWithOptions(sc)
	}
	if err != nil {
		return fail("sctp", err)
	}
	cfg := &datachannel.Config{ChannelType: datachannel.ChannelTypeReliable, Label: d.label, LoggerFactory: d.t.lf}
	var dc *datachannel.DataChannel
	if client {
		dc, err = datachannel.Dial(assoc, 0, cfg) // even: the DTLS client's
	} else {
		dc, err = datachannel.Accept(assoc, cfg)
		if err == nil && (dc.Config.Label != d.label || dc.Config.ChannelType != datachannel.ChannelTypeReliable) {
			_ = dc.Close()
			err = fmt.Errorf("%w: unexpected data channel %q", ErrProtocol, dc.Config.Label)
		}
	}
	if err != nil {
		_ = assoc.Close()
		return fail("data channel", err)
	}
	if !stop() {
		_ = assoc.Close()
		return fail("connect", ctx.Err())
	}
	d.t.log.Debug("direct lane open", "local", d.conn.LocalAddr(), "remote", raddr, "mtu", mtu, "rtomax_ms", d.path.rtoMax)
	if d.path == loopbackPath {
		d.t.shareCPUs(1)
	}
	return &directLane{dc: dc, assoc: assoc, nc: nc, end: d}, nil
}

// directPathOf says where direct lanes to the peer of pc can run, from
// the ICE pair its first connection selected: between two addresses of
// this host, or from an address of ours (untranslated) to the peer's
// address where the path MTU can be probed. Not through a relay or our
// NAT (a new port would not be let through), nor to a link-local address
// (it needs a zone). The peer's side of the pair may be peer-reflexive:
// with trickled candidates that is often how its host address was first
// seen; or server-reflexive on our subnet: a peer without NAT. Should a
// NAT on its side hide behind that, the lane does not connect (its
// packets come from another port than the one signalled) and the dialer
// falls back to peer lanes.
func (t *Transport) directPathOf(pc *webrtc.PeerConnection) (directPath, bool) {
	pair, local, remote, ok := selectedPair(pc)
	if !ok || t.cfg.NoDirect || pair.Remote.Typ == webrtc.ICECandidateTypeRelay {
		return directPath{}, false
	}
	if remote.IsLoopback() {
		switch t.cfg.LoopbackAs {
		case LoopbackNAT:
			return directPath{}, false
		case LoopbackHosts:
			return directPath{local: local, remote: remote, probe: true, rtoMax: directRTOMax(iceRTT(pc), false)}, true
		}
	}
	if isLocalAddr(remote) {
		return loopbackPath, true
	}
	if !untranslated(pair.Local, local) || pair.Remote.Typ == webrtc.ICECandidateTypeSrflx && !onLink(remote) ||
		remote.IsLinkLocalUnicast() || local.IsLinkLocalUnicast() || local.Is4() != remote.Is4() || !probeSupported {
		return directPath{}, false
	}
	return directPath{local: local, remote: remote, probe: true, rtoMax: directRTOMax(iceRTT(pc), false)}, true
}

// isLocalAddr reports whether ip is one of this host's addresses.
func isLocalAddr(ip netip.Addr) bool {
	if ip.IsLoopback() {
		return true
	}
	_, ok := interfaceOf(ip)
	return ok
}
