package sigserver_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
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

func TestRelayRoundTrip(t *testing.T) {
	logs := &syncBuffer{}
	e := start(t, sigserver.Config{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	host, roomID, hostID := e.host()
	rcv, rcvID := e.member(roomID, hostID)

	// The receiver speaks first; the host sees the receiver's ID, whatever
	// the receiver put in Peer.
	relay(t, rcv, hostID, "secret-pake-1")
	expectRelay(t, host, rcvID, "secret-pake-1")
	relay(t, host, rcvID, "secret-pake-2")
	expectRelay(t, rcv, hostID, "secret-pake-2")
	relay(t, rcv, hostID, "secret-pake-3")
	expectRelay(t, host, rcvID, "secret-pake-3")

	// Only Data is forwarded: fields the sender adds are dropped.
	send(t, rcv, &room.Message{Type: room.TypeRelay, Peer: hostID, Data: []byte("x"), Room: roomID, Text: "spoof", Code: room.CodeRoomClosed})
	m := recv(t, host)
	if m.Type != room.TypeRelay || m.Peer != rcvID || m.Room != "" || m.Text != "" || m.Code != "" {
		t.Fatalf("forwarded %+v", m)
	}
	if s := e.srv.Stats(); s.Rooms != 1 || s.Conns != 2 {
		t.Fatalf("Stats = %+v", s)
	}
	for _, secret := range []string{"secret-pake", base64.StdEncoding.EncodeToString([]byte("secret-pake-1"))} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("logs contain relay data %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs.String(), "room created") || !strings.Contains(logs.String(), "peer joined") {
		t.Fatalf("logs lack room events:\n%s", logs)
	}
}

func TestRelayRules(t *testing.T) {
	e := start(t, sigserver.Config{})
	host, roomID, hostID := e.host()
	r1, r1ID := e.member(roomID, hostID)
	r2, r2ID := e.member(roomID, hostID)

	// A receiver cannot reach another receiver, nor probe for one.
	relay(t, r2, r1ID, "hello r1")
	expectError(t, r2, room.CodeNotAllowed, r1ID)
	relay(t, r2, "abcdefghjkmn", "anyone?")
	expectError(t, r2, room.CodeNotAllowed, "abcdefghjkmn")
	// The host cannot reach a receiver that has not contacted it...
	relay(t, host, r2ID, "hello r2")
	expectError(t, host, room.CodeNotAllowed, r2ID)
	// ...and a peer that is not there is gone.
	relay(t, host, "abcdefghjkmn", "hello?")
	expectError(t, host, room.CodePeerGone, "abcdefghjkmn")
	// Nor can anyone leave a handshake they are not in.
	send(t, host, &room.Message{Type: room.TypeLeave, Peer: r2ID})
	expectError(t, host, room.CodeNotAllowed, r2ID)
	// Only the host closes the room.
	send(t, r1, &room.Message{Type: room.TypeClose})
	expectError(t, r1, room.CodeNotAllowed, "")
	// A connection is in one room for life.
	send(t, r1, &room.Message{Type: room.TypeCreate, Version: room.ProtocolVersion})
	expectError(t, r1, room.CodeNotAllowed, "")
	if _, _, err := host.Join(ctxT(t), roomID); !errors.Is(err, room.ErrNotAllowed) {
		t.Fatalf("second join on the host's conn = %v, want ErrNotAllowed", err)
	}

	// No broadcast: a full handshake between host and r1...
	relay(t, r1, hostID, "r1 to host")
	expectRelay(t, host, r1ID, "r1 to host")
	relay(t, host, r1ID, "host to r1")
	expectRelay(t, r1, hostID, "host to r1")
	send(t, host, &room.Message{Type: room.TypeLeave, Peer: r1ID})
	if m := recv(t, r1); m.Type != room.TypeLeft || m.Peer != hostID {
		t.Fatalf("r1 got %+v, want left from host", m)
	}
	// ...reaches r2 not at all: the next thing r2 hears answers its own probe.
	relay(t, r2, r1ID, "probe")
	expectError(t, r2, room.CodeNotAllowed, r1ID)

	// After the host's leave, r1 must contact the host again.
	relay(t, host, r1ID, "again?")
	expectError(t, host, room.CodeNotAllowed, r1ID)
	relay(t, r1, hostID, "retry")
	expectRelay(t, host, r1ID, "retry")
	// A receiver's leave reaches the host.
	send(t, r1, &room.Message{Type: room.TypeLeave, Peer: hostID})
	if m := recv(t, host); m.Type != room.TypeLeft || m.Peer != r1ID {
		t.Fatalf("host got %+v, want left from r1", m)
	}
}

func TestJoinErrors(t *testing.T) {
	e := start(t, sigserver.Config{})
	c := e.dial()
	if _, _, err := c.Join(ctxT(t), "abcdefgh"); !errors.Is(err, room.ErrRoomNotFound) {
		t.Fatalf("Join of unknown room = %v, want ErrRoomNotFound", err)
	}
	expectEnd(t, c, room.ErrRoomNotFound) // fatal: the conn is done

	c = e.dial()
	send(t, c, &room.Message{Type: room.TypeCreate, Version: room.ProtocolVersion + 1})
	_, err := c.Recv(ctxT(t))
	if !errors.Is(err, room.ErrVersion) || !strings.Contains(err.Error(), fmt.Sprintf("version %d,", room.ProtocolVersion)) {
		t.Fatalf("wrong version = %v, want ErrVersion naming version %d", err, room.ProtocolVersion)
	}
	if err := c.Send(ctxT(t), &room.Message{Type: room.TypeCreate, Version: 1}); !errors.Is(err, room.ErrVersion) {
		t.Fatalf("Send after fatal error = %v, want the fatal error", err)
	}

	// Relaying before create/join is refused but not fatal.
	c = e.dial()
	relay(t, c, "abcdefghjkmn", "x")
	expectError(t, c, room.CodeNotAllowed, "abcdefghjkmn")
	if _, _, err := c.Create(ctxT(t)); err != nil {
		t.Fatalf("Create after refused relay: %v", err)
	}
}

func TestBadFrames(t *testing.T) {
	e := start(t, sigserver.Config{})
	cases := []struct {
		name   string
		frame  string
		code   room.Code
		status websocket.StatusCode
	}{
		{"garbage", `{"type":`, room.CodeBadMessage, websocket.StatusPolicyViolation},
		{"unknown type", `{"type":"teleport"}`, room.CodeBadMessage, websocket.StatusPolicyViolation},
		{"oversized", `{"type":"create","v":1,"text":"` + strings.Repeat("x", room.MaxMessageSize) + `"}`, room.CodeTooLarge, websocket.StatusMessageTooBig},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ws := e.raw(nil)
			rawWrite(t, ws, tc.frame)
			m, err := rawRead(t, ws)
			if err != nil || m.Type != room.TypeError || m.Code != tc.code {
				t.Fatalf("got %+v, %v; want error %s", m, err, tc.code)
			}
			if _, err := rawRead(t, ws); websocket.CloseStatus(err) != tc.status {
				t.Fatalf("after the error: %v, want close status %d", err, tc.status)
			}
		})
	}
	// A binary frame is not a signalling frame.
	ws := e.raw(nil)
	if err := ws.Write(ctxT(t), websocket.MessageBinary, []byte(`{"type":"create","v":1}`)); err != nil {
		t.Fatal(err)
	}
	if m, err := rawRead(t, ws); err != nil || m.Code != room.CodeBadMessage {
		t.Fatalf("binary frame: %+v, %v", m, err)
	}
	eventually(t, "bad connections dropped", func() bool { return e.srv.Stats().Conns == 0 })
}

