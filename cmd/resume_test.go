package cmd

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/p2pxfer/p2pxfer/chunker"
)

// resumeSize is big enough that a loopback transfer is still running when
// the receiver first saves resume state (a second after it starts, or at
// 64 MiB): 96 MiB at ~40 MB/s, less under the race detector, which slows
// transfers about fivefold.
func resumeSize() int {
	if raceEnabled {
		return 32 << 20
	}
	return 96 << 20
}

// midTransfer reports whether a receiver writing name into out has saved
// resume state: the state file exists and the part file holds data.
func midTransfer(out, name string) bool {
	if _, err := os.Stat(filepath.Join(out, chunker.StateName(name))); err != nil {
		return false
	}
	st, err := os.Stat(filepath.Join(out, chunker.PartName(name)))
	return err == nil && st.Size() > 0
}

// waitMidTransfer polls every 20 ms until r is mid-transfer into out; it
// fails if r ends first.
func waitMidTransfer(t *testing.T, r *run, out, name string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !midTransfer(out, name) {
		if c, done := r.exited(); done {
			t.Fatalf("recv exited with %d before it could be stopped mid-transfer:\n%s\n%s", c, r.stdout.String(), r.stderr.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("recv saved no resume state in 60s:\n%s", r.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkPartial checks that an unfinished download into out kept its part
// and state files and is not visible under its final name.
func checkPartial(t *testing.T, out, name string) {
	t.Helper()
	if exists(t, filepath.Join(out, name)) {
		t.Fatal("an unfinished download is visible under its final name")
	}
	for _, f := range []string{chunker.PartName(name), chunker.StateName(name)} {
		if !exists(t, filepath.Join(out, f)) {
			t.Fatalf("%s is gone: nothing to resume from", f)
		}
	}
}

// checkResumed runs recv again into out and checks that it resumed and
// finished with exactly the sender's file, leaving nothing else behind.
func checkResumed(ctx context.Context, t *testing.T, url, roomID, password, out, name string, want [32]byte) {
	t.Helper()
	r := start(ctx, map[string]string{"P2PXFER_PASSWORD": password}, "recv", "--no-seed", "--signal", url, "--out", out, roomID)
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
// saved state and end with the exact file. The sender, which saw its
// receiver vanish without a word, must still stop after --max-receivers 1.
func TestRecvResumesAfterKill(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const name = "big.bin"
	src := t.TempDir()
	want := sha256.Sum256(randomFile(t, src, name, resumeSize()))
	snd := start(ctx, nil, "send", "--listen", "127.0.0.1:0", "--max-receivers", "1", filepath.Join(src, name))
	roomID, password, url := snd.offer(t)

	out := t.TempDir()
	child := startProc(ctx, t, map[string]string{"P2PXFER_PASSWORD": password},
		"recv", "--no-seed", "--signal", url, "--out", out, "--stun", "none", "--loopback", "--interface", "lo", roomID)
	waitMidTransfer(t, child.run, out, name)
	child.kill(t)
	if exists(t, filepath.Join(out, name)) {
		t.Fatal("a killed download is visible under its final name")
	}
	if c := child.wait(t); c != -1 {
		t.Fatalf("recv was not ended by the kill: exit %d (it finished first?)\n%s", c, child.stderr.String())
	}
	checkPartial(t, out, name)

	checkResumed(ctx, t, url, roomID, password, out, name, want)
	if c := snd.waitUpTo(t, 20*time.Second, "send after its only receiver finished"); c != ExitOK {
		t.Fatalf("send exit %d:\n%s", c, snd.stderr.String())
	}
}

// TestRecvInterruptedThenResumed cancels an in-process recv mid-transfer
// (Ctrl-C): it must exit 130 and keep its partial download, which the
// next run resumes.
func TestRecvInterruptedThenResumed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const name = "big.bin"
	src := t.TempDir()
	want := sha256.Sum256(randomFile(t, src, name, resumeSize()))
	snd := start(ctx, nil, "send", "--listen", "127.0.0.1:0", "--max-receivers", "1", filepath.Join(src, name))
	roomID, password, url := snd.offer(t)

	out := t.TempDir()
	rctx, interrupt := context.WithCancel(ctx)
	defer interrupt()
	r := start(rctx, map[string]string{"P2PXFER_PASSWORD": password}, "recv", "--no-seed", "--signal", url, "--out", out, roomID)
	waitMidTransfer(t, r, out, name)
	interrupt()
	if c := r.waitUpTo(t, 10*time.Second, "interrupted recv"); c != ExitInterrupted {
		t.Fatalf("interrupted recv: exit %d, want %d:\n%s", c, ExitInterrupted, r.stderr.String())
	}
	if !strings.Contains(r.stderr.String(), "run the same command again to resume") {
		t.Errorf("interrupted recv did not say the download is kept:\n%s", r.stderr.String())
	}
	checkPartial(t, out, name)

	checkResumed(ctx, t, url, roomID, password, out, name, want)
	if c := snd.waitUpTo(t, 20*time.Second, "send after its only receiver finished"); c != ExitOK {
		t.Fatalf("send exit %d:\n%s", c, snd.stderr.String())
	}
}

// TestRecvInterruptedAfterSenderKilled: when the sender process dies
// mid-transfer (no goodbye on the data channel), Ctrl-C must still end
// recv promptly, keeping the partial download.
func TestRecvInterruptedAfterSenderKilled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const name = "big.bin"
	src := t.TempDir()
	randomFile(t, src, name, resumeSize())
	snd := startProc(ctx, t, nil, "send", "--listen", "127.0.0.1:0", "--max-receivers", "1",
		"--stun", "none", "--loopback", "--interface", "lo", filepath.Join(src, name))
	roomID, password, url := snd.offer(t)

	out := t.TempDir()
	rctx, interrupt := context.WithCancel(ctx)
	defer interrupt()
	r := start(rctx, map[string]string{"P2PXFER_PASSWORD": password}, "recv", "--no-seed", "--signal", url, "--out", out, roomID)
	waitMidTransfer(t, r, out, name)
	snd.kill(t)
	if c := snd.wait(t); c != -1 {
		t.Fatalf("send was not ended by the kill: exit %d\n%s", c, snd.stderr.String())
	}
	time.Sleep(500 * time.Millisecond) // recv is now waiting on a dead peer
	interrupt()
	if c := r.waitUpTo(t, 10*time.Second, "recv interrupted after its sender died"); c != ExitInterrupted {
		t.Fatalf("exit %d, want %d:\n%s", c, ExitInterrupted, r.stderr.String())
	}
	checkPartial(t, out, name)
}
