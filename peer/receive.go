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

// ReceiveOptions configure Receive.
type ReceiveOptions struct {
	Room, Self, Host string // as the server told us when we joined
	Password         string
	// Open is called once with the sender's manifest, before any chunk is
	// requested; it decides where the files go (and may refuse them).
	// Receive does not close the Writer: the caller does, after Receive.
	Open func(*chunker.Manifest) (*chunker.Writer, error)
	// OnConnected is called once the password is confirmed and the data
	// channel is open.
	OnConnected func()
	// OnProgress reports verified bytes of the total; called from Receive's
	// goroutine.
	OnProgress func(done, total int64)
}

const (
	// requestWindow bounds the bytes asked for but not yet received: enough
	// to keep a long fat path busy, small enough to bound memory.
	requestWindow = 16 << 20
	// maxBadChunks is how many corrupt chunks we forgive a sender (a flipped
	// bit on disk, say) before giving up on it.
	maxBadChunks = 3
	// stallTimeout ends a transfer in which nothing arrives for this long.
	stallTimeout = 60 * time.Second
)

// Receive joins the sender lazily: only now does it run the PAKE and create
// the offer. It returns nil once every file is verified and in place.
func (e *Engine) Receive(ctx context.Context, sig Signaller, opts ReceiveOptions) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	l := newLink(sig, opts.Host)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			m, err := sig.Recv(ctx)
			if err != nil {
				l.leave(err)
				return
			}
			switch {
			case m.Type == room.TypeRelay && m.Peer == opts.Host:
				l.deliver(m.Data)
			case m.Type == room.TypeLeft && m.Peer == opts.Host:
				l.leave(ErrPeerLeft)
			case m.Type == room.TypeError && m.Peer == opts.Host:
				l.leave(room.ErrorFromCode(m.Code, m.Text))
			}
		}
	}()

	params := pake.Params{Room: opts.Room, Initiator: opts.Self, Responder: opts.Host}
	ini, hello, err := pake.NewInitiator(opts.Password, params)
	if err != nil {
		return fmt.Errorf("peer receive: %w", err)
	}
	if err := l.sendRaw(ctx, hello); err != nil {
		return fmt.Errorf("peer receive: %w", err)
	}
	reply, err := l.recv(ctx, e.cfg.HandshakeTimeout)
	if err != nil {
		return fmt.Errorf("peer receive: handshake: %w", err)
	}
	sess, confirm, err := ini.Finish(reply)
	if err != nil {
		if isWrongPassword(err) {
			l.abort(ctx, pake.AbortWrongPassword)
		}
		return fmt.Errorf("peer receive: %w", err)
	}
	l.sess = sess
	if err := l.sendRaw(ctx, confirm); err != nil {
		return fmt.Errorf("peer receive: %w", err)
	}

	pc, err := e.newPeerConnection()
	if err != nil {
		return err
	}
	defer pc.Close()
	ev := watch(pc)
	ordered := true
	dc, err := pc.CreateDataChannel(DataChannelLabel, &webrtc.DataChannelInit{Ordered: &ordered})
	if err != nil {
		return fmt.Errorf("peer receive: data channel: %w", err)
	}
	ev.onOpen(dc)
	if err := l.offer(ctx, pc); err != nil {
		return fmt.Errorf("peer receive: %w", err)
	}
	if _, err := l.negotiate(ctx, pc, ev, dc, e.cfg.ConnectTimeout); err != nil {
		if ctx.Err() == nil && !errors.Is(err, ErrRemote) {
			_ = l.sendSealed(ctx, &signalMsg{T: sigBye, Why: "connection failed"})
		}
		return fmt.Errorf("peer receive: %w", err)
	}
	raw, err := dc.DetachWithDeadline()
	if err != nil {
		return fmt.Errorf("peer receive: detach: %w", err)
	}
	if opts.OnConnected != nil {
		opts.OnConnected()
	}
	if err := receiveFiles(ctx, raw, ev, opts); err != nil {
		return fmt.Errorf("peer receive: %w", err)
	}
	return nil
}