func TestHostGone(t *testing.T) {
	e := start(t, sigserver.Config{})

	t.Run("disconnect", func(t *testing.T) {
		host, roomID, hostID := e.host()
		r1, r1ID := e.member(roomID, hostID)
		r2, _ := e.member(roomID, hostID)
		relay(t, r1, hostID, "hi")
		expectRelay(t, host, r1ID, "hi")
		_ = host.Close()
		expectEnd(t, r1, room.ErrRoomClosed)
		expectEnd(t, r2, room.ErrRoomClosed)
		eventually(t, "room deleted", func() bool { return e.srv.Stats().Rooms == 0 })
	})

	t.Run("too many failures", func(t *testing.T) {
		host, roomID, hostID := e.host()
		r1, _ := e.member(roomID, hostID)
		send(t, host, &room.Message{Type: room.TypeClose, Code: room.CodeTooManyFailures})
		expectEnd(t, r1, room.ErrTooManyFailures)
		expectEnd(t, host, net.ErrClosed) // the host's conn is closed normally
		eventually(t, "room deleted", func() bool { return e.srv.Stats().Rooms == 0 })
	})

	t.Run("plain close", func(t *testing.T) {
		host, roomID, hostID := e.host()
		r1, _ := e.member(roomID, hostID)
		send(t, host, &room.Message{Type: room.TypeClose})
		expectEnd(t, r1, room.ErrRoomClosed)
		// A late join hears why the room is gone, not that it never was.
		c := e.dial()
		if _, _, err := c.Join(ctxT(t), roomID); !errors.Is(err, room.ErrRoomClosed) || !strings.Contains(err.Error(), "closed by host") {
			t.Fatalf("join of closed room = %v, want ErrRoomClosed by host", err)
		}
	})
}

