package peer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/p2pxfer/p2pxfer/chunker"
	"github.com/p2pxfer/p2pxfer/pake"
	"github.com/p2pxfer/p2pxfer/peer/lane"
	"github.com/p2pxfer/p2pxfer/room"
	"github.com/p2pxfer/p2pxfer/sched"
)

// ReceiveOptions configure Receive.
type ReceiveOptions struct {
	Room, Self, Host string // as the server told us when we joined
	// Key is the manifest-signing key the server handed out in joined;
	// every manifest must carry its signature.
	Key      ed25519.PublicKey
	Password string
	// Open is called once with the verified manifest, before any piece is
	// requested; it decides where the files go (and may refuse them).
	// Receive does not close the Writer: the caller does, after Receive.
	Open func(*chunker.Manifest) (*chunker.Writer, error)
	// MaxSources is how many peers we download from at once (default 4).
	MaxSources int
	// Slots is how many peers we serve at once, while downloading (the
	// pieces verified so far) and after; 0 never serves anyone.
	Slots int
	// SeedTime bounds seeding once the files are complete; 0 sets no
	// bound. Seeding needs Slots > 0. seed.go says when else it ends.
	SeedTime time.Duration
	// SeedIdle ends seeding once nobody has been served by us for this
	// long (the command line's default is DefaultSeedIdle); 0 never ends
	// it for that.
	SeedIdle time.Duration
	// MaxFailures ends seeding after this many failed password handshakes
	// at us (default 10).
	MaxFailures int

	// Callbacks, all from Receive's own goroutine except OnEvent (see
	// Event).
	OnSource func(SourceEvent)
	// OnQueued: every source that could serve us is busy; we wait in
	// the room's queue at position.
	OnQueued func(position int)
	// OnNoSource: nobody in the room can give us a piece we lack; we wait
	// up to wait for one to come, then give up with ErrNoSources.
	OnNoSource func(wait time.Duration)
	OnProgress func(done, total int64)
	OnComplete func() // files verified and in place; seeding starts
	OnEvent    func(Event)

	allowSource func(peer string) bool       // tests: sources we may request from
	corrupt     func(piece int, data []byte) // tests: play a malicious seed
	pace        *pacing                      // tests: quicker than defaultPacing
}

// SourceEventKind says what happened to one source we download from.
type SourceEventKind int

// Source event kinds.
const (
	SourceConnected SourceEventKind = iota
	SourceLeft                      // Err says why, nil once we are done
	SourceBanned                    // it sent bad data; dropped for the transfer
	// SourceWithdrew: a file changed on its disk (Err says which), so it
	// offers that file no more; it may go on serving the others.
	SourceWithdrew
)

// SourceEvent reports on one source.
type SourceEvent struct {
	Kind SourceEventKind
	Peer string
	Host bool      // the source is the room's sender
	Path lane.Path // SourceConnected: how the connection's packets travel
	Err  error
}

const (
	defaultMaxSources = 4
	// sourceStall drops a source that owes us pieces and sends nothing
	// for this long; its pieces go to the others.
	sourceStall = 30 * time.Second
	// leftStall is sourceStall for a source the signalling server says
	// has left (its process died, say): a connection whose data still
	// flows goes on, one that went quiet is given up sooner.
	leftStall = 5 * time.Second
	// finishGrace lets our finished frame reach the sources before we cut
	// the connections.
	finishGrace = 2 * time.Second
	// maxConnectTries is how often we try a source we never reached.
	maxConnectTries = 2
	// What we verified goes to our sources in have frames at most every
	// haveEvery, or once haveBatch pieces have gathered: one frame per
	// piece, as a tree of small files gave, cost each side a message and
	// the sender a progress event per file.
	haveEvery = 20 * time.Millisecond
	haveBatch = 1024
)

// pacing is how often a download looks after its sources.
type pacing struct {
	// tick is how often it updates their rates, drops stalled and
	// finished ones, and asks for more.
	tick time.Duration
	// wantEvery paces asking the server for more sources while we have
	// fewer than MaxSources; wantAfterDrop is how long after the last
	// ask a dropped source is replaced at once.
	wantEvery, wantAfterDrop time.Duration
	// greetWait drops a source that connected and has sent nothing for
	// this long: one writes its manifest as soon as its channel opens. A
	// browser page's channel once stayed silent for good (the data it
	// wrote never arrived); a new connection to it carries on.
	greetWait time.Duration
}

var defaultPacing = pacing{tick: time.Second, wantEvery: 3 * time.Second, wantAfterDrop: time.Second, greetWait: 15 * time.Second}

