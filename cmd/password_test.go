package cmd

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2pxfer/p2pxfer/sigserver"
)

// TestMaxFailuresClosesRoom: after --max-failures wrong passwords (the
// default, 10) the sender closes the room and stops (exit 4), and even the
// right password no longer gets in: the 11th attempt, from the same
// address as the 10 before, hears why rather than "rate limited". The
// signalling server is separate so that it outlives the sender.
func TestMaxFailuresClosesRoom(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := sigserver.New(sigserver.Config{})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"

	src := t.TempDir()
	randomFile(t, src, "secret.pdf", 10000)
	snd := start(ctx, nil, "send", "--signal", url, "--listen", "127.0.0.1:0", filepath.Join(src, "secret.pdf"))
	roomID, password := snd.sentOffer(t)

	const maxFailures = 10
	for i := 1; i <= maxFailures; i++ {
		out := t.TempDir()
		r := start(ctx, map[string]string{"P2PXFER_PASSWORD": "wrong-" + password}, "recv", "--no-seed", "--signal", url, "--out", out, roomID)
		if c := r.wait(t); c != ExitWrongPassword {
			t.Fatalf("wrong password #%d: exit %d, want %d:\n%s", i, c, ExitWrongPassword, r.stderr.String())
		}
		if entries, _ := os.ReadDir(out); len(entries) != 0 {
			t.Fatalf("wrong password #%d wrote %v", i, entries)
		}
		if i < maxFailures {
			if c, done := snd.exited(); done {
				t.Fatalf("send stopped after %d wrong passwords of %d allowed: exit %d:\n%s", i, maxFailures, c, snd.stderr.String())
			}
		}
	}
	if c := snd.waitUpTo(t, 10*time.Second, "send after the last wrong password"); c != ExitNoRoom {
		t.Fatalf("send exit %d, want %d:\n%s", c, ExitNoRoom, snd.stderr.String())
	}
	if stderr := snd.stderr.String(); !strings.Contains(stderr, "too many wrong passwords") ||
		strings.Count(stderr, "wrong password (") != maxFailures {
		t.Fatalf("send does not report the wrong passwords:\n%s", stderr)
	}

	r := start(ctx, map[string]string{"P2PXFER_PASSWORD": password}, "recv", "--no-seed", "--signal", url, "--out", t.TempDir(), roomID)
	if c := r.wait(t); c != ExitNoRoom || !strings.Contains(r.stderr.String(), "too many wrong passwords") {
		t.Fatalf("right password after the room closed: exit %d, want %d saying too many wrong passwords:\n%s", c, ExitNoRoom, r.stderr.String())
	}
}

// TestPasswordPrompt: with no P2PXFER_PASSWORD and no --password-file, recv
// asks on the terminal (Env.ReadPassword), once.
func TestPasswordPrompt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	src := t.TempDir()
	want := randomFile(t, src, "a.txt", 70000)
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("correct horse battery\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	snd := start(ctx, nil, "send", "--listen", "127.0.0.1:0", "--password-file", pwFile, filepath.Join(src, "a.txt"))
	roomID, _, url := snd.offer(t)

	// prompt answers like a terminal would and records how it was asked.
	type prompt struct {
		mu      sync.Mutex
		prompts []string
	}
	asker := func(p *prompt, answer string, err error) func(*Env) {
		return func(env *Env) {
			env.ReadPassword = func(s string) (string, error) {
				p.mu.Lock()
				defer p.mu.Unlock()
				p.prompts = append(p.prompts, s)
				return answer, err
			}
		}
	}
	calls := func(p *prompt) []string {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.prompts
	}

	t.Run("right password", func(t *testing.T) {
		var p prompt
		out := t.TempDir()
		r := startWith(ctx, nil, asker(&p, "correct horse battery", nil), "recv", "--no-seed", "--signal", url, "--out", out, roomID)
		if c := r.wait(t); c != ExitOK {
			t.Fatalf("exit %d:\n%s", c, r.stderr.String())
		}
		if got := calls(&p); len(got) != 1 || !strings.Contains(got[0], "Password") {
			t.Fatalf("prompted %q, want one password prompt", got)
		}
		if got, err := os.ReadFile(filepath.Join(out, "a.txt")); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("received file differs (err %v)", err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		var p prompt
		r := startWith(ctx, nil, asker(&p, "incorrect horse", nil), "recv", "--no-seed", "--signal", url, "--out", t.TempDir(), roomID)
		if c := r.wait(t); c != ExitWrongPassword {
			t.Fatalf("exit %d, want %d:\n%s", c, ExitWrongPassword, r.stderr.String())
		}
		if got := calls(&p); len(got) != 1 {
			t.Fatalf("prompted %d times, want once", len(got))
		}
	})
	t.Run("empty answer", func(t *testing.T) {
		var p prompt
		r := startWith(ctx, nil, asker(&p, "", nil), "recv", "--no-seed", "--signal", url, "--out", t.TempDir(), roomID)
		if c := r.wait(t); c != ExitUsage {
			t.Fatalf("exit %d, want %d:\n%s", c, ExitUsage, r.stderr.String())
		}
	})
	t.Run("terminal error", func(t *testing.T) {
		var p prompt
		r := startWith(ctx, nil, asker(&p, "", errors.New("input/output error")), "recv", "--no-seed", "--signal", url, "--out", t.TempDir(), roomID)
		if c := r.wait(t); c != ExitError || !strings.Contains(r.stderr.String(), "input/output error") {
			t.Fatalf("exit %d, want %d with the terminal's error:\n%s", c, ExitError, r.stderr.String())
		}
	})
	t.Run("env password wins", func(t *testing.T) {
		var p prompt
		out := t.TempDir()
		r := startWith(ctx, map[string]string{"P2PXFER_PASSWORD": "correct horse battery"}, asker(&p, "", errors.New("must not ask")),
			"recv", "--no-seed", "--signal", url, "--out", out, roomID)
		if c := r.wait(t); c != ExitOK {
			t.Fatalf("exit %d:\n%s", c, r.stderr.String())
		}
		if got := calls(&p); len(got) != 0 {
			t.Fatalf("prompted %q although P2PXFER_PASSWORD was set", got)
		}
	})
	cancel()
	if c := snd.wait(t); c != ExitOK {
		t.Fatalf("send after Ctrl-C: exit %d:\n%s", c, snd.stderr.String())
	}
}