func TestMemberGone(t *testing.T) {
	e := start(t, sigserver.Config{})
	host, roomID, hostID := e.host()
	quiet, _ := e.member(roomID, hostID)
	r1, r1ID := e.member(roomID, hostID)
	relay(t, r1, hostID, "hi")
	expectRelay(t, host, r1ID, "hi")

	// A receiver that never contacted the host leaves silently...
	_ = quiet.Close()
	eventually(t, "quiet member gone", func() bool { return e.srv.Stats().Conns == 2 })
	// ...a contacted one is announced.
	_ = r1.Close()
	if m := recv(t, host); m.Type != room.TypeLeft || m.Peer != r1ID {
		t.Fatalf("host got %+v, want left{%s}", m, r1ID)
	}
	relay(t, host, r1ID, "still there?")
	expectError(t, host, room.CodePeerGone, r1ID)
	if s := e.srv.Stats(); s.Rooms != 1 {
		t.Fatalf("room closed with a member: %+v", s)
	}
}

func TestJoinRateLimit(t *testing.T) {
	clock := newClock()
	e := start(t, sigserver.Config{Now: clock.Now, JoinRate: 1, JoinBurst: 2})
	_, roomID, hostID := e.host() // creates do not count against joins
	e.member(roomID, hostID)
	c := e.dial()
	if _, _, err := c.Join(ctxT(t), "abcdefgh"); !errors.Is(err, room.ErrRoomNotFound) {
		t.Fatalf("second join = %v, want ErrRoomNotFound (failed joins count too)", err)
	}
	c = e.dial()
	if _, _, err := c.Join(ctxT(t), roomID); !errors.Is(err, room.ErrRateLimited) {
		t.Fatalf("third join = %v, want ErrRateLimited", err)
	}
	clock.Advance(time.Second)
	e.member(roomID, hostID)
	c = e.dial()
	if _, _, err := c.Join(ctxT(t), roomID); !errors.Is(err, room.ErrRateLimited) {
		t.Fatalf("join after one refill = %v, want ErrRateLimited", err)
	}
}

