package peer

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/p2pxfer/p2pxfer/chunker"
	"github.com/p2pxfer/p2pxfer/pake"
	"github.com/p2pxfer/p2pxfer/peer/lane"
	"github.com/p2pxfer/p2pxfer/room"
)

// EventKind says what happened to one receiver we serve, or to the swarm.
type EventKind int

// Event kinds, in the order a receiver goes through them.
const (
	EventJoined    EventKind = iota // a receiver started the handshake
	EventConnected                  // password confirmed, data channel open
	EventProgress                   // the receiver holds Done of Total bytes (from any source)
	EventFinished                   // the receiver verified every file
	EventFailed                     // Err says why; WrongPassword is counted in Failures
	// EventSwarmComplete: the receivers together hold every piece they
	// need (any k of each stripe) and the finished ones stay as seeds, so
	// the sender may leave. Sent once, by Serve only.
	EventSwarmComplete
	// EventSeedEnded: Receive stopped seeding, for Reason (and Err); sent
	// once, by Receive only, just before it returns.
	EventSeedEnded
	// EventWithdrawn: a file changed on disk since it was hashed (Err
	// wraps a *ChangedError that names it, and chunker.ErrSourceChanged),
	// so it is offered no more. Once per file.
	EventWithdrawn
)

// Event reports on one receiver. Events of one receiver arrive in order;
// events of different receivers may arrive concurrently.
type Event struct {
	Kind        EventKind
	Peer        string
	Done, Total int64
	Err         error
	// Failures is the count of failed password handshakes so far.
	Failures int
	// Seeding: with EventFinished, the receiver stays in the room as a seed.
	Seeding bool
	// Path: with EventConnected, how the connection's packets travel.
	Path lane.Path
	// Reason: with EventSeedEnded, why seeding ended.
	Reason SeedEndReason
}

// ServeOptions configure Serve.
type ServeOptions struct {
	Room, Self string // the room and our own peer ID, as the server assigned them
	Password   string
	// Signer signs the manifest (see NewManifestKey); its public half is
	// what the room was created with, and goes into every sealed answer.
	Signer ed25519.PrivateKey
	// MaxFailures closes the room after this many failed handshakes
	// (default 10): each one is an online password guess.
	MaxFailures int
	// MaxReceivers makes Serve return after this many receivers finished
	// (0: serve until ctx ends).
	MaxReceivers int
	// MaxConcurrent bounds receivers served at once (default 16); more are
	// told the sender is busy. The server's upload slots usually bound it
	// first.
	MaxConcurrent int
	OnEvent       func(Event)
	// Manifest, if set, is sent instead of the signed encoding of src's
	// manifest: tests use it to play a hostile sender.
	Manifest []byte

	filter func(peer string, piece int) bool // tests: pieces offered to each peer
	sentOn func(peer string, lane int)       // tests: called for each piece sent
	mute   func(peer string) bool            // tests: connect, then send nothing
}

const (
	defaultMaxFailures   = 10
	defaultMaxConcurrent = 16
	// maxOutstanding bounds piece requests one receiver may queue at us.
	maxOutstanding = 4096
)

