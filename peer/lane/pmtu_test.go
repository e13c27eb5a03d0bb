package lane

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestProbeSizes(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	if mtu := interfaceMTU(lo); mtu < 1500+dtlsOverhead {
		t.Skipf("loopback MTU %d", mtu)
	}
	for _, c := range []struct {
		ip   string
		want []int
	}{
		// Loopback's 64 KiB: as large as pion's buffers take, then what
		// an Ethernet path takes.
		{"127.0.0.1", []int{directMTU, 1500 - 28 - dtlsOverhead}},
		// Not on this host: Ethernet's only.
		{"192.0.2.1", []int{1500 - 28 - dtlsOverhead}},
		{"2001:db8::1", []int{1500 - 48 - dtlsOverhead}},
	} {
		if got := probeSizes(netip.MustParseAddr(c.ip)); !slices.Equal(got, c.want) {
			t.Errorf("probeSizes(%s) = %v, want %v", c.ip, got, c.want)
		}
	}
}

// mtuRelay is a path between a direct lane's two ends that drops every
// datagram larger than mtu bytes of IP packet (IPv4): a link with a
// smaller MTU, as a probe would meet on its way.
type mtuRelay struct {
	client, server *net.UDPConn // the sockets facing each end
	wg             sync.WaitGroup
}

func newMTURelay(t *testing.T, mtu int, clientPort, serverPort uint16) *mtuRelay {
	t.Helper()
	lo := netip.MustParseAddr("127.0.0.1")
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: lo.AsSlice()})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	r := &mtuRelay{client: listen(), server: listen()}
	pipe := func(from, to *net.UDPConn, dst netip.AddrPort) {
		defer r.wg.Done()
		buf := make([]byte, 1<<16)
		for {
			n, err := from.Read(buf)
			if err != nil {
				return
			}
			if n+28 <= mtu {
				_, _ = to.WriteToUDPAddrPort(buf[:n], dst)
			}
		}
	}
	r.wg.Add(2)
	go pipe(r.client, r.server, netip.AddrPortFrom(lo, serverPort))
	go pipe(r.server, r.client, netip.AddrPortFrom(lo, clientPort))
	t.Cleanup(func() {
		_ = r.client.Close()
		_ = r.server.Close()
		r.wg.Wait()
	})
	return r
}

func port(c *net.UDPConn) uint16 { return uint16(c.LocalAddr().(*net.UDPAddr).Port) }

// TestDirectLaneProbe: between hosts the source sends the largest packets
// the path carries, found by probing, and the lane carries data in them;
// the downloader sends the first connection's size.
func TestDirectLaneProbe(t *testing.T) {
	if !probeSupported {
		t.Skip("no path MTU probing on this system")
	}
	path := directPath{local: netip.MustParseAddr("127.0.0.1"), remote: netip.MustParseAddr("127.0.0.1"), probe: true}
	if interfaceMTU(path.local) < directMTU+dtlsOverhead+28 {
		t.Skip("loopback MTU too small")
	}
	for _, c := range []struct {
		name    string
		pathMTU int // 0: no relay
		want    int
	}{
		{"loopback", 0, directMTU},
		{"ethernet", 1500, 1500 - 28 - dtlsOverhead},
		{"jumbo", 9000, directMTU},
		{"tunnel", 1400, sctpBaseMTU},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ce, se := endPair(t, path)
			cport, sport := se.port(), ce.port() // where each end sends
			if c.pathMTU > 0 {
				r := newMTURelay(t, c.pathMTU, ce.port(), se.port())
				cport, sport = port(r.client), port(r.server)
			}
			client, server, cerr, serr := connectEnds(ctx, ce, se, cport, sport, ce.fp[:])
			if cerr != nil || serr != nil {
				t.Fatalf("connect: client %v, server %v", cerr, serr)
			}
			defer client.close()
			defer server.close()
			if got := server.ep.MTU() - dtlsOverhead; got != c.want {
				t.Fatalf("source's packets of %d bytes (as a DTLS record would carry), want %d", got, c.want)
			}
			if got := client.ep.MTU() - dtlsOverhead; got != sctpBaseMTU {
				t.Fatalf("downloader's SCTP MTU %d, want %d", got, sctpBaseMTU)
			}
			// Data crosses in packets of that size: a size the path
			// dropped would stall the lane.
			carries(t, client, server, 2<<20)
		})
	}
}