func TestForwardedFor(t *testing.T) {
	join := func(e *env, xff string) *room.Message {
		t.Helper()
		ws := e.raw(http.Header{"X-Forwarded-For": {"203.0.113.9, " + xff}})
		rawWrite(t, ws, fmt.Sprintf(`{"type":"join","v":%d,"room":"abcdefgh"}`, room.ProtocolVersion))
		m, err := rawRead(t, ws)
		if err != nil {
			t.Fatalf("join via %s: %v", xff, err)
		}
		return m
	}
	// Trusted: each last hop has its own bucket.
	e := start(t, sigserver.Config{JoinRate: 0.001, JoinBurst: 1, TrustForwardedFor: true})
	for _, c := range []struct {
		xff  string
		want room.Code
	}{{"192.0.2.1", room.CodeRoomNotFound}, {"192.0.2.1", room.CodeRateLimited}, {"192.0.2.2", room.CodeRoomNotFound},
		// One IPv6 /64 is one bucket.
		{"2001:db8::1", room.CodeRoomNotFound}, {"2001:db8::2", room.CodeRateLimited}, {"2001:db8:0:1::1", room.CodeRoomNotFound}} {
		if m := join(e, c.xff); m.Code != c.want {
			t.Fatalf("join via %s: %+v, want %s", c.xff, m, c.want)
		}
	}
	// Untrusted: the header is ignored and all come from 127.0.0.1.
	e = start(t, sigserver.Config{JoinRate: 0.001, JoinBurst: 1})
	if m := join(e, "192.0.2.1"); m.Code != room.CodeRoomNotFound {
		t.Fatalf("first join: %+v", m)
	}
	if m := join(e, "192.0.2.2"); m.Code != room.CodeRateLimited {
		t.Fatalf("spoofed header was trusted: %+v", m)
	}
}

// One address's connections are capped, so a flood from it never fills
// the server for the others.
func TestConnsPerIP(t *testing.T) {
	e := start(t, sigserver.Config{TrustForwardedFor: true, MaxConnsPerIP: 3, MaxConns: 5})
	create := func(addr string) (*signalclient.Conn, error) {
		c, err := e.dialFrom(addr)
		if err == nil {
			_, _, err = c.Create(ctxT(t))
		}
		return c, err
	}
	var flood []*signalclient.Conn
	for range 3 {
		c, err := create("192.0.2.1")
		if err != nil {
			t.Fatalf("connection under the cap: %v", err)
		}
		flood = append(flood, c)
	}
	for range 3 {
		if _, err := create("192.0.2.1"); !errors.Is(err, room.ErrRateLimited) || !strings.Contains(err.Error(), "from this address") {
			t.Fatalf("connection over the address's cap = %v, want ErrRateLimited naming the address", err)
		}
	}
	for range 2 {
		if _, err := create("192.0.2.2"); err != nil {
			t.Fatalf("another address refused during a flood: %v", err)
		}
	}
	// The server's own cap still holds.
	if _, err := create("192.0.2.3"); !errors.Is(err, room.ErrServerFull) {
		t.Fatalf("connection over the server's cap = %v, want ErrServerFull", err)
	}
	// A closed connection gives its address one back.
	_ = flood[0].Close()
	eventually(t, "connection gone", func() bool { return e.srv.Stats().Conns == 4 })
	if _, err := create("192.0.2.1"); err != nil {
		t.Fatalf("connection after one closed: %v", err)
	}
}

func TestRoomsPerIP(t *testing.T) {
	e := start(t, sigserver.Config{MaxRoomsPerIP: 2})
	h1, _, _ := e.host()
	e.host()
	c := e.dial()
	if _, _, err := c.Create(ctxT(t)); !errors.Is(err, room.ErrRateLimited) {
		t.Fatalf("third room = %v, want ErrRateLimited", err)
	}
	_ = h1.Close()
	eventually(t, "first room closed", func() bool { return e.srv.Stats().Rooms == 1 })
	e.host()
}

func TestMaxConns(t *testing.T) {
	e := start(t, sigserver.Config{MaxConns: 2})
	h1, _, _ := e.host()
	e.host()
	c := e.dial()
	if _, _, err := c.Create(ctxT(t)); !errors.Is(err, room.ErrServerFull) {
		t.Fatalf("third conn = %v, want ErrServerFull", err)
	}
	_ = h1.Close()
	eventually(t, "a slot freed", func() bool { return e.srv.Stats().Conns == 1 })
	e.host()
}

