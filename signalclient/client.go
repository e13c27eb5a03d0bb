// Package signalclient is the client side of the p2pxfer signalling
// protocol (package room): it dials a signalling server over a WebSocket,
// creates or joins a room, and exchanges relay messages with the other end
// of a handshake. It also speaks the seed pool part of the protocol: Seed,
// Want, Release and Fail send, and peers and queued arrive through Recv.
//
// A Conn runs two goroutines: one reads frames into a buffer, so Recv can
// honour its context, and one owns writes, so Send can be called from any
// number of goroutines. Close must always be called to stop them.
package signalclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/p2pxfer/p2pxfer/room"
)

// Options configures Dial. A nil *Options means all defaults.
type Options struct {
	// HTTPClient makes the WebSocket handshake request (proxy, TLS roots,
	// timeout). Nil means http.DefaultClient.
	HTTPClient *http.Client
	// Logger receives debug logs. Nil discards them.
	Logger *slog.Logger
}

// inQueueLen buffers received messages between the reader and Recv. A
// caller that stops calling Recv stalls the reader once it is full, and the
// server, whose pings then go unanswered, drops the connection: the buffer
// is bounded on purpose.
const inQueueLen = 64

// writeTimeout bounds writing one frame; a server that cannot take a small
// frame in that time is gone, and the library closes the connection.
const writeTimeout = 10 * time.Second

// closeGrace bounds Close's handshake with a server that no longer answers.
// Our server answers at once; this is for a hung server or a dead network.
const closeGrace = time.Second

// sendErrWait is how long a failed Send waits for the reader to learn why
// the connection broke: the server sends its reason (say, server_full)
// before closing, and that reason is more use to the caller than a broken
// pipe.
const sendErrWait = time.Second

// Conn is a signalling connection. Its methods are safe for concurrent
// use, except that Create, Join and Recv all consume received messages:
// call Create or Join before starting to Recv.
type Conn struct {
	ws  *websocket.Conn
	url string
	log *slog.Logger

	in     chan *room.Message // reader -> Recv; closed by the reader when it stops delivering
	writes chan writeReq      // Send -> writer

	mu     sync.Mutex
	err    error         // why the conn ended; set once, before dead is closed
	dead   chan struct{} // closed when the conn has ended, for any reason
	closed chan struct{} // closed by Close

	cancelRead context.CancelFunc
	sock       *socket // the TCP connection under ws, when it could be recorded
	closeOnce  sync.Once
	wg         sync.WaitGroup
}

type writeReq struct {
	b    []byte
	done chan error // buffered, so the writer never waits for an abandoned Send
}

// Dial connects to the signalling server at rawURL, such as
// ws://host:port/ws or wss://host/ws; http:// and https:// are taken as
// ws:// and wss://. ctx bounds the dial and handshake only.
func Dial(ctx context.Context, rawURL string, opts *Options) (*Conn, error) {
	u, err := wsURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("signalclient: dial: %w", err)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	hc, sock := recordingClient(o.HTTPClient)
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, fmt.Errorf("cannot reach signalling server at %s: it answered %s: %w", u, resp.Status, err)
		}
		return nil, fmt.Errorf("cannot reach signalling server at %s: %w", u, err)
	}
	ws.SetReadLimit(room.MaxMessageSize)
	readCtx, cancelRead := context.WithCancel(context.Background())
	c := &Conn{
		ws:         ws,
		url:        u,
		log:        o.Logger.With("server", u),
		in:         make(chan *room.Message, inQueueLen),
		writes:     make(chan writeReq),
		dead:       make(chan struct{}),
		closed:     make(chan struct{}),
		cancelRead: cancelRead,
		sock:       sock,
	}
	c.wg.Add(2)
	go c.readLoop(readCtx)
	go c.writeLoop()
	c.log.Debug("connected to signalling server")
	return c, nil
}

// socket records the TCP connection an HTTP transport dials, so Close can
// cut it. The WebSocket library's close handshake may otherwise wait 5 s
// for a server that does not answer, and nothing else can shorten it.
type socket struct {
	mu   sync.Mutex
	conn net.Conn
}

func (s *socket) set(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn = c
}

func (s *socket) close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		_ = s.conn.Close()
	}
}

