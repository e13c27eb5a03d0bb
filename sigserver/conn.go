package sigserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/p2pxfer/p2pxfer/room"
)

// WebSocket close statuses used by the server.
const (
	statusNormal    = websocket.StatusNormalClosure
	statusGoingAway = websocket.StatusGoingAway
)

// closeStatus picks the WebSocket close status that goes with a fatal
// protocol error, for clients and proxies that look only at the close frame.
func closeStatus(c room.Code) websocket.StatusCode {
	switch c {
	case room.CodeTooLarge:
		return websocket.StatusMessageTooBig
	case room.CodeBadMessage, room.CodeVersion:
		return websocket.StatusPolicyViolation
	case room.CodeRateLimited, room.CodeServerFull:
		return websocket.StatusTryAgainLater
	case room.CodeInternal:
		return websocket.StatusInternalError
	default:
		return websocket.StatusNormalClosure
	}
}

// outFrame is one entry of a connection's outbound queue.
type outFrame struct {
	data   []byte // encoded message; nil for a bare close
	final  bool   // close the connection after writing data
	status websocket.StatusCode
	reason string
}

// conn is one client's WebSocket. Three goroutines serve it: the HTTP
// handler reads (readLoop), writeLoop owns every data write, and pingLoop
// checks the peer is alive. quit tells the last two to stop at once.
type conn struct {
	s    *Server
	ws   *websocket.Conn
	nc   net.Conn // the hijacked socket, for hard deadlines when closing
	ip   string   // client address, for logs
	key  string   // rate-limit bucket of the address (see ipKey)
	host string   // the host name the client reached us by, without the port
	log  *slog.Logger

	out      chan outFrame
	quit     chan struct{}
	quitOnce sync.Once
	ready    atomic.Bool // has created or joined a room; read by writeLoop

	wmu   sync.Mutex
	final bool // guarded by wmu: the last frame is queued or the conn is dropped; queue nothing more

	// Guarded by s.mu.
	id        string     // peer ID, once created or joined
	roomID    string     // the room created or joined, kept for logs after it closes
	room      *roomState // nil before create/join and after the room closed
	contacted bool       // member only: has relayed to the host in the current handshake
	pool      poolState  // slots offered, assignments and queue place (pool.go)
}

// hijackWriter records the net.Conn that websocket.Accept hijacks. The
// library offers no deadline on its close handshake (it may wait 5 s for
// the write and 5 s for the answer); with the raw socket the server can
// bound a closing connection to closeGrace.
type hijackWriter struct {
	http.ResponseWriter
	conn net.Conn
}

// Hijack implements http.Hijacker through the wrapped writer's chain.
func (h *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err == nil {
		h.conn = nc
	}
	return nc, brw, err
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	addr := clientIP(r, s.cfg.TrustForwardedFor)
	ip, key := addrString(addr), ipKey(addr)

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "signalling server shutting down", http.StatusServiceUnavailable)
		return
	}
	// Added under mu while not closed, so Close's Wait never races an Add.
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	log := s.log.With("conn", s.connSeq.Add(1), "ip", ip)
	hw := &hijackWriter{ResponseWriter: w}
	// Any origin: the clients are CLIs, and the server holds no cookies or
	// other ambient authority a web page could abuse.
	ws, err := websocket.Accept(hw, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		log.Debug("websocket upgrade failed", "err", err) // Accept has answered the request
		return
	}
	if hw.conn == nil { // cannot happen: Accept succeeded, so it hijacked through hw
		log.Error("websocket upgrade: hijacked connection not recorded")
		_ = ws.CloseNow()
		return
	}
	// One byte over the protocol limit, so an oversized frame reaches
	// readLoop, which answers it with CodeTooLarge, instead of the library
	// closing the connection with no protocol error message.
	ws.SetReadLimit(room.MaxMessageSize + 1)

	c := &conn{
		s: s, ws: ws, nc: hw.conn, ip: ip, key: key, host: requestHost(r), log: log,
		out:  make(chan outFrame, outQueueLen),
		quit: make(chan struct{}),
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ws.CloseNow()
		return
	}
	// The address's cap first: a flood from one address is refused as
	// such, and never fills the server for the others.
	ips := s.ipLocked(key)
	if ips.conns >= s.cfg.MaxConnsPerIP {
		s.mu.Unlock()
		log.Info("refusing connection: too many from this address", "max_conns_per_ip", s.cfg.MaxConnsPerIP)
		c.refuse(fmt.Errorf("%w: %d connections from this address already", room.ErrRateLimited, ips.conns))
		return
	}
	if len(s.conns) >= s.cfg.MaxConns {
		s.mu.Unlock()
		log.Warn("refusing connection: server full", "max_conns", s.cfg.MaxConns)
		c.refuse(fmt.Errorf("%w: %d connections", room.ErrServerFull, s.cfg.MaxConns))
		return
	}
	s.conns[c] = struct{}{}
	ips.conns++
	s.wg.Add(2)
	s.mu.Unlock()

	start := time.Now()
	log.Info("connection accepted")
	go c.writeLoop()
	go c.pingLoop()

	flushing := c.readLoop()
	if !flushing {
		// The peer is gone or the connection failed: nothing left to say.
		c.kill()
	}
	roomID, peer := s.disconnect(c)
	log.Info("connection closed", "room", roomID, "peer", peer, "duration", time.Since(start).Round(time.Millisecond))
}