// inEvent is what the reader goroutine hands the receive loop.
type inEvent struct {
	manifest *chunker.Manifest
	index    int
	chunk    []byte
	err      error // terminal
}

// receiveFiles runs the receiving side of the data channel protocol. One
// goroutine reads and assembles frames; this one verifies, writes, asks for
// more and owns every write to the channel.
func receiveFiles(ctx context.Context, raw datachannel.ReadWriteCloserDeadliner, ev *iceEvents, opts ReceiveOptions) error {
	in := make(chan inEvent, 4)
	free := make(chan []byte, 6) // chunk buffers: bounds what the reader may hold
	var wg sync.WaitGroup
	defer wg.Wait()
	// The reader may be blocked handing us a frame or waiting for a buffer
	// (ctx) or in Read (stopReading): both must end before wg.Wait.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer stopReading(raw)
	wg.Add(1)
	go func() {
		defer wg.Done()
		readFrames(ctx, raw, in, free)
	}()

	var (
		w           *chunker.Writer
		m           *chunker.Manifest
		missing     []int
		next        int
		outstanding = map[int]bool{}
		inFlight    int64
		done, total int64
		bad         int
	)
	request := func() error {
		var batch []uint32
		for next < len(missing) && (inFlight < requestWindow || len(outstanding) == 0) && len(outstanding) < maxOutstanding {
			i := missing[next]
			next++
			outstanding[i] = true
			inFlight += int64(m.Chunk(i).Size)
			batch = append(batch, uint32(i))
		}
		for len(batch) > 0 {
			n := min(len(batch), maxWant)
			if _, err := raw.Write(wantFrame(batch[:n])); err != nil {
				return fmt.Errorf("%w: write: %v", ErrPeerLeft, err)
			}
			batch = batch[n:]
		}
		return nil
	}
	finish := func() error {
		if err := w.Finish(); err != nil {
			_, _ = raw.Write(errorFrame("receiver could not finish the files"))
			return err
		}
		if _, err := raw.Write([]byte{frameFinished}); err != nil {
			return nil // the files are complete; the sender will notice we left
		}
		// Give the finished frame a moment to reach the sender, which then
		// closes the channel.
		t := time.NewTimer(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case r := <-in:
				if r.err == nil {
					continue
				}
			case <-ev.failed:
			case <-t.C:
			case <-ctx.Done():
			}
			return nil
		}
	}

	stall := time.NewTimer(stallTimeout)
	defer stall.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ev.failed:
			return fmt.Errorf("%w: connection lost", ErrPeerLeft)
		case <-stall.C:
			return fmt.Errorf("%w: nothing received for %v", ErrPeerLeft, stallTimeout)
		case r := <-in:
			stall.Reset(stallTimeout)
			switch {
			case r.err != nil:
				return r.err
			case r.manifest != nil:
				if w != nil {
					return fmt.Errorf("%w: second manifest", ErrProtocol)
				}
				m = r.manifest
				var err error
				if w, err = opts.Open(m); err != nil {
					_, _ = raw.Write(errorFrame("receiver declined the files"))
					return err
				}
				missing = w.Missing()
				done, total = w.Verified(), m.TotalSize()
				if opts.OnProgress != nil {
					opts.OnProgress(done, total)
				}
				if len(missing) == 0 {
					return finish()
				}
				if err := request(); err != nil {
					return err
				}
			default:
				if !outstanding[r.index] {
					return fmt.Errorf("%w: chunk %d was not requested", ErrProtocol, r.index)
				}
				err := w.WriteChunk(r.index, r.chunk)
				free <- r.chunk[:cap(r.chunk)]
				switch {
				case errors.Is(err, chunker.ErrChunkHash):
					bad++
					if bad > maxBadChunks {
						_, _ = raw.Write(errorFrame("too many corrupt chunks"))
						return fmt.Errorf("%w: %d chunks failed verification", ErrCorrupt, bad)
					}
					if _, err := raw.Write(wantFrame([]uint32{uint32(r.index)})); err != nil {
						return fmt.Errorf("%w: write: %v", ErrPeerLeft, err)
					}
					continue
				case err != nil:
					_, _ = raw.Write(errorFrame("receiver cannot write the files"))
					return err
				}
				size := int64(len(r.chunk))
				delete(outstanding, r.index)
				inFlight -= size
				done += size
				if opts.OnProgress != nil {
					opts.OnProgress(done, total)
				}
				if len(outstanding) == 0 && next == len(missing) {
					return finish()
				}
				if err := request(); err != nil {
					return err
				}
			}
		}
	}
}