func TestIdleExpiry(t *testing.T) {
	clock := newClock()
	e := start(t, sigserver.Config{Now: clock.Now, RoomIdle: time.Minute})
	host, roomID, hostID := e.host()
	r1, r1ID := e.member(roomID, hostID)

	clock.Advance(50 * time.Second)
	relay(t, r1, hostID, "keepalive")
	expectRelay(t, host, r1ID, "keepalive")
	clock.Advance(50 * time.Second) // 100 s old, 50 s idle
	e.srv.Sweep()
	if s := e.srv.Stats(); s.Rooms != 1 {
		t.Fatalf("active room expired: %+v", s)
	}
	clock.Advance(11 * time.Second)
	e.srv.Sweep()
	if s := e.srv.Stats(); s.Rooms != 0 {
		t.Fatalf("idle room kept: %+v", s)
	}
	expectEnd(t, r1, room.ErrRoomClosed)
	expectEnd(t, host, room.ErrRoomClosed)
	eventually(t, "conns closed", func() bool { return e.srv.Stats().Conns == 0 })
}

func TestHandshakeTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	e := start(t, sigserver.Config{HandshakeTimeout: timeout})
	c := e.dial()
	began := time.Now()
	expectEnd(t, c, net.ErrClosed)
	if d := time.Since(began); d > 3*time.Second {
		t.Fatalf("silent connection closed after %v", d)
	}
	// A connection that created in time is not affected. A deliberate
	// pause past its handshake deadline: a timer that rightly does nothing
	// leaves no event to wait for.
	h, _, _ := e.host()
	time.Sleep(2 * timeout)
	if _, _, err := h.Create(ctxT(t)); !errors.Is(err, room.ErrNotAllowed) {
		t.Fatalf("host conn after the handshake timeout: %v, want it alive (not_allowed for a second create)", err)
	}
}

func TestPingDropsDeadPeer(t *testing.T) {
	const every = 50 * time.Millisecond
	e := start(t, sigserver.Config{PingInterval: every})
	live, _, _ := e.host() // its reader answers pings
	ws := e.raw(nil)       // never reads, so never answers pings
	rawWrite(t, ws, fmt.Sprintf(`{"type":"create","v":%d}`, room.ProtocolVersion))
	eventually(t, "dead peer dropped", func() bool { return e.srv.Stats().Conns == 1 })
	// A deliberate pause for a few more rounds of pings, which the live
	// conn must survive: answered pings leave no event to wait for.
	time.Sleep(4 * every)
	if _, _, err := live.Create(ctxT(t)); !errors.Is(err, room.ErrNotAllowed) {
		t.Fatalf("live conn after pings: %v, want it alive (not_allowed for a second create)", err)
	}
}

func TestConcurrentRelays(t *testing.T) {
	e := start(t, sigserver.Config{})
	host, roomID, hostID := e.host()
	const members, each = 3, 15
	var wg sync.WaitGroup
	for range members {
		c, _ := e.member(roomID, hostID)
		for range 3 { // several goroutines share each conn
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each / 3 {
					if err := c.Send(ctxT(t), &room.Message{Type: room.TypeRelay, Peer: hostID, Data: []byte("x")}); err != nil {
						t.Errorf("Send: %v", err)
						return
					}
				}
			}()
		}
	}
	from := map[string]int{}
	for range members * each {
		m := recv(t, host)
		if m.Type != room.TypeRelay {
			t.Fatalf("got %+v", m)
		}
		from[m.Peer]++
	}
	wg.Wait()
	if len(from) != members {
		t.Fatalf("relays from %d peers, want %d", len(from), members)
	}
}