// recordingClient returns a copy of hc (nil: http.DefaultClient) whose
// transport records the connection it dials. That needs an *http.Transport
// to clone; with any other RoundTripper hc is used as it is and the socket
// is nil. The clone starts with an empty pool, so the handshake cannot reuse
// some other connection.
func recordingClient(hc *http.Client) (*http.Client, *socket) {
	if hc == nil {
		hc = http.DefaultClient
	}
	rt := hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	tr, ok := rt.(*http.Transport)
	if !ok {
		return hc, nil
	}
	sock := &socket{}
	tr = tr.Clone()
	if dial := tr.DialTLSContext; dial != nil {
		tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err == nil {
				sock.set(c)
			}
			return c, err
		}
	}
	dial := tr.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err == nil {
			sock.set(c)
		}
		return c, err
	}
	c := *hc
	c.Transport = tr
	return &c, sock
}

// wsURL checks rawURL and maps http(s) to ws(s).
func wsURL(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("bad signalling server URL %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("bad signalling server URL %q: scheme must be ws, wss, http or https", rawURL)
	}
	if u.Host == "" {
		return "", fmt.Errorf("bad signalling server URL %q: no host", rawURL)
	}
	return u.String(), nil
}

// end records why the conn ended; the first reason wins, so a fatal error
// from the server is not replaced by the connection closing after it.
func (c *Conn) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	close(c.dead)
}

func (c *Conn) reason() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// readLoop reads frames until the connection fails. After the conn has
// ended it keeps reading without delivering, so the close handshake and
// pings are still answered until the socket closes.
func (c *Conn) readLoop(ctx context.Context) {
	defer c.wg.Done()
	delivering := true
	stop := func(err error) {
		c.end(err)
		if delivering {
			delivering = false
			close(c.in)
		}
	}
	defer stop(fmt.Errorf("signalling connection closed: %w", net.ErrClosed))
	for {
		typ, b, err := c.ws.Read(ctx)
		if err != nil {
			stop(readErr(err))
			return
		}
		if !delivering {
			continue
		}
		if typ != websocket.MessageText {
			stop(fmt.Errorf("signalling server sent a binary frame: %w", room.ErrBadMessage))
			continue
		}
		m, err := room.Decode(b)
		if err != nil {
			stop(fmt.Errorf("signalling server sent a bad frame: %w", err))
			continue
		}
		if m.Type == room.TypeError && m.Code.Fatal() {
			c.log.Debug("signalling server ended the connection", "code", m.Code, "text", m.Text)
			stop(room.ErrorFromCode(m.Code, m.Text))
			continue
		}
		select {
		case c.in <- m:
		case <-c.dead:
			// Closed while the caller was not receiving: drop, keep draining.
		}
	}
}

// readErr describes a failed read. The server closes with a status when it
// has a reason; a frame over the limit is our side's refusal.
func readErr(err error) error {
	switch {
	case errors.Is(err, websocket.ErrMessageTooBig):
		return fmt.Errorf("signalling server sent a frame over %d bytes: %w", room.MaxMessageSize, room.ErrTooLarge)
	case websocket.CloseStatus(err) == websocket.StatusMessageTooBig:
		return fmt.Errorf("signalling server closed the connection: %w", room.ErrTooLarge)
	case websocket.CloseStatus(err) != -1:
		var ce websocket.CloseError
		errors.As(err, &ce)
		return fmt.Errorf("signalling server closed the connection (status %d %q): %w", int(ce.Code), ce.Reason, net.ErrClosed)
	default:
		return fmt.Errorf("signalling connection lost: %w: %w", net.ErrClosed, err)
	}
}

// writeLoop is the only goroutine writing data frames, so concurrent Sends
// never interleave and go out in the order the loop receives them.
func (c *Conn) writeLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.dead:
			return
		case req := <-c.writes:
			ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
			err := c.ws.Write(ctx, websocket.MessageText, req.b)
			cancel()
			req.done <- err
		}
	}
}

// Send encodes m with room.Encode and writes it. If ctx ends while the
// frame is being written, Send returns ctx's error and the frame may still
// go out. After the conn has ended it returns the reason.
func (c *Conn) Send(ctx context.Context, m *room.Message) error {
	if err := c.send(ctx, m); err != nil {
		return fmt.Errorf("signalclient: send %s: %w", m.Type, err)
	}
	return nil
}

