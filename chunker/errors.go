package chunker

import "errors"

// subError is a sentinel that is also its parent sentinel under errors.Is, so
// a caller that only cares about "the manifest is bad" need not know every
// specific reason.
type subError struct {
	msg    string
	parent error
}

func (e *subError) Error() string { return e.msg }
func (e *subError) Unwrap() error { return e.parent }

// Sentinel errors. Functions wrap them with the operation and the file or
// index concerned; test with errors.Is.
var (
	// ErrBadManifest: a manifest (from the network or built locally) breaks
	// a rule of the format or one of its limits. Every manifest validation
	// error matches it, alongside any more specific sentinel below.
	ErrBadManifest = errors.New("invalid manifest")

	// ErrManifestVersion: the manifest's format version is not
	// ManifestVersion; the peer runs an incompatible p2pxfer. Also matches
	// ErrBadManifest.
	ErrManifestVersion error = &subError{"unsupported manifest version", ErrBadManifest}

	// ErrManifestTooLarge: the manifest exceeds MaxManifestSize encoded, or
	// MaxFiles, MaxChunks or MaxFileSize. Also matches ErrBadManifest.
	ErrManifestTooLarge error = &subError{"manifest too large", ErrBadManifest}

	// ErrInvalidChunkSize: a chunk size is not a power of two between
	// MinChunkSize and MaxChunkSize.
	ErrInvalidChunkSize = errors.New("invalid chunk size")

	// ErrInvalidFEC: a FEC layout is neither off nor K+M with K in
	// [1, MaxFECData] and M in [1, MaxFECParity], or a manifest's fec and
	// parity fields are malformed.
	ErrInvalidFEC = errors.New("invalid FEC layout")

	// ErrBadName: a file name is not a safe relative path (see CheckName) or
	// is reserved for our own partial and state files.
	ErrBadName = errors.New("invalid file name")

	// ErrDuplicateName: two files would land on the same name, or one name
	// is a directory of another ("a" and "a/b").
	ErrDuplicateName = errors.New("duplicate file name")

	// ErrIsDir: a path given to OpenSource is a directory (OpenTree sends
	// directories).
	ErrIsDir = errors.New("is a directory")

	// ErrSymlink: an entry of a tree is a symbolic link, which OpenTree
	// does not follow (OnSkip hears of it).
	ErrSymlink = errors.New("symbolic link not followed")

	// ErrNotRegular: a path is a device, pipe, socket or other non-regular
	// file, which cannot be hashed once and re-read by offset.
	ErrNotRegular = errors.New("not a regular file")

	// ErrSourceChanged: a source file's size or modification time changed
	// after it was hashed, so its chunks no longer match the manifest; or a
	// file a Writer serves from no longer holds the chunk it verified
	// (edited, truncated or corrupted on disk since).
	ErrSourceChanged = errors.New("file changed since it was hashed")

	// ErrChunkIndex: a chunk index is outside [0, NumChunks), a piece index
	// outside [0, NumPieces) or a stripe index outside [0, NumStripes), or
	// a piece given to Reconstruct is not of the stripe asked for.
	ErrChunkIndex = errors.New("chunk index out of range")

	// ErrChunkSize: chunk data is not exactly the chunk's size.
	ErrChunkSize = errors.New("wrong chunk size")

	// ErrChunkHash: chunk data does not match its SHA-256 in the manifest;
	// nothing was written. The peer that sent it is faulty or hostile.
	// Reconstruct and Writer.ReadPiece also report parity that contradicts
	// verified data with it: the manifest's sender is at fault.
	ErrChunkHash = errors.New("chunk hash mismatch")

	// ErrNotVerified: a Writer was asked to serve a chunk it has not
	// verified yet, or a parity piece of a stripe whose data chunks it does
	// not all hold (see Writer.StripeComplete). The peer asked for a piece
	// it was not offered.
	ErrNotVerified = errors.New("not verified yet")

	// ErrNotEnoughPieces: Reconstruct got fewer valid pieces of a stripe
	// than it has data chunks, so the missing chunks cannot be rebuilt yet.
	ErrNotEnoughPieces = errors.New("not enough pieces to rebuild the stripe")

	// ErrIncomplete: Finish was called before every chunk was verified.
	ErrIncomplete = errors.New("transfer incomplete")

	// ErrExists: a final file already exists and WriterOptions.Force is not
	// set (the CLI's --force), or it is a directory, which even Force does
	// not replace; nothing was overwritten.
	ErrExists = errors.New("already exists")

	// ErrNoSpace: the destination's file system has less free space than
	// the transfer still needs.
	ErrNoSpace = errors.New("not enough free space")

	// ErrReadOnly: the destination is on a file system mounted read-only.
	ErrReadOnly = errors.New("read-only file system")

	// ErrInUse: another Writer, in this process or another, is writing
	// the same file (two downloads into one directory at once).
	ErrInUse = errors.New("another download is writing this file")

	// ErrClosed: the Source or Writer was closed.
	ErrClosed = errors.New("closed")
)

// PathError is a failure of Op (open: gathering and hashing what to send;
// create writer: preparing the destination) about a local Path, "" when
// it is about all of them. Its text is the package's usual "chunker op
// path: err"; a program that shows errors to people can print Path and Err
// alone.
type PathError struct {
	Op, Path string
	Err      error
}

func (e *PathError) Error() string {
	if e.Path == "" {
		return "chunker " + e.Op + ": " + e.Err.Error()
	}
	return "chunker " + e.Op + " " + e.Path + ": " + e.Err.Error()
}

func (e *PathError) Unwrap() error { return e.Err }

// InWords is e without the operation: "path: err", or err alone.
func (e *PathError) InWords() string {
	if e.Path == "" {
		return e.Err.Error()
	}
	return e.Path + ": " + e.Err.Error()
}

// PathError's operations.
const (
	OpOpen         = "open"
	OpCreateWriter = "create writer"
)

func pathError(op, path string, err error) error { return &PathError{Op: op, Path: path, Err: err} }