// Serve offers every piece of src in the room until ctx ends, MaxReceivers
// have finished, or MaxFailures handshakes failed (ErrTooManyFailures).
// Each receiver gets its own handshake, peer connection and goroutines;
// Serve returns only after all of them have ended.
func (e *Engine) Serve(ctx context.Context, sig Signaller, src Source, opts ServeOptions) error {
	signed := opts.Manifest
	if signed == nil {
		enc, err := chunker.EncodeManifest(src.Manifest())
		if err != nil {
			return fmt.Errorf("peer serve: %w", err)
		}
		if signed, err = SignManifest(opts.Signer, opts.Room, enc); err != nil {
			return fmt.Errorf("peer serve: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	msgs, sigErr := pump(ctx, &wg, sig)
	sp := newServePool(e, sig, serveConfig{
		room: opts.Room, self: opts.Self, password: opts.Password,
		maxFailures: opts.MaxFailures, maxConcurrent: opts.MaxConcurrent,
		emit: opts.OnEvent, filter: opts.filter, sentOn: opts.sentOn, mute: opts.mute,
	}, &wg)
	sp.setHolding(newFull(src, signed))
	if len(opts.Signer) == ed25519.PrivateKeySize {
		sp.cfg.key = opts.Signer.Public().(ed25519.PublicKey)
	}
	sp.cov = newCoverage(src.Manifest())
	sp.spread = newSpreader(src.Manifest())
	sp.withdrawn.all, sp.withdrawn.total = make(chan struct{}), len(src.Manifest().Files)
	defer sp.stopAll()

	var lost error // signalling is gone: finish what runs, accept no one new
	var (
		allGone = sp.withdrawn.all
		ending  <-chan time.Time // every file changed: a last while for the receivers to hear it
	)
	for {
		if lost != nil && sp.active() == 0 {
			return fmt.Errorf("peer serve: signalling: %w", lost)
		}
		if ending != nil && sp.active() == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-allGone:
			allGone, sp.refuse = nil, true
			ending = time.After(withdrawnGrace)
		case <-ending:
			return fmt.Errorf("peer serve: %w", ErrAllWithdrawn)
		case err := <-sigErr:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			lost = err
			sp.signallingLost(err)
		case m := <-msgs:
			sp.handle(ctx, m)
		case r := <-sp.results:
			if err := sp.done(r); err != nil {
				if errors.Is(err, ErrTooManyFailures) {
					closeRoom(ctx, sig, room.CodeTooManyFailures)
				}
				return fmt.Errorf("peer serve: %w", err)
			}
			if opts.MaxReceivers > 0 && sp.finished >= opts.MaxReceivers {
				closeRoom(ctx, sig, "")
				return nil
			}
		}
	}
	// The room stays open (on a server that keeps rooms without their
	// host): seeds may still hold the files as offered.
	return fmt.Errorf("peer serve: %w", ErrAllWithdrawn)
}

// withdrawnGrace bounds how long a sender whose files all changed waits
// for its receivers, told so, to end their sessions.
const withdrawnGrace = 10 * time.Second

// pump reads the signalling connection into a channel, so one select can
// wait on it along with everything else.
func pump(ctx context.Context, wg *sync.WaitGroup, sig Signaller) (<-chan *room.Message, <-chan error) {
	msgs := make(chan *room.Message)
	sigErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			m, err := sig.Recv(ctx)
			if err != nil {
				sigErr <- err
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	return msgs, sigErr
}

func closeRoom(ctx context.Context, sig Signaller, code room.Code) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = sig.Send(ctx, &room.Message{Type: room.TypeClose, Code: code})
}

// serveConfig is what the serving side needs of Serve's or Receive's
// options.
type serveConfig struct {
	room, self, password string
	key                  ed25519.PublicKey // repeated in sealed answers; nil for seeds
	maxFailures          int
	maxConcurrent        int
	emit                 func(Event)
	filter               func(peer string, piece int) bool
	sentOn               func(peer string, lane int)
	mute                 func(peer string) bool
	corrupt              func(piece int, b []byte)
}

type sessionResult struct {
	peer     string
	finished bool
	seeding  bool
	authFail bool // the handshake never confirmed the password
	err      error
}

// servePool runs the serving sessions of one node: a sender's, or a
// receiver's while it downloads and seeds. Its methods are called from the
// node's loop only.
type servePool struct {
	e       *Engine
	sig     Signaller
	cfg     serveConfig
	wg      *sync.WaitGroup
	h       holding // nil until a receiver has the manifest: it cannot serve yet
	cov     *coverage
	spread  *spreader // the sender's: offers each receiver batches (spread.go)
	links   map[string]*link
	cancels map[string]context.CancelFunc
	results chan sessionResult

	failures, finished int
	lost               error
	refuse             bool // accept no one new

	// withdrawn: files that changed on disk, shared by the sessions.
	withdrawn withdrawn
}

// withdrawn is the set of files a source no longer offers because they
// changed on disk since they were hashed (or verified): their pieces, and
// parity that covers them, cannot be served as the manifest says.
type withdrawn struct {
	mu    sync.Mutex
	files map[int]bool
	// all, if set (the sender's), is closed once every one of total
	// files is withdrawn: nothing is left to offer.
	all   chan struct{}
	total int
}

// add records file fi and reports whether it is news.
func (w *withdrawn) add(fi int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.files[fi] {
		return false
	}
	if w.files == nil {
		w.files = map[int]bool{}
	}
	w.files[fi] = true
	if w.all != nil && len(w.files) == w.total {
		close(w.all)
	}
	return true
}

// list returns the withdrawn files.
func (w *withdrawn) list() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Collect(maps.Keys(w.files))
}

// covers reports whether piece p of m depends on a withdrawn file.
func (w *withdrawn) covers(m *chunker.Manifest, p int) bool {
	return len(w.filesOf(m, p)) > 0
}

// filesOf lists the withdrawn files piece p of m depends on.
func (w *withdrawn) filesOf(m *chunker.Manifest, p int) []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.files) == 0 {
		return nil
	}
	if p < m.NumChunks() {
		if fi := m.Chunk(p).File; w.files[fi] {
			return []int{fi}
		}
		return nil
	}
	var out []int
	ref := m.Stripe(m.StripeOf(p))
	for k := range ref.NData {
		if fi := m.Chunk(ref.FirstChunk + k).File; w.files[fi] && !slices.Contains(out, fi) {
			out = append(out, fi)
		}
	}
	return out
}

