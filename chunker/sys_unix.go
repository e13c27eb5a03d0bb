//go:build linux || darwin || freebsd

package chunker

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// FreeSpace returns the bytes available to an unprivileged user on the file
// system holding dir. It uses the standard library's statfs so the package
// needs no extra module; on platforms without it, it returns an error
// wrapping errors.ErrUnsupported and CreateWriter skips the check.
func FreeSpace(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("chunker free space %s: %w", dir, os.NewSyscallError("statfs", err))
	}
	// Field types differ between platforms; the conversions keep one source.
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// allocated is the disk space fi's blocks take: what a part file left by
// an earlier run already holds.
func allocated(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512 // st_blocks counts 512-byte units everywhere
	}
	return 0
}

// readOnlyFS reports whether dir is on a file system mounted read-only
// (where statfs may well report no free space at all).
func readOnlyFS(dir string) bool {
	const wOK = 2
	return errors.Is(syscall.Access(dir, wOK), syscall.EROFS)
}

// lockFile takes an exclusive lock on f, without waiting: ErrInUse if
// another process (or Writer) holds it. It lasts while f, or a duplicate
// of it, is open.
func lockFile(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	switch {
	case errors.Is(err, syscall.EWOULDBLOCK):
		return ErrInUse
	case errors.Is(err, syscall.ENOLCK), errors.Is(err, syscall.ENOTSUP), errors.Is(err, syscall.EINVAL):
		return nil // a file system without locks: go without
	case err != nil:
		return os.NewSyscallError("flock", err)
	}
	return nil
}

// dupFile duplicates f's descriptor, which shares f's lock.
func dupFile(f *os.File) (*os.File, error) {
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		return nil, os.NewSyscallError("dup", err)
	}
	syscall.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// fileID identifies the inode behind fi, so a Writer can notice two
// manifest names that the file system maps to the same file (a
// case-insensitive volume, or a hard link planted in the destination).
func fileID(fi os.FileInfo) (id [2]uint64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return id, false
	}
	return [2]uint64{uint64(st.Dev), uint64(st.Ino)}, true
}

// syncDir makes a rename or link in dir durable. POSIX only promises that
// after an fsync of the directory itself.
func syncDir(root *os.Root, dir string) error {
	d, err := root.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// openNoBlock lets opening a file that turned out to be a named pipe
// return at once instead of waiting for a writer; the Stat after the open
// refuses it. On a regular file it changes nothing.
const openNoBlock = syscall.O_NONBLOCK

// openFileBudget is how many part files a Writer may keep open: half the
// descriptor limit (Go raises the soft limit to the hard one at start-up),
// at least 64 and at most 4096.
func openFileBudget() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 64
	}
	return int(min(max(rl.Cur/2, 64), 4096))
}

// openIn opens name, a base name (no separator, not ".."), in the folder
// dir with flag and perm, never following a symbolic link there: what
// dir.root.OpenFile does for a base name, through the folder's
// descriptor, and without the poller registration the files os opens go
// through (four fcntl and an epoll_ctl, failing, for a regular file), as
// many system calls as the rest of creating a small file.
func openIn(dir *folder, name string, flag int, perm os.FileMode) (*os.File, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		// Only a base name stays in dir; the callers' names are checked
		// already, this keeps it so whatever changes around them.
		return nil, &os.PathError{Op: "openat", Path: name, Err: ErrBadName}
	}
	df, err := dir.file()
	if err != nil {
		return nil, err
	}
	fd, err := unix.Openat(int(df.Fd()), name, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		return nil, &os.PathError{Op: "openat", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}
