package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/webrtc/v4"

	"github.com/p2pxfer/p2pxfer/chunker"
	"github.com/p2pxfer/p2pxfer/pake"
	"github.com/p2pxfer/p2pxfer/room"
)

// EventKind says what happened to one receiver.
type EventKind int

// Event kinds, in the order a receiver goes through them.
const (
	EventJoined    EventKind = iota // a receiver started the handshake
	EventConnected                  // password confirmed, data channel open
	EventProgress                   // Done of Total bytes sent
	EventFinished                   // the receiver verified every file
	EventFailed                     // Err says why; WrongPassword is counted in Failures
)

// Event reports on one receiver. Events of one receiver arrive in order from
// one goroutine; events of different receivers may arrive concurrently.
type Event struct {
	Kind        EventKind
	Peer        string
	Done, Total int64
	Err         error
	// Failures is the room's count of failed password handshakes so far.
	Failures int
}

// ServeOptions configure Serve.
type ServeOptions struct {
	Room, Self string // the room and our own peer ID, as the server assigned them
	Password   string
	// MaxFailures closes the room after this many failed handshakes
	// (default 10): each one is an online password guess.
	MaxFailures int
	// MaxReceivers makes Serve return after this many receivers finished
	// (0: serve until ctx ends).
	MaxReceivers int
	// MaxConcurrent bounds receivers served at once (default 16); more are
	// told the sender is busy.
	MaxConcurrent int
	OnEvent       func(Event)
	// Manifest, if set, is sent instead of the encoding of src's manifest:
	// the exact bytes a peer re-serves (and what tests use to play a
	// hostile sender).
	Manifest []byte
}

const (
	defaultMaxFailures   = 10
	defaultMaxConcurrent = 16
	// Flow control on the sending side: stop queueing at highWater bytes
	// buffered in SCTP, resume at lowWater. Bounds memory per receiver.
	highWater = 4 << 20
	lowWater  = 1 << 20
	// maxOutstanding bounds chunk requests one receiver may queue at us.
	maxOutstanding = 4096
)

// Source is what Serve sends: a manifest and its chunks. *chunker.Source
// is the usual one.
type Source interface {
	Manifest() *chunker.Manifest
	// ReadChunk reads chunk i into buf (of at least the chunk size) and
	// returns the filled part; it is called from several goroutines.
	ReadChunk(i int, buf []byte) ([]byte, error)
}

type sessionResult struct {
	peer     string
	finished bool
	authFail bool // the handshake never confirmed the password
	err      error
}