// Receive downloads the room's files from up to MaxSources peers at once,
// asking the signalling server for sources (the sender, seeds, receivers
// that hold part of the files) and connecting to each lazily: only then
// does it run the PAKE and create the offer. Meanwhile, with Slots > 0, it
// serves what it has verified, and once complete it seeds until seed.go's
// policy ends it.
// It returns nil once every file is verified and in place and seeding has
// ended (ctx ending during seeding is a normal end).
func (e *Engine) Receive(ctx context.Context, sig Signaller, opts ReceiveOptions) error {
	if len(opts.Key) != ed25519.PublicKeySize {
		return fmt.Errorf("peer receive: %w: the signalling server gave no manifest key for this room", ErrForged)
	}
	if opts.MaxSources <= 0 {
		opts.MaxSources = defaultMaxSources
	}
	if opts.pace == nil {
		opts.pace = &defaultPacing
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	msgs, sigErr := pump(ctx, &wg, sig)
	sp := newServePool(e, sig, serveConfig{
		room: opts.Room, self: opts.Self, password: opts.Password,
		maxFailures: opts.MaxFailures, emit: opts.OnEvent, corrupt: opts.corrupt,
	}, &wg)
	defer sp.stopAll()
	d := &download{
		e: e, sig: sig, opts: opts, sp: sp, wg: &wg,
		events: make(chan dlEvent, 16),
		opened: make(chan struct{}),
		srcs:   map[string]*dsource{},
		banned: map[string]bool{},

		unreachable: map[string]int{},
		seeding:     opts.Slots > 0,
	}
	defer d.stopAll()
	if err := d.run(ctx, msgs, sigErr); err != nil {
		return fmt.Errorf("peer receive: %w", err)
	}
	return nil
}

// download is Receive's state; only its loop (run) touches it.
type download struct {
	e    *Engine
	sig  Signaller
	opts ReceiveOptions
	sp   *servePool
	wg   *sync.WaitGroup

	events chan dlEvent
	// opened is closed once the loop has opened the manifest (open):
	// a lane's reader takes piece buffers only after that.
	opened chan struct{}
	srcs   map[string]*dsource
	seq    uint64
	banned map[string]bool
	// unreachable counts failed connection attempts per source.
	unreachable map[string]int
	forged      error // why the last source was refused, for when none is left
	banErr      error // why the last source was banned
	// onlyBanned: with no source left, the server offered only peers we
	// banned: nobody else can help.
	onlyBanned bool
	lost       error // signalling is gone
	// noneLeft: the server's last answer to our want said nobody else in
	// the room offers slots (queued{sources: 0}); stuckSince is when the
	// download last started to have no way forward (stuck).
	noneLeft   bool
	stuckSince time.Time
	// changed: a source withdrew a file that changed on its disk ('C');
	// once stuck, the download ends with it at once.
	changed error

	m        *chunker.Manifest
	signed   []byte
	w        *chunker.Writer
	st       *store
	sc       *sched.Scheduler
	told     int // store log position our sources have heard of
	complete bool
	lastWant time.Time
	// haveSent is when tellHaves last sent; haveWake, while news waits,
	// fires when it is due.
	haveSent time.Time
	haveWake <-chan time.Time
	// seeding: we serve others, and stay as a seed once complete (see
	// seed.go: not when we had every file before we started).
	seeding bool

	bufs    chan []byte
	nbufs   atomic.Int32
	maxBufs int32
}

// dsource is one peer we download from.
type dsource struct {
	id      string
	seq     uint64
	l       *link
	cancel  context.CancelFunc
	raw     io.Writer // nil until the data channel is open
	inSched bool
	// asked holds what we requested that has not arrived: true while it
	// counts in askedBytes and nAsked, false once cancelled or withdrawn
	// (it may still come, or never: such entries stay, so only nAsked
	// says how much the source still owes us).
	asked    map[int]bool
	nAsked   int
	lastData time.Time
	finished time.Time // when we sent it our finished frame

	// Flow: we keep about a second of what the source delivers asked
	// for, so a slow or shared uplink is not booked far ahead (its pieces
	// would arrive late and be rarer for everyone else), while a fast one
	// gets a window that covers its bandwidth-delay product.
	askedBytes int64
	got        int64   // bytes received since the last rate update
	rate       float64 // bytes per second, smoothed
}

const (
	minSourceWindow = 512 << 10
	maxSourceWindow = sched.DefaultWindow
	// maxAsked bounds the pieces we keep asked of one source, whatever
	// their size: a source queues at most maxOutstanding and ends the
	// session beyond, and a window of bytes is tens of thousands of
	// pieces of a few bytes (a seed, which offers all it has, met that).
	maxAsked = maxOutstanding / 4
)

// window is what we keep asked of s: about a second of its rate, and at
// least minSourceWindow plus what arrived since the last rate update. The
// second term is a slow start: before the first estimate the window
// doubles each round trip, where minSourceWindow alone held a new source
// at 512 KiB per round trip (10 MB/s at 50 ms) for its first second.
func (s *dsource) window() int64 {
	return min(maxSourceWindow, max(minSourceWindow+s.got, int64(s.rate)))
}

type dlKind int

const (
	dlConnected dlKind = iota
	dlManifest
	dlBitmap
	dlHave
	dlPiece
	dlChanged // the source withdrew file (piece holds its index)
	dlEnd
)

// dlEvent is what a source's goroutine hands the loop.
type dlEvent struct {
	kind   dlKind
	src    string
	seq    uint64
	raw    io.Writer
	key    []byte
	path   lane.Path
	m      *chunker.Manifest
	signed []byte
	bitmap []byte
	list   []uint32
	piece  int
	buf    []byte
	err    error
}

func (d *download) isHost(id string) bool { return id == d.opts.Host }

func (d *download) run(ctx context.Context, msgs <-chan *room.Message, sigErr <-chan error) error {
	d.want(ctx)
	tick := time.NewTicker(d.opts.pace.tick)
	defer tick.Stop()
	pol := seedPolicy{idle: d.opts.SeedIdle, max: d.opts.SeedTime}
	for {
		if d.complete && len(d.srcs) == 0 {
			if !d.seeding {
				return nil
			}
			if d.lost != nil && d.sp.active() == 0 {
				return d.seedEnded(SeedEndRoomGone, d.lost)
			}
			if why, over := pol.over(time.Now()); over {
				return d.seedEnded(why, nil)
			}
		}
		select {
		case <-ctx.Done():
			if d.complete {
				if d.seeding {
					return d.seedEnded(SeedEndInterrupted, nil)
				}
				return nil
			}
			return ctx.Err()
		case err := <-sigErr:
			if ctx.Err() != nil {
				continue
			}
			d.lost = err
			d.sp.signallingLost(err)
			for _, s := range d.srcs {
				if s.raw == nil {
					s.l.leave(err)
				}
			}
			if !d.complete && len(d.srcs) == 0 {
				return fmt.Errorf("signalling: %w", err)
			}
		case m := <-msgs:
			d.signal(ctx, m)
		case ev := <-d.events:
			if err := d.event(ctx, ev); err != nil {
				return err
			}
		case r := <-d.sp.results:
			if err := d.sp.done(r); err != nil {
				if d.complete {
					return d.seedEnded(SeedEndRefused, err) // the files are fine
				}
				d.sp.refuse = true // someone guesses passwords at us: stop serving, go on downloading
			}
		case <-d.haveWake:
			d.haveWake = nil // tellHaves below sends
		case <-tick.C:
			d.housekeeping(ctx)
			if err := d.checkStuck(); err != nil {
				return err
			}
		}
		if !d.complete && d.sc != nil && d.sc.Complete() {
			if err := d.finish(ctx); err != nil {
				return err
			}
			pol.begin(time.Now())
		}
		if d.complete && d.seeding {
			// The tick bounds how late an end is noticed.
			pol.served(time.Now(), d.sp.active() > 0)
		}
		if !d.complete {
			if len(d.srcs) == 0 && d.forged != nil && d.signed == nil {
				return d.forged
			}
			if len(d.srcs) == 0 && d.onlyBanned {
				return fmt.Errorf("%w: no other source: %w", ErrNoSources, d.banErr)
			}
			if len(d.srcs) == 0 && d.lost != nil {
				return fmt.Errorf("%w: signalling lost: %w", ErrNoSources, d.lost)
			}
			d.fill()
		}
		d.tellHaves(false)
	}
}

// seedEnded reports why seeding ended, for Receive to return nil.
func (d *download) seedEnded(why SeedEndReason, err error) error {
	d.sp.cfg.emit(Event{Kind: EventSeedEnded, Reason: why, Err: err})
	return nil
}

// idle reports whether every source we have is connected and has
// nothing we lack (the scheduler gave it no request): true with none.
func (d *download) idle() bool {
	for _, s := range d.srcs {
		if s.raw == nil || !s.inSched || s.askedBytes > 0 {
			return false
		}
	}
	return true
}

// stuck reports whether the download has no way forward: its sources are
// idle and the server said nobody else offers slots.
func (d *download) stuck() bool {
	return !d.complete && d.noneLeft && d.idle()
}

// checkStuck gives up once the download has been stuck for NoSourceWait:
// otherwise a receiver whose sender died would wait in the queue for
// ever. Partial seeds then give up too, each in turn, and none of them
// waits on the others for ever.
func (d *download) checkStuck() error {
	if !d.stuck() {
		d.stuckSince = time.Time{}
		return nil
	}
	if d.changed != nil {
		return d.changed // nobody left has it as offered: no use waiting
	}
	wait := d.e.cfg.NoSourceWait
	if d.stuckSince.IsZero() {
		d.stuckSince = time.Now()
		if d.opts.OnNoSource != nil {
			d.opts.OnNoSource(wait)
		}
		return nil
	}
	if time.Since(d.stuckSince) < wait {
		return nil
	}
	what := "the pieces still missing"
	if d.w != nil {
		what = fmt.Sprintf("the %d bytes still missing", d.m.TotalSize()-d.w.Verified())
	}
	if d.srcs[d.opts.Host] == nil && d.noneLeft {
		// The sender offers slots for as long as it is in the room.
		return fmt.Errorf("%w: %w, and nobody still in it holds %s (waited %v)", ErrNoSources, ErrSenderLeft, what, wait)
	}
	return fmt.Errorf("%w: none of the peers in the room holds %s (waited %v)", ErrNoSources, what, wait)
}

// want asks the server for as many sources as we lack.
func (d *download) want(ctx context.Context) {
	n := min(d.opts.MaxSources-len(d.srcs), room.MaxWant)
	if n <= 0 && d.idle() {
		n = 1 // ours have nothing we need: one more, or hear that nobody is left
	}
	if d.complete || d.lost != nil || n <= 0 {
		return
	}
	d.lastWant = time.Now()
	_ = d.sig.Send(ctx, &room.Message{Type: room.TypeWant, Count: n})
}

func (d *download) release(ctx context.Context, id string) {
	if d.lost == nil {
		_ = d.sig.Send(ctx, &room.Message{Type: room.TypeRelease, Peer: id})
	}
}

func (d *download) signal(ctx context.Context, m *room.Message) {
	switch m.Type {
	case room.TypePeers:
		fresh := false
		for _, id := range m.Peers {
			if !d.banned[id] {
				fresh = true
			}
			if d.banned[id] || d.complete || d.srcs[id] != nil || id == d.opts.Self {
				d.release(ctx, id)
				continue
			}
			d.start(ctx, id)
		}
		d.onlyBanned = !fresh && len(d.srcs) == 0 // the server has nobody else to offer
		d.noneLeft = false
	case room.TypeQueued:
		d.noneLeft = m.Sources == 0
		// Queued for more sources while one is assigned (connecting, or
		// serving us) is no news to the user.
		if d.opts.OnQueued != nil && !d.complete && len(d.srcs) == 0 && !d.noneLeft {
			d.opts.OnQueued(m.Position)
		}
	case room.TypeRelay:
		if s := d.srcs[m.Peer]; s != nil {
			s.l.deliver(m.Data)
			return
		}
		d.sp.handle(ctx, m)
	case room.TypeLeft, room.TypeError:
		if s := d.srcs[m.Peer]; s != nil && m.Peer != "" {
			var err error
			if m.Type == room.TypeError {
				err = room.ErrorFromCode(m.Code, m.Text)
			}
			s.l.leave(err)
			return
		}
		d.sp.handle(ctx, m)
	}
}

// start connects to a source the server assigned us.
func (d *download) start(ctx context.Context, id string) {
	d.seq++
	sctx, cancel := context.WithCancel(ctx)
	s := &dsource{id: id, seq: d.seq, l: newLink(d.sig, id), cancel: cancel, asked: map[int]bool{}}
	d.srcs[id] = s
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		send := func(ev dlEvent) bool {
			ev.src, ev.seq = id, s.seq
			select {
			case d.events <- ev:
				return true
			case <-sctx.Done():
				return false
			}
		}
		err := d.fetch(sctx, s.l, send)
		send(dlEvent{kind: dlEnd, err: err})
	}()
}

