package bulk

import (
	"crypto/rand"
	"testing"
	"time"
)

// FuzzFrames: whatever plaintext a packet that opened holds, the decoder
// returns frames whose fields respect their own bounds, or an error.
func FuzzFrames(f *testing.F) {
	var got spans
	got.add(0, 10)
	got.add(12, 20)
	f.Add(appendAck(nil, got, 5, 100, 1<<20))
	f.Add(append(appendData(nil, 7, 3), 1, 2, 3))
	f.Add([]byte{framePing})
	f.Add(appendClose(nil, "bye"))
	f.Add([]byte{frameAck, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr frame
		for len(b) > 0 {
			rest, err := nextFrame(b, &fr)
			if err != nil {
				return
			}
			if len(rest) >= len(b) {
				t.Fatal("a frame of no bytes")
			}
			switch fr.typ {
			case frameData:
				if len(fr.data) == 0 || fr.off > 1<<62 {
					t.Fatalf("data frame at %d of %d bytes", fr.off, len(fr.data))
				}
			case frameAck:
				a := fr.ack
				if len(a.ranges) == 0 || len(a.ranges) > maxAckRanges || a.ranges[0].hi != a.largest+1 || a.cum > a.limit {
					t.Fatalf("ack %+v", a)
				}
				for i, r := range a.ranges {
					if r.lo >= r.hi || (i > 0 && r.hi >= a.ranges[i-1].lo) {
						t.Fatalf("ack ranges %+v", a.ranges)
					}
				}
			case frameClose:
				if len(fr.why) > 255 {
					t.Fatal("long reason")
				}
			}
			b = rest
		}
	})
}

// FuzzReceive: a packet that opens (the other end holds the keys; it may
// still be hostile) never panics either end, whatever its frames say.
func FuzzReceive(f *testing.F) {
	var got spans
	got.add(0, 3)
	f.Add(true, appendAck(nil, got, 5, 0, 1<<21))
	f.Add(false, append(appendData(nil, 0, 4), 0, 0, 0, 0))
	f.Add(false, append(appendData(nil, 1<<40, 1), 9))
	f.Add(true, []byte{framePing})
	f.Add(false, appendClose(nil, ""))
	keys := make([]byte, KeyLen)
	_, _ = rand.Read(keys)
	f.Fuzz(func(t *testing.T, source bool, frames []byte) {
		e, err := New(Config{Keys: keys, Source: source, MTU: 1500, IdleTimeout: time.Minute, Send: func([][]byte) error { return nil }})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		if source {
			_, _ = e.Write([]byte("some stream bytes"))
		}
		// Sealed as the other end would: its direction's key.
		other := e.in
		pkt := other.seal(append(make([]byte, headerLen), frames...), 0)
		e.Receive(pkt)
		if !source {
			_ = e.SetReadDeadline(time.Now())
			_, _ = e.Read(make([]byte, MaxMessage))
		}
	})
}