func (w *withdrawn) any() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.files) > 0
}

// withdraw finds which files made reading piece p fail with
// chunker.ErrSourceChanged (for parity, any data chunk of its stripe),
// withdraws them and tells the caller which, with each error.
func (sp *servePool) withdraw(h holding, p int, err error) map[int]error {
	m := h.manifest()
	changed := map[int]error{}
	if p < m.NumChunks() {
		changed[m.Chunk(p).File] = err
	} else {
		ref := m.Stripe(m.StripeOf(p))
		buf := make([]byte, m.ChunkSize)
		for k := range ref.NData {
			c := ref.FirstChunk + k
			if _, cerr := h.readPiece(c, buf); errors.Is(cerr, chunker.ErrSourceChanged) {
				changed[m.Chunk(c).File] = cerr
			}
		}
	}
	for fi, ferr := range changed {
		if sp.withdrawn.add(fi) {
			sp.cfg.emit(Event{Kind: EventWithdrawn, Err: fmt.Errorf("%w (%w)", &ChangedError{File: m.Files[fi].Name, Sender: sp.cfg.key != nil}, ferr)})
		}
	}
	return changed
}

func newServePool(e *Engine, sig Signaller, cfg serveConfig, wg *sync.WaitGroup) *servePool {
	if cfg.maxFailures <= 0 {
		cfg.maxFailures = defaultMaxFailures
	}
	if cfg.maxConcurrent <= 0 {
		cfg.maxConcurrent = defaultMaxConcurrent
	}
	if cfg.emit == nil {
		cfg.emit = func(Event) {}
	}
	return &servePool{e: e, sig: sig, cfg: cfg, wg: wg, links: map[string]*link{}, cancels: map[string]context.CancelFunc{}, results: make(chan sessionResult)}
}

func (sp *servePool) setHolding(h holding) { sp.h = h }
func (sp *servePool) active() int          { return len(sp.links) }

// handle takes a signalling message for the serving side and reports
// whether it was one.
func (sp *servePool) handle(ctx context.Context, m *room.Message) bool {
	switch m.Type {
	case room.TypeRelay:
		if l := sp.links[m.Peer]; l != nil {
			l.deliver(m.Data)
			return true
		}
		if k, err := pake.FrameKind(m.Data); err != nil || k != pake.KindHello {
			return false // stray frame from a handshake that already ended
		}
		l := newLink(sp.sig, m.Peer)
		if sp.h == nil || sp.lost != nil || sp.refuse || len(sp.links) >= sp.cfg.maxConcurrent {
			l.abort(ctx, pake.AbortBusy)
			return true
		}
		sctx, cancel := context.WithCancel(ctx)
		sp.links[m.Peer] = l
		sp.cancels[m.Peer] = cancel
		sp.wg.Add(1)
		go func(hello []byte) {
			defer sp.wg.Done()
			r := sp.serveOne(sctx, l, hello)
			select {
			case sp.results <- r:
			case <-ctx.Done():
			}
		}(m.Data)
		return true
	case room.TypeLeft:
		if l := sp.links[m.Peer]; l != nil {
			l.leave(nil)
			return true
		}
	case room.TypeError: // non-fatal: a relay to a receiver that just left
		if l := sp.links[m.Peer]; l != nil {
			l.leave(room.ErrorFromCode(m.Code, m.Text))
			return true
		}
	}
	return false
}

