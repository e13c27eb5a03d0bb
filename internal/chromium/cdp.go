package chromium

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// writeTimeout bounds writing one command to the browser.
const writeTimeout = 10 * time.Second

// maxMessage bounds one CDP message: evaluate results and network events
// with headers fit many times over.
const maxMessage = 64 << 20

// message is a CDP frame: a call, its response, or an event.
type message struct {
	ID        int64           `json:"id,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    string `json:"data,omitempty"`
	} `json:"error,omitempty"`
}

// conn is a CDP connection in flat session mode: one WebSocket, commands
// addressed to a session by ID (empty: the browser). One goroutine reads;
// writes are serialised by the library.
type conn struct {
	ws      *websocket.Conn
	onEvent func(session, method string, params json.RawMessage) // must not block

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan message
	err     error         // why the connection ended
	done    chan struct{} // closed when the reader stops
}

func dialCDP(ctx context.Context, url string, onEvent func(string, string, json.RawMessage)) (*conn, error) {
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return nil, fmt.Errorf("chromium: connect to DevTools at %s: %w", url, err)
	}
	ws.SetReadLimit(maxMessage)
	c := &conn{ws: ws, onEvent: onEvent, pending: map[int64]chan message{}, done: make(chan struct{})}
	go c.read()
	return c, nil
}

func (c *conn) read() {
	defer close(c.done)
	for {
		_, b, err := c.ws.Read(context.Background())
		if err != nil {
			c.fail(fmt.Errorf("chromium: DevTools connection: %w", err))
			return
		}
		var m message
		if err := json.Unmarshal(b, &m); err != nil {
			c.fail(fmt.Errorf("chromium: DevTools message: %w", err))
			return
		}
		if m.ID != 0 {
			c.mu.Lock()
			ch := c.pending[m.ID]
			delete(c.pending, m.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- m // buffered
			}
			continue
		}
		c.onEvent(m.SessionID, m.Method, m.Params)
	}
}

func (c *conn) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

// errClosed: the DevTools connection ended (the browser exited or was
// closed).
var errClosed = errors.New("chromium: DevTools connection closed")

// call sends method with params to session and decodes the result into
// result (if not nil). It waits for the answer at most until ctx ends.
func (c *conn) call(ctx context.Context, session, method string, params, result any) error {
	if params == nil {
		params = struct{}{}
	}
	p, err := json.Marshal(params)
	if err != nil {
		return fmt.Errorf("chromium: %s: %w", method, err)
	}
	ch := make(chan message, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return fmt.Errorf("chromium: %s: %w", method, err)
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()
	b, _ := json.Marshal(message{ID: id, SessionID: session, Method: method, Params: p})
	forget := func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}
	// Not the caller's ctx: the library closes the connection when a
	// write's context ends, and a caller's short wait must not end the
	// browser's connection. Writes are small and local.
	wctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	err = c.ws.Write(wctx, websocket.MessageText, b)
	cancel()
	if err != nil {
		forget()
		return fmt.Errorf("chromium: %s: %w", method, err)
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return fmt.Errorf("chromium: %s: %s (%d) %s", method, m.Error.Message, m.Error.Code, m.Error.Data)
		}
		if result != nil {
			if err := json.Unmarshal(m.Result, result); err != nil {
				return fmt.Errorf("chromium: %s result: %w", method, err)
			}
		}
		return nil
	case <-c.done:
		forget()
		return fmt.Errorf("chromium: %s: %w", method, errClosed)
	case <-ctx.Done():
		forget()
		return fmt.Errorf("chromium: %s: no answer: %w", method, ctx.Err())
	}
}

// close ends the connection and waits for the reader.
func (c *conn) close() {
	_ = c.ws.CloseNow()
	<-c.done
}
