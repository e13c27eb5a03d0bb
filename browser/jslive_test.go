package browser_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
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

// TestJSLive runs the page's modules (jstest/live.mjs) over a real
// WebSocket to a real signalling server against a Go peer on pake and
// signalclient: the page as receiver and as sender, with the right and a
// wrong password. Vectors prove the bytes; this proves the messages go
// through the server as it routes them.
func TestJSLive(t *testing.T) {
	node, flags := needNode(t, true)
	srv := sigserver.New(sigserver.Config{})
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		_ = srv.Close()
		ts.Close()
	})
	wsURL := "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws"
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	keyHex := hex.EncodeToString(pub)

	run := func(ctx context.Context, args ...string) (*exec.Cmd, *bufio.Scanner, *bytes.Buffer) {
		cmd := exec.CommandContext(ctx, node, append(append(flags, "jstest/live.mjs"), args...)...)
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
			offer, err := sess.Seal([]byte(`{"v":5,"t":"offer","sdp":"v=0 from Go","lanes":1}`))
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
