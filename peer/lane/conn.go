package lane

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/datachannel"
	"github.com/pion/webrtc/v4"
)

// Options are what the protocol spoken over a Conn says of itself.
type Options struct {
	// Label names every data channel of the connection and carries the
	// version of the protocol spoken on them: an end refuses a channel
	// with another label.
	Label string
	// Info, at the accepting end, travels to the dialer in the sealed
	// answer, where Conn.Info returns it: at most 64 bytes (package peer
	// sends the sender's manifest key).
	Info []byte
}

// Channel is one ordered, reliable data channel: each Read returns one
// whole message, each Write sends one of at most MaxMessage bytes.
type Channel interface {
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
}

// Conn is a connection to one peer: the first peer connection, whose
// channel carries messages both ways, and the lanes that join it.
type Conn struct {
	t    *Transport
	sig  Signal
	opts Options
	in   *inbox

	// ctx ends at Close, and with it everything the Conn started.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex // guards closed against More's entry
	closed bool
	once   sync.Once

	pc    *webrtc.PeerConnection
	path  Path
	first datachannel.ReadWriteCloserDeadliner
	set   *Set // the accepting end's

	// Negotiation state, touched by one goroutine at a time: Dial or
	// Accept, then More or the accepting end's lane acceptor.
	theirInfo []byte
	// myLanes is how many connections we would use (wire.go);
	// theirLanes what the other end's offer, answer or {lanes} said.
	myLanes, theirLanes int
	// theirDirect is the dialer's end of its direct lanes, from its
	// {lanes, direct}.
	theirDirect *wireDirect
	// theirRide is the keys of the ride lane the dialer asked for.
	theirRide []byte
	// theirRides: the other end's first offer or answer said rides.
	theirRides bool
	// portsRandom: a server-reflexive candidate (ours or theirs) showed
	// a NAT that gives each socket a port of its choosing, so a direct
	// lane across it cannot connect (wire.go).
	portsRandom bool
	// caStep is the first connection's SCTP growth per round trip.
	caStep uint32
	// next is what an answerer's negotiation received for the one after
	// it (see negotiate).
	next []*signalMsg
}

func (t *Transport) newConn(sig Signal, opts Options) *Conn {
	c := &Conn{t: t, sig: sig, opts: opts, myLanes: t.cfg.Lanes}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.in = startInbox(c.ctx, sig, &c.wg)
	return c
}

// Dial connects to the peer at the other end of sig, which Accepts: it
// makes the offer, and returns once the first channel is open. ctx
// bounds the set-up only; the Conn lives until Close.
func (t *Transport) Dial(ctx context.Context, sig Signal, opts Options) (*Conn, error) {
	return t.open(ctx, sig, opts, true)
}

// Accept answers the peer at the other end of sig, which Dials, and
// returns once the first channel is open; the lanes the dialer opens
// join Set as they come. ctx bounds the set-up only; the Conn lives
// until Close.
func (t *Transport) Accept(ctx context.Context, sig Signal, opts Options) (*Conn, error) {
	return t.open(ctx, sig, opts, false)
}