// drop forgets a source: its requests go to others, its slot back to the
// pool.
func (d *download) drop(ctx context.Context, s *dsource, kind SourceEventKind, err error) {
	s.cancel()
	delete(d.srcs, s.id)
	if d.sc != nil {
		if kind == SourceBanned {
			d.sc.Ban(s.id)
		} else {
			d.sc.RemovePeer(s.id)
		}
	}
	if kind == SourceBanned {
		d.banned[s.id] = true
		d.banErr = err
	}
	d.release(ctx, s.id)
	d.noneLeft = false // its slot is free again: the next want says
	if d.opts.OnSource != nil && (s.raw != nil || err != nil) {
		d.opts.OnSource(SourceEvent{Kind: kind, Peer: s.id, Host: d.isHost(s.id), Err: err})
	}
	if !d.complete && time.Since(d.lastWant) > d.opts.pace.wantAfterDrop {
		d.want(ctx)
	}
}

func (d *download) stopAll() {
	for _, s := range d.srcs {
		s.cancel()
	}
}

func (d *download) housekeeping(ctx context.Context) {
	now := time.Now()
	for _, s := range d.srcs {
		// Called once a tick: got is the last tick's bytes.
		perSec := float64(s.got) / d.opts.pace.tick.Seconds()
		if s.rate == 0 {
			s.rate = perSec
		} else {
			s.rate = 0.5*s.rate + 0.5*perSec
		}
		s.got = 0
		switch {
		case !s.finished.IsZero() && now.Sub(s.finished) > finishGrace:
			d.drop(ctx, s, SourceLeft, nil)
		case s.finished.IsZero() && s.askedBytes > 0 && now.Sub(s.lastData) > sourceStall:
			d.drop(ctx, s, SourceLeft, fmt.Errorf("%w: nothing received for %v", ErrTimeout, sourceStall))
		case s.finished.IsZero() && s.askedBytes > 0 && now.Sub(s.lastData) > leftStall && s.raw != nil && s.l.isGone():
			d.drop(ctx, s, SourceLeft, fmt.Errorf("%w: it left the room, and nothing came for %v", ErrPeerLeft, leftStall))
		}
	}
	if !d.complete && (len(d.srcs) < d.opts.MaxSources || d.idle()) && now.Sub(d.lastWant) >= d.opts.pace.wantEvery {
		d.want(ctx)
	}
}

