//go:build !(linux || darwin || freebsd)

package chunker

import (
	"errors"
	"fmt"
	"os"
)

// FreeSpace returns the bytes available on the file system holding dir. This
// platform has no implementation yet: the error wraps errors.ErrUnsupported
// and CreateWriter skips its free-space check.
func FreeSpace(dir string) (int64, error) {
	return 0, fmt.Errorf("chunker free space %s: %w", dir, errors.ErrUnsupported)
}

// fileID is unavailable here; the alias check is skipped.
func fileID(os.FileInfo) (id [2]uint64, ok bool) { return id, false }

// syncDir is a no-op where directories cannot be opened for fsync (Windows
// commits renames through the file system's journal).
func syncDir(*os.Root, string) error { return nil }

// openNoBlock: no named pipes to guard against here.
const openNoBlock = 0

// openFileBudget: no descriptor limit to ask for here; a moderate budget.
func openFileBudget() int { return 1024 }

// allocated is unknown here: count nothing as held already.
func allocated(os.FileInfo) int64 { return 0 }

// readOnlyFS is unknown here; the first write says so.
func readOnlyFS(string) bool { return false }

// lockFile: no advisory locks here.
func lockFile(*os.File) error { return nil }

// dupFile: nothing to hold a lock with.
func dupFile(*os.File) (*os.File, error) { return nil, nil }

// openIn opens name, a base name, in the folder dir (see sys_unix.go).
func openIn(dir *folder, name string, flag int, perm os.FileMode) (*os.File, error) {
	return dir.root.OpenFile(name, flag, perm)
}
