package cmd

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/p2pxfer/p2pxfer/chunker"
)

// resumeSize is big enough that a transfer on loopback (~40 MB/s here) is
// still running when the receiver's first resume state is saved (after a
// second or 64 MiB, whichever comes first).
const resumeSize = 24 << 20

// midTransfer reports whether a receiver writing name into out has saved
// resume state: the state file exists and the part file holds data.
func midTransfer(out, name string) bool {
	if _, err := os.Stat(filepath.Join(out, chunker.StateName(name))); err != nil {
		return false
	}
	st, err := os.Stat(filepath.Join(out, chunker.PartName(name)))
	return err == nil && st.Size() > 0
}

// checkResumed runs recv again into out and checks that it resumed and
// finished with exactly the sender's file, leaving nothing else behind.
func checkResumed(ctx context.Context, t *testing.T, url, roomID, password, out, name string, want [32]byte) {
	t.Helper()
	r := start(ctx, map[string]string{"P2PXFER_PASSWORD": password}, "recv", "--signal", url, "--out", out, roomID)
	if c := r.wait(t); c != ExitOK {
		t.Fatalf("rerun of recv: exit %d:\n%s\n%s", c, r.stdout.String(), r.stderr.String())
	}
	if !strings.Contains(r.stderr.String(), "resuming:") {
		t.Errorf("rerun of recv did not resume:\n%s", r.stderr.String())
	}
	if got := fileSHA256(t, filepath.Join(out, name)); got != want {
		t.Fatalf("resumed file differs: SHA-256 %x, want %x", got, want)
	}
	if left := leftovers(t, out); len(left) != 0 {
		t.Fatalf("left behind after a finished transfer: %v", left)
	}
}

// TestRecvResumesAfterKill kills a real recv process (SIGKILL: no chance to
// save anything) mid-transfer; running recv again must resume from its
// saved state and end with the exact file.
func TestRecvResumesAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 96 MiB")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const name = "big.bin"
	src := t.TempDir()
	want := sha256.Sum256(randomFile(t, src, name, resumeSize))
	snd := start(ctx, nil, "send", "--listen", "127.0.0.1:0", "--max-receivers", "1", filepath.Join(src, name))
	roomID, password, url := snd.offer(t)

	// The child is this test binary, which TestMain turns into p2pxfer.
	out := t.TempDir()
	child := exec.CommandContext(ctx, os.Args[0], "recv", "--signal", url, "--out", out,
		"--stun", "none", "--loopback", "--interface", "lo", roomID)
	child.Env = append(os.Environ(), "P2PXFER_TEST_MAIN=1", "P2PXFER_PASSWORD="+password)
	var childOut, childErr syncBuffer
	child.Stdout, child.Stderr = &childOut, &childErr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()

	deadline := time.After(60 * time.Second)
	for !midTransfer(out, name) {
		select {
		case err := <-exited:
			t.Fatalf("recv exited (%v) before it could be killed mid-transfer:\n%s\n%s", err, childOut.String(), childErr.String())
		case <-deadline:
			_ = child.Process.Kill()
			<-exited
			t.Fatalf("recv saved no resume state in 60s:\n%s\n%s", childOut.String(), childErr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := child.Process.Kill(); err != nil {
		t.Fatalf("kill recv: %v", err)
	}
	err := <-exited
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != -1 {
		t.Fatalf("recv was not ended by the kill (%v): it finished first?\n%s", err, childErr.String())
	}
	if exists(t, filepath.Join(out, name)) {
		t.Fatal("a killed download is visible under its final name")
	}
	for _, f := range []string{chunker.PartName(name), chunker.StateName(name)} {
		if !exists(t, filepath.Join(out, f)) {
			t.Fatalf("%s is gone after the kill", f)
		}
	}

	checkResumed(ctx, t, url, roomID, password, out, name, want)
	if c := snd.waitDump(t, 10*time.Second); c != ExitOK {
		t.Fatalf("send exit %d:\n%s", c, snd.stderr.String())
	}
}

// TestRecvInterruptedThenResumed cancels an in-process recv mid-transfer
// (Ctrl-C): it must exit 130 and keep its partial download, which the
// next run resumes.
func TestRecvInterruptedThenResumed(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 96 MiB")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const name = "big.bin"
	src := t.TempDir()
	want := sha256.Sum256(randomFile(t, src, name, resumeSize))
	snd := start(ctx, nil, "send", "--listen", "127.0.0.1:0", "--max-receivers", "1", filepath.Join(src, name))
	roomID, password, url := snd.offer(t)

	out := t.TempDir()
	rctx, interrupt := context.WithCancel(ctx)
	defer interrupt()
	r := start(rctx, map[string]string{"P2PXFER_PASSWORD": password}, "recv", "--signal", url, "--out", out, roomID)
	deadline := time.After(60 * time.Second)
	for !midTransfer(out, name) {
		if c, done := r.exited(); done {
			t.Fatalf("recv exited with %d before it could be interrupted mid-transfer:\n%s", c, r.stderr.String())
		}
		select {
		case <-deadline:
			t.Fatalf("recv saved no resume state in 60s:\n%s", r.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	interrupt()
	if c := r.wait(t); c != ExitInterrupted {
		t.Fatalf("interrupted recv: exit %d, want %d:\n%s", c, ExitInterrupted, r.stderr.String())
	}
	if !strings.Contains(r.stderr.String(), "run the same command again to resume") {
		t.Errorf("interrupted recv did not say the download is kept:\n%s", r.stderr.String())
	}
	if exists(t, filepath.Join(out, name)) {
		t.Fatal("an interrupted download is visible under its final name")
	}
	for _, f := range []string{chunker.PartName(name), chunker.StateName(name)} {
		if !exists(t, filepath.Join(out, f)) {
			t.Fatalf("%s is gone after the interruption", f)
		}
	}

	checkResumed(ctx, t, url, roomID, password, out, name, want)
	if c := snd.wait(t); c != ExitOK {
		t.Fatalf("send exit %d:\n%s", c, snd.stderr.String())
	}
}
