package browser_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/p2pxfer/p2pxfer/pake"
	"github.com/p2pxfer/p2pxfer/peer/lane"
	"github.com/p2pxfer/p2pxfer/room"
	"github.com/p2pxfer/p2pxfer/signalclient"
	"github.com/p2pxfer/p2pxfer/sigserver"
)

// needNode returns node's path, skipping the test where node is missing
// unless CI is set, where that fails. With webSocket it also returns the
// flags node needs for its WebSocket client (node 20 has it behind a flag;
// 22 and later by default), and treats a node without one as missing.
func needNode(t *testing.T, webSocket bool) (string, []string) {
	missing := func(why string) {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s: the browser page's tests need node >= 20.10 (apt-get install -y nodejs)", why)
		}
		t.Skipf("%s: skipping the browser page's tests (install node >= 20.10 to run them)", why)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not installed")
	}
	if !webSocket {
		return node, nil
	}
	for _, flags := range [][]string{nil, {"--experimental-websocket"}} {
		args := append(flags, "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)")
		if exec.Command(node, args...).Run() == nil {
			return node, flags
		}
	}
	missing("this node has no WebSocket client")
	return "", nil
}

// liveServer is a real signalling server with cfg for the page's modules
// in node; it returns the server's WebSocket URL.
func liveServer(t *testing.T, cfg sigserver.Config) string {
	t.Helper()
	srv := sigserver.New(cfg)
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		_ = srv.Close()
		ts.Close()
	})
	return "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws"
}

