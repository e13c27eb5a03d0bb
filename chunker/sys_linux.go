//go:build linux

package chunker

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// openFSBarrier opens the destination directory for syncFS. It is opened
// when the Writer is created because Linux samples a file system's
// write-back error state when a descriptor is opened: syncfs on it then
// reports every error since, including those of pages written back early.
func openFSBarrier(root *os.Root) (*os.File, error) {
	if !syncfsReportsErrors() {
		return nil, errors.ErrUnsupported
	}
	return root.Open(".")
}

// syncFS flushes the whole file system holding barrier, with a single
// cache flush of the disk, where fsyncing a thousand small files costs a
// thousand (each fsync on ext4 without a journal flushes the disk cache).
func syncFS(barrier *os.File) error {
	if barrier == nil {
		return errors.ErrUnsupported
	}
	rc, err := barrier.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Syncfs(int(fd)) }); err != nil {
		return err
	}
	return os.NewSyscallError("syncfs", serr)
}

// dirtyBytes is how much data waits to be written back system-wide
// (Dirty plus Writeback in /proc/meminfo); syncfs waits for all of it on
// its file system, not only for ours.
func dirtyBytes() (int64, bool) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	return parseDirty(b)
}

func parseDirty(meminfo []byte) (int64, bool) {
	var sum int64
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(meminfo))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != "Dirty" && name != "Writeback" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, false
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 {
			return 0, false
		}
		sum += kb << 10
		found++
	}
	return sum, found == 2
}

// syncfsReportsErrors: before Linux 5.8, syncfs returned success even when
// write-back failed, so it cannot stand in for fsync there.
var syncfsReportsErrors = sync.OnceValue(func() bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	return kernelAtLeast(unix.ByteSliceToString(u.Release[:]), 5, 8)
})

// kernelAtLeast parses the "major.minor" prefix of a Linux release string
// such as "6.1.0-18-amd64".
func kernelAtLeast(release string, major, minor int) bool {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	minorDigits := parts[1]
	if i := strings.IndexFunc(minorDigits, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minorDigits = minorDigits[:i] // "8-rc1"
	}
	mi, err2 := strconv.Atoi(minorDigits)
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// haveRenameNoReplace: renameat2 exists (since Linux 3.15; file systems
// without RENAME_NOREPLACE refuse it, and place falls back).
const haveRenameNoReplace = true

// renameNoReplace renames oldBase to newBase inside the directory dir,
// failing with fs.ErrExist rather than replacing newBase: one directory
// operation where a hard link and an unlink take two, which places a
// thousand files in about a third of the time. Where the file system does
// not support it, the error wraps errors.ErrUnsupported.
func renameNoReplace(dir *os.File, oldBase, newBase string) error {
	rc, err := dir.SyscallConn()
	if err != nil {
		return err
	}
	var rerr error
	if err := rc.Control(func(fd uintptr) {
		rerr = unix.Renameat2(int(fd), oldBase, int(fd), newBase, unix.RENAME_NOREPLACE)
	}); err != nil {
		return err
	}
	switch {
	case rerr == nil:
		return nil
	case errors.Is(rerr, unix.EINVAL), errors.Is(rerr, unix.ENOSYS), errors.Is(rerr, unix.EOPNOTSUPP):
		return errors.ErrUnsupported
	case errors.Is(rerr, unix.EEXIST):
		return &os.LinkError{Op: "renameat2", Old: oldBase, New: newBase, Err: fs.ErrExist}
	}
	return &os.LinkError{Op: "renameat2", Old: oldBase, New: newBase, Err: rerr}
}

// startWriteback asks the kernel to begin writing [off, off+n) of f back
// and returns without waiting (see flushStep). Variables so tests can
// watch the calls.
var startWriteback = func(f *os.File, off, n int64) {
	if n > 0 { // 0 would mean "to the end of the file"
		withFD(f, func(fd int) { unix.SyncFileRange(fd, off, n, unix.SYNC_FILE_RANGE_WRITE) })
	}
}

// dropCached drops [off, off+n) of f from the page cache; pages still
// dirty or under write-back stay.
var dropCached = func(f *os.File, off, n int64) {
	if n > 0 { // 0 would mean "to the end of the file"
		withFD(f, func(fd int) { unix.Fadvise(fd, off, n, unix.FADV_DONTNEED) })
	}
}

func withFD(f *os.File, fn func(fd int)) {
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { fn(int(fd)) })
	}
}
