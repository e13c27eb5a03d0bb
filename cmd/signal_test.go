package cmd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/p2pxfer/p2pxfer/room"
	"github.com/p2pxfer/p2pxfer/signalclient"
)

var listeningRE = regexp.MustCompile(`listening on (ws://(\S+)/ws)`)

// listening waits for a running signal command to print its URL; it returns
// the ws:// URL and the host:port.
func (r *run) listening(t *testing.T) (url, hostPort string) {
	t.Helper()
	var m []string
	printed := eventually(10*time.Second, func() bool {
		if m = listeningRE.FindStringSubmatch(r.stdout.String()); m != nil {
			return true
		}
		if c, done := r.exited(); done {
			t.Fatalf("signal exited with %d:\n%s", c, r.stderr.String())
		}
		return false
	})
	if !printed {
		t.Fatalf("signal printed no URL:\n%s\n%s", r.stdout.String(), r.stderr.String())
	}
	return m[1], m[2]
}

// TestSignalCommand runs the standalone signalling server, checks its
// health endpoint, moves a file through it, and stops it the way SIGINT
// does: it must shut down promptly and cleanly, even with a client still
// connected (goleak in TestMain checks nothing is left running).
func TestSignalCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	sig := start(sctx, nil, "signal", "--addr", "127.0.0.1", "--port", "0")
	url, hostPort := sig.listening(t)
	if !strings.HasPrefix(hostPort, "127.0.0.1:") || strings.HasSuffix(hostPort, ":0") {
		t.Fatalf("listening on %s, want 127.0.0.1 and a real port", hostPort)
	}

	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Get("http://" + hostPort + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("ok")) {
		t.Fatalf("/healthz: %s %q", resp.Status, body)
	}

	src := t.TempDir()
	want := randomFile(t, src, "notes.txt", 200<<10+3)
	snd := start(ctx, nil, "send", "--signal", url, "--listen", "127.0.0.1:0", "--max-receivers", "1", filepath.Join(src, "notes.txt"))
	roomID, password := snd.sentOffer(t)
	out := t.TempDir()
	rcv := start(ctx, map[string]string{"P2PXFER_PASSWORD": password}, "recv", "--no-seed", "--signal", url, "--out", out, roomID)
	if c := rcv.wait(t); c != ExitOK {
		t.Fatalf("recv exit %d:\n%s", c, rcv.stderr.String())
	}
	if got, err := os.ReadFile(filepath.Join(out, "notes.txt")); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("received file differs (err %v)", err)
	}
	if c := snd.wait(t); c != ExitOK {
		t.Fatalf("send exit %d:\n%s", c, snd.stderr.String())
	}

	// A client that stays connected, in a room of its own: shutdown must
	// close its WebSocket rather than wait for it.
	idle, err := signalclient.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if _, _, err := idle.Create(ctx); err != nil {
		t.Fatal(err)
	}

	stop()
	began := time.Now()
	if c := sig.waitUpTo(t, 10*time.Second, "signal after SIGINT"); c != ExitOK {
		t.Fatalf("signal exit %d after SIGINT:\n%s", c, sig.stderr.String())
	}
	if d := time.Since(began); d > 3*time.Second {
		t.Errorf("signal took %v to shut down", d)
	}
	if !strings.Contains(sig.stderr.String(), "shutting down") {
		t.Errorf("no shutdown log:\n%s", sig.stderr.String())
	}
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	for {
		_, err := idle.Recv(rctx)
		if err == nil {
			continue
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatal("the connected client was not disconnected by the shutdown")
		}
		break
	}
	if resp, err := hc.Get("http://" + hostPort + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("still answering /healthz after shutdown")
	}
}

// signal --max-conns-per-ip caps one address's connections (all of these
// come from 127.0.0.1), and the caps are checked at start.
func TestSignalConnCaps(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, args := range [][]string{{"--max-conns", "0"}, {"--max-conns-per-ip", "0"}, {"--max-conns", "4", "--max-conns-per-ip", "5"}} {
		r := start(ctx, nil, append([]string{"signal", "--addr", "127.0.0.1", "--port", "0"}, args...)...)
		if c := r.wait(t); c != ExitUsage || !strings.Contains(r.stderr.String(), "--max-conns") {
			t.Fatalf("signal %v: exit %d, want %d naming the flag:\n%s", args, c, ExitUsage, r.stderr.String())
		}
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	sig := start(sctx, nil, "signal", "--addr", "127.0.0.1", "--port", "0", "--max-conns-per-ip", "2")
	url, _ := sig.listening(t)
	create := func() error {
		c, err := signalclient.Dial(ctx, url, nil)
		if err != nil {
			return err
		}
		t.Cleanup(func() { _ = c.Close() })
		_, _, err = c.Create(ctx)
		return err
	}
	for range 2 {
		if err := create(); err != nil {
			t.Fatal(err)
		}
	}
	if err := create(); !errors.Is(err, room.ErrRateLimited) || !strings.Contains(err.Error(), "from this address") {
		t.Fatalf("third connection = %v, want refused as too many from this address", err)
	}
}
