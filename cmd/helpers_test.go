package cmd

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/p2pxfer/p2pxfer/chunker"
)

// newRandom returns a source of random file contents: ChaCha8 from a
// random seed, many times quicker than crypto/rand for the tens of MiB
// some tests move, and the bytes need not be secret.
func newRandom() *mrand.ChaCha8 {
	var seed [32]byte
	_, _ = rand.Read(seed[:])
	return mrand.NewChaCha8(seed)
}

// eventually reports whether cond holds within d. It is the one place
// these tests poll, for what a command shows only in its output or its
// files: every 5 ms, a pause between looks at cond, not a wait for
// anything, and short because a transfer moves on meanwhile (see
// waitMidTransfer). cond may end the test itself, say when the command it
// waits on has exited.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// sentOffer waits for a running send to print its room and password line
// (send prints no --signal URL when it was given one) and the closing
// instructions, so everything it printed is there.
func (r *run) sentOffer(t *testing.T) (roomID, password string) {
	t.Helper()
	var out string
	printed := eventually(30*time.Second, func() bool {
		out = r.stdout.String()
		if strings.Contains(out, "Ctrl-C stops sending") {
			return true
		}
		if c, done := r.exited(); done {
			t.Fatalf("send exited with %d:\n%s\n%s", c, out, r.stderr.String())
		}
		return false
	})
	if !printed {
		t.Fatalf("send printed no offer:\n%s\n%s", r.stdout.String(), r.stderr.String())
	}
	rm, pm := roomRE.FindStringSubmatch(out), passRE.FindStringSubmatch(out)
	if rm == nil || pm == nil {
		t.Fatalf("send printed no room or password:\n%s", out)
	}
	return rm[1], pm[1]
}

// proc is a p2pxfer command running as a real process: the test binary
// itself, which TestMain turns into p2pxfer when P2PXFER_TEST_MAIN=1. Its
// code is the exit status, -1 when a signal ended it.
type proc struct {
	*run
	cmd *exec.Cmd
}

// startProc runs p2pxfer args in a child process, in this process's
// environment minus its P2PXFER_* variables, plus vars. Pass loopback-only
// flags (--stun none --loopback --interface lo): PeerConfig does not reach
// a child.
func startProc(ctx context.Context, t *testing.T, vars map[string]string, args ...string) *proc {
	t.Helper()
	return startCmd(t, exec.CommandContext(ctx, os.Args[0], args...), vars)
}

// startCmd runs cmd, which runs this test binary (as startProc's child
// does), in the environment startProc gives it.
func startCmd(t *testing.T, cmd *exec.Cmd, vars map[string]string) *proc {
	t.Helper()
	p := &proc{run: &run{code: make(chan int, 1)}, cmd: cmd}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "P2PXFER_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Env = append(p.cmd.Env, "P2PXFER_TEST_MAIN=1")
	for k, v := range vars {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.code <- p.cmd.ProcessState.ExitCode()
	}()
	return p
}

// kill sends SIGKILL: the process gets no chance to clean up or save.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill: %v", err)
	}
}

// waitUpTo is wait with a shorter limit, for commands that must end soon.
func (r *run) waitUpTo(t *testing.T, d time.Duration, what string) int {
	t.Helper()
	select {
	case c := <-r.code:
		return c
	case <-time.After(d):
		t.Fatalf("%s: still running after %v; stderr:\n%s", what, d, r.stderr.String())
		return -1
	}
}

// exited reports whether the command has ended, and with what code, without
// waiting; a code once taken is put back so wait still sees it.
func (r *run) exited() (int, bool) {
	select {
	case c := <-r.code:
		r.code <- c
		return c, true
	default:
		return 0, false
	}
}

// fileSHA256 hashes a file without holding it in memory.
func fileSHA256(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// leftovers lists the writer's bookkeeping files (part, state and state
// temporaries) under dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		for _, suffix := range []string{chunker.PartName(""), chunker.StateName(""), ".p2pxfer-tmp"} {
			if strings.HasSuffix(d.Name(), suffix) {
				found = append(found, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// exists reports whether path exists (without following a final symlink).
func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Lstat(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return err == nil
}

// signalServer runs `p2pxfer signal` on loopback until the test ends (or
// ctx does) and returns its URL.
func signalServer(ctx context.Context, t *testing.T) string {
	t.Helper()
	url, _ := signalServerRun(ctx, t)
	return url
}

// signalServerRun is signalServer, with the server's run for its log.
func signalServerRun(ctx context.Context, t *testing.T) (string, *run) {
	t.Helper()
	sctx, stop := context.WithCancel(ctx)
	t.Cleanup(stop)
	r := start(sctx, nil, "signal", "--addr", "127.0.0.1", "--port", "0")
	url, _ := r.listening(t)
	return url, r
}
