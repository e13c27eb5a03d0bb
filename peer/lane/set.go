package lane

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Flow control, per lane: a writer waits while more than highWater bytes
// are buffered in SCTP, and resumes once a lane drains to lowWater. pion
// counts what is in flight as buffered until it is acknowledged, so
// lowWater must stay above a lane's bandwidth-delay product or the lane
// idles (a third of these per lane held 3 lanes to 110 Mbit/s on a 50 ms,
// 200 Mbit/s path). highWater bounds memory per peer and lane. Refilling a
// MiB at a time rather than more keeps SCTP's send loop fed where it
// takes turns with the writer on one CPU (both ends on one host), which
// is faster on loopback (docs/performance.md).
const (
	highWater = 4 << 20
	lowWater  = 3 << 20
)

// While a direct or ride lane may still open, for at most pendingFor
// after the first connection did, it keeps no more than pendingWater
// buffered. What the receiver asks for meanwhile then waits here and
// leaves on the new lane as soon as it opens. Without the bound it sat
// behind SCTP's slow start: on a 50 ms path the receiver's first half
// MiB was all buffered there, and the new lane idled for 200 ms until it
// drained (docs/performance.md).
const (
	pendingWater = 256 << 10
	pendingFor   = time.Second
)

// Set is the accepting end's lanes to one peer, the first connection's
// first: it picks the lane each message goes on and holds writers back
// while a lane's buffer is full. Lanes join as the dialer opens them. Its
// methods may be called from several goroutines.
type Set struct {
	done        <-chan struct{} // closed when the Conn closes
	settleFirst bool

	mu    sync.Mutex
	lanes []*Lane // in the order they opened, the first connection's first
	// data are the lanes Pick chooses from: all, or the direct lanes once
	// one has opened (larger packets cost less CPU per byte).
	data []*Lane
	turn int

	low        chan struct{} // some lane's buffer drained to lowWater
	added      chan struct{} // a lane joined
	failed     chan struct{} // closed once a lane's connection failed
	failOnce   sync.Once
	settled    chan struct{} // closed once no more lanes will join
	settleOnce sync.Once
	// tick wakes waiting writers in case a drain event is lost.
	tick     *time.Ticker
	watchers sync.WaitGroup
	// pendingUntil ends the first lane's pendingWater bound, if settle
	// does not first; capped says the bound (and its drain threshold)
	// is still set.
	pendingUntil time.Time
	capped       bool
}

// Lane is one connection of a Set.
type Lane struct {
	set    *Set
	index  int
	ch     bufferedChannel
	raw    rawChannel
	failed <-chan struct{} // nil for a direct lane, which has no ICE
	direct bool
}

// rawChannel is a lane's channel as the lane uses it: a detached data
// channel, or a direct lane's bulk stream.
type rawChannel interface {
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
	Close() error
	SetReadDeadline(time.Time) error
}

// bufferedChannel is the flow-control side of a data channel, which a
// peer connection's and a direct lane's share.
type bufferedChannel interface {
	BufferedAmount() uint64
	SetBufferedAmountLowThreshold(uint64)
	OnBufferedAmountLow(func())
}

func newSet(done <-chan struct{}, settleFirst bool) *Set {
	return &Set{
		done: done, settleFirst: settleFirst,
		low: make(chan struct{}, MaxLanes), added: make(chan struct{}, 1),
		failed: make(chan struct{}), settled: make(chan struct{}),
		tick:         time.NewTicker(250 * time.Millisecond),
		pendingUntil: time.Now().Add(pendingFor),
		capped:       true,
	}
}

