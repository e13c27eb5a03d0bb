package peer

import (
	"context"
	"fmt"
	"golang.org/x/time/rate"
	"time"

	"github.com/p2pxfer/p2pxfer/peer/lane"
	"github.com/p2pxfer/p2pxfer/room"
)

// Signaller is the signalling connection a peer talks through;
// signalclient.Conn implements it. Send must be safe for concurrent use.
type Signaller interface {
	Send(ctx context.Context, m *room.Message) error
	Recv(ctx context.Context) (*room.Message, error)
}

// Config sets up a peer.
type Config struct {
	// Transport sets up the connections to other peers.
	Transport lane.Config
	// HandshakeTimeout bounds each PAKE round trip.
	HandshakeTimeout time.Duration
	// NoSourceWait bounds how long a download waits while nobody in the
	// room can give it a piece it lacks (the sender left, say) before it
	// gives up (default DefaultNoSourceWait).
	NoSourceWait time.Duration
	// UploadRate bounds what this process sends of pieces, in bytes per
	// second, to all receivers together (a sender's and a seed's uploads
	// alike); 0: no bound. Users on a shared link ask for it, as for
	// rsync's --bwlimit.
	UploadRate float64
}

// DefaultNoSourceWait is Config.NoSourceWait's when left zero: long
// enough for a source that lost its connection to come back.
const DefaultNoSourceWait = 30 * time.Second

// DefaultHandshakeTimeout is Config.HandshakeTimeout's when left zero.
const DefaultHandshakeTimeout = 30 * time.Second

// Engine is a peer's side of every transfer of the process: the
// transport, which Serve and Receive share.
type Engine struct {
	cfg    Config
	tr     *lane.Transport
	upload *rate.Limiter // nil: no bound
}

// NewEngine opens the transport's sockets. Close releases them.
func NewEngine(cfg Config) (*Engine, error) {
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.NoSourceWait <= 0 {
		cfg.NoSourceWait = DefaultNoSourceWait
	}
	tr, err := lane.New(cfg.Transport)
	if err != nil {
		return nil, fmt.Errorf("peer: %w", err)
	}
	e := &Engine{cfg: cfg, tr: tr}
	if cfg.UploadRate > 0 {
		// A tenth of a second's worth at once, and at least a whole
		// frame, which WaitN takes in one go.
		burst := max(int(cfg.UploadRate/10), maxFrame)
		e.upload = rate.NewLimiter(rate.Limit(cfg.UploadRate), burst)
	}
	return e, nil
}

// Close releases the sockets. Serve and Receive must have returned.
func (e *Engine) Close() error { return e.tr.Close() }

// SocketBuffer is the UDP receive buffer the kernel actually gave us;
// Linux caps it at net.core.rmem_max whatever we ask for.
func (e *Engine) SocketBuffer() int { return e.tr.SocketBuffer() }