func (t *Transport) open(ctx context.Context, sig Signal, opts Options, dialer bool) (*Conn, error) {
	c := t.newConn(sig, opts)
	if err := c.connect(ctx, dialer); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// connect opens the first connection, as the offerer (the dialer) or the
// answerer.
func (c *Conn) connect(ctx context.Context, offerer bool) error {
	caStep := uint32(sctpCwndCAStep)
	if !offerer {
		// The offer says how many connections the dialer opens and
		// whether it rides, which decides SCTP's growth: wait for it before making the
		// connection (pion reads the setting as it makes one). Nothing is
		// lost: an answerer can do nothing before the offer.
		offer, err := c.awaitOffer(ctx)
		if err != nil {
			c.bye(ctx, err)
			return err
		}
		if offer != nil && offer.Lanes == 1 && !offer.Rides {
			// One connection, and everything on its SCTP: a browser.
			caStep = sctpCwndCAStepOne
		}
	}
	c.caStep = caStep
	pc, pn, err := c.t.newPeerConnectionOn(c.t.mux, caStep)
	if err != nil {
		return err
	}
	c.pc = pc
	var ev *iceEvents
	var dc *webrtc.DataChannel
	if offerer {
		if ev, dc, err = watchOfferer(pc, c.opts.Label); err != nil {
			return err
		}
		if err := c.offer(ctx, pc); err != nil {
			return err
		}
	} else {
		ev = watchAnswerer(pc)
	}
	if dc, err = c.negotiate(ctx, pc, pn, ev, dc); err != nil {
		c.bye(ctx, err)
		return err
	}
	raw, err := dc.DetachWithDeadline()
	if err != nil {
		return fmt.Errorf("lane: detach: %w", err)
	}
	c.first = raw
	c.path = pathOf(pc)
	c.t.log.Debug("connected", "path", c.path.String(), "pair", pairString(pc))
	if offerer {
		// A failed connection does not always end a blocked Read.
		c.goStopOnFail(ev.failed, raw)
		return nil
	}
	c.set = newSet(c.ctx.Done(), c.t.cfg.SettleFirst)
	c.set.add(&Lane{ch: dc, raw: raw, failed: ev.failed})
	if n := c.lanes(); n > 1 || c.rides() {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.acceptLanes(n - 1)
		}()
	} else {
		c.set.settle()
	}
	return nil
}

// awaitOffer waits, as the answerer, for the dialer's first offer, and
// keeps every message up to it for negotiate (c.next), which handles
// them in order. It returns nil (and no error) when something else ends
// the wait first (a bye, a {lanes}: negotiate deals with those), and an
// error when the signalling ends or no offer comes within ConnectTimeout.
func (c *Conn) awaitOffer(ctx context.Context) (*signalMsg, error) {
	wctx, cancel := context.WithTimeout(ctx, c.t.cfg.ConnectTimeout)
	defer cancel()
	for {
		m, err := c.in.next(wctx)
		switch {
		case err != nil && ctx.Err() == nil && wctx.Err() != nil:
			return nil, &ConnectError{Why: fmt.Sprintf("no offer within %v", c.t.cfg.ConnectTimeout)}
		case err != nil:
			return nil, err
		}
		if len(c.next) >= maxKept {
			return nil, fmt.Errorf("%w: signalling flood", ErrProtocol)
		}
		c.next = append(c.next, m)
		switch m.T {
		case sigOffer:
			return m, nil
		case sigBye, sigLanes:
			return nil, nil
		}
	}
}

// bye tells the other end why a negotiation failed, unless it said so
// itself or we were told to stop.
func (c *Conn) bye(ctx context.Context, err error) {
	if ctx.Err() != nil || errors.Is(err, ErrRemote) {
		return
	}
	why := "connection failed"
	switch {
	case errors.Is(err, ErrConnect):
		why = whyNoPath
	case errors.Is(err, ErrVersion):
		why = versionMismatch
	case errors.Is(err, ErrTampered):
		why = "signalling tampered with"
	}
	_ = c.send(ctx, &signalMsg{T: sigBye, Why: why})
}

func (c *Conn) send(ctx context.Context, m *signalMsg) error {
	b, err := encodeSignal(m)
	if err != nil {
		return err
	}
	return c.sig.Send(ctx, b)
}

// lanes is how many connections both ends agreed on (wire.go).
func (c *Conn) lanes() int { return max(1, min(c.myLanes, c.theirLanes)) }

// rides says whether both ends can take a ride lane (wire.go).
func (c *Conn) rides() bool { return !c.t.cfg.NoRide && c.theirRides }

// Channel is the first connection's channel, which carries messages both
// ways. Reads on it end at Close.
func (c *Conn) Channel() Channel { return c.first }

// Path is how the first connection's packets travel.
func (c *Conn) Path() Path { return c.path }

