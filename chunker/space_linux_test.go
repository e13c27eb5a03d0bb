package chunker

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// smallFS mounts a tmpfs of size bytes on a fresh directory, read-only if
// asked, for the tests that need a file system to fill; they skip unless
// root (or where mounting is not allowed).
func smallFS(t *testing.T, size string, flags uintptr) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", flags, "size="+size); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// The free-space check of a resume counts what the part file holds
// already, the chunks written after the last state save included: a
// download killed just after a save, on a nearly full disk, resumes.
func TestResumeSpaceCountsPart(t *testing.T) {
	dst := smallFS(t, "4m", 0)
	data := randBytes(7, 3<<20)
	m := manifestOf(t, testCS, []string{"f"}, [][]byte{data})
	w, err := CreateWriter(dst, m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if err := w.WriteChunk(i, chunkData(m, [][]byte{data}, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil { // saves the state: 4 chunks
		t.Fatal(err)
	}
	// The rest lands after the save, and the process dies.
	pf, err := os.OpenFile(filepath.Join(dst, PartName("f")), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pf.WriteAt(data[4*testCS:], 4*testCS); err != nil {
		t.Fatal(err)
	}
	if err := pf.Close(); err != nil {
		t.Fatal(err)
	}
	if free, _ := FreeSpace(dst); free >= int64(len(data))-4*testCS {
		t.Fatalf("%d bytes free: the test needs less than what the state does not claim", free)
	}
	w, err = CreateWriter(dst, m, WriterOptions{})
	if err != nil {
		t.Fatalf("resume that fits refused: %v", err)
	}
	defer w.Close()
	if v := w.Verified(); v != 4*testCS {
		t.Fatalf("resumed with %d bytes verified, want %d", v, 4*testCS)
	}
}

// A destination on a read-only file system is refused as such, not for
// want of space (statfs reports none free on some of them).
func TestReadOnlyDestination(t *testing.T) {
	dst := smallFS(t, "1m", syscall.MS_RDONLY)
	m := manifestOf(t, testCS, []string{"f"}, [][]byte{randBytes(1, 1000)})
	_, err := CreateWriter(dst, m, WriterOptions{})
	if !errors.Is(err, ErrReadOnly) || errors.Is(err, ErrNoSpace) {
		t.Fatalf("CreateWriter on a read-only file system = %v, want ErrReadOnly", err)
	}
}

// Two Writers of the same files into one directory (two recv at once):
// the second is refused before it changes anything, and once the first
// is closed a new one resumes.
func TestWriterInUse(t *testing.T) {
	dst := t.TempDir()
	datas := [][]byte{randBytes(1, 3*testCS), randBytes(2, 2*testCS)}
	m := manifestOf(t, testCS, []string{"a", "b"}, datas)
	w1, err := CreateWriter(dst, m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w1.WriteChunk(0, chunkData(m, datas, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := CreateWriter(dst, m, WriterOptions{}); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Writer of the same files = %v, want ErrInUse", err)
	}
	// The second touched nothing: the first goes on and finishes.
	for i := 1; i < m.NumChunks(); i++ {
		if err := w1.WriteChunk(i, chunkData(m, datas, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w1.Finish(); err != nil {
		t.Fatal(err)
	}
	if err := w1.Close(); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"a", "b"} {
		if got, err := os.ReadFile(filepath.Join(dst, name)); err != nil || string(got) != string(datas[i]) {
			t.Fatalf("%s after the refused second Writer: %v", name, err)
		}
	}
	if l := leftovers(t, dst); len(l) > 0 {
		t.Fatalf("left behind: %v", l)
	}
}