// signallingLost wakes the handshakes that can no longer finish; running
// transfers go on.
func (sp *servePool) signallingLost(err error) {
	sp.lost = err
	for _, l := range sp.links {
		if l.sess == nil {
			l.leave(err)
		}
	}
}

// stopAll ends every session (the node's loop is returning).
func (sp *servePool) stopAll() {
	for _, c := range sp.cancels {
		c()
	}
}

// done records a session's end; an error means the node must stop.
func (sp *servePool) done(r sessionResult) error {
	delete(sp.links, r.peer)
	if c := sp.cancels[r.peer]; c != nil {
		c()
		delete(sp.cancels, r.peer)
	}
	emit := sp.cfg.emit
	switch {
	case r.finished:
		sp.finished++
		emit(Event{Kind: EventFinished, Peer: r.peer, Failures: sp.failures, Seeding: r.seeding})
		if sp.cov != nil && sp.cov.finish(r.peer, r.seeding) {
			emit(Event{Kind: EventSwarmComplete})
		}
	case r.authFail:
		sp.failures++
		emit(Event{Kind: EventFailed, Peer: r.peer, Err: r.err, Failures: sp.failures})
		if sp.cfg.key == nil { // a seed: the server counts for the room
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = sp.sig.Send(ctx, &room.Message{Type: room.TypeFail})
			cancel()
		}
		if sp.failures >= sp.cfg.maxFailures {
			return fmt.Errorf("%w (%d)", ErrTooManyFailures, sp.failures)
		}
	default:
		if sp.cov != nil {
			sp.cov.drop(r.peer)
		}
		emit(Event{Kind: EventFailed, Peer: r.peer, Err: r.err, Failures: sp.failures})
	}
	return nil
}

// serveOne runs one receiver from its hello frame to the end of its
// transfer.
func (sp *servePool) serveOne(ctx context.Context, l *link, hello []byte) sessionResult {
	e, cfg := sp.e, sp.cfg
	res := sessionResult{peer: l.peer}
	cfg.emit(Event{Kind: EventJoined, Peer: l.peer})

	// Until the confirm frame verifies, any failure is a password guess
	// that did not succeed: the reply we sent lets the other side test one
	// password offline, so a receiver that just walks away counts too.
	params := pake.Params{Room: cfg.room, Initiator: l.peer, Responder: cfg.self}
	resp, reply, err := pake.Respond(cfg.password, params, hello)
	if err != nil {
		if errors.Is(err, pake.ErrVersion) {
			l.abort(ctx, pake.AbortVersion)
		}
		res.err = err
		return res
	}
	if err := l.sendRaw(ctx, reply); err != nil {
		res.err, res.authFail = err, true
		return res
	}
	confirm, err := l.recvHandshake(ctx, e.cfg.HandshakeTimeout)
	if err == nil {
		l.sess, err = resp.Finish(confirm)
	}
	if err != nil {
		if isWrongPassword(err) {
			l.abort(ctx, pake.AbortWrongPassword)
		}
		res.err, res.authFail = err, ctx.Err() == nil
		return res
	}

	conn, err := e.tr.Accept(ctx, l, lane.Options{Label: DataChannelLabel, Info: cfg.key})
	if err != nil {
		res.err = err
		return res
	}
	defer conn.Close()
	cfg.emit(Event{Kind: EventConnected, Peer: l.peer, Total: sp.h.manifest().TotalSize(), Path: conn.Path()})
	res.seeding, res.err = sp.sendPieces(ctx, l.peer, conn)
	res.finished = res.err == nil
	return res
}