// refuse answers err on a connection that is not admitted, then closes it.
// It runs in the handler goroutine, since the connection never gets a
// writer of its own.
func (c *conn) refuse(err error) {
	_ = c.nc.SetDeadline(time.Now().Add(closeGrace))
	m := room.ErrorMessage(err)
	if b, err := room.Encode(m); err == nil {
		_ = c.ws.Write(context.Background(), websocket.MessageText, b)
	}
	_ = c.ws.Close(closeStatus(m.Code), string(m.Code))
}

// readLoop reads and handles frames until the connection fails or a fatal
// protocol error. It reports whether it stopped on a fatal error whose
// answer is queued, in which case writeLoop flushes and closes.
func (c *conn) readLoop() (flushing bool) {
	for {
		typ, r, err := c.ws.Reader(context.Background())
		if err != nil {
			c.logReadEnd(err)
			return false
		}
		// Read at most one byte over the limit: enough to know a frame is
		// too large without buffering the rest of it.
		b, err := io.ReadAll(io.LimitReader(r, room.MaxMessageSize+1))
		if err != nil {
			c.logReadEnd(err)
			return false
		}
		var m *room.Message
		switch {
		case len(b) > room.MaxMessageSize:
			err = fmt.Errorf("%w: frame over %d bytes", room.ErrTooLarge, room.MaxMessageSize)
		case typ != websocket.MessageText:
			err = fmt.Errorf("%w: binary frame; signalling frames are JSON text", room.ErrBadMessage)
		default:
			m, err = room.Decode(b)
		}
		if err == nil {
			err = c.s.handle(c, m)
		}
		if err != nil && c.fail(err) {
			return true
		}
	}
}

func (c *conn) logReadEnd(err error) {
	switch {
	case websocket.CloseStatus(err) == statusNormal || websocket.CloseStatus(err) == statusGoingAway:
		c.log.Debug("peer closed the connection")
	case errors.Is(err, net.ErrClosed), errors.Is(err, io.EOF):
		c.log.Debug("connection ended", "err", err)
	default:
		c.log.Info("connection read failed", "err", err)
	}
}

// fail answers a refused message. A fatal code queues the answer as the
// connection's last frame and reports true; others just answer.
func (c *conn) fail(err error) bool {
	m := room.ErrorMessage(err)
	var pe *peerError
	if errors.As(err, &pe) {
		m.Peer = pe.peer
	}
	if !m.Code.Fatal() {
		c.log.Debug("message refused", "code", m.Code, "err", err)
		c.send(m)
		return false
	}
	c.log.Info("closing connection on protocol error", "code", m.Code, "err", err)
	c.closeWith(m, closeStatus(m.Code), string(m.Code))
	return true
}

