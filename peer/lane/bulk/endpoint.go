package bulk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Config sets up an Endpoint.
type Config struct {
	// Send writes datagrams to the other end, in order: one
	// acknowledgement, or the packets one turn of the pacer allows, which
	// leave together best. It may block while the socket's queue is full,
	// which is how the socket slows the sender; it must not keep ps.
	Send func(ps [][]byte) error
	// Keys is KeyLen bytes of keying material, the same at both ends:
	// exported from the DTLS session that authenticated the other end.
	Keys []byte
	// Source: this end sends the stream; the other receives it.
	Source bool
	// MTU is the largest datagram the path carries (UDP payload bytes).
	MTU int
	// RTT is the path's round trip if known (ICE measured it); 0 if not.
	RTT time.Duration
	// Window is how many stream bytes the receiving end holds ahead of
	// its reader: a power of two, 0 for DefaultWindow. It bounds the
	// receiver's memory and, divided by the round trip, the rate.
	Window int
	// IdleTimeout ends the stream when nothing came from the other end
	// for that long; 0 for DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Logger gets the stream's statistics at close; nil discards.
	Logger *slog.Logger
}

// Defaults for Config fields left zero.
const (
	DefaultWindow      = 8 << 20
	DefaultIdleTimeout = 15 * time.Second
)

const (
	// The receiver acknowledges every ackEvery packets, at once after a
	// gap in the packet numbers, and otherwise ackDelay after the first
	// packet it has not acknowledged.
	ackEvery = 32
	ackDelay = time.Millisecond
	// keepalive: an idle source pings this often, so that both ends hear
	// from each other well within IdleTimeout.
	keepalive = time.Second
	// maxBuffered bounds what a source holds unacknowledged; writers
	// wait above it (the lane's own flow control keeps well below).
	maxBuffered = 32 << 20
	minMTU      = 576
	maxMTU      = 1 << 16
)

