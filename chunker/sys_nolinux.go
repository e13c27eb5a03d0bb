//go:build !linux

package chunker

import (
	"errors"
	"os"
)

// openFSBarrier: syncfs is Linux's; elsewhere Finish fsyncs file by file.
func openFSBarrier(*os.Root) (*os.File, error) { return nil, errors.ErrUnsupported }

func syncFS(*os.File) error { return errors.ErrUnsupported }

const haveRenameNoReplace = false

// renameNoReplace: no portable no-replace rename; place falls back to a
// hard link and an unlink.
func renameNoReplace(*os.File, string, string) error { return errors.ErrUnsupported }

func dirtyBytes() (int64, bool) { return 0, false }

// startWriteback and dropCached (see flushStep) are Linux's; elsewhere the
// kernel writes back and caches as it sees fit.
var (
	startWriteback = func(*os.File, int64, int64) {}
	dropCached     = func(*os.File, int64, int64) {}
)