// Serve accepts receivers in the room until ctx ends, MaxReceivers have
// finished, or MaxFailures handshakes failed (ErrTooManyFailures). Each
// receiver gets its own handshake, peer connection and goroutines; Serve
// returns only after all of them have ended.
func (e *Engine) Serve(ctx context.Context, sig Signaller, src Source, opts ServeOptions) error {
	if opts.MaxFailures <= 0 {
		opts.MaxFailures = defaultMaxFailures
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = defaultMaxConcurrent
	}
	emit := opts.OnEvent
	if emit == nil {
		emit = func(Event) {}
	}
	manifest := opts.Manifest
	if manifest == nil {
		var err error
		if manifest, err = chunker.EncodeManifest(src.Manifest()); err != nil {
			return fmt.Errorf("peer serve: %w", err)
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

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

	results := make(chan sessionResult)
	links := map[string]*link{}
	failures, finished := 0, 0
	var lost error // signalling is gone: finish what runs, accept no one new
	for {
		if lost != nil && len(links) == 0 {
			return fmt.Errorf("peer serve: signalling: %w", lost)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-sigErr:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			lost = err
			for _, l := range links {
				if l.sess == nil {
					l.leave(err)
				}
			}
		case m := <-msgs:
			switch m.Type {
			case room.TypeRelay:
				if l := links[m.Peer]; l != nil {
					l.deliver(m.Data)
					continue
				}
				if k, err := pake.FrameKind(m.Data); err != nil || k != pake.KindHello {
					continue // stray frame from a handshake that already ended
				}
				l := newLink(sig, m.Peer)
				if len(links) >= opts.MaxConcurrent {
					l.abort(ctx, pake.AbortBusy)
					continue
				}
				links[m.Peer] = l
				wg.Add(1)
				go func(hello []byte) {
					defer wg.Done()
					r := e.serveOne(ctx, l, hello, src, manifest, opts, emit)
					select {
					case results <- r:
					case <-ctx.Done():
					}
				}(m.Data)
			case room.TypeLeft:
				if l := links[m.Peer]; l != nil {
					l.leave(nil)
				}
			case room.TypeError: // non-fatal: a relay to a receiver that just left
				if l := links[m.Peer]; l != nil {
					l.leave(room.ErrorFromCode(m.Code, m.Text))
				}
			}
		case r := <-results:
			delete(links, r.peer)
			switch {
			case r.finished:
				finished++
				emit(Event{Kind: EventFinished, Peer: r.peer, Failures: failures})
				if opts.MaxReceivers > 0 && finished >= opts.MaxReceivers {
					e.closeRoom(ctx, sig, "")
					return nil
				}
			case r.authFail:
				failures++
				emit(Event{Kind: EventFailed, Peer: r.peer, Err: r.err, Failures: failures})
				if failures >= opts.MaxFailures {
					e.closeRoom(ctx, sig, room.CodeTooManyFailures)
					return fmt.Errorf("peer serve: %w (%d)", ErrTooManyFailures, failures)
				}
			default:
				emit(Event{Kind: EventFailed, Peer: r.peer, Err: r.err, Failures: failures})
			}
		}
	}
}

func (e *Engine) closeRoom(ctx context.Context, sig Signaller, code room.Code) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = sig.Send(ctx, &room.Message{Type: room.TypeClose, Code: code})
}

// serveOne runs one receiver from its hello frame to the end of its
// transfer.
func (e *Engine) serveOne(ctx context.Context, l *link, hello []byte, src Source, manifest []byte, opts ServeOptions, emit func(Event)) sessionResult {
	res := sessionResult{peer: l.peer}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	emit(Event{Kind: EventJoined, Peer: l.peer})

	// Until the confirm frame verifies, any failure is a password guess
	// that did not succeed: the reply we sent lets the other side test one
	// password offline, so a receiver that just walks away counts too.
	params := pake.Params{Room: opts.Room, Initiator: l.peer, Responder: opts.Self}
	resp, reply, err := pake.Respond(opts.Password, params, hello)
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
	confirm, err := l.recv(ctx, e.cfg.HandshakeTimeout)
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

	pc, err := e.newPeerConnection()
	if err != nil {
		res.err = err
		return res
	}
	defer pc.Close()
	ev := watch(pc)
	pc.OnDataChannel(func(d *webrtc.DataChannel) {
		ev.onOpen(d)
		select {
		case ev.dc <- d:
		default:
		}
	})
	dc, err := l.negotiate(ctx, pc, ev, nil, e.cfg.ConnectTimeout)
	if err != nil {
		if ctx.Err() == nil {
			why := "connection failed"
			if errors.Is(err, ErrTampered) {
				why = "signalling tampered with"
			}
			_ = l.sendSealed(ctx, &signalMsg{T: sigBye, Why: why})
		}
		res.err = err
		return res
	}
	raw, err := dc.DetachWithDeadline()
	if err != nil {
		res.err = fmt.Errorf("peer: detach: %w", err)
		return res
	}
	m := src.Manifest()
	emit(Event{Kind: EventConnected, Peer: l.peer, Total: m.TotalSize()})
	res.err = e.sendFiles(ctx, dc, raw, ev, src, manifest, func(done int64) {
		emit(Event{Kind: EventProgress, Peer: l.peer, Done: done, Total: m.TotalSize()})
	})
	res.finished = res.err == nil
	return res
}

// sendFiles streams the manifest, then the chunks the receiver asks for,
// until it says it has verified everything.
func (e *Engine) sendFiles(ctx context.Context, dc *webrtc.DataChannel, raw datachannel.ReadWriteCloserDeadliner, ev *iceEvents, src Source, manifest []byte, progress func(int64)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := src.Manifest()

	wants := make(chan uint32, maxOutstanding)
	readErr := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopReading(raw)
	wg.Add(1)
	go func() {
		defer wg.Done()
		readErr <- readRequests(raw, m.NumChunks(), wants)
	}()

	low := make(chan struct{}, 1)
	dc.SetBufferedAmountLowThreshold(lowWater)
	dc.OnBufferedAmountLow(func() {
		select {
		case low <- struct{}{}:
		default:
		}
	})
	tick := time.NewTicker(250 * time.Millisecond) // in case a low event is lost
	defer tick.Stop()
	write := func(b []byte) error {
		for dc.BufferedAmount() > highWater {
			select {
			case <-low:
			case <-tick.C:
			case <-ev.failed:
				return fmt.Errorf("%w: connection lost", ErrPeerLeft)
			case err := <-readErr:
				readErr <- err
				return errReaderDone
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if _, err := raw.Write(b); err != nil {
			return fmt.Errorf("%w: write: %v", ErrPeerLeft, err)
		}
		return nil
	}

	frame := make([]byte, 0, maxFrame)
	for off := 0; off < len(manifest) || off == 0; off += maxFrame - manifestHeader {
		end := min(off+maxFrame-manifestHeader, len(manifest))
		frame = appendManifestHeader(frame[:0], uint32(len(manifest)), uint32(off))
		if err := write(append(frame, manifest[off:end]...)); err != nil {
			return err
		}
	}

	buf := make([]byte, m.ChunkSize)
	var sent int64
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ev.failed:
			return fmt.Errorf("%w: connection lost", ErrPeerLeft)
		case err := <-readErr:
			return err
		case idx := <-wants:
			data, err := src.ReadChunk(int(idx), buf)
			if err != nil {
				_, _ = raw.Write(errorFrame("sender cannot read its files"))
				return fmt.Errorf("peer serve: %w", err)
			}
			for off := 0; off < len(data); off += maxDataPayload {
				end := min(off+maxDataPayload, len(data))
				frame = appendDataHeader(frame[:0], idx, uint32(off))
				if err := write(append(frame, data[off:end]...)); err != nil {
					if errors.Is(err, errReaderDone) {
						return <-readErr
					}
					return err
				}
			}
			sent += int64(len(data))
			progress(sent)
		}
	}
}

var errReaderDone = errors.New("reader done")

// readRequests reads the receiver's frames until it finishes (nil) or
// fails; every index it asks for is checked before it is queued.
func readRequests(r io.Reader, numChunks int, wants chan<- uint32) error {
	buf := make([]byte, maxFrame)
	for {
		n, err := r.Read(buf)
		if err != nil {
			return fmt.Errorf("%w: receiver closed the channel before finishing", ErrPeerLeft)
		}
		f, err := parseFrame(buf[:n])
		if err != nil {
			return err
		}
		switch f.Type {
		case frameWant:
			for _, i := range f.Want {
				if int64(i) >= int64(numChunks) {
					return fmt.Errorf("%w: request for chunk %d of %d", ErrProtocol, i, numChunks)
				}
				select {
				case wants <- i:
				default:
					return fmt.Errorf("%w: more than %d outstanding requests", ErrProtocol, maxOutstanding)
				}
			}
		case frameFinished:
			return nil
		case frameError:
			return fmt.Errorf("%w: %s", ErrRemote, f.Data)
		default:
			return fmt.Errorf("%w: unexpected frame %q from receiver", ErrProtocol, f.Type)
		}
	}
}