// Endpoint is one end of a stream. The source writes messages, the
// receiving end reads them, in order, each once. Receive takes the
// datagrams the other end sent; one goroutine must call it.
type Endpoint struct {
	cfg       Config
	out, in   *sealer
	mtu       int
	idle      time.Duration
	log       *slog.Logger
	lowCB     atomic.Pointer[func()]
	lowThresh atomic.Uint64

	mu        sync.Mutex
	err       error // set once: why the stream ended
	lastHeard time.Time
	nextPN    uint64 // our next packet number
	gotPN     spans  // the other end's packet numbers received
	pnFloor   uint64 // numbers below it count as received (gotPN is trimmed)
	s         *source
	r         *receiver
	stats     Stats

	// wake nudges the loop; readReady and writeReady the one reader and
	// writer waiting. Each has room for one nudge, which is all a waiter
	// needs to look again.
	wake, readReady, writeReady chan struct{}
	readDeadline, writeDeadline time.Time

	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

// Stats are an endpoint's counts, for diagnostics.
type Stats struct {
	PacketsSent, PacketsReceived, BadPackets uint64
	BytesSent, BytesRetransmitted            uint64
	Lost, PTOs, Acks                         uint64
	Spurious                                 uint64  // losses that were only late
	BottleneckBw                             float64 // bytes/s, the source's estimate
	MinRTT                                   time.Duration
}

// New starts an endpoint. Its goroutine runs until Close or until the
// stream fails.
func New(cfg Config) (*Endpoint, error) {
	if len(cfg.Keys) != KeyLen {
		return nil, fmt.Errorf("bulk: %d bytes of keys, want %d", len(cfg.Keys), KeyLen)
	}
	if cfg.MTU < minMTU || cfg.MTU > maxMTU {
		return nil, fmt.Errorf("bulk: MTU %d outside %d..%d", cfg.MTU, minMTU, maxMTU)
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Window&(cfg.Window-1) != 0 || cfg.Window < 2*MaxMessage {
		return nil, fmt.Errorf("bulk: window %d is not a power of two of at least %d", cfg.Window, 2*MaxMessage)
	}
	k := cfg.Keys
	srcKey, rcvKey := k[:keySize], k[keySize:2*keySize]
	srcIV, rcvIV := k[2*keySize:2*keySize+ivSize], k[2*keySize+ivSize:]
	src, err := newSealer(srcKey, srcIV)
	if err != nil {
		return nil, fmt.Errorf("bulk: %w", err)
	}
	rcv, err := newSealer(rcvKey, rcvIV)
	if err != nil {
		return nil, fmt.Errorf("bulk: %w", err)
	}
	e := &Endpoint{cfg: cfg, mtu: cfg.MTU, idle: cfg.IdleTimeout, log: cfg.Logger,
		wake: make(chan struct{}, 1), readReady: make(chan struct{}, 1), writeReady: make(chan struct{}, 1),
		done: make(chan struct{}), lastHeard: time.Now()}
	if e.idle == 0 {
		e.idle = DefaultIdleTimeout
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Source {
		e.out, e.in = src, rcv
		e.s = newSource(cfg)
	} else {
		e.out, e.in = rcv, src
		e.r = newReceiver(cfg.Window)
	}
	e.wg.Add(1)
	go e.run()
	return e, nil
}

func nudge(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Receive handles one datagram from the other end. It decrypts pkt in
// place. Datagrams that are not the other end's packets are dropped.
func (e *Endpoint) Receive(pkt []byte) { e.ReceiveAt(pkt, time.Now()) }

// ReceiveAt is Receive of a datagram read at now: a socket's batch of
// them shares one clock read.
func (e *Endpoint) ReceiveAt(pkt []byte, now time.Time) {
	pn, frames, err := e.in.open(pkt)
	if err != nil {
		e.mu.Lock()
		e.stats.BadPackets++
		e.mu.Unlock()
		return
	}
	var lowCross, arm bool
	var reply []byte
	e.mu.Lock()
	if e.err != nil || pn < e.pnFloor || e.gotPN.contains(pn) {
		e.mu.Unlock()
		return
	}
	gap := len(e.gotPN) > 0 && pn != e.gotPN[len(e.gotPN)-1].hi
	e.gotPN.add(pn, pn+1)
	if len(e.gotPN) > 4*maxAckRanges {
		e.pnFloor = e.gotPN[0].hi
		e.gotPN = append(e.gotPN[:0], e.gotPN[1:]...)
	}
	e.lastHeard = now
	e.stats.PacketsReceived++
	var f frame
	eliciting := false
	for len(frames) > 0 && err == nil {
		if frames, err = nextFrame(frames, &f); err != nil {
			break
		}
		switch {
		case f.typ == frameData && e.r != nil:
			err = e.r.data(f.off, f.data)
			eliciting = true
		case f.typ == frameAck && e.s != nil:
			before := e.s.buffered()
			err = e.s.onAck(&f.ack, now, e.nextPN, &e.stats)
			th := e.lowThresh.Load()
			lowCross = lowCross || err == nil && before > th && e.s.buffered() <= th
		case f.typ == framePing:
			eliciting = true
		case f.typ == frameClose:
			err = ErrPeerClosed
			if f.why != "" {
				err = fmt.Errorf("%w: %s", ErrPeerClosed, f.why)
			}
		default:
			err = fmt.Errorf("%w: frame %q on the wrong end", ErrProtocol, f.typ)
		}
	}
	if err != nil {
		e.mu.Unlock()
		e.fail(err, !errors.Is(err, ErrPeerClosed))
		return
	}
	if e.r != nil && eliciting {
		r := e.r
		if r.unacked == 0 {
			r.firstUnacked = now
		}
		r.unacked++
		if pn+1 == e.gotPN[len(e.gotPN)-1].hi {
			r.largestAt = now // an ack's delay is the largest number's
		}
		if gap || r.unacked >= ackEvery || r.ackNow {
			reply = e.ackPacket(now)
		} else if r.unacked == 1 {
			arm = true // the loop's delayed ack
		}
	}
	wake := e.r != nil && e.r.whole()
	e.mu.Unlock()
	if wake {
		nudge(e.readReady)
	}
	if e.r != nil {
		if arm {
			nudge(e.wake)
		}
	}
	if e.s != nil {
		nudge(e.wake)
		nudge(e.writeReady)
	}
	if lowCross {
		if cb := e.lowCB.Load(); cb != nil {
			(*cb)()
		}
	}
	if reply != nil {
		e.send(reply)
	}
}

// ackPacket seals an ack of what came so far. Called with mu held.
func (e *Endpoint) ackPacket(now time.Time) []byte {
	r := e.r
	if len(e.gotPN) == 0 {
		return nil
	}
	delay := uint32(min(now.Sub(r.largestAt).Microseconds(), 1<<31))
	limit := r.readOff + uint64(r.window)
	b := make([]byte, headerLen, headerLen+ackHeader+maxAckRanges*rangeLen+tagLen)
	b = appendAck(b, e.gotPN, delay, r.held.firstGap(r.readOff), limit)
	r.unacked, r.ackNow, r.advertised = 0, false, limit
	e.stats.Acks++
	return e.seal(b)
}

// seal numbers and seals a packet of plaintext frames (after headerLen
// bytes of room). Called with mu held.
func (e *Endpoint) seal(b []byte) []byte {
	pn := e.nextPN
	e.nextPN++
	e.stats.PacketsSent++
	return e.out.seal(b, pn)
}

func (e *Endpoint) send(pkt []byte) { e.sendAll([][]byte{pkt}) }

func (e *Endpoint) sendAll(pkts [][]byte) {
	if err := e.cfg.Send(pkts); err != nil {
		e.fail(fmt.Errorf("bulk: send: %w", err), false)
	}
}

// fail ends the stream with err, telling the other end when tell.
func (e *Endpoint) fail(err error, tell bool) {
	e.once.Do(func() {
		e.mu.Lock()
		e.err = err
		var bye []byte
		if tell {
			why := ""
			if !errors.Is(err, ErrClosed) {
				why = err.Error()
			}
			bye = e.seal(appendClose(make([]byte, headerLen, headerLen+2+maxWhy+tagLen), why))
		}
		st := e.statsLocked()
		e.mu.Unlock()
		close(e.done)
		nudge(e.readReady)
		nudge(e.writeReady)
		if bye != nil {
			_ = e.cfg.Send([][]byte{bye})
		}
		e.log.Debug("bulk stream ended", "err", err, "source", e.s != nil, "sent", st.PacketsSent,
			"received", st.PacketsReceived, "bad", st.BadPackets, "bytes", st.BytesSent, "retransmitted", st.BytesRetransmitted,
			"lost", st.Lost, "spurious", st.Spurious, "ptos", st.PTOs, "acks", st.Acks, "btlbw_MBps", st.BottleneckBw/1e6, "min_rtt", st.MinRTT)
	})
}

// Close ends the stream here and tells the other end; what the source
// has not delivered is dropped. It waits for the endpoint's goroutine.
func (e *Endpoint) Close() error {
	e.fail(ErrClosed, true)
	e.wg.Wait()
	return nil
}

// Done is closed once the stream has ended; Err then says why.
func (e *Endpoint) Done() <-chan struct{} { return e.done }

// Err is why the stream ended, nil while it runs.
func (e *Endpoint) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// Stats returns the endpoint's counts so far.
func (e *Endpoint) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.statsLocked()
}

func (e *Endpoint) statsLocked() Stats {
	st := e.stats
	if e.s != nil {
		st.BottleneckBw, st.MinRTT = e.s.cc.btlBw, e.s.cc.minRTT
	}
	return st
}

// run is the endpoint's one goroutine: the source's pacer and timers, or
// the receiving end's delayed acknowledgements; and, at both, the check
// that the other end is still there.
func (e *Endpoint) run() {
	defer e.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var out [][]byte
	for {
		now := time.Now()
		e.mu.Lock()
		if e.err != nil {
			e.mu.Unlock()
			return
		}
		if now.Sub(e.lastHeard) > e.idle {
			e.mu.Unlock()
			e.fail(fmt.Errorf("%w for %v", ErrIdle, e.idle), true)
			return
		}
		wakeAt := e.lastHeard.Add(e.idle + time.Millisecond)
		out = out[:0]
		if e.s != nil {
			var at time.Time
			out, at = e.s.fill(e, now, out)
			if !at.IsZero() && at.Before(wakeAt) {
				wakeAt = at
			}
		} else if r := e.r; r.unacked > 0 || r.ackNow {
			if at := r.firstUnacked.Add(ackDelay); r.ackNow || !now.Before(at) {
				out = append(out, e.ackPacket(now))
			} else if at.Before(wakeAt) {
				wakeAt = at
			}
		}
		e.mu.Unlock()
		if e.s != nil { // numbered by fill, sealed here outside the lock
			for i, p := range out {
				out[i] = e.out.seal(p, binary.BigEndian.Uint64(p[1:]))
			}
		}
		if len(out) > 0 {
			e.sendAll(out)
		}
		if len(out) > 0 && e.s != nil {
			continue // the pacer may allow more at once
		}
		timer.Reset(time.Until(wakeAt))
		select {
		case <-e.wake:
		case <-timer.C:
		case <-e.done:
		}
	}
}