func (d *download) event(ctx context.Context, ev dlEvent) error {
	s := d.srcs[ev.src]
	if s == nil || s.seq != ev.seq {
		if ev.kind == dlPiece {
			d.putBuf(ev.buf)
		}
		return nil // a source we already dropped
	}
	switch ev.kind {
	case dlConnected:
		if d.isHost(s.id) && ev.key != nil && !bytes.Equal(ev.key, d.opts.Key) {
			return fmt.Errorf("%w: the sender's key differs from the one the signalling server handed out", ErrForged)
		}
		s.raw = ev.raw
		s.lastData = time.Now()
		if d.opts.OnSource != nil {
			d.opts.OnSource(SourceEvent{Kind: SourceConnected, Peer: s.id, Host: d.isHost(s.id), Path: ev.path})
		}
		if d.st != nil {
			d.sendBitmap(s)
		}
	case dlManifest:
		if d.signed != nil {
			if !bytes.Equal(ev.signed, d.signed) {
				d.drop(ctx, s, SourceBanned, fmt.Errorf("%w: a different manifest", ErrProtocol))
			}
			return nil
		}
		return d.open(ctx, ev)
	case dlBitmap:
		if d.sc == nil {
			return nil
		}
		bm := ev.bitmap
		if s.inSched {
			d.drop(ctx, s, SourceBanned, fmt.Errorf("%w: second have-bitmap", ErrProtocol))
			return nil
		}
		if err := d.sc.AddPeer(s.id, bm); err != nil {
			d.drop(ctx, s, SourceBanned, err)
			return nil
		}
		s.inSched = true
	case dlHave:
		if d.sc != nil {
			for _, p := range ev.list {
				d.sc.PeerHas(s.id, int(p))
			}
		}
	case dlPiece:
		return d.piece(ctx, s, ev.piece, ev.buf)
	case dlChanged:
		d.changed = &ChangedError{File: d.m.Files[ev.piece].Name, Sender: d.isHost(s.id)}
		if d.opts.OnSource != nil {
			d.opts.OnSource(SourceEvent{Kind: SourceWithdrew, Peer: s.id, Host: d.isHost(s.id), Err: d.changed})
		}
		d.withdrawn(s, ev.piece)
		d.want(ctx) // who else has it? (queued{sources: 0}: nobody)
	case dlEnd:
		err := ev.err
		if isWrongPassword(err) || errors.Is(err, ErrTampered) || errors.Is(err, chunker.ErrBadManifest) {
			// The same password opens every source: ours is wrong. A
			// signalling server that alters sealed frames is attacking us.
			// A manifest the sender signed but that is unusable (a hostile
			// name, say) is the sender's doing: no source can do better.
			return err
		}
		if s.raw == nil && err != nil && ctx.Err() == nil {
			// Never connected: after a second try, stop asking for it. No
			// path at all (ICE tried every pair) is no better a second
			// time, with the same candidates.
			if d.unreachable[s.id]++; d.unreachable[s.id] >= maxConnectTries || errors.Is(err, ErrConnect) {
				d.drop(ctx, s, SourceBanned, err)
				return nil
			}
		}
		if errors.Is(err, ErrForged) {
			d.forged = err
			d.drop(ctx, s, SourceBanned, err)
			return nil
		}
		if !s.finished.IsZero() {
			err = nil
		}
		d.drop(ctx, s, SourceLeft, err)
	}
	return nil
}