// Info is what the accepting end sent as its Options.Info; nil at the
// accepting end.
func (c *Conn) Info() []byte { return c.theirInfo }

// Set is the accepting end's lanes, to write on; nil at the dialing end.
func (c *Conn) Set() *Set { return c.set }

// Close ends the connection: reads on its channels end, its lanes close,
// More returns. It waits for all of that, so it must not be called from
// More's use; it may be called more than once, from any goroutine.
func (c *Conn) Close() error {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.cancel()
		if c.first != nil {
			stopReading(c.first)
		}
		c.wg.Wait()
		if c.set != nil {
			c.set.close()
		}
		if c.pc != nil {
			c.t.closePC(c.pc)
		}
	})
	return nil
}

// enter counts a caller's goroutine among those Close waits for; false
// once the Conn is closed.
func (c *Conn) enter() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	return true
}

// goStopOnFail stops reading raw once failed is closed, until the Conn
// closes.
func (c *Conn) goStopOnFail(failed <-chan struct{}, raw datachannel.ReadWriteCloserDeadliner) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		select {
		case <-failed:
			stopReading(raw)
		case <-c.ctx.Done():
		}
	}()
}

// More opens the dialing end's lanes, those both ends agreed on beyond
// the first connection, and hands each to use on a goroutine of its own
// as it opens: a direct lane where the first connection's path allows
// one, else a ride lane or peer lanes where the path is long, else none.
// It starts at once, without waiting to hear from the accepting end,
// which keeps what it is told while it still negotiates the first
// connection (wire.go). A lane that cannot connect only means fewer
// lanes, but one that fails once it carries messages (use returns an
// error while ctx lasts), or tampered signalling, ends them all and is
// More's error. It returns once every lane has ended: when ctx ends or
// the Conn closes (nil), or on an error.
func (c *Conn) More(ctx context.Context, use func(context.Context, Channel) error) error {
	if c.first == nil || !c.enter() {
		return nil
	}
	defer c.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.ctx, cancel)()
	t := c.t
	path, direct := t.directPathOf(c.pc)
	switch n := c.lanes(); {
	case n <= 1 && c.rides() && c.canRide():
		// One connection, but the bulk stream can ride its pair: it adds
		// no connection, and carries what SCTP would at a fraction of
		// the CPU, paced.
		rp, _ := t.ridePathOf(c.pc)
		return c.openRide(ctx, rp, 0, use)
	case n <= 1 && c.rides():
		// The accepting end waits for a word either way (wire.go).
		return c.send(ctx, &signalMsg{T: sigLanes, Lanes: 1})
	case n <= 1:
		return nil
	case direct && (c.portsRandom || ourPortsRandom(c.pc)) && offLink(c.pc):
		// A direct lane's new socket would get a new port from the NAT,
		// and the other end refuses its packets: a ride lane at once,
		// rather than after DirectTimeout.
		return c.afterDirect(ctx, c.fallbackLanes(n), use)
	case direct:
		// One direct lane, whatever the path: its stream paces at the
		// path's delivery rate and does not slow down for random loss,
		// which is what several SCTP associations were for; more of them
		// would only compete for one bottleneck (docs/performance.md).
		// Should it not open, peer lanes where they pay.
		k, fallback := 1, 0
		if path.probe && t.wantLanes(c.pc) {
			fallback = n - 1
		}
		return c.openDirect(ctx, path, k, fallback, use)
	case c.rides() && c.canRide():
		// Through NAT: a ride lane; peer lanes should it not open, where
		// they pay.
		rp, _ := t.ridePathOf(c.pc)
		return c.openRide(ctx, rp, c.fallbackLanes(n), use)
	case !t.wantLanes(c.pc):
		// Tell the accepting end not to wait for them.
		_ = c.send(ctx, &signalMsg{T: sigLanes, Lanes: 1})
		return nil
	default:
		return c.openLanes(ctx, n-1, use)
	}
}