// add starts using ln.
func (s *Set) add(ln *Lane) {
	ln.set = s
	ln.ch.OnBufferedAmountLow(func() {
		select {
		case s.low <- struct{}{}:
		default:
		}
	})
	s.mu.Lock()
	ln.index = len(s.lanes)
	if ln.index == 0 && s.capped {
		ln.ch.SetBufferedAmountLowThreshold(pendingWater / 2)
	} else {
		ln.ch.SetBufferedAmountLowThreshold(lowWater)
	}
	s.lanes = append(s.lanes, ln)
	switch {
	case ln.direct && (len(s.data) == 0 || !s.data[0].direct):
		s.data = []*Lane{ln}
	case ln.direct || len(s.data) == 0 || !s.data[0].direct:
		s.data = append(s.data, ln)
	}
	s.mu.Unlock()
	select {
	case s.added <- struct{}{}:
	default:
	}
	if ln.failed != nil {
		s.watchers.Add(1)
		go func() {
			defer s.watchers.Done()
			select {
			case <-ln.failed:
				s.failOnce.Do(func() { close(s.failed) })
			case <-s.done:
			}
		}()
	}
}

// settle records that no more lanes will join.
func (s *Set) settle() {
	s.settleOnce.Do(func() {
		close(s.settled)
		s.mu.Lock()
		s.uncapLocked()
		s.mu.Unlock()
	})
}

// uncapLocked lifts the first lane's pendingWater bound.
func (s *Set) uncapLocked() {
	if !s.capped {
		return
	}
	s.capped = false
	if len(s.lanes) > 0 {
		s.lanes[0].ch.SetBufferedAmountLowThreshold(lowWater)
	}
}

// limitLocked is how much ln may have buffered for Pick to choose it.
func (s *Set) limitLocked(ln *Lane) uint64 {
	if s.capped && !time.Now().Before(s.pendingUntil) {
		s.uncapLocked()
	}
	if s.capped && ln.index == 0 {
		return pendingWater
	}
	return highWater
}

// close releases the Set once its Conn has closed.
func (s *Set) close() {
	s.tick.Stop()
	s.watchers.Wait()
}

// First is the first connection's lane, which carries every message that
// is not bulk data, in order.
func (s *Set) First() *Lane {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lanes[0]
}

// Failed is closed once a lane's connection has failed: the peer is then
// out of reach, or a part of what was written to it is lost.
func (s *Set) Failed() <-chan struct{} { return s.failed }

// Pick returns the lane with the least data waiting, once one has room:
// a lane whose association has stalled is left out. Lanes tie when all
// have drained (a writer slower than its paths): then they take turns.
// It returns ctx's cause when ctx ends first, and an error wrapping
// ErrPeerLeft once a lane has failed.
func (s *Set) Pick(ctx context.Context) (*Lane, error) {
	if s.settleFirst {
		if err := s.awaitSettled(ctx); err != nil {
			return nil, err
		}
	}
	for {
		if ln := s.pick(); ln != nil {
			return ln, nil
		}
		if err := s.wait(ctx); err != nil {
			return nil, err
		}
	}
}

func (s *Set) pick() *Lane {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *Lane
	var least uint64
	for k := range s.data {
		ln := s.data[(s.turn+k)%len(s.data)]
		b := ln.ch.BufferedAmount()
		if b <= s.limitLocked(ln) && (best == nil || b < least) {
			best, least = ln, b
		}
	}
	if best == nil {
		return nil
	}
	s.turn++
	return best
}

func (s *Set) awaitSettled(ctx context.Context) error {
	select {
	case <-s.settled:
		return nil
	case <-s.failed:
		return fmt.Errorf("%w: connection lost", ErrPeerLeft)
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// wait blocks until a lane may have room: one drained, one joined, or a
// tick passed. It returns an error when waiting is over.
func (s *Set) wait(ctx context.Context) error {
	select {
	case <-s.low:
	case <-s.added:
	case <-s.tick.C:
	case <-s.failed:
		return fmt.Errorf("%w: connection lost", ErrPeerLeft)
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	return nil
}

// Index is the lane's place in the order the lanes opened; the first
// connection's is 0.
func (ln *Lane) Index() int { return ln.index }

// Write sends msg (at most MaxMessage bytes) on the lane once its buffer
// has room, waiting as Pick does.
func (ln *Lane) Write(ctx context.Context, msg []byte) error {
	for ln.ch.BufferedAmount() > highWater {
		if err := ln.set.wait(ctx); err != nil {
			return err
		}
	}
	if _, err := ln.raw.Write(msg); err != nil {
		return fmt.Errorf("%w: write: %v", ErrPeerLeft, err)
	}
	return nil
}
