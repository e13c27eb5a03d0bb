package cmd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// waitFor waits up to d for r's output to contain s.
func waitFor(t *testing.T, r *run, s string, d time.Duration) {
	t.Helper()
	printed := eventually(d, func() bool {
		if strings.Contains(r.stdout.String()+r.stderr.String(), s) {
			return true
		}
		if c, done := r.exited(); done {
			t.Fatalf("exited with %d before printing %q:\n%s\n%s", c, s, r.stdout.String(), r.stderr.String())
		}
		return false
	})
	if !printed {
		t.Fatalf("no %q within %v:\n%s\n%s", s, d, r.stdout.String(), r.stderr.String())
	}
}

// TestSeedAfterSenderLeft: through a standalone signalling server, a
// receiver that finished stays as a seed; the sender quits once the swarm
// holds a full copy, and a later receiver gets the file from the seed. The
// seed ends cleanly on Ctrl-C, saying how many peers it served.
func TestSeedAfterSenderLeft(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	url, sig := signalServerRun(ctx, t)

	src := t.TempDir()
	want := randomFile(t, src, "movie.mkv", 3<<20+5)
	sendCtx, quit := context.WithCancel(ctx)
	snd := start(sendCtx, map[string]string{"P2PXFER_PASSWORD": "pw"}, "send", "--signal", url, "--fec", "4+1", filepath.Join(src, "movie.mkv"))
	roomID, _, _ := snd.offer(t)

	seedCtx, stopSeed := context.WithCancel(ctx)
	defer stopSeed()
	seedOut := t.TempDir()
	seed := start(seedCtx, map[string]string{"P2PXFER_PASSWORD": "pw"}, "recv", "--signal", url, "--out", seedOut, roomID)
	waitFor(t, seed, "seeding to the room until nobody has fetched from us for 1m0s, the room is gone, or Ctrl-C", 30*time.Second)
	waitFor(t, snd, "the swarm now holds a full copy: you may quit", 10*time.Second)
	quit() // Ctrl-C
	if c := snd.wait(t); c != ExitOK {
		t.Fatalf("send exit %d:\n%s", c, snd.stderr.String())
	}
	// The server forgets the sender once it has read the close; a receiver
	// joining before that would still be given the sender as a source.
	waitFor(t, sig, "host left; room kept for its members", 10*time.Second)

	out := t.TempDir()
	late := start(ctx, map[string]string{"P2PXFER_PASSWORD": "pw"}, "recv", "--no-seed", "--signal", url, "--out", out, roomID)
	if c := late.wait(t); c != ExitOK {
		t.Fatalf("late recv exit %d:\n%s", c, late.stderr.String())
	}
	if strings.Contains(late.stderr.String(), "the sender") {
		t.Errorf("the late receiver talked to the sender, which had left:\n%s", late.stderr.String())
	}
	for _, dir := range []string{seedOut, out} {
		got, err := os.ReadFile(filepath.Join(dir, "movie.mkv"))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: received file differs (err %v)", dir, err)
		}
	}
	waitFor(t, seed, "seeding: 1 peer(s) served", 10*time.Second)
	stopSeed()
	if c := seed.wait(t); c != ExitOK {
		t.Fatalf("seed exit %d after Ctrl-C:\n%s", c, seed.stderr.String())
	}
	if !strings.Contains(seed.stderr.String(), "stopped seeding; 1 peer(s) served") {
		t.Errorf("seed did not sum up:\n%s", seed.stderr.String())
	}
}

// TestSeedTime: --seed-time bounds seeding; recv then exits 0 by itself.
func TestSeedTime(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	src := t.TempDir()
	randomFile(t, src, "f", 1000)
	sendCtx, quit := context.WithCancel(ctx)
	defer quit()
	// The sender stays: the room is there when the seed time is up.
	snd := start(sendCtx, map[string]string{"P2PXFER_PASSWORD": "pw"}, "send", "--listen", "127.0.0.1:0", filepath.Join(src, "f"))
	roomID, _, url := snd.offer(t)
	rcv := start(ctx, map[string]string{"P2PXFER_PASSWORD": "pw"}, "recv", "--seed-time", "300ms", "--signal", url, "--out", t.TempDir(), roomID)
	if c := rcv.wait(t); c != ExitOK {
		t.Fatalf("recv exit %d:\n%s", c, rcv.stderr.String())
	}
	for _, want := range []string{"seeding to the room until nobody has fetched from us for 1m0s, the room is gone, 300ms have passed, or Ctrl-C",
		"stopped seeding (--seed-time 300ms passed); 0 peer(s) served"} {
		if !strings.Contains(rcv.stderr.String(), want) {
			t.Errorf("recv does not say %q:\n%s", want, rcv.stderr.String())
		}
	}
	quit()
	if c := snd.wait(t); c != ExitOK {
		t.Fatalf("send exit %d:\n%s", c, snd.stderr.String())
	}
}

// TestSeedEndsByItself: a finished receiver says when its seeding will end
// and ends it by itself: once nobody has fetched from it for --seed-idle
// (the sender still there), and once the room is gone (the sender closed
// it after its last receiver), saying why.
func TestSeedEndsByItself(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	src := t.TempDir()
	randomFile(t, src, "f", 100<<10)
	vars := map[string]string{"P2PXFER_PASSWORD": "pw"}
	snd := start(ctx, vars, "send", "--listen", "127.0.0.1:0", "--max-receivers", "2", filepath.Join(src, "f"))
	roomID, _, url := snd.offer(t)

	idle := start(ctx, vars, "recv", "--seed-idle", "300ms", "--signal", url, "--out", t.TempDir(), roomID)
	if c := idle.waitUpTo(t, 20*time.Second, "recv --seed-idle 300ms"); c != ExitOK {
		t.Fatalf("recv exit %d:\n%s", c, idle.stderr.String())
	}
	for _, want := range []string{"seeding to the room until nobody has fetched from us for 300ms, the room is gone, or Ctrl-C (--no-seed to skip)",
		"stopped seeding (nobody fetched from us for 300ms); 0 peer(s) served"} {
		if !strings.Contains(idle.stderr.String(), want) {
			t.Errorf("recv does not say %q:\n%s", want, idle.stderr.String())
		}
	}

	// The second and last receiver: the sender closes the room.
	last := start(ctx, vars, "recv", "--signal", url, "--out", t.TempDir(), roomID)
	if c := last.waitUpTo(t, 20*time.Second, "recv after which the room closes"); c != ExitOK {
		t.Fatalf("recv exit %d:\n%s", c, last.stderr.String())
	}
	// Closed by the sender, or its embedded server gone with it: either
	// is said in words, not as the connection's error.
	if so := last.stderr.String(); !strings.Contains(so, "stopped seeding (the room is gone: the sender closed the room)") &&
		!strings.Contains(so, "stopped seeding (the room is gone: the signalling server went away)") {
		t.Errorf("recv does not say the room is gone, in words:\n%s", so)
	}
	if c := snd.wait(t); c != ExitOK {
		t.Fatalf("send exit %d:\n%s", c, snd.stderr.String())
	}
}
