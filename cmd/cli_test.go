package cmd

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFlagsAfterArguments: flags typed after the arguments work, as
// people type them ("send FILE --listen ...", "recv ROOM --signal URL"),
// and a missing --out directory (two levels of it) is created once the
// files are known.
func TestFlagsAfterArguments(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	src := t.TempDir()
	want := randomFile(t, src, "report.pdf", 300<<10)
	vars := map[string]string{"P2PXFER_PASSWORD": "pw"}
	snd := start(ctx, vars, "send", filepath.Join(src, "report.pdf"), "--listen", "127.0.0.1:0", "--max-receivers", "1")
	roomID, _, url := snd.offer(t)
	out := filepath.Join(t.TempDir(), "new", "dir")
	rcv := start(ctx, vars, "recv", roomID, "--no-seed", "--signal", url, "--out", out)
	if c := rcv.wait(t); c != ExitOK {
		t.Fatalf("recv exit %d:\n%s\n%s", c, rcv.stdout.String(), rcv.stderr.String())
	}
	if got, err := os.ReadFile(filepath.Join(out, "report.pdf")); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("received file differs (err %v)", err)
	}
	if !strings.Contains(rcv.stderr.String(), "created "+out) {
		t.Errorf("recv does not say it created --out:\n%s", rcv.stderr.String())
	}
	if c := snd.wait(t); c != ExitOK {
		t.Fatalf("send exit %d:\n%s", c, snd.stderr.String())
	}
}

// TestDashFileName: after "--", an argument that starts with "-" is a
// file, even after flags typed after the arguments.
func TestDashFileName(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src := t.TempDir()
	randomFile(t, src, "-notes.txt", 100)
	randomFile(t, src, "plan.txt", 200)
	cmd := exec.CommandContext(ctx, os.Args[0], "send", "plan.txt", "--listen", "127.0.0.1:0", "--stun", "none", "--", "-notes.txt")
	cmd.Dir = src
	snd := startCmd(t, cmd, map[string]string{"P2PXFER_PASSWORD": "pw"})
	snd.sentOffer(t)
	if out := snd.stdout.String(); !strings.Contains(out, "Sending 2 file(s)") || !strings.Contains(out, "  -notes.txt  100 B") {
		t.Errorf("send does not offer plan.txt and -notes.txt:\n%s", out)
	}
	snd.kill(t)
	snd.wait(t)
}

// TestPrintedRecvLine: the recv command that send prints works as
// printed: it carries --loopback when the sender used it (without it the
// receiver, on the loopback interface only, offers no address at all).
// The receiver's own flags go after it.
func TestPrintedRecvLine(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	src := t.TempDir()
	want := randomFile(t, src, "data.bin", 200<<10)
	vars := map[string]string{"P2PXFER_PASSWORD": "pw"}
	snd := startProc(ctx, t, vars, "send", "--loopback", "--interface", "lo", "--stun", "none",
		"--listen", "127.0.0.1:0", "--max-receivers", "1", filepath.Join(src, "data.bin"))
	snd.sentOffer(t)
	var line string
	for l := range strings.Lines(snd.stdout.String()) {
		if f := strings.Fields(l); len(f) > 2 && f[0] == "p2pxfer" && f[1] == "recv" {
			line = l
			break
		}
	}
	if !strings.Contains(line, " --loopback ") {
		t.Fatalf("the printed recv line lacks --loopback:\n%s", snd.stdout.String())
	}
	out := t.TempDir()
	args := append(strings.Fields(line)[1:], "--interface", "lo", "--stun", "none", "--no-seed", "--out", out)
	rcv := startProc(ctx, t, vars, args...)
	if c := rcv.waitUpTo(t, 40*time.Second, "the printed recv"); c != ExitOK {
		t.Fatalf("%v: exit %d:\n%s\n%s", args, c, rcv.stdout.String(), rcv.stderr.String())
	}
	if got, err := os.ReadFile(filepath.Join(out, "data.bin")); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("received file differs (err %v)", err)
	}
	if c := snd.wait(t); c != ExitOK {
		t.Fatalf("send exit %d:\n%s", c, snd.stderr.String())
	}
}

