package cmd

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/p2pxfer/p2pxfer/chunker"
)

// resumeSize is big enough that a loopback transfer is still running when
// the receiver first saves resume state (a second after it starts, or at
// 64 MiB): 96 MiB leaves a third of the file after the 64 MiB save; under
// the race detector, which slows transfers about fivefold, 32 MiB outlasts
// the second.
func resumeSize() int {
	if raceEnabled {
		return 32 << 20
	}
	return 96 << 20
}

// slowRate is send's --max-rate for tests that act mid-transfer: the
// whole of resumeSize takes two seconds, where loopback would carry it in
// a fraction of one.
func slowRate() string { return strconv.Itoa(resumeSize() / 2) }

// bigFile writes n random bytes to dir/name and returns their SHA-256,
// hashing as it writes rather than holding them.
func bigFile(t *testing.T, dir, name string, n int) [32]byte {
	t.Helper()
	gen := newRandom()
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for n > 0 {
		b := buf[:min(n, len(buf))]
		_, _ = gen.Read(b)
		h.Write(b)
		if _, err := f.Write(b); err != nil {
			t.Fatal(err)
		}
		n -= len(b)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
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

// waitMidTransfer waits until r is mid-transfer into out; it fails if r
// ends first. A loopback transfer may finish a fraction of a second after
// the first save, so the caller stops r at once.
func waitMidTransfer(t *testing.T, r *run, out, name string) {
	t.Helper()
	saved := eventually(60*time.Second, func() bool {
		if midTransfer(out, name) {
			return true
		}
		if c, done := r.exited(); done {
			t.Fatalf("recv exited with %d before it could be stopped mid-transfer:\n%s\n%s", c, r.stdout.String(), r.stderr.String())
		}
		return false
	})
	if !saved {
		t.Fatalf("recv saved no resume state in 60s:\n%s", r.stderr.String())
	}
}

// quietFor is how long a download must write nothing for waitQuiet.
const quietFor = 100 * time.Millisecond

// waitQuiet waits until the part file of name in out has not changed for
// quietFor. With its sender dead, a receiver has then taken in all that
// was on the way and waits on a peer that sends no more; nothing else
// shows that moment.
func waitQuiet(t *testing.T, out, name string) {
	t.Helper()
	part := filepath.Join(out, chunker.PartName(name))
	var last os.FileInfo
	var since time.Time
	quiet := eventually(10*time.Second, func() bool {
		st, err := os.Stat(part)
		if err != nil {
			t.Fatalf("recv's part file: %v", err)
		}
		if last == nil || st.Size() != last.Size() || !st.ModTime().Equal(last.ModTime()) {
			last, since = st, time.Now()
			return false
		}
		return time.Since(since) >= quietFor
	})
	if !quiet {
		t.Fatalf("%s still changing after 10s", part)
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
	// The rate is that of what moved this time, not of the whole file.
	if !strings.Contains(r.stdout.String(), "were already here:") {
		t.Errorf("rerun of recv does not count only what it moved:\n%s", r.stdout.String())
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
	want := bigFile(t, src, name, resumeSize())
	snd := start(ctx, nil, "send", "--max-rate", slowRate(), "--listen", "127.0.0.1:0", "--max-receivers", "1", filepath.Join(src, name))
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
	want := bigFile(t, src, name, resumeSize())
	snd := start(ctx, nil, "send", "--max-rate", slowRate(), "--listen", "127.0.0.1:0", "--max-receivers", "1", filepath.Join(src, name))
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
	bigFile(t, src, name, resumeSize())
	snd := startProc(ctx, t, nil, "send", "--max-rate", slowRate(), "--listen", "127.0.0.1:0", "--max-receivers", "1",
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
	waitQuiet(t, out, name) // recv now waits on a dead peer
	interrupt()
	if c := r.waitUpTo(t, 10*time.Second, "recv interrupted after its sender died"); c != ExitInterrupted {
		t.Fatalf("exit %d, want %d:\n%s", c, ExitInterrupted, r.stderr.String())
	}
	checkPartial(t, out, name)
}
