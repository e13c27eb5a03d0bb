package chunker

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestKernelAtLeast(t *testing.T) {
	for _, c := range []struct {
		release string
		want    bool
	}{
		{"5.8.0", true},
		{"5.7.19-generic", false},
		{"6.1.0-18-amd64", true},
		{"5.10-rc1", true},
		{"4.19.0", false},
		{"5.8-rc3", true},
		{"10.0", true},
		{"5", false},
		{"", false},
		{"x.y", false},
	} {
		if got := kernelAtLeast(c.release, 5, 8); got != c.want {
			t.Errorf("kernelAtLeast(%q, 5, 8) = %v", c.release, got)
		}
	}
}

// TestSyncFSFinish: on a kernel whose syncfs reports errors, a Writer for
// many files takes the syncfs path by default, and places every file.
func TestSyncFSFinish(t *testing.T) {
	if !syncfsReportsErrors() {
		t.Skip("syncfs does not report write-back errors on this kernel")
	}
	dst := t.TempDir()
	var names []string
	var datas [][]byte
	for i := range syncFSMin + 8 {
		names = append(names, fmt.Sprintf("d%d/f%03d", i%3, i))
		datas = append(datas, randBytes(uint64(i), 100+i))
	}
	m := manifestOf(t, testCS, names, datas)
	w, err := CreateWriter(dst, m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.barrier == nil {
		t.Fatal("no syncfs barrier on a kernel that supports it")
	}
	writeAll(t, w, m, datas, shuffled(m.NumChunks(), 3))
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		if !bytes.Equal(mustRead(t, filepath.Join(dst, n)), datas[i]) {
			t.Fatalf("%s differs", n)
		}
	}
	if l := leftovers(t, dst); len(l) > 0 {
		t.Errorf("left %v", l)
	}
}

func TestRenameNoReplace(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a"), []byte("new"))
	writeFile(t, filepath.Join(dir, "b"), []byte("precious"))
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	err = renameNoReplace(d, "a", "b")
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skip("file system without RENAME_NOREPLACE")
	}
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("over an existing file: %v", err)
	}
	if string(mustRead(t, filepath.Join(dir, "b"))) != "precious" {
		t.Fatal("replaced")
	}
	if err := renameNoReplace(d, "a", "c"); err != nil {
		t.Fatal(err)
	}
	if string(mustRead(t, filepath.Join(dir, "c"))) != "new" || exists(filepath.Join(dir, "a")) {
		t.Fatal("not renamed")
	}
}

func TestParseDirty(t *testing.T) {
	good := []byte("MemTotal:       24683528 kB\nDirty:              1200 kB\nWriteback:            24 kB\nAnonPages: 1 kB\n")
	if n, ok := parseDirty(good); !ok || n != (1200+24)<<10 {
		t.Errorf("parseDirty = %d, %v", n, ok)
	}
	for _, bad := range []string{
		"Dirty: 12 kB\n",                   // no Writeback
		"Dirty: 12 MB\nWriteback: 0 kB\n",  // unknown unit
		"Dirty: -1 kB\nWriteback: 0 kB\n",  // negative
		"Dirty: x kB\nWriteback: 0 kB\n",   // not a number
		"Dirty: 1 2 kB\nWriteback: 0 kB\n", // extra field
		"",
	} {
		if _, ok := parseDirty([]byte(bad)); ok {
			t.Errorf("parseDirty(%q) accepted", bad)
		}
	}
	if _, ok := dirtyBytes(); !ok {
		t.Error("cannot read this system's /proc/meminfo")
	}
}

// TestDropCached checks write-behind's system calls on a real file: after
// write-back started by startWriteback and an fsync, dropCached leaves none
// of the range in the page cache (mincore) and the rest untouched.
func TestDropCached(t *testing.T) {
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type == unix.TMPFS_MAGIC {
		t.Skip("tmpfs pages are the file: nothing to drop")
	}
	// Large enough that the halves are whole folios: the kernel caches
	// files in folios of up to 2 MiB and drops none it only partly covers.
	const size = 8 << 20
	data := randBytes(3, size)
	f, err := os.Create(filepath.Join(dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	startWriteback(f, 0, size/2)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	dropCached(f, 0, size/2)
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, size/os.Getpagesize())
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal("mincore:", e)
	}
	half := len(vec) / 2
	for i, v := range vec {
		if in := v&1 != 0; in != (i >= half) {
			t.Fatalf("page %d resident %v; want the first half dropped, the rest cached", i, in)
		}
	}
	if got := mustRead(t, f.Name()); !bytes.Equal(got, data) {
		t.Error("content changed")
	}
}
