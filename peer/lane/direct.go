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

	"github.com/pion/dtls/v3"

	"github.com/p2pxfer/p2pxfer/peer/lane/bulk"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
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
	probe         bool          // between hosts: probe the path MTU
	rtt           time.Duration // ICE's round trip; 0: unknown or one host
}

var loopbackPath = directPath{local: netip.AddrFrom4([4]byte{127, 0, 0, 1}), remote: netip.AddrFrom4([4]byte{127, 0, 0, 1})}

// directWindow is the bulk stream's receive window on a path of round
// trip rtt: what the downloader holds ahead of its reader, per lane. A
// short path needs little even at a GB/s; a long one holds its
// bandwidth-delay product and the holes a loss leaves for a round trip.
func directWindow(rtt time.Duration) int {
	if rtt < 5*time.Millisecond {
		return 4 << 20
	}
	return 8 << 20
}

// keyLabel is the RFC 5705 label under which both ends export the bulk
// stream's keys from their DTLS session; the channels' label (the swarm
// protocol's version) is part of it, so ends of different versions share
// no key.
const keyLabel = "EXPORTER-p2pxfer-direct-lane "

// directEnd is our end of a direct lane until it connects: a UDP socket
// on the path's local address and a DTLS certificate (one for all the
// lanes of a request).
type directEnd struct {
	t     *Transport
	label string // the data channel's
	path  directPath
	conn  *probeConn
	cert  tls.Certificate
	fp    [sha256.Size]byte
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
		bc := newBatchConn(c, path.local.Is6(), true)
		ends = append(ends, &directEnd{t: t, label: label, path: path, conn: newProbeConn(bc), cert: cert, fp: fp})
	}
	return ends, nil
}

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

// directLane is a connected direct lane: the DTLS session that
// authenticated the other end and keyed the stream, and the stream.
type directLane struct {
	ep   *bulk.Endpoint
	tc   *dtls.Conn
	end  *directEnd
	once sync.Once
}

// close releases the lane, its socket last.
func (l *directLane) close() {
	l.once.Do(func() {
		_ = l.ep.Close()
		l.end.conn.setBulk(nil)
		_ = l.tc.Close()
		l.end.close()
		if l.end.path == loopbackPath {
			l.end.t.shareCPUs(-1)
		}
	})
}

// connect runs DTLS (pinned to the certificate whose hash fp the other
// end announced in the sealed signalling) over d to the other end's port,
// the downloader as client, then starts the bulk stream (package bulk)
// on keys both export from the session: the source sends, the downloader
// acknowledges. Between hosts the source probes the path MTU meanwhile
// and sends packets of the largest size that got through; the downloader
// sends only acknowledgements. On success the lane owns d; on failure d
// is closed.
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
	fail := func(what string, err error) (*directLane, error) {
		_ = tc.Close()
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
	state, ok := tc.ConnectionState()
	if !ok {
		return fail("dtls", errors.New("no session state"))
	}
	keys, err := state.ExportKeyingMaterial(keyLabel+d.label, nil, bulk.KeyLen)
	if err != nil {
		return fail("dtls export", err)
	}
	// The probes size what a DTLS record would carry; the datagram is
	// the record.
	ep, err := bulk.New(bulk.Config{
		Send:   func(ps [][]byte) error { return d.conn.WriteBatchToAddrPort(ps, rap) },
		Keys:   keys,
		Source: !client,
		MTU:    mtu + dtlsOverhead,
		RTT:    d.path.rtt,
		Window: directWindow(d.path.rtt),
		Logger: d.t.log,
	})
	if err != nil {
		return fail("bulk", err)
	}
	// Datagrams reach the stream on DTLS's reading goroutine, which reads
	// the socket for as long as the session lasts (probeConn).
	d.conn.setBulk(ep.ReceiveAt)
	d.t.log.Debug("direct lane open", "local", d.conn.LocalAddr(), "remote", raddr, "mtu", mtu+dtlsOverhead, "rtt", d.path.rtt)
	if d.path == loopbackPath {
		d.t.shareCPUs(1)
	}
	return &directLane{ep: ep, tc: tc, end: d}, nil
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
			return directPath{local: local, remote: remote, probe: true, rtt: iceRTT(pc)}, true
		}
	}
	if isLocalAddr(remote) {
		return loopbackPath, true
	}
	if !untranslated(pair.Local, local) || pair.Remote.Typ == webrtc.ICECandidateTypeSrflx && !onLink(remote) ||
		remote.IsLinkLocalUnicast() || local.IsLinkLocalUnicast() || local.Is4() != remote.Is4() || !probeSupported {
		return directPath{}, false
	}
	return directPath{local: local, remote: remote, probe: true, rtt: iceRTT(pc)}, true
}

// isLocalAddr reports whether ip is one of this host's addresses.
func isLocalAddr(ip netip.Addr) bool {
	if ip.IsLoopback() {
		return true
	}
	_, ok := interfaceOf(ip)
	return ok
}
