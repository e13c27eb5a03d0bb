package lane

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// TestBatchConnCoalesce: runs of one size to one address become one
// message each, a shorter datagram ends its run, and anything else stays
// a datagram of its own.
func TestBatchConnCoalesce(t *testing.T) {
	a := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	a2 := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} // equal, not the same pointer
	c := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2}
	msg := func(n int, to net.Addr) ipv4.Message {
		return ipv4.Message{Buffers: [][]byte{make([]byte, n)}, Addr: to}
	}
	out := []ipv4.Message{
		msg(100, a), msg(100, a2), msg(100, a), msg(40, a), // one run, ended by the shorter one
		msg(100, a), msg(100, a), // a new run
		msg(100, c), msg(50, c), // another address
		msg(60, c), msg(70, c), // a larger one starts a new run
	}
	var b batchConn
	got := b.coalesce(out)
	want := []int{4, 2, 2, 1, 1} // datagrams per message
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d", len(got), len(want))
	}
	for i, m := range got {
		if len(m.Buffers) != want[i] {
			t.Errorf("message %d has %d datagrams, want %d", i, len(m.Buffers), want[i])
		}
		if (len(m.Buffers) > 1) != (len(m.OOB) > 0) && gsoAvailable {
			t.Errorf("message %d: %d datagrams with %d bytes of control", i, len(m.Buffers), len(m.OOB))
		}
	}

	// Limits: at most gsoMaxSegments datagrams and gsoMaxBytes in one.
	out = out[:0]
	for range gsoMaxSegments + 1 {
		out = append(out, msg(100, a))
	}
	for range 9 {
		out = append(out, msg(maxDatagram, c))
	}
	got = b.coalesce(out)
	if len(got) != 4 || len(got[0].Buffers) != gsoMaxSegments || len(got[1].Buffers) != 1 ||
		len(got[2].Buffers) != gsoMaxBytes/maxDatagram || len(got[3].Buffers) != 9-gsoMaxBytes/maxDatagram {
		sizes := []int{}
		for _, m := range got {
			sizes = append(sizes, len(m.Buffers))
		}
		t.Fatalf("datagrams per message %v", sizes)
	}
}

// TestBatchConnSegments: what leaves coalesced arrives as the datagrams
// that were written, each whole and in order.
func TestBatchConnSegments(t *testing.T) {
	rc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_ = rc.SetReadBuffer(4 << 20)
	sc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	b := newBatchConn(sc, false, false)
	defer b.Close()
	to := rc.LocalAddr().(*net.UDPAddr)

	var sent [][]byte
	var out []ipv4.Message
	for i, n := range []int{1200, 1200, 1200, 700, 8000, 8000, 8000, 8000, 8000, 8000, 8000, 8000, 3} {
		p := bytes.Repeat([]byte{byte(i + 1)}, n)
		sent = append(sent, p)
		out = append(out, ipv4.Message{Buffers: [][]byte{p}, Addr: to})
	}
	b.send(out)
	if gsoAvailable && !b.gso {
		t.Log("the kernel refused UDP_SEGMENT; sent one by one")
	}
	buf := make([]byte, maxDatagram)
	for i, want := range sent {
		_ = rc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := rc.Read(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if !bytes.Equal(buf[:n], want) {
			t.Fatalf("datagram %d: %d bytes of %d, want %d of %d", i, n, buf[0], len(want), want[0])
		}
	}
}

// TestBatchConnGRO: a socket with GRO gets runs of datagrams coalesced
// (on loopback, as they were sent with UDP_SEGMENT) and hands each out
// whole and in order, through both ways of reading.
func TestBatchConnGRO(t *testing.T) {
	rc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_ = rc.SetReadBuffer(4 << 20)
	r := newBatchConn(rc, false, true)
	defer r.Close()
	sc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := newBatchConn(sc, false, false)
	defer s.Close()
	to := rc.LocalAddr().(*net.UDPAddr)

	var sent [][]byte
	var out []ipv4.Message
	for i, n := range []int{1200, 1200, 1200, 700, 1472, 1472, 1472, 1472, 1472, 1472, 3, 8000, 8000, 8000, 5} {
		p := bytes.Repeat([]byte{byte(i + 1)}, n)
		p[0] = byte(i) // each datagram's own first byte
		sent = append(sent, p)
		out = append(out, ipv4.Message{Buffers: [][]byte{p}, Addr: to})
	}
	s.send(out)
	coalesced := false
	buf := make([]byte, maxDatagram)
	for i, want := range sent {
		_ = r.SetReadDeadline(time.Now().Add(5 * time.Second))
		var got []byte
		if i%2 == 0 {
			n, _, err := r.ReadFromAddrPort(buf)
			if err != nil {
				t.Fatalf("datagram %d: %v", i, err)
			}
			got = buf[:n]
		} else {
			// f declines it, so it comes back as a copy too.
			n, _, err := r.readInPlace(buf, func(d []byte, _ netip.AddrPort, _ time.Time) bool {
				got = append([]byte(nil), d...)
				return false
			})
			if err != nil || !bytes.Equal(buf[:n], got) {
				t.Fatalf("datagram %d: %v, or in place %d bytes and copied %d", i, err, len(got), n)
			}
		}
		coalesced = coalesced || r.rseg > 0
		if !bytes.Equal(got, want) {
			t.Fatalf("datagram %d: %d bytes starting %d, want %d starting %d", i, len(got), got[0], len(want), want[0])
		}
	}
	if r.gro && s.gso && !coalesced {
		t.Error("GRO is on, and the segmented datagrams came one by one")
	}
	t.Logf("GRO %v, GSO %v, coalesced %v", r.gro, s.gso, coalesced)
	if !r.gro || !s.gso {
		return
	}

	// A coalesced read cut short by its buffer is dropped whole: none of
	// its pieces passes for a datagram.
	for i := range r.rmsgs {
		r.rmsgs[i].Buffers[0] = r.rmsgs[i].Buffers[0][:4000]
	}
	out = out[:0]
	for range 4 {
		out = append(out, ipv4.Message{Buffers: [][]byte{bytes.Repeat([]byte{7}, 1200)}, Addr: to})
	}
	s.send(out)
	time.Sleep(50 * time.Millisecond) // the next one in a read of its own
	s.send([]ipv4.Message{{Buffers: [][]byte{bytes.Repeat([]byte{9}, 100)}, Addr: to}})
	_ = r.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := r.ReadFromAddrPort(buf)
	if err != nil || n != 100 || buf[0] != 9 {
		t.Fatalf("after a read cut short: %d bytes starting %d, %v; want the 100-byte datagram", n, buf[0], err)
	}
}
