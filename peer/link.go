package peer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/p2pxfer/p2pxfer/pake"
	"github.com/p2pxfer/p2pxfer/room"
)

// inboxSize bounds the relay frames queued for one peer; a peer that
// floods more than this before we read them is dropped.
const inboxSize = 64

// link is one end-to-end signalling session with one other peer, carried
// over the shared signalling connection: first the PAKE's frames, then,
// once sess is set, sealed frames, which it carries for the transport as
// its lane.Signal. The dispatcher that reads the connection feeds inbox;
// gone is closed when the other end leaves.
type link struct {
	sig   Signaller
	peer  string
	inbox chan []byte
	sess  *pake.Session

	sendMu sync.Mutex // sealed frames leave in the order of their sequence numbers

	gone     chan struct{}
	goneOnce sync.Once
	goneErr  error
}

func newLink(sig Signaller, peer string) *link {
	return &link{sig: sig, peer: peer, inbox: make(chan []byte, inboxSize), gone: make(chan struct{})}
}

// leave records that the other end is unreachable (it left, or signalling
// failed with err) and wakes everyone waiting on it.
func (l *link) leave(err error) {
	l.goneOnce.Do(func() {
		if err == nil {
			err = ErrPeerLeft
		}
		l.goneErr = err
		close(l.gone)
	})
}

// isGone reports whether leave was called: the server said the peer left
// (or signalling with it ended).
func (l *link) isGone() bool {
	select {
	case <-l.gone:
		return true
	default:
		return false
	}
}

// deliver queues a relay frame from the other end; a peer that floods us
// faster than we read is cut off rather than buffered without bound.
func (l *link) deliver(b []byte) {
	select {
	case l.inbox <- b:
	default:
		l.leave(fmt.Errorf("%w: signalling flood", ErrProtocol))
	}
}

func (l *link) sendRaw(ctx context.Context, data []byte) error {
	return l.sig.Send(ctx, &room.Message{Type: room.TypeRelay, Peer: l.peer, Data: data})
}

// Send seals msg with the session's key and relays it (lane.Signal).
func (l *link) Send(ctx context.Context, msg []byte) error {
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	frame, err := l.sess.Seal(msg)
	if err != nil {
		return err
	}
	return l.sendRaw(ctx, frame)
}

// Recv returns the next sealed frame, opened (lane.Signal). Anything that
// is not a valid sealed frame under our key is tampering: after the PAKE
// only the other password holder can produce one.
func (l *link) Recv(ctx context.Context) ([]byte, error) {
	b, err := l.recv(ctx, 0)
	if err != nil {
		return nil, err
	}
	plain, err := l.sess.Open(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTampered, err)
	}
	return plain, nil
}

// abort tells the other end why we give up, best effort: the frame is
// unauthenticated and only saves the other side a timeout.
func (l *link) abort(ctx context.Context, reason byte) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_ = l.sendRaw(ctx, pake.AbortFrame(reason))
}

// recv waits for the next relay frame, at most timeout (0: as long as ctx
// lasts), turning an abort frame into its error.
func (l *link) recv(ctx context.Context, timeout time.Duration) ([]byte, error) {
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	frame := func(b []byte) ([]byte, error) {
		if err := abortError(b); err != nil {
			return nil, err
		}
		return b, nil
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-l.gone:
		// A frame sent just before the peer left (its abort, saying why)
		// still counts; select alone would pick at random.
		select {
		case b := <-l.inbox:
			return frame(b)
		default:
		}
		return nil, l.goneErr
	case <-expired:
		return nil, ErrTimeout
	case b := <-l.inbox:
		return frame(b)
	}
}

// recvHandshake waits, at most timeout, for the other end's next
// handshake frame. Sealed frames are passed over: they belong to an
// earlier session with the same peer (a retry), whose last messages may
// still be on the way, and are no answer to this handshake.
func (l *link) recvHandshake(ctx context.Context, timeout time.Duration) ([]byte, error) {
	deadline := time.Now().Add(timeout)
	for {
		b, err := l.recv(ctx, max(time.Until(deadline), time.Nanosecond))
		if err != nil {
			return nil, err
		}
		if k, err := pake.FrameKind(b); err != nil || k != pake.KindSealed {
			return b, nil
		}
	}
}

// abortError is the error an abort frame from the other end stands for, or
// nil when b is not an abort frame.
func abortError(b []byte) error {
	if k, err := pake.FrameKind(b); err != nil || k != pake.KindAbort {
		return nil
	}
	reason, err := pake.ParseAbort(b)
	if err != nil {
		return err
	}
	return pake.AbortError(reason)
}

// isWrongPassword reports whether err means the PAKE failed on the password.
func isWrongPassword(err error) bool { return errors.Is(err, pake.ErrWrongPassword) }
