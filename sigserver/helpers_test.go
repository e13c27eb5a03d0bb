package sigserver_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/p2pxfer/p2pxfer/room"
	"github.com/p2pxfer/p2pxfer/signalclient"
	"github.com/p2pxfer/p2pxfer/sigserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is Config.Now for tests that move time.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer collects logs written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type env struct {
	t    *testing.T
	srv  *sigserver.Server
	ts   *httptest.Server
	url  string // ws://127.0.0.1:port/ws
	base string // http://127.0.0.1:port
}

// start runs a server on 127.0.0.1. Cleanups run last-in first-out, so
// clients dialled later are closed before the server.
func start(t *testing.T, cfg sigserver.Config) *env {
	t.Helper()
	srv := sigserver.New(cfg)
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		_ = srv.Close()
		ts.Close()
	})
	return &env{t: t, srv: srv, ts: ts, url: "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws", base: ts.URL}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (e *env) dial() *signalclient.Conn {
	e.t.Helper()
	c, err := signalclient.Dial(ctxT(e.t), e.url, nil)
	if err != nil {
		e.t.Fatalf("Dial: %v", err)
	}
	e.t.Cleanup(func() { _ = c.Close() })
	return c
}

// fromAddr makes every request look forwarded for addr (the server must
// TrustForwardedFor): the tests' clients all come from 127.0.0.1.
type fromAddr string

func (a fromAddr) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", string(a))
	return http.DefaultTransport.RoundTrip(r)
}

// dialFrom dials as if from addr.
func (e *env) dialFrom(addr string) (*signalclient.Conn, error) {
	c, err := signalclient.Dial(ctxT(e.t), e.url, &signalclient.Options{HTTPClient: &http.Client{Transport: fromAddr(addr)}})
	if err == nil {
		e.t.Cleanup(func() { _ = c.Close() })
	}
	return c, err
}

// memberFrom joins roomID as if from addr.
func (e *env) memberFrom(addr, roomID string) *signalclient.Conn {
	e.t.Helper()
	c, err := e.dialFrom(addr)
	if err != nil {
		e.t.Fatalf("Dial: %v", err)
	}
	if _, _, err := c.Join(ctxT(e.t), roomID); err != nil {
		e.t.Fatalf("Join from %s: %v", addr, err)
	}
	return c
}

func (e *env) host() (c *signalclient.Conn, roomID, hostID string) {
	e.t.Helper()
	c = e.dial()
	roomID, hostID, err := c.Create(ctxT(e.t))
	if err != nil {
		e.t.Fatalf("Create: %v", err)
	}
	if !room.ValidRoomID(roomID) || !room.ValidPeerID(hostID) {
		e.t.Fatalf("Create = %q, %q: malformed IDs", roomID, hostID)
	}
	return c, roomID, hostID
}

func (e *env) member(roomID, wantHost string) (c *signalclient.Conn, selfID string) {
	e.t.Helper()
	c = e.dial()
	self, host, err := c.Join(ctxT(e.t), roomID)
	if err != nil {
		e.t.Fatalf("Join: %v", err)
	}
	if host != wantHost || !room.ValidPeerID(self) || self == host {
		e.t.Fatalf("Join = self %q host %q, want host %q", self, host, wantHost)
	}
	return c, self
}

func send(t *testing.T, c *signalclient.Conn, m *room.Message) {
	t.Helper()
	if err := c.Send(ctxT(t), m); err != nil {
		t.Fatalf("Send %s: %v", m.Type, err)
	}
}

func relay(t *testing.T, c *signalclient.Conn, to, data string) {
	t.Helper()
	send(t, c, &room.Message{Type: room.TypeRelay, Peer: to, Data: []byte(data)})
}

func recv(t *testing.T, c *signalclient.Conn) *room.Message {
	t.Helper()
	m, err := c.Recv(ctxT(t))
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	return m
}

// expectRelay receives the next message and checks it is a relay from
// `from` carrying data.
func expectRelay(t *testing.T, c *signalclient.Conn, from, data string) {
	t.Helper()
	m := recv(t, c)
	if m.Type != room.TypeRelay || m.Peer != from || string(m.Data) != data {
		t.Fatalf("got %+v, want relay from %s with %q", m, from, data)
	}
}

// expectError receives the next message and checks it is a non-fatal
// error with code and peer.
func expectError(t *testing.T, c *signalclient.Conn, code room.Code, peer string) {
	t.Helper()
	m := recv(t, c)
	if m.Type != room.TypeError || m.Code != code || m.Peer != peer {
		t.Fatalf("got %+v, want error %s for peer %q", m, code, peer)
	}
}

// expectEnd checks that Recv fails with an error wrapping target.
func expectEnd(t *testing.T, c *signalclient.Conn, target error) {
	t.Helper()
	m, err := c.Recv(ctxT(t))
	if err == nil {
		t.Fatalf("Recv = %+v, want error %v", m, target)
	}
	if !errors.Is(err, target) {
		t.Fatalf("Recv error = %v, want %v", err, target)
	}
}

// eventually waits up to 5 s for cond, for server state that changes
// without telling anyone (Stats after a connection ends, say). It is the
// one place these tests poll: every 5 ms, a pause between looks at cond,
// not a wait for anything.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// raw is a bare WebSocket for sending what signalclient never would.
func (e *env) raw(hdr http.Header) *websocket.Conn {
	e.t.Helper()
	ws, _, err := websocket.Dial(ctxT(e.t), e.url, &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		e.t.Fatalf("raw dial: %v", err)
	}
	e.t.Cleanup(func() { _ = ws.CloseNow() })
	return ws
}

func rawWrite(t *testing.T, ws *websocket.Conn, s string) {
	t.Helper()
	if err := ws.Write(ctxT(t), websocket.MessageText, []byte(s)); err != nil {
		t.Fatalf("raw write: %v", err)
	}
}

func rawRead(t *testing.T, ws *websocket.Conn) (*room.Message, error) {
	t.Helper()
	_, b, err := ws.Read(ctxT(t))
	if err != nil {
		return nil, err
	}
	return room.Decode(b)
}
