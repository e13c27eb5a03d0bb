package lane

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"github.com/p2pxfer/p2pxfer/peer/lane/bulk"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"
)

// Path MTU probes, version 1: the version of the sealed signalling that
// set up the lane (wire.go) implies it, since probes flow only on a
// direct lane both ends agreed on there.
//
// A direct lane's packets may be larger than the sctpBaseMTU bytes of
// pion's peer connection only where the path carries them, and nothing
// but trying tells. So the accepting end (the source), while its DTLS
// handshake runs, sends probes of the sizes worth having (probeSizes) with
// the don't-fragment bit set, and the dialing end acknowledges each with
// the length it received:
//
//	source                                    downloader
//	  |-- probe ---------------------------------->|   (every probeInterval,
//	  |<-------------------------------------- ack |    each size not yet
//	  |                                            |    acknowledged)
//
// Each is one UDP datagram on the lane's socket:
//
//	probe  ['P'][nonce:16][zeros up to the size probed]
//	ack    ['K'][nonce:16][length:2]   (length: the probe's datagram
//	                                    length, big-endian)
//
// The source's SCTP then sends packets of the largest size acknowledged,
// or of the first connection's size when none was, once the largest was
// acknowledged or probeGrace (at least as long as the handshake took)
// after the handshake. No DTLS record starts with 'P' or 'K' (their first
// byte is a content type, 20 to 25), so both ends take probes out of the
// socket's stream before DTLS sees it (probeConn), late ones included. The
// nonce keeps an off-path sender from acknowledging sizes that did not get
// through; one on the path could only make the lane stall, which it can
// anyway.
const (
	probeMsg = 'P'
	probeAck = 'K'
	// probeAckLen is 'K', the nonce and the length.
	probeAckLen   = 1 + probeNonceLen + 2
	probeNonceLen = 16
	probeInterval = 20 * time.Millisecond
	probeGrace    = 100 * time.Millisecond
	// dtlsOverhead is a DTLS 1.2 record's header (13 bytes), explicit
	// nonce (8) and tag (16) with AES-GCM, the only suite direct lanes
	// offer: what a record adds to the SCTP packet it carries.
	dtlsOverhead = 37
)

// probeConn is a direct lane's socket as DTLS sees it: only the other
// end's datagrams get through (between hosts anyone on the network can
// send to the port), and probes and their acknowledgements are dealt with
// here and never reach DTLS.
type probeConn struct {
	*batchConn
	remote atomic.Pointer[netip.AddrPort] // the other end
	nonce  [probeNonceLen]byte
	acks   chan int // lengths the other end acknowledged, for probe
	// bulk takes the bulk stream's packets (bulk.IsPacket), once the
	// lane has one; until then they are dropped.
	bulk atomic.Pointer[func([]byte, time.Time)]
}

func newProbeConn(b *batchConn) *probeConn {
	c := &probeConn{batchConn: b, acks: make(chan int, 8)}
	_, _ = rand.Read(c.nonce[:])
	return c
}

// setBulk passes the bulk stream's packets to f from now on; nil drops
// them.
func (c *probeConn) setBulk(f func([]byte, time.Time)) {
	if f == nil {
		c.bulk.Store(nil)
		return
	}
	c.bulk.Store(&f)
}

// setRemote names the other end; before DTLS reads.
func (c *probeConn) setRemote(ap netip.AddrPort) { c.remote.Store(&ap) }

// ReadFrom returns the next datagram from the other end that is not a
// probe's.
func (c *probeConn) ReadFrom(p []byte) (int, net.Addr, error) {
	// What is not DTLS's is dealt with in the socket's own buffer.
	n, ap, err := c.batchConn.readInPlace(p, func(d []byte, ap netip.AddrPort, at time.Time) bool {
		from := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		switch {
		case !c.fromRemote(from):
		case len(d) > 0 && (d[0] == probeMsg || d[0] == probeAck):
			c.handle(d, from)
		case bulk.IsPacket(d):
			if f := c.bulk.Load(); f != nil {
				(*f)(d, at)
			}
		default:
			return false
		}
		return true
	})
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(ap), nil
}