// withdrawn forgets that s has the pieces of file fi and the parity that
// covers them: it offers them no more. What we asked of them there goes
// to others; it may still come (sent before the file changed), so it
// stays known, like a cancel.
func (d *download) withdrawn(s *dsource, fi int) {
	m := d.m
	first, n := m.FileChunks(fi)
	lose := func(p int) {
		if s.inSched {
			d.sc.PeerLost(s.id, p)
		}
		if s.asked[p] {
			s.asked[p] = false
			s.nAsked--
			s.askedBytes -= int64(m.Piece(p).Size)
		}
	}
	for c := first; c < first+n; c++ {
		lose(c)
	}
	if !m.FEC.Enabled() || n == 0 {
		return
	}
	// A file's chunks are contiguous, so are the stripes over them.
	for st := m.StripeOf(first); st <= m.StripeOf(first+n-1); st++ {
		ref := m.Stripe(st)
		for j := range ref.NParity {
			lose(ref.FirstParity + j)
		}
	}
}

// open accepts the first manifest whose signature checks out.
func (d *download) open(ctx context.Context, ev dlEvent) error {
	m := ev.m
	w, err := d.opts.Open(m)
	if err != nil {
		return err
	}
	d.m, d.signed, d.w = m, ev.signed, w
	if w.Verified() == m.TotalSize() {
		d.seeding = false // nothing to download: done at once
	}
	d.st = newStore(w, m, ev.signed)
	_, d.told = d.st.snapshot()
	d.sc, err = sched.New(layoutOf(m), func(p int) bool { return p < m.NumChunks() && w.Have(p) }, sched.Options{})
	if err != nil {
		return err
	}
	per := int32(max(1, (32<<20)/m.ChunkSize))
	d.maxBufs = max(int32(d.opts.MaxSources)+2, min(8, per))
	d.bufs = make(chan []byte, d.maxBufs)
	if d.opts.OnProgress != nil {
		d.opts.OnProgress(w.Verified(), m.TotalSize())
	}
	if d.seeding {
		d.sp.setHolding(d.st)
		_ = d.sig.Send(ctx, &room.Message{Type: room.TypeSeed, Slots: d.opts.Slots})
	}
	close(d.opened)
	for _, s := range d.srcs {
		if s.raw != nil {
			d.sendBitmap(s)
		}
	}
	return nil
}