// reqQueue is what a receiver asked us for, in order, with its cancels:
// the reader adds, the sending loop takes.
type reqQueue struct {
	wants     chan uint32
	mu        sync.Mutex
	queued    map[uint32]int
	cancelled map[uint32]int
}

func (q *reqQueue) want(i uint32) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	select {
	case q.wants <- i:
		q.queued[i]++
		return nil
	default:
		return fmt.Errorf("%w: more than %d outstanding requests", ErrProtocol, maxOutstanding)
	}
}

func (q *reqQueue) cancel(i uint32) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.cancelled[i] < q.queued[i] {
		q.cancelled[i]++
	}
}

// take reports whether a dequeued request still stands.
func (q *reqQueue) take(i uint32) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.queued[i]--; q.queued[i] == 0 {
		delete(q.queued, i)
	}
	if q.cancelled[i] > 0 {
		if q.cancelled[i]--; q.cancelled[i] == 0 {
			delete(q.cancelled, i)
		}
		return false
	}
	return true
}

// sendPieces streams the signed manifest and what we hold, then the pieces
// the receiver asks for and our new haves, until it says it has verified
// everything (seeding reports whether it stays as a seed). All but piece
// data goes on the first lane, where the receiver's requests come from;
// each piece goes whole on the lane the Set picks.
func (sp *servePool) sendPieces(ctx context.Context, peerID string, conn *lane.Conn) (seeding bool, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	set := conn.Set()
	first := set.First()
	h := sp.h
	m := h.manifest()
	var off *offering // nil: offer all we hold
	if sp.spread != nil && sp.cfg.filter == nil {
		off = sp.spread.session(m.NumPieces())
		defer off.close()
	}
	// offered is what the receiver may ask for; a piece of a file
	// withdrawn since is still asked for as it hears of that late, and is
	// skipped when its turn comes.
	offered := func(p int) bool {
		return h.has(p) && (off == nil || off.has(p)) && (sp.cfg.filter == nil || sp.cfg.filter(peerID, p))
	}
	gone := func(p int) bool { return sp.withdrawn.covers(m, p) }
	told := map[int]bool{} // withdrawn files this receiver has heard of
	tellChanged := func(fis []int) error {
		for _, fi := range fis {
			if !told[fi] {
				told[fi] = true
				if err := first.Write(ctx, changedFrame(fi)); err != nil {
					return err
				}
			}
		}
		return nil
	}
	// live drops the pieces of withdrawn files from a have list.
	live := func(ids []uint32) []uint32 {
		if !sp.withdrawn.any() {
			return ids
		}
		return slices.DeleteFunc(ids, func(p uint32) bool { return gone(int(p)) })
	}
	refill := make(chan struct{}, 1)

	q := &reqQueue{wants: make(chan uint32, maxOutstanding), queued: map[uint32]int{}, cancelled: map[uint32]int{}}
	// The reader ends the session with errReaderDone as ctx's cause once
	// the receiver finished or failed; read says which.
	var read struct {
		seeding bool
		err     error
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer conn.Close() // before wg.Wait: ends the reader
	prog := &theirProgress{m: m, have: chunker.NewBitmap(m.NumPieces())}
	report := func(newly []int) {
		if off != nil && off.got(newly) {
			select {
			case refill <- struct{}{}:
			default:
			}
		}
		if sp.cov != nil && prog.serves && sp.cov.add(peerID, newly) {
			sp.cfg.emit(Event{Kind: EventSwarmComplete})
		}
		sp.cfg.emit(Event{Kind: EventProgress, Peer: peerID, Done: prog.done, Total: m.TotalSize()})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		read.seeding, read.err = readRequests(conn.Channel(), m, offered, q, prog, report)
		cancel(errReaderDone)
	}()

	writeAll := func(frames [][]byte) error {
		for _, f := range frames {
			if err := first.Write(ctx, f); err != nil {
				return err
			}
		}
		return nil
	}
	bm, pos := h.snapshot()
	if off != nil {
		off.more()
	}
	if sp.cfg.filter != nil || off != nil || sp.withdrawn.any() {
		b := chunker.NewBitmap(m.NumPieces())
		for i := range m.NumPieces() {
			if offered(i) && !gone(i) {
				b.Set(i)
			}
		}
		bm = b.Bytes()
	}
	if sp.cfg.mute != nil && sp.cfg.mute(peerID) {
		<-ctx.Done() // a source that hangs once connected
		return false, context.Cause(ctx)
	}
	write := func(f []byte) error { return first.Write(ctx, f) }
	err = writeParts(frameManifest, h.signed(), write)
	if err == nil {
		err = writeParts(frameBitmap, bm, write)
	}
	if err == nil {
		err = tellChanged(sp.withdrawn.list()) // why the bitmap lacks them
	}

	buf := make([]byte, m.ChunkSize)
	frame := make([]byte, 0, maxFrame)
	for err == nil {
		var news []uint32
		var more <-chan struct{}
		news, pos, more = h.since(pos)
		if news = live(news); len(news) > 0 {
			err = writeAll(listFrames(frameHave, news))
			continue
		}
		select {
		case <-ctx.Done():
			err = context.Cause(ctx)
		case <-set.Failed():
			err = fmt.Errorf("%w: connection lost", ErrPeerLeft)
		case <-more:
		case <-refill:
			if ids := live(off.more()); len(ids) > 0 {
				err = writeAll(listFrames(frameHave, ids))
			}
		case idx := <-q.wants:
			if !q.take(idx) {
				continue
			}
			if fis := sp.withdrawn.filesOf(m, int(idx)); len(fis) > 0 {
				err = tellChanged(fis) // withdrawn by another session, say
				continue
			}
			data, rerr := h.readPiece(int(idx), buf)
			if errors.Is(rerr, chunker.ErrSourceChanged) {
				// That file is withdrawn; the others are still served.
				err = tellChanged(slices.Collect(maps.Keys(sp.withdraw(h, int(idx), rerr))))
				continue
			}
			if rerr != nil {
				_, _ = conn.Channel().Write(errorFrame("source cannot read its files"))
				return false, fmt.Errorf("peer serve piece %d: %w", idx, rerr)
			}
			if sp.cfg.corrupt != nil {
				sp.cfg.corrupt(int(idx), data)
			}
			var ln *lane.Lane
			if ln, err = set.Pick(ctx); err != nil {
				break
			}
			if sp.cfg.sentOn != nil {
				sp.cfg.sentOn(peerID, ln.Index())
			}
			for off := 0; off < len(data) && err == nil; off += maxDataPayload {
				end := min(off+maxDataPayload, len(data))
				if lim := sp.e.upload; lim != nil {
					if err = lim.WaitN(ctx, end-off); err != nil {
						break
					}
				}
				frame = appendDataHeader(frame[:0], idx, uint32(off))
				err = ln.Write(ctx, append(frame, data[off:end]...))
			}
		}
	}
	if errors.Is(err, errReaderDone) {
		return read.seeding, read.err
	}
	return false, err
}

var errReaderDone = errors.New("reader done")

// theirProgress is what a receiver told us it holds, for its progress bar
// and the swarm's coverage. Only the reader goroutine touches it.
type theirProgress struct {
	m      *chunker.Manifest
	have   *chunker.Bitmap
	done   int64
	serves bool // it passes pieces on: what it holds counts for the swarm
}

func (t *theirProgress) set(p int) bool {
	if t.have.Has(p) {
		return false
	}
	t.have.Set(p)
	if p < t.m.NumChunks() {
		t.done += int64(t.m.Chunk(p).Size)
	}
	return true
}

// readRequests reads the receiver's frames until it finishes (nil) or
// fails; every index it sends is checked before it is used.
func readRequests(r io.Reader, m *chunker.Manifest, offered func(int) bool, q *reqQueue, prog *theirProgress, report func([]int)) (seeding bool, err error) {
	buf := make([]byte, maxFrame)
	n := m.NumPieces()
	var bm assembler
	for {
		k, err := r.Read(buf)
		if err != nil {
			return false, fmt.Errorf("%w: receiver closed the channel before finishing", ErrPeerLeft)
		}
		f, err := parseFrame(buf[:k])
		if err != nil {
			return false, err
		}
		switch f.Type {
		case frameWant, frameCancel, frameHave:
			var newly []int
			for _, i := range f.List {
				if int64(i) >= int64(n) {
					return false, fmt.Errorf("%w: piece %d of %d", ErrProtocol, i, n)
				}
				switch f.Type {
				case frameWant:
					if !offered(int(i)) {
						return false, fmt.Errorf("%w: request for piece %d, which we do not offer", ErrProtocol, i)
					}
					if err := q.want(i); err != nil {
						return false, err
					}
				case frameCancel:
					q.cancel(i)
				case frameHave:
					if prog.set(int(i)) {
						newly = append(newly, int(i))
					}
				}
			}
			if len(newly) > 0 {
				report(newly)
			}
		case frameBitmap:
			whole, err := bm.add(f)
			if err != nil {
				return false, err
			}
			if !whole {
				continue
			}
			have := chunker.NewBitmap(n)
			if err := have.FromBytes(bm.buf); err != nil {
				return false, fmt.Errorf("%w: have-bitmap: %v", ErrProtocol, err)
			}
			var newly []int
			for i := range n {
				if have.Has(i) && prog.set(i) {
					newly = append(newly, i)
				}
			}
			bm.buf = nil
			report(newly)
		case frameServes:
			prog.serves = f.Flags != 0
		case frameFinished:
			return f.Flags&finishedSeeding != 0, nil
		case frameError:
			return false, fmt.Errorf("%w: %s", ErrRemote, f.Data)
		default:
			return false, fmt.Errorf("%w: unexpected frame %q from receiver", ErrProtocol, f.Type)
		}
	}
}

// coverage tracks which pieces the receivers hold together, to tell the
// sender when the swarm no longer needs it. A receiver's pieces count while
// its session runs, and for good once it finished and stays as a seed.
type coverage struct {
	mu       sync.Mutex
	m        *chunker.Manifest
	count    []int32 // per piece: receivers holding it
	distinct []int32 // per stripe (per chunk with FEC off): pieces held by someone
	covered  int     // stripes with enough pieces
	held     map[string][]int
	seeds    map[string]bool
	told     bool
}

func newCoverage(m *chunker.Manifest) *coverage {
	stripes := m.NumChunks()
	if m.FEC.Enabled() {
		stripes = m.NumStripes()
	}
	return &coverage{m: m, count: make([]int32, m.NumPieces()), distinct: make([]int32, stripes), held: map[string][]int{}, seeds: map[string]bool{}}
}

func (c *coverage) stripeOf(p int) (st int, need int32) {
	if !c.m.FEC.Enabled() {
		return p, 1
	}
	st = c.m.StripeOf(p)
	return st, int32(c.m.Stripe(st).NData)
}

func (c *coverage) inc(p int, d int32) {
	st, need := c.stripeOf(p)
	before := c.count[p]
	c.count[p] += d
	if (before == 0) == (c.count[p] == 0) {
		return
	}
	was := c.distinct[st] >= need
	c.distinct[st] += d
	if now := c.distinct[st] >= need; now != was {
		if now {
			c.covered++
		} else {
			c.covered--
		}
	}
}

// add records pieces a receiver now holds; it reports true the first time
// the swarm covers everything.
func (c *coverage) add(peer string, pieces []int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range pieces {
		c.inc(p, 1)
	}
	c.held[peer] = append(c.held[peer], pieces...)
	return c.check()
}

func (c *coverage) check() bool {
	if c.told || c.covered < len(c.distinct) || len(c.held) == 0 {
		return false
	}
	c.told = true
	return true
}

// finish records a receiver's end: a seed keeps counting, anyone else
// stops.
func (c *coverage) finish(peer string, seeding bool) bool {
	if !seeding {
		c.drop(peer)
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seeds[peer] = true
	return c.check()
}

func (c *coverage) drop(peer string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seeds[peer] {
		return
	}
	for _, p := range c.held[peer] {
		c.inc(p, -1)
	}
	delete(c.held, peer)
}
