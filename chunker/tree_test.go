package chunker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// copyAll moves every chunk of s into a Writer for dst, in shuffled
// order, and finishes it.
func copyAll(t *testing.T, s *Source, dst string) {
	t.Helper()
	m := s.Manifest()
	w, err := CreateWriter(dst, m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	buf := make([]byte, m.ChunkSize)
	for _, i := range shuffled(m.NumChunks(), 7) {
		b, err := s.ReadChunk(i, buf)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteChunk(i, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
}

// mkTree builds the tree the tests send: nested folders, an empty one
// nested deeper, names with spaces and unicode, an executable, a symbolic
// link to a file inside and one to a folder outside, and a named pipe.
func mkTree(t *testing.T) (top string, data map[string][]byte) {
	t.Helper()
	base := t.TempDir()
	top = filepath.Join(base, "photos")
	data = map[string][]byte{
		"a.txt":                  randBytes(1, 3*testCS+5),
		"sub dir/ünï cödé.bin":   randBytes(2, 100),
		"sub dir/deeper/z":       {},
		"run.sh":                 []byte("#!/bin/sh\necho hi\n"),
		"sub dir/deeper/x/y.dat": randBytes(3, testCS),
	}
	for name, b := range data {
		writeFile(t, filepath.Join(top, filepath.FromSlash(name)), b)
	}
	if err := os.Chmod(filepath.Join(top, "run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"empty", "sub dir/deeper/also empty/inner"} {
		if err := os.MkdirAll(filepath.Join(top, filepath.FromSlash(d)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	outside := filepath.Join(base, "outside")
	writeFile(t, filepath.Join(outside, "secret"), []byte("secret"))
	if err := os.Symlink(outside, filepath.Join(top, "out-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.txt", filepath.Join(top, "in-link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(top, "sub dir", "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	return top, data
}

// TestOpenTree sends a folder and rebuilds it: nested and empty folders,
// unicode names and the executable bit arrive; links and the named pipe
// are left out and reported, and nothing outside the tree is read.
func TestOpenTree(t *testing.T) {
	top, data := mkTree(t)
	type skip struct {
		path string
		why  error
	}
	var skipped []skip
	s, err := OpenTree(context.Background(), []string{top}, TreeOptions{ChunkSize: testCS,
		OnSkip: func(p string, why error) { skipped = append(skipped, skip{p, why}) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := s.Manifest()
	var names []string
	for _, f := range m.Files {
		names = append(names, f.Name)
		if f.Exec != (f.Name == "photos/run.sh") {
			t.Errorf("%s: exec %v", f.Name, f.Exec)
		}
	}
	// Files of a folder before its subfolders, each in name order.
	want := []string{"photos/a.txt", "photos/run.sh", "photos/sub dir/ünï cödé.bin", "photos/sub dir/deeper/z", "photos/sub dir/deeper/x/y.dat"}
	if !slices.Equal(names, want) {
		t.Errorf("files %q, want %q", names, want)
	}
	if wantDirs := []string{"photos/empty", "photos/sub dir/deeper/also empty/inner"}; !slices.Equal(m.Dirs, wantDirs) {
		t.Errorf("dirs %q, want %q", m.Dirs, wantDirs)
	}
	wantSkips := map[string]error{"in-link": ErrSymlink, "out-link": ErrSymlink, "sub dir/fifo": ErrNotRegular}
	if len(skipped) != len(wantSkips) {
		t.Errorf("skipped %v, want %v", skipped, wantSkips)
	}
	for _, sk := range skipped {
		rel, _ := filepath.Rel(top, sk.path)
		if w, ok := wantSkips[filepath.ToSlash(rel)]; !ok || !errors.Is(sk.why, w) {
			t.Errorf("skipped %s (%v)", sk.path, sk.why)
		}
	}

	dst := t.TempDir()
	copyAll(t, s, dst)
	for name, b := range data {
		p := filepath.Join(dst, "photos", filepath.FromSlash(name))
		if !bytes.Equal(mustRead(t, p), b) {
			t.Errorf("%s differs", name)
		}
	}
	for _, d := range m.Dirs {
		if st, err := os.Stat(filepath.Join(dst, d)); err != nil || !st.IsDir() {
			t.Errorf("empty folder %s: %v", d, err)
		}
	}
	for name, exec := range map[string]bool{"photos/run.sh": true, "photos/a.txt": false} {
		st, err := os.Stat(filepath.Join(dst, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm()&0o100 != 0; got != exec {
			t.Errorf("%s: mode %v, want executable %v", name, st.Mode(), exec)
		}
	}
	for _, gone := range []string{"photos/in-link", "photos/out-link", "photos/sub dir/fifo"} {
		if exists(filepath.Join(dst, gone)) {
			t.Errorf("%s arrived", gone)
		}
	}
	if l := leftovers(t, dst); len(l) > 0 {
		t.Errorf("left %v", l)
	}
}

// TestOpenTreeMixed sends a file and two folders at once, and refuses two
// paths that would arrive under one name, naming both.
func TestOpenTreeMixed(t *testing.T) {
	base := t.TempDir()
	writeFile(t, filepath.Join(base, "one", "docs", "a"), []byte("a"))
	writeFile(t, filepath.Join(base, "two", "docs", "b"), []byte("b"))
	writeFile(t, filepath.Join(base, "two", "notes"), []byte("n"))
	writeFile(t, filepath.Join(base, "one", "notes"), []byte("N"))
	s, err := OpenTree(context.Background(), []string{
		filepath.Join(base, "one", "docs"), filepath.Join(base, "two", "notes"), filepath.Join(base, "one") + "/"}, TreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range s.Manifest().Files {
		names = append(names, f.Name)
	}
	s.Close()
	if want := []string{"docs/a", "notes", "one/notes", "one/docs/a"}; !slices.Equal(names, want) {
		t.Errorf("files %q, want %q", names, want)
	}

	for _, c := range [][]string{
		{filepath.Join(base, "one", "docs"), filepath.Join(base, "two", "docs")},   // two folders
		{filepath.Join(base, "one", "notes"), filepath.Join(base, "two", "notes")}, // two files
	} {
		_, err := OpenTree(context.Background(), c, TreeOptions{})
		if !errors.Is(err, ErrDuplicateName) || !strings.Contains(err.Error(), c[0]) || !strings.Contains(err.Error(), c[1]) {
			t.Errorf("%q: got %v, want ErrDuplicateName naming both", c, err)
		}
	}
	if _, err := OpenTree(context.Background(), []string{"/"}, TreeOptions{}); !errors.Is(err, ErrBadName) {
		t.Errorf("/: got %v", err)
	}
	// OpenSource keeps refusing folders.
	if _, err := OpenSource(context.Background(), []string{filepath.Join(base, "one")}, 0, nil); !errors.Is(err, ErrIsDir) {
		t.Errorf("OpenSource of a folder: %v", err)
	}
}

// TestOpenTreeOnlyEmpty sends a folder that holds only an empty folder.
func TestOpenTreeOnlyEmpty(t *testing.T) {
	top := filepath.Join(t.TempDir(), "e")
	if err := os.MkdirAll(filepath.Join(top, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := OpenTree(context.Background(), []string{top}, TreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if m := s.Manifest(); len(m.Files) != 0 || !slices.Equal(m.Dirs, []string{"e/x"}) {
		t.Fatalf("files %v dirs %q", m.Files, m.Dirs)
	}
	dst := t.TempDir()
	copyAll(t, s, dst)
	if st, err := os.Stat(filepath.Join(dst, "e", "x")); err != nil || !st.IsDir() {
		t.Fatalf("e/x: %v", err)
	}
}

// TestWriterDirTaken: a file where an empty folder of the manifest goes is
// refused before anything is created.
func TestWriterDirTaken(t *testing.T) {
	top := filepath.Join(t.TempDir(), "t")
	writeFile(t, filepath.Join(top, "f"), []byte("f"))
	if err := os.MkdirAll(filepath.Join(top, "d", "e"), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := OpenTree(context.Background(), []string{top}, TreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dst := t.TempDir()
	writeFile(t, filepath.Join(dst, "t", "d"), []byte("in the way"))
	_, err = CreateWriter(dst, s.Manifest(), WriterOptions{Force: true})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("got %v, want ErrExists", err)
	}
	if l := leftovers(t, dst); len(l) > 0 {
		t.Errorf("left %v", l)
	}
}

// TestSourceFDBudget: a tree of more files than the descriptor budget is
// served with at most the budget open, and a file that was closed to make
// room and then replaced by another of the same size and time is noticed.
func TestSourceFDBudget(t *testing.T) {
	old := maxOpenSources
	maxOpenSources = 4
	t.Cleanup(func() { maxOpenSources = old })
	top := filepath.Join(t.TempDir(), "many")
	const n = 40
	datas := map[string][]byte{}
	for i := range n {
		name := fmt.Sprintf("d%d/f%02d", i%3, i)
		datas["many/"+name] = randBytes(uint64(i), 100+i*50)
		writeFile(t, filepath.Join(top, filepath.FromSlash(name)), datas["many/"+name])
	}
	s, err := OpenTree(context.Background(), []string{top}, TreeOptions{ChunkSize: testCS})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := s.Manifest()
	buf := make([]byte, testCS)
	for _, i := range shuffled(m.NumChunks(), 3) {
		b, err := s.ReadChunk(i, buf)
		if err != nil {
			t.Fatal(err)
		}
		if !m.Chunk(i).Verify(b) {
			t.Fatalf("chunk %d wrong", i)
		}
		if len(s.open) > maxOpenSources {
			t.Fatalf("%d files open, budget %d", len(s.open), maxOpenSources)
		}
	}
	// Replace a closed file by another with the same size and mtime.
	fi := slices.IndexFunc(s.files, func(sf srcFile) bool { return sf.f == nil })
	name := m.Files[fi].Name
	p := filepath.Join(filepath.Dir(top), filepath.FromSlash(name))
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	// Written aside and renamed over, so it cannot reuse the inode.
	writeFile(t, p+".new", bytes.Repeat([]byte("x"), int(st.Size())))
	if err := os.Chtimes(p+".new", time.Time{}, st.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".new", p); err != nil {
		t.Fatal(err)
	}
	first, _ := m.FileChunks(fi)
	if _, err := s.ReadChunk(first, buf); !errors.Is(err, ErrSourceChanged) || !strings.Contains(err.Error(), p) {
		t.Errorf("replaced file: got %v, want ErrSourceChanged naming %s", err, p)
	}
	// A named pipe in its place is refused without blocking.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadChunk(first, buf); !errors.Is(err, ErrSourceChanged) {
		t.Errorf("pipe: got %v", err)
	}
	// So is a symbolic link, even to a file of the tree.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(p)+".kept", p); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p+".kept", datas[name])
	if _, err := s.ReadChunk(first, buf); !errors.Is(err, ErrSourceChanged) {
		t.Errorf("symbolic link: got %v", err)
	}
	s.Close()
	if _, err := s.ReadChunk(0, buf); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

// TestTreeMemoryPerFile: what a tree costs in memory grows with its file
// count by a few hundred bytes a file on each side: the sender's Source
// (its manifest and what it keeps to reopen each file) and the receiver's
// decoded manifest and Writer. Descriptors stay within the budgets.
func TestTreeMemoryPerFile(t *testing.T) {
	if testing.Short() {
		t.Skip("3,000 files")
	}
	const n = 3000
	top := filepath.Join(t.TempDir(), "tree")
	for i := range n {
		if i%100 == 0 {
			if err := os.MkdirAll(filepath.Join(top, fmt.Sprintf("d%02d", i/100)), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(top, fmt.Sprintf("d%02d/file %04d.txt", i/100, i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	heap := func() int64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	before := heap()
	s, err := OpenTree(context.Background(), []string{top}, TreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	send := heap() - before
	enc, err := EncodeManifest(s.Manifest())
	if err != nil {
		t.Fatal(err)
	}
	before = heap()
	m, err := DecodeManifest(enc)
	if err != nil {
		t.Fatal(err)
	}
	w, err := CreateWriter(t.TempDir(), m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	recv := heap() - before
	runtime.KeepAlive(s)
	t.Logf("per file: send %d B, recv %d B; manifest %d B", send/n, recv/n, len(enc)/n)
	const limit = 1024 // bytes a file, each side
	if send > limit*n || recv > limit*n {
		t.Errorf("per file: send %d B, recv %d B; want at most %d", send/n, recv/n, limit)
	}
}

// TestTreeResume: a tree received in part, its Writer closed, resumes in a
// new Writer from the state kept next to each nested part file, and the
// folders and the executable bit come out as if it had never stopped.
func TestTreeResume(t *testing.T) {
	top, data := mkTree(t)
	s, err := OpenTree(context.Background(), []string{top}, TreeOptions{ChunkSize: testCS})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := s.Manifest()
	dst := t.TempDir()
	w, err := CreateWriter(dst, m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, testCS)
	order := shuffled(m.NumChunks(), 5)
	half := order[:len(order)/2]
	var want int64
	for _, i := range half {
		b, err := s.ReadChunk(i, buf)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteChunk(i, b); err != nil {
			t.Fatal(err)
		}
		want += int64(len(b))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w, err = CreateWriter(dst, m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got := w.Verified(); got != want {
		t.Fatalf("resumed with %d bytes verified, want %d", got, want)
	}
	for _, i := range w.Missing() {
		b, err := s.ReadChunk(i, buf)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteChunk(i, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	for name, b := range data {
		if !bytes.Equal(mustRead(t, filepath.Join(dst, "photos", filepath.FromSlash(name))), b) {
			t.Errorf("%s differs", name)
		}
	}
	if st, err := os.Stat(filepath.Join(dst, "photos", "run.sh")); err != nil || st.Mode().Perm()&0o100 == 0 {
		t.Errorf("run.sh not executable: %v", err)
	}
	if st, err := os.Stat(filepath.Join(dst, "photos", "empty")); err != nil || !st.IsDir() {
		t.Errorf("empty folder: %v", err)
	}
	if l := leftovers(t, dst); len(l) > 0 {
		t.Errorf("left %v", l)
	}
}

// A fresh download creates each part file at its first chunk, not all of
// them before the first chunk is asked for (an empty file at Finish); a
// part that appears meanwhile under one of its names belongs to someone
// else and is refused, untouched.
func TestWriterCreatesPartsAtFirstWrite(t *testing.T) {
	dst := t.TempDir()
	names := []string{"top/a", "top/sub/b", "top/sub/c", "top/sub/empty", "top/z"}
	datas := [][]byte{randBytes(1, 100), randBytes(2, 2*testCS), randBytes(3, 10), {}, randBytes(4, 5)}
	m := manifestOf(t, testCS, names, datas)
	w, err := CreateWriter(dst, m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	part := func(fi int) string { return filepath.Join(dst, filepath.FromSlash(PartName(names[fi]))) }
	// The first part is created at once: its lock is what a second
	// Writer of the same files meets.
	for fi, want := range []bool{true, false, false, false, false} {
		if exists(part(fi)) != want {
			t.Errorf("after CreateWriter, part of %s exists: %v, want %v", names[fi], !want, want)
		}
	}
	first, _ := m.FileChunks(1)
	if err := w.WriteChunk(first, chunkData(m, datas, first)); err != nil {
		t.Fatal(err)
	}
	if !exists(part(1)) || exists(part(2)) {
		t.Errorf("after b's first chunk: part of b %v (want true), of c %v (want false)", exists(part(1)), exists(part(2)))
	}
	// c's part appears, made by someone else.
	writeFile(t, part(2), []byte("theirs"))
	c, _ := m.FileChunks(2)
	if err := w.WriteChunk(c, chunkData(m, datas, c)); !errors.Is(err, ErrInUse) {
		t.Fatalf("WriteChunk into a part that appeared = %v, want ErrInUse", err)
	}
	if got := string(mustRead(t, part(2))); got != "theirs" {
		t.Fatalf("the part that appeared was changed: %q", got)
	}
	if err := os.Remove(part(2)); err != nil {
		t.Fatal(err)
	}
	for i := range m.NumChunks() {
		if err := w.WriteChunk(i, chunkData(m, datas, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	for fi, name := range names {
		if got := mustRead(t, filepath.Join(dst, filepath.FromSlash(name))); !bytes.Equal(got, datas[fi]) {
			t.Errorf("%s differs", name)
		}
	}
	if l := leftovers(t, dst); len(l) > 0 {
		t.Errorf("left %v", l)
	}
}
