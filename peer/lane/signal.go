package lane

import (
	"context"
	"sync"
)

// Signal carries sealed signalling messages (wire.go) between this end
// and the peer of one Conn. The caller implements it over a session only
// the two peers hold keys to (package peer: the PAKE session), so the
// transport never sees the password or the keys.
type Signal interface {
	// Send seals msg and sends it to the peer. A Conn calls it from one
	// goroutine at a time.
	Send(ctx context.Context, msg []byte) error
	// Recv returns the peer's next message, opened. A message that fails
	// authentication is an error that wraps ErrTampered; once the peer is
	// gone, or signalling is lost, it is an error that says so. A Conn
	// calls it from one goroutine, until ctx ends.
	Recv(ctx context.Context) ([]byte, error)
}

// inbox reads the peer's messages from a Signal on a goroutine of its
// own, one ahead at most, so that a negotiation can wait for them and for
// pion's events in one select.
type inbox struct {
	msgs chan *signalMsg
	done chan struct{} // closed when reading stopped; err says why
	err  error
}

// startInbox reads sig until ctx ends or a message is refused; wg counts
// the reader.
func startInbox(ctx context.Context, sig Signal, wg *sync.WaitGroup) *inbox {
	in := &inbox{msgs: make(chan *signalMsg), done: make(chan struct{})}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(in.done)
		for {
			b, err := sig.Recv(ctx)
			var m *signalMsg
			if err == nil {
				m, err = decodeSignal(b)
			}
			if err != nil {
				in.err = err
				return
			}
			select {
			case in.msgs <- m:
			case <-ctx.Done():
				in.err = ctx.Err()
				return
			}
		}
	}()
	return in
}

// next waits for the peer's next message.
func (in *inbox) next(ctx context.Context) (*signalMsg, error) {
	select {
	case m := <-in.msgs:
		return m, nil
	case <-in.done:
		return nil, in.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