func layoutOf(m *chunker.Manifest) sched.Layout {
	l := sched.Layout{NumPieces: m.NumPieces(), Size: func(p int) int { return max(1, m.Piece(p).Size) }}
	if !m.FEC.Enabled() {
		return l
	}
	l.Stripes = make([]sched.Stripe, m.NumStripes())
	for i := range l.Stripes {
		ref := m.Stripe(i)
		st := sched.Stripe{Need: ref.NData}
		for k := range ref.NData {
			st.Pieces = append(st.Pieces, ref.FirstChunk+k)
		}
		st.DataPieces = st.Pieces[:ref.NData:ref.NData]
		for j := range ref.NParity {
			st.Pieces = append(st.Pieces, ref.FirstParity+j)
		}
		l.Stripes[i] = st
	}
	return l
}

// sendBitmap tells a source what we hold, once per connection.
func (d *download) sendBitmap(s *dsource) {
	bm, _ := d.st.snapshot()
	frames := partFrames(frameBitmap, bm)
	if d.seeding {
		frames = append([][]byte{{frameServes, finishedSeeding}}, frames...)
	}
	s.send(frames)
}

// send writes frames to the source, stopping at the first error: the
// source's goroutine reports the broken channel.
func (s *dsource) send(frames [][]byte) {
	for _, f := range frames {
		if _, err := s.raw.Write(f); err != nil {
			return
		}
	}
}

// haveDue reports whether pending pieces verified since the last have
// frame, sent ago, are to be told now.
func haveDue(pending int, ago time.Duration) bool {
	return pending >= haveBatch || ago >= haveEvery
}

// tellHaves passes what we verified since last time on to our sources,
// once haveDue, or at once with force.
func (d *download) tellHaves(force bool) {
	if d.st == nil {
		return
	}
	pending := d.st.logLen() - d.told
	if pending <= 0 {
		return
	}
	if ago := time.Since(d.haveSent); !force && !haveDue(pending, ago) {
		if d.haveWake == nil {
			d.haveWake = time.After(haveEvery - ago)
		}
		return
	}
	d.haveSent, d.haveWake = time.Now(), nil
	news, next, _ := d.st.since(d.told)
	d.told = next
	if len(news) == 0 {
		return
	}
	frames := listFrames(frameHave, news)
	for _, s := range d.srcs {
		if s.raw != nil && s.finished.IsZero() {
			s.send(frames)
		}
	}
}

// fill asks every source for what the scheduler gives it.
func (d *download) fill() {
	if d.sc == nil {
		return
	}
	for _, s := range d.srcs {
		if s.raw == nil || !s.inSched || (d.opts.allowSource != nil && !d.opts.allowSource(s.id)) {
			continue
		}
		// Top up once a quarter of the window is free, so wants go out in
		// batches rather than one frame per arriving piece (a thousand
		// small files made a thousand want frames).
		if win := s.window(); s.askedBytes > win-win/4 || s.nAsked > maxAsked-maxAsked/4 {
			continue
		}
		var batch []uint32
		for s.askedBytes < s.window() && s.nAsked < maxAsked {
			p, ok := d.sc.Next(s.id)
			if !ok {
				break
			}
			if s.nAsked == 0 {
				s.lastData = time.Now()
			}
			s.asked[p] = true
			s.nAsked++
			s.askedBytes += int64(d.m.Piece(p).Size)
			batch = append(batch, uint32(p))
		}
		s.send(listFrames(frameWant, batch))
	}
}

// piece verifies and stores one piece from s. A bad piece bans s.
func (d *download) piece(ctx context.Context, s *dsource, p int, buf []byte) error {
	defer d.putBuf(buf)
	active, ok := s.asked[p]
	if !ok {
		d.drop(ctx, s, SourceBanned, fmt.Errorf("%w: piece %d was not requested", ErrProtocol, p))
		return nil
	}
	delete(s.asked, p)
	s.lastData = time.Now()
	m := d.m
	if active {
		s.nAsked--
		s.askedBytes -= int64(len(buf))
	}
	s.got += int64(len(buf))
	if p < m.NumChunks() {
		err := d.w.WriteChunk(p, buf)
		switch {
		case errors.Is(err, chunker.ErrChunkHash) || errors.Is(err, chunker.ErrChunkSize):
			d.drop(ctx, s, SourceBanned, fmt.Errorf("%w: piece %d", ErrCorrupt, p))
			return nil
		case err != nil:
			return err
		}
		d.st.add(p)
	} else {
		if err := checkParity(m, p, buf); err != nil {
			d.drop(ctx, s, SourceBanned, fmt.Errorf("%w: %v", ErrCorrupt, err))
			return nil
		}
		if !d.st.has(p) {
			d.st.holdParity(p, buf)
		}
	}
	stripeDone, cancel := d.sc.Received(s.id, p)
	d.cancel(cancel)
	if stripeDone && m.FEC.Enabled() {
		if err := d.rebuild(m.StripeOf(p)); err != nil {
			return err
		}
	}
	if d.opts.OnProgress != nil {
		d.opts.OnProgress(d.w.Verified(), m.TotalSize())
	}
	return nil
}

// cancel tells sources about requests an arrival made pointless.
func (d *download) cancel(reqs []sched.Request) {
	by := map[string][]uint32{}
	for _, r := range reqs {
		by[r.Peer] = append(by[r.Peer], uint32(r.Piece))
	}
	for id, list := range by {
		s := d.srcs[id]
		if s == nil || s.raw == nil {
			continue
		}
		for _, q := range list {
			if s.asked[int(q)] {
				s.asked[int(q)] = false
				s.nAsked--
				s.askedBytes -= int64(d.m.Piece(int(q)).Size)
			}
		}
		s.send(listFrames(frameCancel, list))
	}
}

