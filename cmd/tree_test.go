package cmd

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSendFolder sends a folder and a file at once: nested and empty
// folders, names with spaces and unicode and the executable bit arrive
// under --out with the folder's name; a symbolic link and a named pipe
// inside it are skipped with a warning; both ends show a summary.
func TestSendFolder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := t.TempDir()
	top := filepath.Join(base, "my photos")
	files := map[string][]byte{
		"my photos/a.jpg":                 nil,
		"my photos/2024/ünï cödé (1).jpg": nil,
		"my photos/2024/deep/z.bin":       nil,
		"my photos/run.sh":                []byte("#!/bin/sh\necho hi\n"),
		"notes.txt":                       nil,
	}
	for name, b := range files {
		p := filepath.Join(base, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if b == nil {
			b = randomFile(t, filepath.Dir(p), filepath.Base(p), 3000+len(name)*1000)
			files[name] = b
		} else if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(top, "run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	emptyDirs := []string{"my photos/empty", "my photos/2024/deep/also empty"}
	for _, d := range emptyDirs {
		if err := os.MkdirAll(filepath.Join(base, filepath.FromSlash(d)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc", filepath.Join(top, "link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(top, "2024", "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}

	snd, rcv, out := sendOnce(ctx, t, top, filepath.Join(base, "notes.txt"))
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(name)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s differs (err %v)", name, err)
		}
	}
	for _, d := range emptyDirs {
		if st, err := os.Stat(filepath.Join(out, filepath.FromSlash(d))); err != nil || !st.IsDir() {
			t.Errorf("empty folder %s: %v", d, err)
		}
	}
	for name, exec := range map[string]bool{"my photos/run.sh": true, "my photos/a.jpg": false} {
		st, err := os.Stat(filepath.Join(out, filepath.FromSlash(name)))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm()&0o100 != 0; got != exec {
			t.Errorf("%s: mode %v, want executable %v", name, st.Mode(), exec)
		}
	}
	for _, gone := range []string{"my photos/link", "my photos/2024/pipe"} {
		if exists(t, filepath.Join(out, filepath.FromSlash(gone))) {
			t.Errorf("%s arrived", gone)
		}
	}
	if l := leftovers(t, out); len(l) > 0 {
		t.Errorf("left %v", l)
	}
	warn := snd.stderr.String()
	for _, w := range []string{
		"warning: skipped " + filepath.Join(top, "link") + " (symbolic link not followed)",
		"warning: skipped " + filepath.Join(top, "2024", "pipe") + " (not a regular file (named pipe))",
	} {
		if !strings.Contains(warn, w) {
			t.Errorf("send does not warn %q:\n%s", w, warn)
		}
	}
	// 5 files; folders: my photos, 2024, deep, also empty, empty.
	for side, r := range map[string]*run{"Sending": snd, "Receiving": rcv} {
		o := r.stdout.String()
		if !strings.Contains(o, side+" 5 files in 5 folders, ") ||
			!strings.Contains(o, "  my photos/  4 files, ") || !strings.Contains(o, "  notes.txt  ") {
			t.Errorf("%s: no summary:\n%s", side, o)
		}
	}
	if o := rcv.stdout.String(); !strings.Contains(o, "  "+filepath.Join(out, "my photos")+"/  4 files") {
		t.Errorf("recv does not say where the folder went:\n%s", o)
	}
}

// TestSendSameName: two paths that would arrive under one name are
// refused before anything starts, naming both, with a way out.
func TestSendSameName(t *testing.T) {
	base := t.TempDir()
	for _, d := range []string{"one", "two"} {
		randomFile(t, mkdir(t, filepath.Join(base, d, "docs")), "a", 10)
	}
	for _, args := range [][]string{
		{filepath.Join(base, "one", "docs"), filepath.Join(base, "two", "docs")},
		{filepath.Join(base, "one", "docs", "a"), filepath.Join(base, "two", "docs", "a")},
	} {
		r := start(context.Background(), nil, append([]string{"send", "--listen", "127.0.0.1:0"}, args...)...)
		if c := r.wait(t); c != ExitUsage {
			t.Fatalf("exit %d, want %d:\n%s", c, ExitUsage, r.stderr.String())
		}
		e := r.stderr.String()
		if !strings.Contains(e, args[0]) || !strings.Contains(e, args[1]) || !strings.Contains(e, "send the folder that holds them instead, or rename one") {
			t.Errorf("no hint naming both:\n%s", e)
		}
		if r.stdout.String() != "" {
			t.Errorf("offered anyway:\n%s", r.stdout.String())
		}
	}
}

func mkdir(t *testing.T, p string) string {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSendManyFiles sends a tree of 3,000 tiny files end to end (bench/trees
// goes to 100,000; TestSourceFDBudget in chunker covers more files than
// the sender keeps open), and both ends print a few lines,
// not one per file.
func TestSendManyFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("3,000 files")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const n = 3000
	top := filepath.Join(t.TempDir(), "many")
	for d := range 30 {
		dir := mkdir(t, filepath.Join(top, fmt.Sprintf("d%02d", d)))
		for f := range n / 30 {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", f)), fmt.Appendf(nil, "%d/%d\n", d, f), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	snd, rcv, out := sendOnce(ctx, t, top)
	got := 0
	err := filepath.WalkDir(filepath.Join(out, "many"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join(out, "many"), p)
		var dn, fn int
		if _, err := fmt.Sscanf(rel, "d%02d/f%03d", &dn, &fn); err != nil {
			return fmt.Errorf("%s: %v", rel, err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if string(b) != fmt.Sprintf("%d/%d\n", dn, fn) {
			return fmt.Errorf("%s holds %q", rel, b)
		}
		got++
		return nil
	})
	if err != nil || got != n {
		t.Fatalf("%d of %d files arrived intact (%v)", got, n, err)
	}
	for side, r := range map[string]*run{"Sending": snd, "Receiving": rcv} {
		o := r.stdout.String()
		if !strings.Contains(o, fmt.Sprintf("%s %d files in 31 folders, ", side, n)) || strings.Count(o, "\n") > 30 {
			t.Errorf("%s: not a short summary:\n%s", side, o)
		}
	}
}

// TestSendEmptyFolder: a folder with nothing but an empty folder in it
// arrives as such: no chunk to move at all.
func TestSendEmptyFolder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	top := mkdir(t, filepath.Join(t.TempDir(), "empty", "inner"))
	_, rcv, out := sendOnce(ctx, t, filepath.Dir(top))
	if st, err := os.Stat(filepath.Join(out, "empty", "inner")); err != nil || !st.IsDir() {
		t.Fatalf("empty/inner: %v", err)
	}
	if o := rcv.stdout.String(); !strings.Contains(o, "Receiving 0 files in 2 folders, 0 B") {
		t.Errorf("no summary:\n%s", o)
	}
}

// sendOnce sends paths to one receiver, with the embedded server, and
// checks that both ends succeed; it returns both runs and recv's --out.
func sendOnce(ctx context.Context, t *testing.T, paths ...string) (snd, rcv *run, out string) {
	t.Helper()
	snd = start(ctx, nil, append([]string{"send", "--listen", "127.0.0.1:0", "--max-receivers", "1"}, paths...)...)
	roomID, password, url := snd.offer(t)
	out = t.TempDir()
	rcv = start(ctx, map[string]string{"P2PXFER_PASSWORD": password}, "recv", "--no-seed", "--signal", url, "--out", out, roomID)
	if c := rcv.wait(t); c != ExitOK {
		t.Fatalf("recv exit %d:\n%s\n%s", c, rcv.stdout.String(), rcv.stderr.String())
	}
	if c := snd.wait(t); c != ExitOK {
		t.Fatalf("send exit %d:\n%s", c, snd.stderr.String())
	}
	return snd, rcv, out
}