// readFrames reads the sender's frames, reassembling the manifest and each
// chunk; it holds at most the chunk buffers free hands it.
func readFrames(ctx context.Context, r io.Reader, out chan<- inEvent, free chan []byte) {
	send := func(ev inEvent) bool {
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	fail := func(err error) { send(inEvent{err: err}) }
	buf := make([]byte, maxFrame)
	var (
		m        *chunker.Manifest
		mbuf     []byte
		mtotal   uint32
		cur      = -1 // chunk being assembled
		curBuf   []byte
		curSize  int
		nBuffers int
	)
	for {
		n, err := r.Read(buf)
		if err != nil {
			if ctx.Err() == nil {
				fail(fmt.Errorf("%w: channel closed: %v", ErrPeerLeft, err))
			}
			return
		}
		f, err := parseFrame(buf[:n])
		if err != nil {
			fail(err)
			return
		}
		switch f.Type {
		case frameManifest:
			if m != nil {
				fail(fmt.Errorf("%w: manifest after manifest", ErrProtocol))
				return
			}
			if mbuf == nil {
				mtotal = f.Total
				mbuf = make([]byte, 0, min(int(f.Total), 1<<20))
			}
			if int(f.Offset) != len(mbuf) || f.Total != mtotal {
				fail(fmt.Errorf("%w: manifest part out of order", ErrProtocol))
				return
			}
			mbuf = append(mbuf, f.Data...)
			if len(mbuf) < int(f.Total) {
				continue
			}
			if m, err = chunker.DecodeManifest(mbuf); err != nil {
				fail(err)
				return
			}
			mbuf = nil
			if !send(inEvent{manifest: m}) {
				return
			}
		case frameData:
			if m == nil || int64(f.Index) >= int64(m.NumChunks()) {
				fail(fmt.Errorf("%w: data for unknown chunk %d", ErrProtocol, f.Index))
				return
			}
			if cur < 0 {
				cur, curSize = int(f.Index), m.Chunk(int(f.Index)).Size
				select {
				case curBuf = <-free:
				default:
					if nBuffers >= maxBuffers(m.ChunkSize, cap(free)) {
						select {
						case curBuf = <-free:
						case <-ctx.Done():
							return
						}
					} else {
						nBuffers++
						curBuf = make([]byte, m.ChunkSize)
					}
				}
				curBuf = curBuf[:0]
			}
			if int(f.Index) != cur || int(f.Offset) != len(curBuf) || len(curBuf)+len(f.Data) > curSize {
				fail(fmt.Errorf("%w: chunk %d data out of order", ErrProtocol, f.Index))
				return
			}
			curBuf = append(curBuf, f.Data...)
			if len(curBuf) == curSize {
				if !send(inEvent{index: cur, chunk: curBuf}) {
					return
				}
				cur, curBuf = -1, nil
			}
		case frameError:
			fail(fmt.Errorf("%w: %s", ErrRemote, f.Data))
			return
		default:
			fail(fmt.Errorf("%w: unexpected frame %q from sender", ErrProtocol, f.Type))
			return
		}
	}
}

// maxBuffers is how many chunk buffers the receiver may hold: a few to
// overlap reading with verifying and writing, fewer when chunks are huge.
func maxBuffers(chunkSize, most int) int {
	return max(2, min(most, (32<<20)/chunkSize))
}