// rebuild completes stripe st from whatever k of its pieces we hold:
// missing data chunks are decoded, verified and written.
func (d *download) rebuild(st int) error {
	ref := d.m.Stripe(st)
	missing := false
	for k := range ref.NData {
		missing = missing || !d.w.Have(ref.FirstChunk+k)
	}
	if missing { // usually not: data comes first, parity only fills gaps
		pieces := d.st.heldParity(ref)
		for k := range ref.NData {
			i := ref.FirstChunk + k
			if !d.w.Have(i) {
				continue
			}
			b, err := d.w.ReadChunk(i, make([]byte, d.m.Chunk(i).Size))
			if err != nil {
				return err
			}
			pieces[i] = b
		}
		data, err := d.m.Reconstruct(st, pieces)
		if err != nil {
			return fmt.Errorf("rebuild stripe %d: %w", st, err)
		}
		for k := range ref.NData {
			i := ref.FirstChunk + k
			if !d.w.Have(i) {
				if err := d.w.WriteChunk(i, data[i]); err != nil {
					return fmt.Errorf("rebuild stripe %d: %w", st, err)
				}
			}
		}
	}
	d.st.stripeDone(st)
	return nil
}

// finish places the files, tells every source, and starts seeding.
func (d *download) finish(ctx context.Context) error {
	if err := d.w.Finish(); err != nil {
		for _, s := range d.srcs {
			if s.raw != nil {
				_, _ = s.raw.Write(errorFrame("receiver could not finish the files"))
			}
		}
		return err
	}
	d.complete = true
	flags := byte(0)
	if d.seeding {
		flags = finishedSeeding
	}
	now := time.Now()
	d.tellHaves(true)
	for _, s := range d.srcs {
		if s.raw == nil {
			d.drop(ctx, s, SourceLeft, nil)
			continue
		}
		_, _ = s.raw.Write([]byte{frameFinished, flags})
		s.finished = now
	}
	if d.opts.OnComplete != nil {
		d.opts.OnComplete()
	}
	if d.seeding && d.lost == nil {
		_ = d.sig.Send(ctx, &room.Message{Type: room.TypeSeed, Slots: d.opts.Slots, Complete: true})
	}
	return nil
}

func (d *download) getBuf(ctx context.Context) ([]byte, bool) {
	select {
	case b := <-d.bufs:
		return b, true
	default:
	}
	if d.nbufs.Add(1) <= d.maxBufs {
		return make([]byte, d.m.ChunkSize), true
	}
	d.nbufs.Add(-1)
	select {
	case b := <-d.bufs:
		return b, true
	case <-ctx.Done():
		return nil, false
	}
}

func (d *download) putBuf(b []byte) {
	if b == nil {
		return
	}
	select {
	case d.bufs <- b[:cap(b)]:
	default:
		d.nbufs.Add(-1)
	}
}

// fetch runs one source: handshake, connection, then its frames until it
// ends. It runs on its own goroutine and only talks to the loop through
// send.
func (d *download) fetch(ctx context.Context, l *link, send func(dlEvent) bool) error {
	e, opts := d.e, d.opts
	params := pake.Params{Room: opts.Room, Initiator: opts.Self, Responder: l.peer}
	ini, hello, err := pake.NewInitiator(opts.Password, params)
	if err != nil {
		return err
	}
	if err := l.sendRaw(ctx, hello); err != nil {
		return err
	}
	reply, err := l.recvHandshake(ctx, e.cfg.HandshakeTimeout)
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	sess, confirm, err := ini.Finish(reply)
	if err != nil {
		if isWrongPassword(err) {
			l.abort(ctx, pake.AbortWrongPassword)
		}
		return err
	}
	l.sess = sess
	if err := l.sendRaw(ctx, confirm); err != nil {
		return err
	}

	conn, err := e.tr.Dial(ctx, l, lane.Options{Label: DataChannelLabel})
	if err != nil {
		return err
	}
	// A lane that fails ends the whole source: the pieces it carried
	// cannot be told apart from ones still coming, so the download starts
	// over with this source, as after any lost connection.
	ctx, fail := context.WithCancelCause(ctx)
	var lanes sync.WaitGroup
	defer func() {
		fail(nil)
		conn.Close()
		lanes.Wait()
	}()
	// Ends a blocked read once the loop drops this source or a lane fails.
	defer context.AfterFunc(ctx, func() { conn.Close() })()
	ch := conn.Channel()
	if !send(dlEvent{kind: dlConnected, raw: ch, key: conn.Info(), path: conn.Path()}) {
		return ctx.Err()
	}
	heard := &firstRead{r: ch, done: make(chan struct{})}
	greet := time.AfterFunc(d.opts.pace.greetWait, func() {
		select {
		case <-heard.done:
		default:
			fail(fmt.Errorf("%w: connected, but it sent nothing for %v", ErrTimeout, d.opts.pace.greetWait))
		}
	})
	defer greet.Stop()
	// Lanes open while the manifest arrives (a few round trips in SCTP's
	// slow start for a large transfer); they carry nothing before it.
	manifestReady := make(chan struct{})
	var laneManifest *chunker.Manifest
	onManifest := func(m *chunker.Manifest) {
		if laneManifest == nil { // once, whatever the source sends
			laneManifest = m
			close(manifestReady)
		}
	}
	// manifest is for lanes: the manifest once this source has sent it
	// and the loop has opened one, nil if ctx ends first. (Pieces come
	// only after the loop's requests, but through the network, which
	// orders nothing for the race detector.)
	manifest := func() *chunker.Manifest {
		for _, ready := range []chan struct{}{manifestReady, d.opened} {
			select {
			case <-ready:
			case <-ctx.Done():
				return nil
			}
		}
		return laneManifest
	}
	lanes.Add(1)
	go func() {
		defer lanes.Done()
		err := conn.More(ctx, func(ctx context.Context, ch lane.Channel) error {
			m := manifest() // nil once ctx ends
			if m == nil {
				return nil
			}
			return d.readSource(ctx, ch, m, nil, send)
		})
		if err != nil {
			fail(err)
		}
	}()
	err = d.readSource(ctx, heard, nil, onManifest, send)
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause // a lane failed, or the source said nothing
	}
	return err
}

