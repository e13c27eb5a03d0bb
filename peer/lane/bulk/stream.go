package bulk

import (
	"fmt"
	"time"
)

// Read returns the next message. One goroutine reads.
func (e *Endpoint) Read(p []byte) (int, error) {
	if e.r == nil {
		return 0, fmt.Errorf("bulk: read on the source")
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		e.mu.Lock()
		n, ok, err := e.r.next()
		if err != nil {
			e.mu.Unlock()
			e.fail(err, true)
			return 0, err
		}
		if ok {
			if len(p) < n {
				e.mu.Unlock()
				return 0, ErrShortBuffer
			}
			opened := e.r.take(p, n)
			var reply []byte
			if opened {
				reply = e.ackPacket(time.Now())
			}
			e.mu.Unlock()
			if reply != nil {
				e.send(reply)
			}
			return n, nil
		}
		if e.err != nil {
			err := e.err
			e.mu.Unlock()
			return 0, err
		}
		dl := e.readDeadline
		e.mu.Unlock()
		if err := wait(e.readReady, dl, &timer); err != nil {
			return 0, err
		}
	}
}

// wait waits for a nudge on ready, or until the deadline dl (zero: none)
// passes, with *timer made once and reused across a caller's waits.
func wait(ready <-chan struct{}, dl time.Time, timer **time.Timer) error {
	var expired <-chan time.Time
	if !dl.IsZero() {
		d := time.Until(dl)
		if d <= 0 {
			return ErrTimeout
		}
		if *timer == nil {
			*timer = time.NewTimer(d)
		} else {
			(*timer).Reset(d)
		}
		expired = (*timer).C
	}
	select {
	case <-ready:
	case <-expired:
	}
	return nil
}

// Write sends one message of at most MaxMessage bytes: it copies it into
// the stream and returns, or waits while the stream holds maxBuffered
// bytes unacknowledged. One goroutine writes.
func (e *Endpoint) Write(p []byte) (int, error) {
	if e.s == nil {
		return 0, ErrReceiveOnly
	}
	if len(p) > MaxMessage {
		return 0, ErrTooLarge
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		e.mu.Lock()
		if e.err != nil {
			err := e.err
			e.mu.Unlock()
			return 0, err
		}
		if e.s.write(p) {
			e.mu.Unlock()
			nudge(e.wake)
			return len(p), nil
		}
		dl := e.writeDeadline
		e.mu.Unlock()
		if err := wait(e.writeReady, dl, &timer); err != nil {
			return 0, err
		}
	}
}

// SetReadDeadline bounds Read, as net.Conn's does; a zero t removes the
// bound.
func (e *Endpoint) SetReadDeadline(t time.Time) error {
	e.mu.Lock()
	e.readDeadline = t
	e.mu.Unlock()
	nudge(e.readReady)
	return nil
}

// SetWriteDeadline bounds Write.
func (e *Endpoint) SetWriteDeadline(t time.Time) error {
	e.mu.Lock()
	e.writeDeadline = t
	e.mu.Unlock()
	nudge(e.writeReady)
	return nil
}

// SetDeadline sets both.
func (e *Endpoint) SetDeadline(t time.Time) error {
	_ = e.SetReadDeadline(t)
	return e.SetWriteDeadline(t)
}

// BufferedAmount is how many stream bytes the source holds that the
// receiver has not acknowledged: what a data channel's bufferedAmount
// is, so the lane's flow control treats both alike.
func (e *Endpoint) BufferedAmount() uint64 {
	if e.s == nil {
		return 0
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.s.buffered()
}

// SetBufferedAmountLowThreshold sets where OnBufferedAmountLow fires.
func (e *Endpoint) SetBufferedAmountLowThreshold(th uint64) { e.lowThresh.Store(th) }

// OnBufferedAmountLow sets f to be called when an acknowledgement brings
// BufferedAmount from above the threshold to at or below it. f runs on
// the goroutine that calls Receive and must not block.
func (e *Endpoint) OnBufferedAmountLow(f func()) { e.lowCB.Store(&f) }

// MTU is the largest datagram this end sends.
func (e *Endpoint) MTU() int { return e.mtu }
