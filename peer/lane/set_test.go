package lane

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// fakeChannel is a lane's channel with a buffered amount the test sets.
type fakeChannel struct {
	buffered, threshold atomic.Uint64
}

func (f *fakeChannel) BufferedAmount() uint64                 { return f.buffered.Load() }
func (f *fakeChannel) SetBufferedAmountLowThreshold(n uint64) { f.threshold.Store(n) }
func (f *fakeChannel) lowThreshold() uint64                   { return f.threshold.Load() }
func (f *fakeChannel) setBuffered(n uint64)                   { f.buffered.Store(n) }
func (*fakeChannel) OnBufferedAmountLow(func())               {}
func (*fakeChannel) Read([]byte) (int, error)                 { return 0, nil }
func (*fakeChannel) Write(p []byte) (int, error)              { return len(p), nil }
func (*fakeChannel) Close() error                             { return nil }
func (*fakeChannel) SetReadDeadline(time.Time) error          { return nil }

func fakeLane(direct bool) (*Lane, *fakeChannel) {
	f := &fakeChannel{}
	return &Lane{ch: f, raw: f, direct: direct}, f
}

// TestSetHoldsBackWhileLanesMayOpen: while a direct or ride lane may
// still open, the first connection takes no more than pendingWater, so
// that what waits goes on the new lane as soon as it opens; once the Set
// settles, or after pendingFor, it takes up to highWater again.
func TestSetHoldsBackWhileLanesMayOpen(t *testing.T) {
	done := make(chan struct{})
	defer close(done)
	ctx := context.Background()

	s := newSet(done, false)
	defer s.close()
	first, f := fakeLane(false)
	s.add(first)
	if got := f.lowThreshold(); got != pendingWater/2 {
		t.Fatalf("first lane's drain threshold %d while lanes may open, want %d", got, pendingWater/2)
	}
	f.setBuffered(pendingWater)
	if ln := s.pick(); ln != first {
		t.Fatalf("pick with %d buffered: %v, want the first lane", uint64(pendingWater), ln)
	}
	f.setBuffered(pendingWater + 1)
	if ln := s.pick(); ln != nil {
		t.Fatalf("pick with %d buffered while lanes may open: lane %d, want none", uint64(pendingWater+1), ln.Index())
	}
	// A writer waiting in Pick takes the direct lane as it opens.
	picked := make(chan *Lane, 1)
	go func() {
		ln, err := s.Pick(ctx)
		if err != nil {
			t.Error(err)
		}
		picked <- ln
	}()
	direct, _ := fakeLane(true)
	s.add(direct)
	select {
	case ln := <-picked:
		if ln != direct {
			t.Fatalf("Pick: lane %d, want the direct lane", ln.Index())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Pick still waits once a direct lane opened")
	}

	// Settled: no bound, and the usual drain threshold.
	s = newSet(done, false)
	defer s.close()
	first, f = fakeLane(false)
	s.add(first)
	s.settle()
	f.setBuffered(highWater)
	if ln := s.pick(); ln != first || f.lowThreshold() != lowWater {
		t.Fatalf("settled: pick %v, drain threshold %d, want the first lane and %d", ln, f.lowThreshold(), uint64(lowWater))
	}
	f.setBuffered(highWater + 1)
	if ln := s.pick(); ln != nil {
		t.Fatalf("pick with %d buffered: lane %d, want none", uint64(highWater+1), ln.Index())
	}

	// Not settled, but pendingFor has passed: the same.
	s = newSet(done, false)
	defer s.close()
	first, f = fakeLane(false)
	s.add(first)
	s.mu.Lock()
	s.pendingUntil = time.Now().Add(-time.Millisecond)
	s.mu.Unlock()
	f.setBuffered(highWater)
	if ln := s.pick(); ln != first || f.lowThreshold() != lowWater {
		t.Fatalf("after pendingFor: pick %v, drain threshold %d, want the first lane and %d", ln, f.lowThreshold(), uint64(lowWater))
	}

	// A peer lane with room is taken while the first one is held back.
	s = newSet(done, false)
	defer s.close()
	first, f = fakeLane(false)
	s.add(first)
	second, g := fakeLane(false)
	s.add(second)
	f.setBuffered(pendingWater + 1)
	g.setBuffered(2 * pendingWater)
	if ln := s.pick(); ln != second {
		t.Fatalf("pick: %v, want the second lane, which has room", ln)
	}
}