func (c *Conn) send(ctx context.Context, m *room.Message) error {
	b, err := room.Encode(m)
	if err != nil {
		return err
	}
	req := writeReq{b: b, done: make(chan error, 1)}
	select {
	case <-c.dead:
		return c.reason()
	default:
	}
	select {
	case c.writes <- req:
	case <-c.dead:
		return c.reason()
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		if err == nil {
			return nil
		}
		t := time.NewTimer(sendErrWait)
		defer t.Stop()
		select {
		case <-c.dead:
			return c.reason()
		case <-t.C:
		case <-ctx.Done():
		}
		return fmt.Errorf("write to signalling server: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Recv returns the next message. Non-fatal error messages (CodePeerGone,
// CodeNotAllowed) are returned as messages for the caller to handle. An
// error message with a fatal code is returned as an error wrapping its
// room sentinel (see room.ErrorFromCode), and the conn is done. Once the
// conn has ended, Recv returns that error or one wrapping net.ErrClosed.
func (c *Conn) Recv(ctx context.Context) (*room.Message, error) {
	m, err := c.recv(ctx)
	if err != nil {
		return nil, fmt.Errorf("signalclient: recv: %w", err)
	}
	return m, nil
}

func (c *Conn) recv(ctx context.Context) (*room.Message, error) {
	// After Close, report it at once rather than hand out what is buffered.
	select {
	case <-c.closed:
		return nil, c.reason()
	default:
	}
	select {
	case m, ok := <-c.in:
		if !ok {
			return nil, c.reason()
		}
		return m, nil
	case <-c.closed:
		return nil, c.reason()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Create opens a room with this conn as its host, with the server's
// default upload slots, no failure limit and no signing key. It returns the
// room ID to give receivers and the host's own peer ID.
func (c *Conn) Create(ctx context.Context) (roomID, selfID string, err error) {
	return c.CreateWith(ctx, CreateOptions{})
}

// CreateOptions are the seed pool settings of a room, given at create.
type CreateOptions struct {
	// Slots is how many receivers the server may assign to the host at
	// once (1 to room.MaxSlots); 0 means the server's default.
	Slots int
	// MaxFailures closes the room with room.ErrTooManyFailures once
	// sources have reported that many failed password handshakes (see
	// Fail); 0 leaves counting to the host alone.
	MaxFailures int
	// Key is the manifest-signing public key (room.KeySize bytes), handed
	// by the server to every receiver in joined; nil for none.
	Key []byte
}

// CreateWith opens a room with this conn as its host, like Create, with
// the seed pool settings of o. Options out of range are refused before
// anything is sent, with an error wrapping room.ErrBadMessage.
func (c *Conn) CreateWith(ctx context.Context, o CreateOptions) (roomID, selfID string, err error) {
	r, err := c.CreateInfo(ctx, o)
	return r.Room, r.Self, err
}

// CreateResult is what the server tells the host of a new room.
type CreateResult struct {
	Room string // the room's ID
	Self string // the host's peer ID
	// ICE lists the STUN and TURN servers the server offers this member
	// (a relay beside it), with credentials for it alone; nil if none.
	ICE []room.ICEServer
}

// CreateInfo is CreateWith returning everything created carries,
// including the relays the server offers.
func (c *Conn) CreateInfo(ctx context.Context, o CreateOptions) (CreateResult, error) {
	m, err := c.request(ctx, &room.Message{
		Type: room.TypeCreate, Version: room.ProtocolVersion,
		Slots: o.Slots, MaxFailures: o.MaxFailures, Key: o.Key,
	}, room.TypeCreated)
	if err != nil {
		return CreateResult{}, fmt.Errorf("signalclient: create room: %w", err)
	}
	return CreateResult{Room: m.Room, Self: m.Peer, ICE: m.ICE}, nil
}

// JoinResult is what the server tells a receiver that joined a room.
type JoinResult struct {
	Self string // this receiver's peer ID
	Host string // the host's peer ID (announced even after the host left a room that outlives it)
	Key  []byte // the manifest-signing key the host registered; nil if none
	// ICE lists the STUN and TURN servers the server offers this member,
	// as in CreateResult.
	ICE []room.ICEServer
}

// Join enters the room roomID (surrounding spaces and capitals are
// forgiven). It returns this receiver's peer ID and the host's. A room
// that does not exist gives an error wrapping room.ErrRoomNotFound.
func (c *Conn) Join(ctx context.Context, roomID string) (selfID, hostID string, err error) {
	j, err := c.JoinInfo(ctx, roomID)
	return j.Self, j.Host, err
}

// JoinInfo is Join returning everything joined carries, including the
// host's manifest-signing key.
func (c *Conn) JoinInfo(ctx context.Context, roomID string) (JoinResult, error) {
	id := room.NormalizeRoomID(roomID)
	if !room.ValidRoomID(id) {
		// No room can have this ID; say so without asking the server.
		return JoinResult{}, fmt.Errorf("signalclient: join room: %w: %q is not a room ID (%d characters of %s)",
			room.ErrRoomNotFound, roomID, room.RoomIDLen, room.Alphabet)
	}
	m, err := c.request(ctx, &room.Message{Type: room.TypeJoin, Version: room.ProtocolVersion, Room: id}, room.TypeJoined)
	if err != nil {
		return JoinResult{}, fmt.Errorf("signalclient: join room %s: %w", id, err)
	}
	return JoinResult{Self: m.Peer, Host: m.Host, Key: m.Key, ICE: m.ICE}, nil
}

// Seed offers slots upload slots to the room's seed pool (1 to
// room.MaxSlots), replacing an earlier offer; complete says this peer holds
// every piece, which makes the server prefer it. Fewer slots than are in
// use stop new assignments without ending current ones.
func (c *Conn) Seed(ctx context.Context, slots int, complete bool) error {
	return c.Send(ctx, &room.Message{Type: room.TypeSeed, Slots: slots, Complete: complete})
}

// Want asks the server for up to n more sources (1 to room.MaxWant). The
// answer arrives through Recv: peers with the sources assigned, a slot
// reserved on each; or queued with this receiver's place in the room's
// FIFO queue, followed later by peers as slots free. While queued, Want
// replaces the number still wanted. The host may not call it.
func (c *Conn) Want(ctx context.Context, n int) error {
	return c.Send(ctx, &room.Message{Type: room.TypeWant, Count: n})
}

// Release ends the assignment with peer (a source this receiver was given,
// or a receiver this source serves), freeing the slot; peer gets left. A
// peer with no assignment gets a room.CodeNotAllowed error through Recv.
func (c *Conn) Release(ctx context.Context, peer string) error {
	return c.Send(ctx, &room.Message{Type: room.TypeRelease, Peer: peer})
}

// Fail reports one handshake that failed on the password. Only sources may
// report; the server closes the room at its MaxFailures.
func (c *Conn) Fail(ctx context.Context) error {
	return c.Send(ctx, &room.Message{Type: room.TypeFail})
}

// request sends m and waits for the answer, which must be of type want or
// an error.
func (c *Conn) request(ctx context.Context, m *room.Message, want room.Type) (*room.Message, error) {
	if err := c.send(ctx, m); err != nil {
		return nil, err
	}
	r, err := c.recv(ctx)
	if err != nil {
		return nil, err
	}
	switch r.Type {
	case want:
		return r, nil
	case room.TypeError: // non-fatal, e.g. not_allowed on a second create
		return nil, room.ErrorFromCode(r.Code, r.Text)
	default:
		return nil, fmt.Errorf("%w: got %s while waiting for %s", room.ErrBadMessage, r.Type, want)
	}
}

// Close closes the connection with a close handshake, bounded to about a
// second if the server does not answer, and waits for the conn's
// goroutines. It is idempotent and returns nil.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.end(fmt.Errorf("signalling connection closed: %w", net.ErrClosed))
		close(c.closed)
		// A server that does not answer our close frame gets closeGrace:
		// then the socket is cut, which ends the library's handshake
		// wait. Cancelling the reader's context does the same through the
		// library where no socket was recorded, if the reader holds the
		// read side at that moment.
		handshook := make(chan struct{})
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			t := time.NewTimer(closeGrace)
			defer t.Stop()
			select {
			case <-handshook:
			case <-t.C:
				c.log.Debug("signalling server did not answer close; cutting the connection")
				c.sock.close()
				c.cancelRead()
			}
		}()
		err := c.ws.Close(websocket.StatusNormalClosure, "")
		close(handshook)
		c.cancelRead()
		c.wg.Wait()
		if err != nil && !errors.Is(err, net.ErrClosed) {
			c.log.Debug("close handshake with signalling server failed", "err", err)
		}
	})
	return nil
}
