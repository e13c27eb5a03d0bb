package bulk

import "errors"

var (
	// ErrClosed: the endpoint was closed here.
	ErrClosed = errors.New("bulk: closed")
	// ErrPeerClosed: the other end closed the stream, or gave up on it.
	ErrPeerClosed = errors.New("bulk: closed by the other end")
	// ErrIdle: nothing came from the other end for IdleTimeout, so it is
	// gone or the path is.
	ErrIdle = errors.New("bulk: nothing heard from the other end")
	// ErrProtocol: the other end broke the protocol (wire.go).
	ErrProtocol = errors.New("bulk: protocol violation")
	// ErrTooLarge: a message larger than MaxMessage.
	ErrTooLarge = errors.New("bulk: message too large")
	// ErrShortBuffer: Read's buffer cannot hold the next message.
	ErrShortBuffer = errors.New("bulk: read buffer too small for the message")
	// ErrReceiveOnly: Write on the receiving end; a stream is one way.
	ErrReceiveOnly = errors.New("bulk: the receiving end cannot write")
	// ErrTimeout: a deadline passed.
	ErrTimeout = timeoutError{}
)

// timeoutError is a net.Error, as a deadline's error is expected to be.
type timeoutError struct{}

func (timeoutError) Error() string   { return "bulk: deadline exceeded" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
