package cmd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/p2pxfer/p2pxfer/peer"
)

// --interface with a name this host has no interface by is a usage
// error that says so, not a connection failure later.
func TestNoSuchInterface(t *testing.T) {
	for _, args := range [][]string{
		{"send", "--interface", "nosuch0", "faults_test.go"},
		{"recv", "--interface", "nosuch0", "--no-seed", "--signal", "ws://127.0.0.1:1/ws", "abcdefgh"},
	} {
		r := start(context.Background(), map[string]string{"P2PXFER_PASSWORD": "x"}, args...)
		if c := r.wait(t); c != ExitUsage || !strings.Contains(r.stderr.String(), "nosuch0: no such network interface") {
			t.Fatalf("%v: exit %d, want %d saying there is no such interface:\n%s", args, c, ExitUsage, r.stderr.String())
		}
	}
}

// quickGiveUp is startWith's adjust for a recv that gives up on a room
// with nobody to serve it after a second, not DefaultNoSourceWait.
func quickGiveUp(e *Env) {
	prev := e.PeerConfig
	e.PeerConfig = func(c *peer.Config) {
		prev(c)
		c.NoSourceWait = time.Second
	}
}

// checkSenderLeft checks that recv r, whose sender left mid-transfer,
// ended by itself with exit code saying what, kept its partial download,
// and said how it resumes: from a new room, not by running the same
// command again.
func checkSenderLeft(t *testing.T, r *run, out, name string, code int, what string) {
	t.Helper()
	c := r.waitUpTo(t, 60*time.Second, "recv after its sender left")
	stderr := r.stderr.String()
	if c != code || !strings.Contains(stderr, what) ||
		!strings.Contains(stderr, "runs send again with the same files") || strings.Contains(stderr, "run the same command again") {
		t.Fatalf("exit %d, want %d saying %q and that a new send resumes:\n%s", c, code, what, stderr)
	}
	checkPartial(t, out, name)
}

// The sender stopped with Ctrl-C mid-transfer, with a separate signalling
// server, which keeps the room for its receivers: recv notices that nobody
// left in the room can serve it, and ends.
func TestSenderInterrupted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	url := signalServer(ctx, t)
	const name = "big.bin"
	src := t.TempDir()
	bigFile(t, src, name, resumeSize())
	sctx, interrupt := context.WithCancel(ctx)
	defer interrupt()
	snd := start(sctx, nil, "send", "--max-rate", slowRate(), "--signal", url, filepath.Join(src, name))
	roomID, password := snd.sentOffer(t)
	out := t.TempDir()
	r := startWith(ctx, map[string]string{"P2PXFER_PASSWORD": password}, quickGiveUp, "recv", "--no-seed", "--signal", url, "--out", out, roomID)
	waitMidTransfer(t, r, out, name)
	interrupt()
	checkSenderLeft(t, r, out, name, ExitConnect, "the sender left")
}

// The sender killed (no goodbye at all) mid-transfer, with a separate
// signalling server and no seed: recv, waiting in the queue, must notice
// that nobody holds the missing pieces and end, keeping what it verified.
func TestSenderKilledNoSeed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	url := signalServer(ctx, t)
	const name = "big.bin"
	src := t.TempDir()
	bigFile(t, src, name, resumeSize())
	snd := startProc(ctx, t, nil, "send", "--max-rate", slowRate(), "--signal", url, "--stun", "none", "--loopback", "--interface", "lo", filepath.Join(src, name))
	roomID, password := snd.sentOffer(t)
	out := t.TempDir()
	r := startWith(ctx, map[string]string{"P2PXFER_PASSWORD": password}, quickGiveUp, "recv", "--signal", url, "--out", out, roomID)
	waitMidTransfer(t, r, out, name)
	snd.kill(t)
	began := time.Now()
	checkSenderLeft(t, r, out, name, ExitConnect, "the sender left")
	t.Logf("recv ended %v after the kill", time.Since(began))
}

