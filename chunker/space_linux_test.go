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
