package bulk

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair is a source and a receiving end on two real UDP sockets on
// loopback, each socket's reader handing datagrams to its endpoint.
// drop, if set, decides which datagrams the source's side sends into
// nothing, as a lossy path would.
type pair struct {
	src, dst *Endpoint
	conns    [2]*net.UDPConn
	wg       sync.WaitGroup
}

func newPair(t testing.TB, mtu int, drop func(fromSource bool) bool) *pair {
	t.Helper()
	return newPairWith(t, mtu, drop, nil)
}

// newPairWith is newPair where late, if set, says which of the source's
// datagrams to hold back a while, so that later ones overtake them, as on
// a path that reorders.
func newPairWith(t testing.TB, mtu int, drop func(fromSource bool) bool, late func() bool) *pair {
	t.Helper()
	keys := make([]byte, KeyLen)
	_, _ = rand.Read(keys)
	p := &pair{}
	for i := range p.conns {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadBuffer(4 << 20)
		_ = c.SetWriteBuffer(4 << 20)
		p.conns[i] = c
	}
	mk := func(i int, source bool) *Endpoint {
		c, to := p.conns[i], p.conns[1-i].LocalAddr().(*net.UDPAddr)
		e, err := New(Config{Keys: keys, Source: source, MTU: mtu, IdleTimeout: 3 * time.Second,
			Send: func(ps [][]byte) error {
				for _, b := range ps {
					if drop != nil && drop(source) {
						continue
					}
					if source && late != nil && late() {
						b := bytes.Clone(b)
						p.wg.Add(1)
						time.AfterFunc(2*time.Millisecond, func() {
							defer p.wg.Done()
							_, _ = c.WriteToUDP(b, to)
						})
						continue
					}
					if _, err := c.WriteToUDP(b, to); err != nil && errors.Is(err, net.ErrClosed) {
						return err
					}
				}
				return nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	p.src, p.dst = mk(0, true), mk(1, false)
	for i, e := range []*Endpoint{p.src, p.dst} {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			buf := make([]byte, 1<<16)
			for {
				n, _, err := p.conns[i].ReadFromUDP(buf)
				if err != nil {
					return
				}
				e.Receive(buf[:n])
			}
		}()
	}
	t.Cleanup(p.close)
	return p
}

func (p *pair) close() {
	_ = p.src.Close()
	_ = p.dst.Close()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.wg.Wait()
}

// transfer sends total bytes in messages of varying sizes and checks
// that every one arrives whole, once, in order.
func transfer(t testing.TB, p *pair, total int) {
	t.Helper()
	rng := mrand.New(mrand.NewPCG(1, 2))
	want := sha256.New()
	errc := make(chan error, 1)
	go func() {
		msg := make([]byte, 64<<10)
		for sent := 0; sent < total; {
			n := 1 + rng.IntN(len(msg))
			for i := range msg[:n] {
				msg[i] = byte(sent + i)
			}
			want.Write(msg[:n])
			// The lane's flow control: wait while a lot is unacknowledged.
			for p.src.BufferedAmount() > 4<<20 {
				time.Sleep(100 * time.Microsecond)
			}
			if _, err := p.src.Write(msg[:n]); err != nil {
				errc <- err
				return
			}
			sent += n
		}
		errc <- nil
	}()
	got := sha256.New()
	buf := make([]byte, MaxMessage)
	_ = p.dst.SetReadDeadline(time.Now().Add(60 * time.Second))
	for n := 0; n < total; {
		k, err := p.dst.Read(buf)
		if err != nil {
			t.Fatalf("read after %d of %d bytes: %v", n, total, err)
		}
		got.Write(buf[:k])
		n += k
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatal("the stream arrived different")
	}
}

func TestStream(t *testing.T) {
	p := newPair(t, 1472, nil)
	transfer(t, p, 32<<20)
	st := p.src.Stats()
	t.Logf("source: %+v", st)
	if st.BytesRetransmitted > 1<<20 {
		t.Errorf("%d bytes sent again on a lossless path", st.BytesRetransmitted)
	}
}

func TestStreamLoss(t *testing.T) {
	for _, loss := range []float64{0.01, 0.1} {
		var seed atomic.Uint64
		drop := func(bool) bool {
			// Either way: data and acks are lost alike.
			x := seed.Add(0x9e3779b97f4a7c15)
			return float64(x>>11)/(1<<53) < loss
		}
		p := newPair(t, 1472, drop)
		transfer(t, p, 16<<20)
		t.Logf("loss %.0f%%: source %+v", loss*100, p.src.Stats())
		p.close()
	}
}

// TestStreamReorder: a path that delivers one packet in twenty two
// milliseconds late (later ones overtake it) still carries the stream
// whole, in order, and once the first late packets show the source that
// the path reorders, it waits for them rather than send them again: a
// twentieth of the packets is late, under three hundredths are sent again.
func TestStreamReorder(t *testing.T) {
	var n atomic.Uint64
	p := newPairWith(t, 1472, nil, func() bool { return n.Add(1)%20 == 0 })
	transfer(t, p, 16<<20)
	st := p.src.Stats()
	t.Logf("source: %+v", st)
	if st.Spurious == 0 || st.BytesRetransmitted > st.BytesSent*3/100 {
		t.Errorf("%d of %d bytes sent again on a path that loses nothing (%d losses seen to be late)", st.BytesRetransmitted, st.BytesSent, st.Spurious)
	}
}

func TestCloseEndsRead(t *testing.T) {
	p := newPair(t, 1472, nil)
	if _, err := p.src.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	_ = p.dst.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := p.dst.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	_ = p.src.Close()
	if _, err := p.dst.Read(buf); !errors.Is(err, ErrPeerClosed) {
		t.Fatalf("read after the source closed: %v, want ErrPeerClosed", err)
	}
	if _, err := p.src.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

func TestReadDeadline(t *testing.T) {
	p := newPair(t, 1472, nil)
	_ = p.dst.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var ne net.Error
	if _, err := p.dst.Read(make([]byte, 8)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past its deadline: %v", err)
	}
	var _ io.Reader = p.dst
}

// BenchmarkStream: the stream over loopback UDP, lossless and with 1 %
// of datagrams dropped (either way), in 1472-byte packets as on a LAN.
func BenchmarkStream(b *testing.B) {
	for _, loss := range []float64{0, 0.01} {
		b.Run(fmt.Sprintf("loss=%g", loss), func(b *testing.B) {
			var seed atomic.Uint64
			drop := func(bool) bool {
				x := seed.Add(0x9e3779b97f4a7c15)
				return float64(x>>11)/(1<<53) < loss
			}
			p := newPair(b, 1472, drop)
			b.SetBytes(64 << 20)
			b.ResetTimer()
			for range b.N {
				transfer(b, p, 64<<20)
			}
		})
	}
}

// TestIdle: an end that hears nothing for IdleTimeout gives up with
// ErrIdle, and its reader learns of it.
func TestIdle(t *testing.T) {
	var silent atomic.Bool
	p := newPair(t, 1472, func(bool) bool { return silent.Load() })
	if _, err := p.src.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	_ = p.dst.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := p.dst.Read(buf); err != nil {
		t.Fatal(err)
	}
	silent.Store(true) // the path goes dark both ways
	began := time.Now()
	_ = p.dst.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := p.dst.Read(buf); !errors.Is(err, ErrIdle) {
		t.Fatalf("read on a dark path: %v, want ErrIdle", err)
	}
	if took := time.Since(began); took > 3*time.Second+2*time.Second {
		t.Errorf("gave up after %v, want about the 3 s idle timeout", took)
	}
	select {
	case <-p.src.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the source did not give up")
	}
	if !errors.Is(p.src.Err(), ErrIdle) {
		t.Fatalf("source: %v, want ErrIdle", p.src.Err())
	}
}

// TestHostileAck: an acknowledgement of packets never sent, or of stream
// bytes never sent, ends the stream with ErrProtocol.
func TestHostileAck(t *testing.T) {
	keys := make([]byte, KeyLen)
	_, _ = rand.Read(keys)
	for name, frames := range map[string][]byte{
		"packet never sent": func() []byte {
			var got spans
			got.add(0, 1000)
			return appendAck(nil, got, 0, 0, 1<<21)
		}(),
		"bytes never sent": func() []byte {
			var got spans
			got.add(0, 1)
			return appendAck(nil, got, 0, 1<<20, 1<<21)
		}(),
	} {
		e, err := New(Config{Keys: keys, Source: true, MTU: 1500, Send: func([][]byte) error { return nil }})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		for e.Stats().PacketsSent == 0 { // packet 0 carries the byte
			time.Sleep(time.Millisecond)
		}
		pkt := e.in.seal(append(make([]byte, headerLen), frames...), 0)
		e.Receive(pkt)
		if !errors.Is(e.Err(), ErrProtocol) {
			t.Errorf("%s: %v, want ErrProtocol", name, e.Err())
		}
		_ = e.Close()
	}
}