func (c *probeConn) fromRemote(ap netip.AddrPort) bool {
	r := c.remote.Load()
	return r != nil && *r == ap
}

// handle answers a probe from the other end (at from), or passes an
// acknowledgement of one of ours to probe; anything else is dropped.
func (c *probeConn) handle(b []byte, from netip.AddrPort) {
	switch {
	case b[0] == probeMsg && len(b) >= 1+probeNonceLen:
		var ack [probeAckLen]byte
		ack[0] = probeAck
		copy(ack[1:], b[1:1+probeNonceLen])
		binary.BigEndian.PutUint16(ack[1+probeNonceLen:], uint16(len(b)))
		_, _ = c.batchConn.WriteToAddrPort(ack[:], from)
	case b[0] == probeAck && len(b) == probeAckLen && [probeNonceLen]byte(b[1:1+probeNonceLen]) == c.nonce:
		select {
		case c.acks <- int(binary.BigEndian.Uint16(b[1+probeNonceLen:])):
		default:
		}
	}
}

// probe finds the largest of sizes (SCTP packet sizes, largest first) that
// reaches to, as the protocol above says; sctpBaseMTU if none does. It
// returns once the largest got through, probeGrace (or as long as the
// handshake took, if longer) after handshaken closes, or when ctx ends.
// The socket's reader (DTLS's) delivers the acknowledgements.
func (c *probeConn) probe(ctx context.Context, to netip.AddrPort, sizes []int, handshaken <-chan struct{}) int {
	best := sctpBaseMTU
	if len(sizes) == 0 {
		return best
	}
	buf := make([]byte, sizes[0]+dtlsOverhead)
	buf[0] = probeMsg
	copy(buf[1:], c.nonce[:])
	send := func() {
		for _, s := range sizes {
			if s <= best {
				break
			}
			_, _ = c.batchConn.WriteToAddrPort(buf[:s+dtlsOverhead], to)
		}
	}
	start := time.Now()
	tick := time.NewTicker(probeInterval)
	defer tick.Stop()
	var grace <-chan time.Time
	send()
	for {
		select {
		case n := <-c.acks:
			if s := n - dtlsOverhead; s > best && slices.Contains(sizes, s) {
				best = s
			}
			if best == sizes[0] {
				return best
			}
		case <-tick.C:
			send()
		case <-handshaken:
			handshaken = nil
			t := time.NewTimer(max(probeGrace, time.Since(start)))
			defer t.Stop()
			grace = t.C
		case <-grace:
			return best
		case <-ctx.Done():
			return best
		}
	}
}

// probeSizes are the SCTP packet sizes worth probing from local, largest
// first: what its interface's MTU takes (at most directMTU), and what a
// path of 1500-byte Ethernet frames takes, when that is smaller. Sizes
// not above sctpBaseMTU need no probe: the first connection's packets
// crossed the same path.
func probeSizes(local netip.Addr) []int {
	hdr := 20 + 8
	if local.Is6() {
		hdr = 40 + 8
	}
	var sizes []int
	for _, ip := range []int{interfaceMTU(local), 1500} {
		s := min(directMTU, ip-hdr-dtlsOverhead)
		if s > sctpBaseMTU && (len(sizes) == 0 || s < sizes[len(sizes)-1]) {
			sizes = append(sizes, s)
		}
	}
	return sizes
}

// interfaceMTU is the MTU of the interface that holds ip, 0 if none does.
func interfaceMTU(ip netip.Addr) int {
	ifc, _ := interfaceOf(ip)
	return ifc.MTU
}

// ProbeSupported says whether direct lanes between hosts, which probe the
// path MTU, work on this system; without it they run only on one host.
const ProbeSupported = probeSupported