// TestDirectLaneProbeIPv6: between two IPv6 addresses the probes go with
// IPv6's don't-fragment option, and the lane opens with the largest size.
func TestDirectLaneProbeIPv6(t *testing.T) {
	if !probeSupported {
		t.Skip("no path MTU probing on this system")
	}
	lo6 := netip.MustParseAddr("::1")
	if c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: lo6.AsSlice()}); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		_ = c.Close()
	}
	if interfaceMTU(lo6) < directMTU+dtlsOverhead+48 {
		t.Skip("loopback MTU too small")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ce, se := endPair(t, directPath{local: lo6, remote: lo6, probe: true})
	client, server, cerr, serr := connectEnds(ctx, ce, se, se.port(), ce.port(), ce.fp[:])
	if cerr != nil || serr != nil {
		t.Fatalf("connect: client %v, server %v", cerr, serr)
	}
	defer client.close()
	defer server.close()
	if got := server.ep.MTU() - dtlsOverhead; got != directMTU {
		t.Fatalf("source's SCTP MTU %d, want %d", got, directMTU)
	}
}

// TestProbeHandle: an end answers probes from the other end only, with the
// length it received, and takes only acknowledgements of its own probes.
func TestProbeHandle(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	peerSock, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peerSock.Close()
	pc := newProbeConn(newBatchConn(c, false, false))
	defer pc.Close()
	them := peerSock.LocalAddr().(*net.UDPAddr).AddrPort()
	other := netip.AddrPortFrom(them.Addr(), them.Port()+1)
	pc.setRemote(them)

	probe := append([]byte{probeMsg}, bytes.Repeat([]byte{9}, probeNonceLen)...)
	probe = append(probe, make([]byte, 1000)...)
	if pc.fromRemote(other) || !pc.fromRemote(them) {
		t.Fatal("takes datagrams from another address than the other end's")
	}
	// Through the socket: a stranger's datagrams, probes or records, are
	// dropped unanswered; the other end's record gets through.
	stranger, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	mine := c.LocalAddr()
	record := func(b byte) []byte { return []byte{23, 254, 253, b} }
	for _, b := range [][]byte{probe, record(1)} {
		if _, err := stranger.WriteTo(b, mine); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := peerSock.WriteTo(record(2), mine); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, maxDatagram)
	n, from, err := pc.ReadFrom(got)
	if err != nil || !bytes.Equal(got[:n], record(2)) || from.(*net.UDPAddr).AddrPort() != them {
		t.Fatalf("read %x from %v (%v), want the other end's record", got[:n], from, err)
	}
	_ = stranger.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := stranger.Read(got); err == nil {
		t.Fatalf("the stranger got %x", got[:n])
	}

	pc.handle(probe, them)
	_ = peerSock.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	n, err = peerSock.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != probeAckLen || buf[0] != probeAck || !bytes.Equal(buf[1:1+probeNonceLen], probe[1:1+probeNonceLen]) ||
		int(binary.BigEndian.Uint16(buf[1+probeNonceLen:])) != len(probe) {
		t.Fatalf("ack %x for a probe of %d bytes", buf[:n], len(probe))
	}

	ack := func(nonce [probeNonceLen]byte, size uint16) []byte {
		b := append([]byte{probeAck}, nonce[:]...)
		return binary.BigEndian.AppendUint16(b, size)
	}
	var wrong [probeNonceLen]byte
	pc.handle(ack(wrong, 1472), them)                    // not our nonce
	pc.handle(append(ack(pc.nonce, 1472), 0), them)      // too long
	pc.handle(ack(pc.nonce, 1472)[:probeAckLen-1], them) // too short
	pc.handle(ack(pc.nonce, 1400), them)
	select {
	case n := <-pc.acks:
		if n != 1400 {
			t.Fatalf("took an ack of %d", n)
		}
	default:
		t.Fatal("the good ack was not taken")
	}
	select {
	case n := <-pc.acks:
		t.Fatalf("took a bad ack of %d", n)
	default:
	}
}

// FuzzProbeHandle: whatever arrives from the other end, an end never
// panics, answers only probes, and takes only acknowledgements with its
// nonce.
func FuzzProbeHandle(f *testing.F) {
	f.Add(append([]byte{probeMsg}, make([]byte, 40)...))
	f.Add(append([]byte{probeAck}, make([]byte, probeNonceLen+2)...))
	f.Add([]byte{probeMsg})
	f.Add([]byte{22, 254, 253})
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.Fatal(err)
	}
	pc := newProbeConn(newBatchConn(c, false, false))
	defer pc.Close()
	// The remote is a port nobody listens on: answers go nowhere.
	them := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 9)
	pc.setRemote(them)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		pc.handle(b, them)
		select {
		case <-pc.acks:
			if b[0] != probeAck || len(b) != probeAckLen || !bytes.Equal(b[1:1+probeNonceLen], pc.nonce[:]) {
				t.Fatalf("took %x", b)
			}
		default:
		}
	})
}
