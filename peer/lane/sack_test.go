package lane

import (
	"bytes"
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// packetLog stands for the DTLS connection under a sackPacer: it keeps
// what is written to it.
type packetLog struct {
	net.Conn // nil: only Write and Close are used
	mu       sync.Mutex
	pkts     [][]byte
	closed   bool
}

func newPacketLog() *packetLog { return &packetLog{} }

func (l *packetLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, net.ErrClosed
	}
	l.pkts = append(l.pkts, bytes.Clone(p))
	return len(p), nil
}

func (l *packetLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	return nil
}

func (l *packetLog) written() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([][]byte(nil), l.pkts...)
}

// sackPacket builds an SCTP packet whose only chunk is a SACK of cum with
// gaps gap blocks, as pion marshals it.
func sackPacket(cum uint32, gaps int) []byte {
	p := make([]byte, sctpCommonHeaderLen+16+4*gaps)
	c := p[sctpCommonHeaderLen:]
	c[0] = sctpChunkSack
	binary.BigEndian.PutUint16(c[2:], uint16(len(c)))
	binary.BigEndian.PutUint32(c[4:], cum)
	binary.BigEndian.PutUint32(c[8:], 1<<20) // a_rwnd
	binary.BigEndian.PutUint16(c[12:], uint16(gaps))
	for i := range gaps {
		binary.BigEndian.PutUint16(c[16+4*i:], uint16(2+2*i))
		binary.BigEndian.PutUint16(c[18+4*i:], uint16(2+2*i))
	}
	return p
}

// dataPacket builds an SCTP packet with one DATA chunk of n bytes.
func dataPacket(n int) []byte {
	p := make([]byte, sctpCommonHeaderLen+16+n)
	c := p[sctpCommonHeaderLen:]
	c[0] = 0 // DATA
	binary.BigEndian.PutUint16(c[2:], uint16(len(c)))
	return p
}

func TestIsSack(t *testing.T) {
	bundled := append(sackPacket(7, 0), dataPacket(4)[sctpCommonHeaderLen:]...)
	for _, c := range []struct {
		name        string
		p           []byte
		sack, plain bool
	}{
		{"plain", sackPacket(7, 0), true, true},
		{"gap blocks", sackPacket(7, 2), true, false},
		{"bundled with data", bundled, true, false},
		{"data", dataPacket(100), false, false},
		{"data of a SACK's length", dataPacket(0), false, false},
		{"header only", make([]byte, sctpCommonHeaderLen), false, false},
		{"empty", nil, false, false},
	} {
		sack, plain := isSack(c.p)
		if sack != c.sack || plain != c.plain {
			t.Errorf("%s: isSack = %v, %v; want %v, %v", c.name, sack, plain, c.sack, c.plain)
		}
	}
}

// TestSackPacerHolds: within the gap only the first plain SACK leaves at
// once; the latest of the rest leaves when the gap ends (flush is what the
// timer runs). Other packets, and SACKs reporting gaps, are not held, and
// the latter make a SACK held back needless.
func TestSackPacerHolds(t *testing.T) {
	log := newPacketLog()
	p := newSackPacer(log, time.Hour) // the timer stays off; flush by hand
	defer p.Close()
	write := func(b []byte) {
		t.Helper()
		if n, err := p.Write(b); n != len(b) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	expect := func(want ...[]byte) {
		t.Helper()
		got := log.written()
		if len(got) != len(want) {
			t.Fatalf("%d packets written, want %d", len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("packet %d differs", i)
			}
		}
	}

	s1, s2, s3 := sackPacket(1, 0), sackPacket(2, 0), sackPacket(3, 0)
	d := dataPacket(1000)
	write(s1)
	write(s2)
	write(d)
	write(s3)
	s3[sctpCommonHeaderLen+4] = 0xff // the pacer keeps its own copy
	expect(s1, d)
	if !p.armed {
		t.Fatal("timer not armed for the SACK held back")
	}
	p.flush()
	want3 := sackPacket(3, 0)
	expect(s1, d, want3)
	p.flush() // nothing held: nothing sent
	expect(s1, d, want3)

	s4, g5 := sackPacket(4, 0), sackPacket(5, 1)
	write(s4)
	write(g5)
	expect(s1, d, want3, g5)
	p.flush()
	expect(s1, d, want3, g5) // s4 was said by g5

	if plain, held := p.counts(); plain != 4 || held != 3 {
		t.Fatalf("counts = %d plain, %d held; want 4, 3", plain, held)
	}
}

// TestSackPacerTimer: of a burst of plain SACKs within the gap, the first
// leaves at once and the latest by itself once the gap is over, and
// nothing else; one held at Close never leaves. It runs in a synctest
// bubble, so the burst takes no time and the gap passes on a fake clock.
func TestSackPacerTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const gap = 20 * time.Millisecond
		log := newPacketLog()
		p := newSackPacer(log, gap)
		for i := range uint32(50) {
			if _, err := p.Write(sackPacket(i, 0)); err != nil {
				t.Fatal(err)
			}
		}
		if got := log.written(); len(got) != 1 || !bytes.Equal(got[0], sackPacket(0, 0)) {
			t.Fatalf("%d packets left during the burst, want the first SACK alone", len(got))
		}
		time.Sleep(gap)
		synctest.Wait()
		if got := log.written(); len(got) != 2 || !bytes.Equal(got[1], sackPacket(49, 0)) {
			t.Fatalf("%d packets after the gap, want the first SACK and the last", len(got))
		}

		// The last SACK left just now: this one is held.
		if _, err := p.Write(sackPacket(50, 0)); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		p.flush() // as a timer that fired just before Close would
		time.Sleep(2 * gap)
		synctest.Wait()
		if got := log.written(); len(got) != 2 || !log.closed {
			t.Fatalf("%d packets after Close, want 2; closed %v", len(got), log.closed)
		}
	})
}