// TestAlreadyPresent: files already in --out with the sender's contents
// are kept as received; when all are, recv says so and exits 0 at once,
// without seeding. The rate counts only what moved. One that differs is
// refused in words, without the layers' names (-v, given before the
// command, shows them).
func TestAlreadyPresent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	src := t.TempDir()
	a := randomFile(t, src, "a.bin", 300<<10)
	randomFile(t, src, "b.bin", 100<<10)
	vars := map[string]string{"P2PXFER_PASSWORD": "pw"}
	sendCtx, quit := context.WithCancel(ctx)
	defer quit()
	snd := start(sendCtx, vars, "send", "--listen", "127.0.0.1:0", filepath.Join(src, "a.bin"), filepath.Join(src, "b.bin"))
	roomID, _, url := snd.offer(t)

	out := t.TempDir()
	if err := os.WriteFile(filepath.Join(out, "a.bin"), a, 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(filepath.Join(out, "a.bin"))
	r := start(ctx, vars, "recv", "--no-seed", "--signal", url, "--out", out, roomID)
	if c := r.wait(t); c != ExitOK {
		t.Fatalf("recv with a.bin present: exit %d:\n%s\n%s", c, r.stdout.String(), r.stderr.String())
	}
	if !strings.Contains(r.stderr.String(), "1 file(s) already in "+out+", identical (same SHA-256): kept") {
		t.Errorf("recv does not say a.bin was kept:\n%s", r.stderr.String())
	}
	if !strings.Contains(r.stdout.String(), "Received and verified 100.0 KiB in ") ||
		!strings.Contains(r.stdout.String(), "300.0 KiB of 400.0 KiB were already here") {
		t.Errorf("recv does not count only what moved:\n%s", r.stdout.String())
	}
	if after, _ := os.Stat(filepath.Join(out, "a.bin")); !os.SameFile(before, after) {
		t.Error("the identical a.bin was replaced")
	}
	if fileSHA256(t, filepath.Join(out, "b.bin")) != fileSHA256(t, filepath.Join(src, "b.bin")) {
		t.Fatal("b.bin differs")
	}

	// Everything present; seeding is on (no --no-seed), yet recv ends.
	r = start(ctx, vars, "recv", "--signal", url, "--out", out, roomID)
	if c := r.waitUpTo(t, 20*time.Second, "recv of files present"); c != ExitOK {
		t.Fatalf("recv of files present: exit %d:\n%s\n%s", c, r.stdout.String(), r.stderr.String())
	}
	if !strings.Contains(r.stderr.String(), "all 2 file(s) already in "+out+", identical (same SHA-256): nothing to download") ||
		!strings.Contains(r.stdout.String(), "Verified 400.0 KiB, all of it already here") {
		t.Errorf("recv does not say everything was there:\n%s\n%s", r.stdout.String(), r.stderr.String())
	}
	if strings.Contains(r.stderr.String(), "seeding") {
		t.Errorf("recv seeds files it did not download:\n%s", r.stderr.String())
	}

	if err := os.WriteFile(filepath.Join(out, "b.bin"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, verbose := range []bool{false, true} {
		args := []string{"recv", "--no-seed", "--signal", url, "--out", out, roomID}
		if verbose {
			args = append([]string{"-v"}, args...)
		}
		r = start(ctx, vars, args...)
		if c := r.wait(t); c != ExitRefused {
			t.Fatalf("%v with another b.bin: exit %d, want %d:\n%s", args, c, ExitRefused, r.stderr.String())
		}
		msg := r.stderr.String()
		if !strings.Contains(msg, `p2pxfer: "b.bin": already exists with other contents`) {
			t.Errorf("%v does not say b.bin differs:\n%s", args, msg)
		}
		if hasDetails := strings.Contains(msg, "(details: "); hasDetails != verbose {
			t.Errorf("%v: details shown %v, want %v:\n%s", args, hasDetails, verbose, msg)
		}
		if !verbose && strings.Contains(msg, "chunker") {
			t.Errorf("%v speaks of the program's insides:\n%s", args, msg)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(out, "b.bin")); string(b) != "mine" {
		t.Fatal("b.bin was overwritten")
	}
	quit()
	if c := snd.wait(t); c != ExitOK {
		t.Fatalf("send exit %d:\n%s", c, snd.stderr.String())
	}
}

// TestCommandLineSlips: what people mistype is a usage error (exit 2)
// that repeats what they typed escaped and not at length; the version is
// --version and -v is verbose.
func TestCommandLineSlips(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	randomFile(t, dir, "f", 10)
	long := strings.Repeat("a", 10000)
	pw := map[string]string{"P2PXFER_PASSWORD": "pw"}
	cases := []struct {
		name string
		vars map[string]string
		args []string
		code int
		want string
	}{
		{"signal not a URL", pw, []string{"recv", "--signal", "not a url", "abcdefgh"}, ExitUsage, `--signal "not a url" is not a signalling server URL`},
		{"signal without host", pw, []string{"recv", "--signal", "ws:///ws", "abcdefgh"}, ExitUsage, "no host"},
		{"P2PXFER_SIGNAL not a URL", map[string]string{"P2PXFER_PASSWORD": "pw", "P2PXFER_SIGNAL": "localhost:8080"}, []string{"recv", "abcdefgh"}, ExitUsage, "P2PXFER_SIGNAL localhost:8080 is not a signalling server URL"},
		{"send signal not a URL", nil, []string{"send", "--signal", "ftp://x/", file}, ExitUsage, "the scheme must be ws, wss, http or https"},
		{"max-failures over the bound", nil, []string{"send", "--max-failures", "5000", file}, ExitUsage, "--max-failures must be between 1 and 1000"},
		{"10 KB room ID", pw, []string{"recv", "--signal", "ws://127.0.0.1:1/ws", long}, ExitUsage, strings.Repeat("a", 64) + "... (10000 bytes) is not a room ID"},
		{"out is a file", pw, []string{"recv", "--signal", "ws://127.0.0.1:1/ws", "--out", file, "abcdefgh"}, ExitUsage, "--out " + file + " is a file, not a directory"},
		{"out below a file", pw, []string{"recv", "--signal", "ws://127.0.0.1:1/ws", "--out", filepath.Join(file, "x"), "abcdefgh"}, ExitUsage, "cannot be created: " + file + " is a file"},
		{"max-rate without a number", nil, []string{"send", "--max-rate", "fast", file}, ExitUsage, `--max-rate "fast": give bytes per second`},
		{"max-rate with an unknown unit", pw, []string{"recv", "--max-rate", "5Q", "--signal", "ws://127.0.0.1:1/ws", "abcdefgh"}, ExitUsage, `unknown unit "Q"`},
		{"-v is not the version", nil, []string{"-v", "recv", "--signal", "not a url", "abcdefgh"}, ExitUsage, "not a signalling server URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := start(ctx, tc.vars, tc.args...)
			if c := r.wait(t); c != tc.code {
				t.Fatalf("exit %d, want %d:\n%s", c, tc.code, r.stderr.String())
			}
			if !strings.Contains(r.stderr.String(), tc.want) {
				t.Fatalf("stderr does not say %q:\n%s", tc.want, r.stderr.String())
			}
			if n := len(r.stderr.String()); n > 1000 {
				t.Fatalf("%d bytes of message", n)
			}
		})
	}
	r := start(ctx, nil, "--version")
	if c := r.wait(t); c != ExitOK || !strings.HasPrefix(r.stdout.String(), "p2pxfer version ") {
		t.Fatalf("--version: exit %d:\n%s", c, r.stdout.String())
	}
	r = start(ctx, nil, "recv", "abcdefgh", "--help")
	if c := r.wait(t); c != ExitOK || !strings.Contains(r.stdout.String(), "p2pxfer recv - receive") {
		t.Fatalf("recv ROOM --help: exit %d:\n%s\n%s", c, r.stdout.String(), r.stderr.String())
	}
}

// TestUnsendableName: a local file whose name receivers would refuse is
// named escaped (no newline or escape sequence reaches the terminal)
// with what helps, before anything is offered.
func TestUnsendableName(t *testing.T) {
	dir := t.TempDir()
	name := "a\nb\x1b[2J"
	randomFile(t, dir, name, 10)
	r := start(context.Background(), nil, "send", "--listen", "127.0.0.1:0", filepath.Join(dir, name))
	if c := r.wait(t); c != ExitRefused {
		t.Fatalf("exit %d, want %d:\n%s", c, ExitRefused, r.stderr.String())
	}
	msg := r.stderr.String()
	if strings.ContainsRune(msg, '\x1b') || strings.Contains(msg, "a\nb") {
		t.Fatalf("the name reached the terminal raw:\n%q", msg)
	}
	for _, want := range []string{`cannot send "` + dir + `/a\nb\x1b[2J": invalid file name: contains a control character`, "rename the file"} {
		if !strings.Contains(msg, want) {
			t.Errorf("stderr does not say %q:\n%s", want, msg)
		}
	}
}