func TestServerClose(t *testing.T) {
	srv := sigserver.New(sigserver.Config{})
	ts := httptest.NewServer(srv)
	url := "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws"
	dial := func() *signalclient.Conn {
		t.Helper()
		c, err := signalclient.Dial(ctxT(t), url, nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	host := dial()
	roomID, hostID, err := host.Create(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	r1 := dial()
	r1ID, _, err := r1.Join(ctxT(t), roomID)
	if err != nil {
		t.Fatal(err)
	}
	idle := dial() // in no room
	relay(t, r1, hostID, "hi")
	expectRelay(t, host, r1ID, "hi")

	began := time.Now()
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(began); d > 3*time.Second {
		t.Fatalf("Close took %v", d)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if s := srv.Stats(); s.Conns != 0 || s.Rooms != 0 {
		t.Fatalf("after Close: %+v", s)
	}
	expectEnd(t, host, room.ErrRoomClosed)
	expectEnd(t, r1, room.ErrRoomClosed)
	expectEnd(t, idle, net.ErrClosed)
	if _, err := signalclient.Dial(ctxT(t), url, nil); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Dial after Close = %v, want refused with 503", err)
	}
	for _, c := range []*signalclient.Conn{host, r1, idle} {
		_ = c.Close()
	}
	ts.Close()
	goleak.VerifyNone(t)
}

func TestHTTP(t *testing.T) {
	e := start(t, sigserver.Config{})
	e.host()
	client := e.ts.Client()
	resp, err := client.Get(e.base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var got struct {
		Status string `json:"status"`
		Rooms  int    `json:"rooms"`
		Conns  int    `json:"conns"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &got) != nil || got.Status != "ok" || got.Rooms != 1 || got.Conns != 1 {
		t.Fatalf("/healthz = %d %s", resp.StatusCode, body)
	}
	for path, want := range map[string]int{"/nope": http.StatusNotFound, "/ws": http.StatusUpgradeRequired} {
		resp, err := client.Get(e.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s = %d, want %d", path, resp.StatusCode, want)
		}
	}
	resp, err = client.Post(e.base+"/ws", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /ws = %d", resp.StatusCode)
	}
}

// TestICE: a server with Config.ICE hands every member, in created and
// joined, the relays it makes for that member, with the host the member
// reached the server by; RoomOpen says whether their room still exists.
func TestICE(t *testing.T) {
	type call struct{ room, peer, host string }
	var mu sync.Mutex
	var calls []call
	e := start(t, sigserver.Config{ICE: func(roomID, peer, host string) []room.ICEServer {
		mu.Lock()
		calls = append(calls, call{roomID, peer, host})
		mu.Unlock()
		return []room.ICEServer{{URLs: []string{"turn:" + host + ":3478"}, Username: roomID + "." + peer, Credential: "x"}}
	}})
	h := e.dial()
	created, err := h.CreateInfo(ctxT(t), signalclient.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := e.dial()
	joined, err := m.JoinInfo(ctxT(t), created.Room)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ice  []room.ICEServer
		peer string
	}{{created.ICE, created.Self}, {joined.ICE, joined.Self}} {
		if len(c.ice) != 1 || c.ice[0].URLs[0] != "turn:127.0.0.1:3478" || c.ice[0].Username != created.Room+"."+c.peer {
			t.Fatalf("ice %+v for %s", c.ice, c.peer)
		}
	}
	mu.Lock()
	if len(calls) != 2 || calls[0] != (call{created.Room, created.Self, "127.0.0.1"}) || calls[1].peer != joined.Self {
		t.Fatalf("ICE called %+v", calls)
	}
	mu.Unlock()
	if !e.srv.RoomOpen(created.Room) || e.srv.RoomOpen("zzzzzzzz") {
		t.Fatal("RoomOpen wrong while the room lives")
	}
	send(t, h, &room.Message{Type: room.TypeClose})
	eventually(t, "room closed", func() bool { return !e.srv.RoomOpen(created.Room) })

	// Without Config.ICE, no ice at all.
	plain := start(t, sigserver.Config{}).dial()
	if r, err := plain.CreateInfo(ctxT(t), signalclient.CreateOptions{}); err != nil || r.ICE != nil {
		t.Fatalf("CreateInfo = %+v, %v", r, err)
	}
}