// startLive starts jstest/live.mjs with args in node and returns it, a
// scanner of its standard output and what it writes to standard error.
func startLive(ctx context.Context, t *testing.T, node string, flags []string, args ...string) (*exec.Cmd, *bufio.Scanner, *bytes.Buffer) {
	t.Helper()
	cmd := exec.CommandContext(ctx, node, append(append(append([]string{}, flags...), "jstest/live.mjs"), args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, bufio.NewScanner(out), &stderr
}

// TestJSLive runs the page's modules (jstest/live.mjs) over a real
// WebSocket to a real signalling server against a Go peer on pake and
// signalclient: the page as receiver and as sender, with the right and a
// wrong password. Vectors prove the bytes; this proves the messages go
// through the server as it routes them.
func TestJSLive(t *testing.T) {
	node, flags := needNode(t, true)
	wsURL := liveServer(t, sigserver.Config{})
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	keyHex := hex.EncodeToString(pub)

	run := func(ctx context.Context, args ...string) (*exec.Cmd, *bufio.Scanner, *bytes.Buffer) {
		return startLive(ctx, t, node, flags, args...)
	}
	result := func(cmd *exec.Cmd, sc *bufio.Scanner, stderr *bytes.Buffer) map[string]any {
		var last string
		for sc.Scan() {
			last = sc.Text()
		}
		_ = cmd.Wait()
		var r map[string]any
		if err := json.Unmarshal([]byte(last), &r); err != nil || r["fatal"] != nil {
			t.Fatalf("live.mjs: %q (%v)\n%s", last, err, stderr)
		}
		return r
	}

	t.Run("page receives", func(t *testing.T) {
		for _, wrong := range []bool{false, true} {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			host, err := signalclient.Dial(ctx, wsURL, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer host.Close()
			cr, err := host.CreateInfo(ctx, signalclient.CreateOptions{Key: pub})
			if err != nil {
				t.Fatal(err)
			}
			pw := "k7m2x-pq9fd"
			jsPW := pw
			if wrong {
				jsPW = "k7m2x-pq9fe"
			}
			cmd, sc, stderr := run(ctx, "join", wsURL, cr.Room, jsPW, keyHex)
			recv := func() *room.Message {
				for {
					m, err := host.Recv(ctx)
					if err != nil {
						t.Fatalf("host recv: %v\n%s", err, stderr)
					}
					if m.Type == room.TypeRelay {
						return m
					}
				}
			}
			hello := recv()
			p := pake.Params{Room: cr.Room, Initiator: hello.Peer, Responder: cr.Self}
			resp, reply, err := pake.Respond(pw, p, hello.Data)
			if err != nil {
				t.Fatal(err)
			}
			send := func(data []byte) {
				if err := host.Send(ctx, &room.Message{Type: room.TypeRelay, Peer: hello.Peer, Data: data}); err != nil {
					t.Fatal(err)
				}
			}
			send(reply)
			sess, err := resp.Finish(recv().Data)
			if wrong {
				if !errors.Is(err, pake.ErrWrongPassword) || !errors.Is(err, pake.ErrPeerAborted) {
					t.Fatalf("a wrong password in the page: Go's responder got %v, want the page's wrong-password abort", err)
				}
				if r := result(cmd, sc, stderr); r["error"] != "wrong_password" {
					t.Fatalf("the page reported %v, want wrong_password", r)
				}
				continue
			}
			if err != nil {
				t.Fatalf("responder finish: %v\n%s", err, stderr)
			}
			offer, err := sess.Open(recv().Data)
			if err != nil {
				t.Fatal(err)
			}
			var o struct {
				V     int    `json:"v"`
				T     string `json:"t"`
				SDP   string `json:"sdp"`
				Lanes int    `json:"lanes"`
			}
			if err := json.Unmarshal(offer, &o); err != nil || o.V != lane.Version || o.T != "offer" || o.SDP != "v=0 from the page" || o.Lanes != 1 {
				t.Fatalf("the page's offer: %s (%v)", offer, err)
			}
			ans, err := json.Marshal(map[string]any{"v": lane.Version, "t": "answer", "sdp": "v=0 from Go", "info": []byte(pub), "lanes": 1})
			if err != nil {
				t.Fatal(err)
			}
			sealed, err := sess.Seal(ans)
			if err != nil {
				t.Fatal(err)
			}
			send(sealed)
			r := result(cmd, sc, stderr)
			if r["t"] != "answer" || r["sdp"] != "v=0 from Go" || r["info"] != keyHex || r["lanes"] != 1.0 {
				t.Fatalf("the page opened %v", r)
			}
		}
	})

	t.Run("page sends", func(t *testing.T) {
		for _, wrong := range []bool{false, true} {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			pw := "k7m2x-pq9fd"
			cmd, sc, stderr := run(ctx, "host", wsURL, pw, keyHex)
			if !sc.Scan() {
				t.Fatalf("live.mjs host said nothing\n%s", stderr)
			}
			var created struct{ Room string }
			if err := json.Unmarshal(sc.Bytes(), &created); err != nil || !room.ValidRoomID(created.Room) {
				t.Fatalf("live.mjs host: %s (%v)", sc.Bytes(), err)
			}
			rcv, err := signalclient.Dial(ctx, wsURL, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer rcv.Close()
			jr, err := rcv.JoinInfo(ctx, created.Room)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(jr.Key, pub) {
				t.Fatalf("joined carries key %x, the page registered %x", jr.Key, pub)
			}
			goPW := pw
			if wrong {
				goPW = strings.ToUpper(pw)
			}
			ini, hello, err := pake.NewInitiator(goPW, pake.Params{Room: created.Room, Initiator: jr.Self, Responder: jr.Host})
			if err != nil {
				t.Fatal(err)
			}
			send := func(data []byte) {
				if err := rcv.Send(ctx, &room.Message{Type: room.TypeRelay, Peer: jr.Host, Data: data}); err != nil {
					t.Fatal(err)
				}
			}
			recv := func() []byte {
				for {
					m, err := rcv.Recv(ctx)
					if err != nil {
						t.Fatalf("receiver recv: %v\n%s", err, stderr)
					}
					if m.Type == room.TypeRelay {
						return m.Data
					}
				}
			}
			send(hello)
			sess, confirm, err := ini.Finish(recv())
			if wrong {
				if !errors.Is(err, pake.ErrWrongPassword) {
					t.Fatalf("a wrong password in Go: the page's reply gave %v", err)
				}
				send(pake.AbortFrame(pake.AbortReason(err)))
				if r := result(cmd, sc, stderr); r["error"] != "wrong_password" {
					t.Fatalf("the page reported %v, want wrong_password", r)
				}
				continue
			}
			if err != nil {
				t.Fatalf("initiator finish: %v\n%s", err, stderr)
			}
			send(confirm)
			offer, err := sess.Seal([]byte(`{"v":6,"t":"offer","sdp":"v=0 from Go","lanes":1}`))
			if err != nil {
				t.Fatal(err)
			}
			send(offer)
			ans, err := sess.Open(recv())
			if err != nil {
				t.Fatal(err)
			}
			var a struct {
				T    string `json:"t"`
				SDP  string `json:"sdp"`
				Info []byte `json:"info"`
			}
			if err := json.Unmarshal(ans, &a); err != nil || a.T != "answer" || a.SDP != "answer to v=0 from Go" || !bytes.Equal(a.Info, pub) {
				t.Fatalf("the page's answer: %s (%v)", ans, err)
			}
			if r := result(cmd, sc, stderr); r["t"] != "offer" || r["sdp"] != "v=0 from Go" {
				t.Fatalf("the page opened %v", r)
			}
		}
	})
}

// TestJSLiveServe runs the page's serving side (send.js's openRoom and
// seed.js's Seeder, as the page at /send runs them) in node over a real
// WebSocket to a real signalling server, against Go receivers that only
// guess: every one that had the page's Reply and left is a password guess
// counted against the room, as peer/serve.go counts it; the page answers
// Hellos beyond its sessions busy; at the tenth failure it closes the room
// saying too_many_failures. And the room it opens carries send's
// max_failures, so the server closes it when seeds report as many.
func TestJSLiveServe(t *testing.T) {
	node, flags := needNode(t, true)
	wsURL := liveServer(t, sigserver.Config{JoinRate: 1000, JoinBurst: 1000})
	const pw = "k7m2x-pq9fd"

	// serve starts the page's host (or with args "seed" and a room, a
	// seed in that room) and returns its room, its peer ID and its last
	// word.
	serve := func(ctx context.Context, t *testing.T, args ...string) (string, string, func() map[string]any) {
		if len(args) == 0 {
			args = []string{"serve", wsURL, pw}
		}
		cmd, sc, stderr := startLive(ctx, t, node, flags, args...)
		var created struct{ Room, Self string }
		if !sc.Scan() || json.Unmarshal(sc.Bytes(), &created) != nil || !room.ValidRoomID(created.Room) {
			_ = cmd.Wait()
			t.Fatalf("live.mjs %s: %q\n%s", args[0], sc.Text(), stderr)
		}
		return created.Room, created.Self, func() map[string]any {
			var last string
			for sc.Scan() {
				last = sc.Text()
			}
			_ = cmd.Wait()
			if last == "" && ctx.Err() != nil {
				t.Fatalf("the page's %s was still serving when the test gave up", args[0])
			}
			var r map[string]any
			if err := json.Unmarshal([]byte(last), &r); err != nil || r["fatal"] != nil {
				t.Fatalf("live.mjs %s: %q (%v)\n%s", args[0], last, err, stderr)
			}
			return r
		}
	}
	joinRoom := func(ctx context.Context, t *testing.T, id string) (*signalclient.Conn, signalclient.JoinResult) {
		conn, err := signalclient.Dial(ctx, wsURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		j, err := conn.JoinInfo(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return conn, j
	}
	closedFor := func(ctx context.Context, t *testing.T, id string) {
		conn, err := signalclient.Dial(ctx, wsURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.JoinInfo(ctx, id); !errors.Is(err, room.ErrTooManyFailures) {
			t.Fatalf("a join after the failures: %v, want the room closed for too many wrong passwords", err)
		}
	}

	t.Run("guesses that walk away", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		id, _, result := serve(ctx, t)
		// One more than the page's sessions at once: each sends a Hello
		// under a guessed password and waits for the page's answer.
		const n = 17
		conns := make([]*signalclient.Conn, n)
		replies, busy := 0, 0
		for i := range conns {
			conn, j := joinRoom(ctx, t, id)
			conns[i] = conn
			_, hello, err := pake.NewInitiator("guess-"+strings.Repeat("x", i), pake.Params{Room: id, Initiator: j.Self, Responder: j.Host})
			if err != nil {
				t.Fatal(err)
			}
			if err := conn.Send(ctx, &room.Message{Type: room.TypeRelay, Peer: j.Host, Data: hello}); err != nil {
				t.Fatal(err)
			}
		}
		for _, conn := range conns {
			for {
				m, err := conn.Recv(ctx)
				if err != nil {
					t.Fatalf("a guesser heard nothing from the page: %v", err)
				}
				if m.Type != room.TypeRelay {
					continue
				}
				k, err := pake.FrameKind(m.Data)
				switch {
				case err == nil && k == pake.KindReply:
					replies++
				case err == nil && k == pake.KindAbort && m.Data[1] == pake.AbortBusy:
					busy++
				default:
					t.Fatalf("the page answered a Hello with %x", m.Data)
				}
				break
			}
		}
		if replies != 16 || busy != 1 {
			t.Fatalf("the page replied to %d Hellos and said busy to %d, want 16 and 1", replies, busy)
		}
		// Each had its reply, so each tested its guess: leaving now
		// does not take the guess back.
		for _, conn := range conns {
			_ = conn.Close()
		}
		r := result()
		if why, _ := r["closed"].(string); !strings.Contains(why, "10 wrong passwords") || r["failed"] != 10.0 {
			t.Fatalf("the page's host ended with %v, want it to count 10 wrong passwords and close the room", r)
		}
		closedFor(ctx, t, id)
	})

	t.Run("seeds report failures", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		id, _, result := serve(ctx, t)
		conn, _ := joinRoom(ctx, t, id)
		if err := conn.Seed(ctx, 1, true); err != nil {
			t.Fatal(err)
		}
		for range 10 {
			if err := conn.Fail(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if r := result(); r["socketClosed"] != true {
			t.Fatalf("the page's host ended with %v, want the server to close its room", r)
		}
		closedFor(ctx, t, id)
	})

	t.Run("a seed stops after failures", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		host, err := signalclient.Dial(ctx, wsURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer host.Close()
		// The server ranks a complete seed before the host.
		cr, err := host.CreateInfo(ctx, signalclient.CreateOptions{MaxFailures: 10})
		if err != nil {
			t.Fatal(err)
		}
		_, seedID, result := serve(ctx, t, "seed", wsURL, cr.Room, pw)
		for i := range 10 {
			conn, j := joinRoom(ctx, t, cr.Room)
			if err := conn.Want(ctx, 1); err != nil {
				t.Fatal(err)
			}
			var src string
			for src == "" {
				m, err := conn.Recv(ctx)
				if err != nil {
					t.Fatalf("guesser %d: %v", i, err)
				}
				if m.Type == room.TypePeers {
					src = m.Peers[0]
				}
			}
			if src != seedID {
				t.Fatalf("guesser %d was given %s, want the page's seed %s", i, src, seedID)
			}
			_, hello, err := pake.NewInitiator("guess", pake.Params{Room: cr.Room, Initiator: j.Self, Responder: src})
			if err != nil {
				t.Fatal(err)
			}
			if err := conn.Send(ctx, &room.Message{Type: room.TypeRelay, Peer: src, Data: hello}); err != nil {
				t.Fatal(err)
			}
			for {
				m, err := conn.Recv(ctx)
				if err != nil {
					t.Fatalf("guesser %d heard nothing from the seed: %v", i, err)
				}
				if m.Type == room.TypeRelay {
					if k, err := pake.FrameKind(m.Data); err != nil || k != pake.KindReply {
						t.Fatalf("the seed answered a Hello with %x", m.Data)
					}
					break
				}
			}
			_ = conn.Close()
		}
		if r := result(); !strings.Contains(fmt.Sprint(r["closed"]), "Stopped sharing the files with other receivers after 10 wrong passwords") {
			t.Fatalf("the page's seed ended with %v, want it to stop after 10 wrong passwords", r)
		}
		// It reported each one: the server closed the room at the host's limit.
		closedFor(ctx, t, cr.Room)
	})
}