// The sender stopped with Ctrl-C mid-transfer, with its embedded
// signalling server, which closes the room as it stops.
func TestSenderInterruptedEmbedded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const name = "big.bin"
	src := t.TempDir()
	bigFile(t, src, name, resumeSize())
	sctx, interrupt := context.WithCancel(ctx)
	defer interrupt()
	snd := start(sctx, nil, "send", "--max-rate", slowRate(), "--listen", "127.0.0.1:0", filepath.Join(src, name))
	roomID, password, url := snd.offer(t)
	out := t.TempDir()
	r := startWith(ctx, map[string]string{"P2PXFER_PASSWORD": password}, quickGiveUp, "recv", "--no-seed", "--signal", url, "--out", out, roomID)
	waitMidTransfer(t, r, out, name)
	interrupt()
	checkSenderLeft(t, r, out, name, ExitNoRoom, "the sender closed the room")
}

// The disk fills up mid-transfer: recv exits 7 saying so, keeps what it
// verified, and once there is room again the same command resumes. The
// destination is a tmpfs just big enough for the file (root only); the
// sender is paused while the rest of it is filled, so the filling does
// not race the transfer.
func TestDiskFullMidTransfer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const name = "big.bin"
	size := resumeSize()
	src := t.TempDir()
	want := bigFile(t, src, name, size)
	out := t.TempDir()
	if err := syscall.Mount("tmpfs", out, "tmpfs", 0, fmt.Sprintf("size=%d", size+1<<20)); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(out, syscall.MNT_DETACH) })

	snd := startProc(ctx, t, nil, "send", "--max-rate", slowRate(), "--listen", "127.0.0.1:0", "--stun", "none", "--loopback", "--interface", "lo", filepath.Join(src, name))
	roomID, password, url := snd.offer(t)
	r := start(ctx, map[string]string{"P2PXFER_PASSWORD": password}, "recv", "--no-seed", "--signal", url, "--out", out, roomID)
	waitMidTransfer(t, r, out, name)
	if err := snd.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitQuiet(t, out, name)
	filler := filepath.Join(out, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			break // full
		}
	}
	_ = f.Close()
	if err := snd.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	c := r.waitUpTo(t, 60*time.Second, "recv on a full disk")
	if stderr := r.stderr.String(); c != ExitRefused || !strings.Contains(stderr, "no space left") || !strings.Contains(stderr, "resumes") {
		t.Fatalf("exit %d, want %d saying no space left and how to resume:\n%s", c, ExitRefused, stderr)
	}
	checkPartial(t, out, name)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	checkResumed(ctx, t, url, roomID, password, out, name, want)
	snd.kill(t)
}

// Two recv into the same --out at once: the second refuses, saying why,
// before it changes anything, and the first finishes untouched.
func TestTwoRecvSameOut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const name = "big.bin"
	src := t.TempDir()
	want := bigFile(t, src, name, resumeSize())
	snd := start(ctx, nil, "send", "--max-rate", slowRate(), "--listen", "127.0.0.1:0", filepath.Join(src, name))
	roomID, password, url := snd.offer(t)
	out := t.TempDir()
	vars := map[string]string{"P2PXFER_PASSWORD": password}
	first := startProc(ctx, t, vars, "recv", "--no-seed", "--signal", url, "--out", out, "--stun", "none", "--loopback", "--interface", "lo", roomID)
	waitMidTransfer(t, first.run, out, name)
	// Paused, so that it is still mid-transfer whatever the second takes.
	if err := first.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	second := start(ctx, vars, "recv", "--no-seed", "--signal", url, "--out", out, roomID)
	c := second.waitUpTo(t, 30*time.Second, "the second recv")
	if err := first.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stderr := second.stderr.String()
	if c != ExitRefused || !strings.Contains(stderr, "another download is writing") || strings.Contains(stderr, "partial download is kept") || strings.Contains(stderr, "chunker") {
		t.Fatalf("second recv: exit %d, want %d saying another download is writing, and nothing about a partial download of its own:\n%s", c, ExitRefused, stderr)
	}
	if c := first.wait(t); c != ExitOK {
		t.Fatalf("first recv: exit %d:\n%s", c, first.stderr.String())
	}
	if got := fileSHA256(t, filepath.Join(out, name)); got != want {
		t.Fatal("the first recv's file differs")
	}
	if left := leftovers(t, out); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// A source file appended to, overwritten or truncated mid-transfer: the