// fallbackLanes is how many peer lanes to open, of n connections in all,
// should no direct or ride lane open: none where lanes do not pay.
func (c *Conn) fallbackLanes(n int) int {
	if c.t.wantLanes(c.pc) {
		return n - 1
	}
	return 0
}

// ourPortsRandom says whether a srflx candidate of ours gathered so far
// (the local description has them all, late ones too) shows a NAT that
// gives each socket a port of its choosing.
func ourPortsRandom(pc *webrtc.PeerConnection) bool {
	d := pc.LocalDescription()
	if d == nil {
		return false
	}
	for _, line := range strings.Split(d.SDP, "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(line, "a="))
		if strings.HasPrefix(line, "candidate:") && candidateType(line) == "srflx" && portChanged(line) {
			return true
		}
	}
	return false
}

// offLink says whether the other end of pc's selected pair is off our
// links, so that a NAT may stand between: ours, which a host candidate
// does not show, or theirs.
func offLink(pc *webrtc.PeerConnection) bool {
	_, _, remote, ok := selectedPair(pc)
	return ok && !remote.IsLoopback() && !onLink(remote)
}

// canRide says whether the first connection's pair can take a ride lane.
func (c *Conn) canRide() bool {
	_, ok := c.t.ridePathOf(c.pc)
	return ok
}

