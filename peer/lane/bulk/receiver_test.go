package bulk

import (
	"bytes"
	"encoding/binary"
	mrand "math/rand/v2"
	"testing"
)

// TestReceiverReorder: stream bytes that arrive in any order, again and
// again, within the window, come out as the messages sent, while the ring
// grows from its first size to the window.
func TestReceiverReorder(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(3, 4))
	var stream []byte
	var msgs [][]byte
	for len(stream) < 6<<20 {
		m := make([]byte, 1+rng.IntN(64<<10))
		for i := range m {
			m[i] = byte(rng.Uint32())
		}
		msgs = append(msgs, m)
		stream = binary.BigEndian.AppendUint32(stream, uint32(len(m)))
		stream = append(stream, m...)
	}
	const window = 4 << 20
	r := newReceiver(window)
	buf := make([]byte, MaxMessage)
	next := 0
	for sent := 0; next < len(msgs); {
		// Up to the window's end, segments of 1,400 bytes in random
		// order, a tenth of them twice.
		end := min(len(stream), int(r.readOff)+window)
		var segs []int
		for o := sent; o < end; o += 1400 {
			segs = append(segs, o)
		}
		rng.Shuffle(len(segs), func(i, j int) { segs[i], segs[j] = segs[j], segs[i] })
		for _, o := range segs {
			for range 1 + btoi(rng.IntN(10) == 0) {
				if err := r.data(uint64(o), stream[o:min(o+1400, end)]); err != nil {
					t.Fatal(err)
				}
			}
		}
		sent = end
		for {
			n, ok, err := r.next()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			r.take(buf, n)
			if !bytes.Equal(buf[:n], msgs[next]) {
				t.Fatalf("message %d differs", next)
			}
			next++
		}
	}
	if len(r.ring) != window {
		t.Errorf("ring of %d bytes, want it grown to the window", len(r.ring))
	}
	if err := r.data(r.readOff+window-10, make([]byte, 11)); err == nil {
		t.Error("data beyond the window taken")
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