// sender withdraws it and says so, and recv ends with a message that says
// the file changed (exit 5, not corruption's 6), keeping what it
// verified, rather than reconnect for ever.
func TestSourceChanged(t *testing.T) {
	for _, change := range []struct {
		name string
		do   func(f *os.File) error
	}{
		{"appended", func(f *os.File) error { _, err := f.Seek(0, 2); _, err = f.Write([]byte("more")); return err }},
		{"overwritten", func(f *os.File) error { _, err := f.WriteAt([]byte("edited"), int64(resumeSize()-10)); return err }},
		{"truncated", func(f *os.File) error { return f.Truncate(int64(resumeSize() / 2)) }},
	} {
		t.Run(change.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			const name = "big.bin"
			src := t.TempDir()
			bigFile(t, src, name, resumeSize())
			snd := startProc(ctx, t, nil, "send", "--max-rate", slowRate(), "--listen", "127.0.0.1:0", "--stun", "none", "--loopback", "--interface", "lo", filepath.Join(src, name))
			roomID, password, url := snd.offer(t)
			out := t.TempDir()
			r := start(ctx, map[string]string{"P2PXFER_PASSWORD": password}, "recv", "--no-seed", "--signal", url, "--out", out, roomID)
			waitMidTransfer(t, r, out, name)
			// Paused while the file changes, so that the change lands
			// before the transfer could end.
			if err := snd.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(filepath.Join(src, name), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			// A change within the mtime's granularity could go unseen.
			time.Sleep(10 * time.Millisecond)
			if err := change.do(f); err != nil {
				t.Fatal(err)
			}
			_ = f.Close()
			if err := snd.cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			c := r.waitUpTo(t, 30*time.Second, "recv after the file changed at the sender")
			stderr := r.stderr.String()
			if c != ExitConnect || !strings.Contains(stderr, "big.bin changed on the sender's disk") || !strings.Contains(stderr, "not corruption") {
				t.Fatalf("exit %d, want %d saying the file changed at the sender:\n%s", c, ExitConnect, stderr)
			}
			checkPartial(t, out, name)
			// With nothing left to offer, the sender ends too.
			c = snd.waitUpTo(t, 20*time.Second, "send after its only file changed")
			if so := snd.stderr.String(); c != ExitError || !strings.Contains(so, "no longer offered") || !strings.Contains(so, "nothing is left to offer") {
				t.Errorf("send: exit %d, want %d saying it withdrew the file and has nothing left:\n%s", c, ExitError, so)
			}
		})
	}
}

// --out on a read-only file system: recv says so (exit 7), in its own
// words, not that there is not enough free space, and writes nothing.
func TestReadOnlyOut(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	src := t.TempDir()
	randomFile(t, src, "a.bin", 100<<10)
	out := t.TempDir()
	if err := syscall.Mount("tmpfs", out, "tmpfs", syscall.MS_RDONLY, "size=16m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(out, syscall.MNT_DETACH) })
	snd := start(ctx, nil, "send", "--listen", "127.0.0.1:0", filepath.Join(src, "a.bin"))
	roomID, password, url := snd.offer(t)
	r := start(ctx, map[string]string{"P2PXFER_PASSWORD": password}, "recv", "--no-seed", "--signal", url, "--out", out, roomID)
	c := r.waitUpTo(t, 30*time.Second, "recv into a read-only file system")
	stderr := r.stderr.String()
	if c != ExitRefused || !strings.Contains(stderr, "read-only") || strings.Contains(stderr, "free space") || strings.Contains(stderr, "chunker") {
		t.Fatalf("exit %d, want %d saying the destination is read-only:\n%s", c, ExitRefused, stderr)
	}
	if entries, err := os.ReadDir(out); err != nil || len(entries) != 0 {
		t.Fatalf("--out holds %v (%v), want nothing", entries, err)
	}
}
