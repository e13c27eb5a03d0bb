package signalclient_test

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/p2pxfer/p2pxfer/room"
	"github.com/p2pxfer/p2pxfer/signalclient"
	"github.com/p2pxfer/p2pxfer/sigserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startServer runs a real sigserver and returns its base URL (http://...).
func startServer(t *testing.T, cfg sigserver.Config) string {
	t.Helper()
	srv := sigserver.New(cfg)
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		_ = srv.Close()
		ts.Close()
	})
	return ts.URL
}

// fakeServer runs handle on each WebSocket; handlers must return once done
// is closed, which happens before the server shuts down.
func fakeServer(t *testing.T, handle func(ws *websocket.Conn, done <-chan struct{})) string {
	t.Helper()
	done := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		handle(ws, done)
	}))
	t.Cleanup(func() {
		close(done) // hijacked handlers end on this; goleak checks they did
		ts.Close()
	})
	return "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws"
}

func dial(t *testing.T, url string) *signalclient.Conn {
	t.Helper()
	c, err := signalclient.Dial(ctxT(t), url, nil)
	if err != nil {
		t.Fatalf("Dial(%s): %v", url, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestDialErrors(t *testing.T) {
	base := startServer(t, sigserver.Config{})
	// A port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "ws://" + l.Addr().String() + "/ws"
	l.Close()

	for _, tc := range []struct{ url, want string }{
		{dead, "cannot reach signalling server at " + dead},
		{base + "/elsewhere", "404"},
		{"ftp://example.invalid/ws", "scheme"},
		{"ws:///ws", "no host"},
		{"::nonsense", "bad signalling server URL"},
	} {
		c, err := signalclient.Dial(ctxT(t), tc.url, nil)
		if err == nil {
			c.Close()
			t.Fatalf("Dial(%q) succeeded", tc.url)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Dial(%q) = %v, want it to mention %q", tc.url, err, tc.want)
		}
	}
}

func TestCreateJoinOverHTTPURL(t *testing.T) {
	base := startServer(t, sigserver.Config{})
	host := dial(t, base+"/ws") // http:// is taken as ws://
	roomID, hostID, err := host.Create(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	rcv := dial(t, base+"/ws")
	// Join forgives case and surrounding spaces.
	self, gotHost, err := rcv.Join(ctxT(t), "  "+strings.ToUpper(roomID)+"\n")
	if err != nil || gotHost != hostID || !room.ValidPeerID(self) {
		t.Fatalf("Join = %q, %q, %v", self, gotHost, err)
	}
	if err := rcv.Send(ctxT(t), &room.Message{Type: room.TypeRelay, Peer: hostID, Data: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	m, err := host.Recv(ctxT(t))
	if err != nil || m.Type != room.TypeRelay || m.Peer != self || string(m.Data) != "hi" {
		t.Fatalf("host Recv = %+v, %v", m, err)
	}
	// An ID no room can have is refused without asking the server.
	other := dial(t, base+"/ws")
	if _, _, err := other.Join(ctxT(t), "not-an-id!"); !errors.Is(err, room.ErrRoomNotFound) {
		t.Fatalf("Join of malformed ID = %v", err)
	}
	if _, _, err := other.Join(ctxT(t), roomID); err != nil {
		t.Fatalf("conn unusable after refused ID: %v", err)
	}
	// Send refuses what Encode refuses.
	if err := other.Send(ctxT(t), &room.Message{Type: room.TypeRelay, Peer: hostID, Data: make([]byte, room.MaxDataSize+1)}); !errors.Is(err, room.ErrTooLarge) {
		t.Fatalf("oversized Send = %v", err)
	}
}

func TestRecvHonoursContext(t *testing.T) {
	base := startServer(t, sigserver.Config{})
	c := dial(t, base+"/ws")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Recv(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recv = %v, want DeadlineExceeded", err)
	}
	if _, _, err := c.Create(ctxT(t)); err != nil {
		t.Fatalf("conn unusable after Recv timeout: %v", err)
	}
}

func TestMessagesBeforeFatalError(t *testing.T) {
	base := startServer(t, sigserver.Config{})
	host := dial(t, base+"/ws")
	roomID, hostID, err := host.Create(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	rcv := dial(t, base+"/ws")
	self, _, err := rcv.Join(ctxT(t), roomID)
	if err != nil {
		t.Fatal(err)
	}
	if err := rcv.Send(ctxT(t), &room.Message{Type: room.TypeRelay, Peer: hostID, Data: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := host.Recv(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := host.Send(ctxT(t), &room.Message{Type: room.TypeRelay, Peer: self, Data: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	if err := host.Send(ctxT(t), &room.Message{Type: room.TypeClose, Code: room.CodeTooManyFailures}); err != nil {
		t.Fatal(err)
	}
	// The relay sent before the close arrives first, then the reason.
	if m, err := rcv.Recv(ctxT(t)); err != nil || string(m.Data) != "2" {
		t.Fatalf("first Recv = %+v, %v", m, err)
	}
	for range 2 { // and it stays the answer
		if _, err := rcv.Recv(ctxT(t)); !errors.Is(err, room.ErrTooManyFailures) {
			t.Fatalf("Recv = %v, want ErrTooManyFailures", err)
		}
	}
	if err := rcv.Send(ctxT(t), &room.Message{Type: room.TypeLeave, Peer: hostID}); !errors.Is(err, room.ErrTooManyFailures) {
		t.Fatalf("Send after fatal = %v", err)
	}
	_ = rcv.Close()
	if _, err := rcv.Recv(ctxT(t)); !errors.Is(err, room.ErrTooManyFailures) {
		t.Fatalf("Recv after Close keeps the server's reason: %v", err)
	}
}

func TestClose(t *testing.T) {
	base := startServer(t, sigserver.Config{})
	c := dial(t, base+"/ws")
	if _, _, err := c.Create(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	recvErr := make(chan error, 1)
	go func() {
		_, err := c.Recv(context.Background())
		recvErr <- err
	}()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := <-recvErr; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("blocked Recv after Close = %v", err)
	}
	if _, err := c.Recv(ctxT(t)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Recv after Close = %v", err)
	}
	if err := c.Send(ctxT(t), &room.Message{Type: room.TypeClose}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Send after Close = %v", err)
	}
}

// TestCloseUnresponsiveServer: Close must not wait out the library's 5 s
// close handshake with a server that never answers, but give up after
// closeGrace. It runs in a synctest bubble, so that grace passes on a fake
// clock, and so that "the reader has settled" is an event (every goroutine
// durably blocked) rather than a guess.
func TestCloseUnresponsiveServer(t *testing.T) {
	// At once after Dial (the library's own handshake wait may hold the
	// read side then) and after the reader has settled into its read.
	for _, settle := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			c, err := signalclient.Dial(t.Context(), "ws://unanswering.test/ws", unanswering())
			if err != nil {
				t.Fatal(err)
			}
			if settle {
				synctest.Wait()
			}
			began := time.Now()
			_ = c.Close()
			if d := time.Since(began); d > 2*time.Second {
				t.Fatalf("Close (settled: %v) took %v", settle, d)
			}
		})
	}
}

// unanswering returns Options whose HTTP client reaches, over net.Pipe, a
// server that accepts the WebSocket handshake and then never answers: what
// the client writes is taken in and dropped, as an unread socket buffer
// would take it. A pipe, unlike a socket, blocks durably, so this works in
// a synctest bubble.
func unanswering() *signalclient.Options {
	dial := func(context.Context, string, string) (net.Conn, error) {
		client, server := net.Pipe()
		go func() {
			defer server.Close()
			br := bufio.NewReader(server)
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			accept := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")) // RFC 6455 §4.2.2
			if _, err := fmt.Fprintf(server, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
				base64.StdEncoding.EncodeToString(accept[:])); err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, br) // until the client cuts the connection
		}()
		return client, nil
	}
	return &signalclient.Options{HTTPClient: &http.Client{Transport: &http.Transport{DialContext: dial}}}
}

func TestBadServerFrames(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame string
		want  error
	}{
		{"garbage", `{"type"`, room.ErrBadMessage},
		{"oversized", `{"type":"left","peer":"abcdefghjkmn","text":"` + strings.Repeat("x", room.MaxMessageSize) + `"}`, room.ErrTooLarge},
		{"fatal error", `{"type":"error","code":"server_full","text":"try later"}`, room.ErrServerFull},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := fakeServer(t, func(ws *websocket.Conn, done <-chan struct{}) {
				_ = ws.Write(context.Background(), websocket.MessageText, []byte(tc.frame))
				ws.CloseRead(context.Background())
				<-done
			})
			c := dial(t, url)
			_, err := c.Recv(ctxT(t))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Recv = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestConcurrentSend(t *testing.T) {
	const n = 40
	got := make(chan string, n)
	url := fakeServer(t, func(ws *websocket.Conn, done <-chan struct{}) {
		for range n {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			m, err := room.Decode(b) // every frame intact, none interleaved
			if err != nil {
				got <- "bad: " + err.Error()
				return
			}
			got <- string(m.Data)
		}
		ws.CloseRead(context.Background()) // answer the client's close
		<-done
	})
	c := dial(t, url)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n / 4 {
				data := strings.Repeat(string(rune('a'+g)), 1000+i)
				if err := c.Send(ctxT(t), &room.Message{Type: room.TypeRelay, Peer: "abcdefghjkmn", Data: []byte(data)}); err != nil {
					t.Errorf("Send: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	for range n {
		if s := <-got; strings.HasPrefix(s, "bad") {
			t.Fatal(s)
		}
	}
}

// The seed pool helpers speak to a real server: create options, the key in
// joined, want/peers/queued, release, fail.
func TestSeedPool(t *testing.T) {
	base := startServer(t, sigserver.Config{})
	key := make([]byte, room.KeySize)
	key[0] = 42
	host := dial(t, base+"/ws")
	roomID, hostID, err := host.CreateWith(ctxT(t), signalclient.CreateOptions{Slots: 1, MaxFailures: 1, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	r1 := dial(t, base+"/ws")
	j, err := r1.JoinInfo(ctxT(t), roomID)
	if err != nil || j.Host != hostID || !room.ValidPeerID(j.Self) || string(j.Key) != string(key) {
		t.Fatalf("JoinInfo = %+v, %v", j, err)
	}
	r2 := dial(t, base+"/ws")
	if _, _, err := r2.Join(ctxT(t), roomID); err != nil {
		t.Fatal(err)
	}
	next := func(c *signalclient.Conn, typ room.Type) *room.Message {
		t.Helper()
		m, err := c.Recv(ctxT(t))
		if err != nil || m.Type != typ {
			t.Fatalf("Recv = %+v, %v; want %s", m, err, typ)
		}
		return m
	}

	if err := r1.Want(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	if m := next(r1, room.TypePeers); len(m.Peers) != 1 || m.Peers[0] != hostID {
		t.Fatalf("peers = %v", m.Peers)
	}
	if err := r2.Want(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	if m := next(r2, room.TypeQueued); m.Position != 1 {
		t.Fatalf("queued at %d", m.Position)
	}
	if err := r1.Release(ctxT(t), hostID); err != nil {
		t.Fatal(err)
	}
	if m := next(host, room.TypeLeft); m.Peer != j.Self {
		t.Fatalf("host heard left of %s, want %s", m.Peer, j.Self)
	}
	if m := next(r2, room.TypePeers); m.Peers[0] != hostID {
		t.Fatalf("peers = %v", m.Peers)
	}
	// A member that seeds may report failures; the first closes this room.
	if err := r1.Seed(ctxT(t), 2, false); err != nil {
		t.Fatal(err)
	}
	if err := r1.Fail(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*signalclient.Conn{r1, r2, host} {
		if _, err := c.Recv(ctxT(t)); !errors.Is(err, room.ErrTooManyFailures) {
			t.Fatalf("Recv after fail = %v, want ErrTooManyFailures", err)
		}
	}

	// What the protocol refuses never leaves the client.
	c := dial(t, base+"/ws")
	for name, err := range map[string]error{
		"Seed 0":         c.Seed(ctxT(t), 0, true),
		"Seed too many":  c.Seed(ctxT(t), room.MaxSlots+1, true),
		"Want 0":         c.Want(ctxT(t), 0),
		"Want too many":  c.Want(ctxT(t), room.MaxWant+1),
		"Release nobody": c.Release(ctxT(t), "not a peer"),
	} {
		if !errors.Is(err, room.ErrBadMessage) {
			t.Errorf("%s = %v, want ErrBadMessage", name, err)
		}
	}
	if _, _, err := c.CreateWith(ctxT(t), signalclient.CreateOptions{MaxFailures: room.MaxFailures + 1}); !errors.Is(err, room.ErrBadMessage) {
		t.Errorf("CreateWith MaxFailures over the limit = %v", err)
	}
}