// firstRead notes the first successful Read from r: done is closed then.
type firstRead struct {
	r    io.Reader
	once sync.Once
	done chan struct{}
}

func (f *firstRead) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 {
		f.once.Do(func() { close(f.done) })
	}
	return n, err
}

// readSource reads one source's frames, checking each against the
// manifest, reassembling pieces into buffers the loop hands back. On the
// first connection onLane is nil and onManifest is called once the
// manifest has arrived; on a lane, the manifest is onLane and only piece
// data and an error may come.
func (d *download) readSource(ctx context.Context, r io.Reader, onLane *chunker.Manifest,
	onManifest func(*chunker.Manifest), send func(dlEvent) bool) error {
	buf := make([]byte, maxFrame)
	var (
		m       = onLane
		man, bm assembler
		cur     = -1
		curBuf  []byte
		curSize int
	)
	defer func() { d.putBuf(curBuf) }()
	for {
		n, err := r.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: channel closed", ErrPeerLeft)
		}
		f, err := parseFrame(buf[:n])
		if err != nil {
			return err
		}
		if m == nil && f.Type != frameManifest && f.Type != frameError {
			return fmt.Errorf("%w: %q before the manifest", ErrProtocol, f.Type)
		}
		if onLane != nil && f.Type != frameData && f.Type != frameError {
			return fmt.Errorf("%w: %q on a lane", ErrProtocol, f.Type)
		}
		switch f.Type {
		case frameManifest:
			whole, err := man.add(f)
			if err != nil || !whole {
				if err != nil {
					return err
				}
				continue
			}
			if m, err = openManifest(d.opts.Key, d.opts.Room, man.buf); err != nil {
				return err
			}
			if !send(dlEvent{kind: dlManifest, m: m, signed: man.buf}) {
				return ctx.Err()
			}
			onManifest(m)
		case frameBitmap:
			whole, err := bm.add(f)
			if err != nil || !whole {
				if err != nil {
					return err
				}
				continue
			}
			if err := chunker.NewBitmap(m.NumPieces()).FromBytes(bm.buf); err != nil {
				return fmt.Errorf("%w: have-bitmap: %v", ErrProtocol, err)
			}
			if !send(dlEvent{kind: dlBitmap, bitmap: bm.buf}) {
				return ctx.Err()
			}
		case frameHave:
			for _, p := range f.List {
				if int64(p) >= int64(m.NumPieces()) {
					return fmt.Errorf("%w: have for piece %d of %d", ErrProtocol, p, m.NumPieces())
				}
			}
			if !send(dlEvent{kind: dlHave, list: f.List}) {
				return ctx.Err()
			}
		case frameData:
			if int64(f.Index) >= int64(m.NumPieces()) {
				return fmt.Errorf("%w: data for unknown piece %d", ErrProtocol, f.Index)
			}
			if cur < 0 {
				cur, curSize = int(f.Index), m.Piece(int(f.Index)).Size
				var ok bool
				if curBuf, ok = d.getBuf(ctx); !ok {
					return ctx.Err()
				}
				curBuf = curBuf[:0]
			}
			if int(f.Index) != cur || int(f.Offset) != len(curBuf) || len(curBuf)+len(f.Data) > curSize {
				return fmt.Errorf("%w: piece %d data out of order", ErrProtocol, f.Index)
			}
			curBuf = append(curBuf, f.Data...)
			if len(curBuf) == curSize {
				b := curBuf
				cur, curBuf = -1, nil
				if !send(dlEvent{kind: dlPiece, piece: int(f.Index), buf: b}) {
					d.putBuf(b)
					return ctx.Err()
				}
			}
		case frameChanged:
			if int64(f.File) >= int64(len(m.Files)) {
				return fmt.Errorf("%w: changed file %d of %d", ErrProtocol, f.File, len(m.Files))
			}
			if !send(dlEvent{kind: dlChanged, piece: int(f.File)}) {
				return ctx.Err()
			}
		case frameError:
			return fmt.Errorf("%w: %s", ErrRemote, f.Data)
		default:
			return fmt.Errorf("%w: unexpected frame %q from source", ErrProtocol, f.Type)
		}
	}
}