// openLanes opens n peer lanes, one after another, and hands each to use
// (see More).
func (c *Conn) openLanes(ctx context.Context, n int, use func(context.Context, Channel) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	var releases []func()
	defer func() {
		cancel(nil)
		wg.Wait()
		for _, release := range releases {
			release()
		}
	}()
	for range n {
		pc, pn, release, err := c.t.newLaneConnection()
		if err != nil {
			return fmt.Errorf("lane: %w", err)
		}
		releases = append(releases, release)
		ev, dc, err := watchOfferer(pc, c.opts.Label)
		if err != nil {
			return err
		}
		if err := c.offer(ctx, pc); err != nil {
			return fmt.Errorf("lane: %w", err)
		}
		if _, err := c.negotiate(ctx, pc, pn, ev, dc); err != nil {
			if errors.Is(err, ErrTampered) || errors.Is(err, ErrProtocol) || errors.Is(err, ErrVersion) {
				return fmt.Errorf("lane: %w", err)
			}
			break
		}
		raw, err := dc.DetachWithDeadline()
		if err != nil {
			return fmt.Errorf("lane: detach: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := carry(ctx, raw, ev.failed, use); err != nil {
				cancel(err)
			}
		}()
	}
	<-ctx.Done()
	if err := context.Cause(ctx); !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// openDirect asks the accepting end for k direct lanes on path (wire.go)
// and hands those that open to use (see More). If none opens, it opens
// fallback peer lanes instead.
func (c *Conn) openDirect(ctx context.Context, path directPath, k, fallback int, use func(context.Context, Channel) error) error {
	ends, err := c.t.newDirectEnds(path, k, c.opts.Label)
	if err != nil {
		c.t.log.Debug("no direct lane", "err", err)
		return c.send(ctx, &signalMsg{T: sigLanes, Lanes: 1})
	}
	if err := c.send(ctx, &signalMsg{T: sigLanes, Lanes: 1 + k, Direct: wireDirects(ends)}); err != nil {
		closeEnds(ends)
		return err
	}
	theirs, err := c.awaitDirect(ctx)
	if err != nil {
		closeEnds(ends)
		return err
	}
	if theirs == nil { // it opens none
		closeEnds(ends)
		return c.afterDirect(ctx, fallback, use)
	}
	ports := theirs.ports()
	if len(ports) > len(ends) {
		closeEnds(ends)
		return fmt.Errorf("lane: %w: %d direct lanes where %d were asked for", ErrProtocol, len(ports), len(ends))
	}
	closeEnds(ends[len(ports):])
	lctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var opened atomic.Int32
	connectAll(lctx, ends[:len(ports)], true, theirs, func(dl *directLane) {
		opened.Add(1)
		defer dl.close()
		if err := carry(lctx, dl.ep, nil, use); err != nil {
			cancel(err)
		}
	})
	if err := context.Cause(lctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if opened.Load() > 0 {
		return nil
	}
	return c.afterDirect(ctx, fallback, use)
}

// afterDirect goes on where no direct lane opened: a NAT on the other
// side can let ICE's pair through but not a new socket's packets, so a
// ride lane where the pair allows one, else fallback peer lanes.
func (c *Conn) afterDirect(ctx context.Context, fallback int, use func(context.Context, Channel) error) error {
	if rp, ok := c.t.ridePathOf(c.pc); ok && c.rides() && ctx.Err() == nil {
		return c.openRide(ctx, rp, fallback, use)
	}
	return c.directFallback(ctx, fallback, use)
}

// directFallback opens n peer lanes to an accepting end that opened no
// direct lane and now waits for them, or tells it none will come (n 0).
func (c *Conn) directFallback(ctx context.Context, n int, use func(context.Context, Channel) error) error {
	if ctx.Err() != nil {
		return nil
	}
	if n == 0 {
		return c.send(ctx, &signalMsg{T: sigLanes, Lanes: 1})
	}
	return c.openLanes(ctx, n, use)
}

// awaitDirect waits for the accepting end's direct lanes; nil (and no
// error) when it opens none or does not answer within DirectTimeout.
func (c *Conn) awaitDirect(ctx context.Context) (*wireDirect, error) {
	m, err := c.awaitWord(ctx, sigDirect)
	if m == nil {
		return nil, err
	}
	return m.Direct, nil
}

// awaitWord waits for the other end's word on a lane: the accepting
// end's answer to one asked for, or a dialer's {lanes} (awaitDialer). It
// returns its message of type want, or nil (and no error) when it opens
// none, gives up, or says nothing within DirectTimeout. What a
// negotiation kept for the next one (c.next) comes first.
func (c *Conn) awaitWord(ctx context.Context, want string) (*signalMsg, error) {
	wctx, cancel := context.WithTimeout(ctx, c.t.cfg.DirectTimeout)
	defer cancel()
	for {
		var m *signalMsg
		if len(c.next) > 0 { // kept by a negotiation (see negotiate)
			m, c.next = c.next[0], c.next[1:]
		} else {
			var err error
			m, err = c.in.next(wctx)
			switch {
			case err != nil && ctx.Err() == nil && wctx.Err() != nil:
				return nil, nil
			case err != nil:
				return nil, fmt.Errorf("lane: %w", err)
			}
		}
		switch m.T {
		case want:
			return m, nil
		case sigCand, sigPunched: // the first connection's, after it opened
		case sigLanes, sigBye: // it opens none
			return nil, nil
		default:
			return nil, fmt.Errorf("lane: %w: unexpected %q", ErrProtocol, m.T)
		}
	}
}

// carry hands a lane's channel to use until ctx ends, then stops reading
// it; the error is the lane's failure (use's, while ctx lasts), nil when
// ctx ended first. failed, if not nil, is closed when the lane's
// connection fails, which does not always end a blocked Read.
func carry(ctx context.Context, raw rawChannel, failed <-chan struct{}, use func(context.Context, Channel) error) error {
	defer stopReading(raw)
	if failed != nil {
		var watching sync.WaitGroup
		done := make(chan struct{})
		defer watching.Wait()
		defer close(done)
		watching.Add(1)
		go func() {
			defer watching.Done()
			select {
			case <-failed:
				stopReading(raw)
			case <-done:
			}
		}()
	}
	stop := context.AfterFunc(ctx, func() { stopReading(raw) })
	defer stop()
	if err := use(ctx, raw); err != nil && ctx.Err() == nil {
		return fmt.Errorf("lane: %w", err)
	}
	return nil
}