// send queues m for the peer. It never blocks, so it may be called with
// s.mu held: a peer whose queue is full is too slow for signalling and is
// dropped instead of stalling whoever relays to it. It reports whether m
// was queued.
func (c *conn) send(m *room.Message) bool {
	b, err := room.Encode(m)
	if err != nil {
		c.log.Error("encode outgoing message", "type", m.Type, "err", err)
		return false
	}
	return c.enqueue(outFrame{data: b})
}

// closeWith queues m (if not nil) as the last frame, after which the
// connection is closed with status. From here on the connection has
// closeGrace to finish, whatever the peer does.
func (c *conn) closeWith(m *room.Message, status websocket.StatusCode, reason string) {
	f := outFrame{final: true, status: status, reason: reason}
	if m != nil {
		b, err := room.Encode(m)
		if err != nil {
			c.log.Error("encode outgoing message", "type", m.Type, "err", err)
		} else {
			f.data = b
		}
	}
	if c.enqueue(f) {
		_ = c.nc.SetDeadline(time.Now().Add(closeGrace))
	}
}

func (c *conn) enqueue(f outFrame) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.final {
		return false
	}
	select {
	case c.out <- f:
		c.final = f.final
		return true
	default:
		c.final = true
		c.log.Warn("dropping slow peer: outbound queue full", "queued", len(c.out))
		c.kill()
		return false
	}
}

func (c *conn) closing() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.final
}

// markFinal stops the queue taking frames; it reports false if it already
// had, meaning someone else is closing the connection.
func (c *conn) markFinal() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.final {
		return false
	}
	c.final = true
	return true
}

// kill stops the writer and pinger at once; the writer then closes the
// socket without a handshake, which ends readLoop.
func (c *conn) kill() {
	c.quitOnce.Do(func() { close(c.quit) })
}

// writeLoop is the only goroutine that writes data frames (the library
// forbids concurrent writers of one message, and one owner keeps frames in
// queue order). It also enforces the handshake timeout.
func (c *conn) writeLoop() {
	defer c.s.wg.Done()
	defer c.kill() // stop the pinger however the writer ends
	handshake := time.NewTimer(c.s.cfg.HandshakeTimeout)
	defer handshake.Stop()
	for {
		select {
		case <-c.quit:
			_ = c.ws.CloseNow()
			return
		case <-handshake.C:
			// A connection already closing on a fatal error leaves that to
			// the queued frame, so its answer is not lost.
			if !c.ready.Load() && c.markFinal() {
				c.log.Info("closing connection: no create or join in time", "timeout", c.s.cfg.HandshakeTimeout)
				_ = c.nc.SetDeadline(time.Now().Add(closeGrace))
				_ = c.ws.Close(websocket.StatusPolicyViolation, "handshake timeout")
				return
			}
		case f := <-c.out:
			if f.data != nil {
				ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
				err := c.ws.Write(ctx, websocket.MessageText, f.data)
				cancel()
				if err != nil {
					c.log.Info("write failed; dropping connection", "err", err)
					_ = c.ws.CloseNow()
					return
				}
			}
			if f.final {
				// Close waits for the peer's close frame, bounded by the
				// deadline closeWith set on the socket.
				_ = c.ws.Close(f.status, f.reason)
				return
			}
		}
	}
}

// pingLoop pings the peer every PingInterval and drops it if the pong does
// not come back within PingInterval. It is separate from writeLoop because
// Ping blocks until the pong, and queued frames should not wait for that.
func (c *conn) pingLoop() {
	defer c.s.wg.Done()
	every := c.s.cfg.PingInterval
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), every)
			err := c.ws.Ping(ctx)
			cancel()
			if err == nil {
				continue
			}
			select {
			case <-c.quit:
				return
			default:
			}
			if c.closing() {
				// The writer is flushing a last frame under the close
				// deadline; killing now could lose it.
				return
			}
			c.log.Info("dropping peer: no answer to ping", "err", err)
			c.kill()
			return
		}
	}
}
