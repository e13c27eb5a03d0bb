package chunker

import (
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"errors"
	"hash"
)

// errChainState: crypto/sha256's marshaled state is not laid out as
// stateLayout says, which a test would have caught first.
var errChainState = errors.New("crypto/sha256 state layout not understood")

// Chained chunk hashes (manifest version 2).
//
// A chunk's hash in the manifest is not the SHA-256 of the chunk alone but
// SHA-256's chaining value after the file's bytes up to the chunk's end:
// the eight words of its internal state, big-endian, as they stand after
// the last 64-byte block of the chunk. A file's last chunk has the file's
// SHA-256 itself. To check chunk k a peer resumes SHA-256 from chunk k-1's
// value (the algorithm's initial value for k = 0) at byte offset
// k*chunk_size, absorbs the chunk and compares. Each check is one pass over
// the chunk's bytes, independent of the others, and checking every chunk of
// a file proves its whole-file SHA-256 with no second pass: one SHA-256
// pass per byte on either end instead of two (the chunk's own hash and the
// whole-file hash). Forging a chunk means finding a second preimage of
// SHA-256's compression function iterated from a given value, which is what
// SHA-256's own security already rests on.
//
// Chunks other than a file's last are a whole number of 64-byte blocks
// (chunk sizes are powers of two of at least MinChunkSize), so no partial
// block is ever left out of a chaining value.
//
// The state is moved in and out through crypto/sha256's documented
// BinaryMarshaler and BinaryUnmarshaler; their layout (magic, the eight
// words, a block buffer, the length) is what stateLayout describes, and
// TestChainMatchesSHA256 fails if a Go release changes it.

// stateLayout: crypto/sha256's marshaled state.
const (
	stateMagic = "sha\x03"
	stateWords = len(stateMagic)      // offset of the eight state words
	stateLen   = stateWords + 32 + 64 // offset of the 64-bit length
	stateSize  = stateLen + 8
)

// initialChain is SHA-256's initial value (FIPS 180-4 §5.3.3): the chaining
// value before a file's first chunk.
var initialChain = func() Hash {
	var h Hash
	for i, w := range [8]uint32{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19} {
		binary.BigEndian.PutUint32(h[4*i:], w)
	}
	return h
}()

// resumeChain returns a SHA-256 that continues from chaining value prev
// after off bytes; off is a multiple of 64.
func resumeChain(prev *Hash, off int64) (hash.Hash, bool) {
	h := sha256.New()
	if off == 0 && *prev == initialChain {
		return h, true
	}
	var st [stateSize]byte
	copy(st[:], stateMagic)
	copy(st[stateWords:], prev[:])
	binary.BigEndian.PutUint64(st[stateLen:], uint64(off))
	u, ok := h.(encoding.BinaryUnmarshaler)
	return h, ok && u.UnmarshalBinary(st[:]) == nil
}

// chainValue returns h's chaining value, a chunk's hash; h has absorbed a
// whole number of blocks. OpenSource takes one at every chunk boundary of
// a single SHA-256 pass over the file, whose Sum is the last chunk's hash.
func chainValue(h hash.Hash) (Hash, bool) {
	a, ok := h.(encoding.BinaryAppender)
	if !ok {
		return Hash{}, false
	}
	var buf [stateSize]byte
	st, err := a.AppendBinary(buf[:0])
	if err != nil || len(st) != stateSize || string(st[:stateWords]) != stateMagic {
		return Hash{}, false
	}
	return Hash(st[stateWords : stateWords+HashSize]), true
}

// Verify reports whether data is this chunk: its size and its place in the
// file's hash chain. It needs nothing but the chunk and the manifest, so
// chunks can be checked in any order and in parallel.
func (c ChunkRef) Verify(data []byte) bool {
	if len(data) != c.Size {
		return false
	}
	h, ok := resumeChain(&c.Prev, c.Offset)
	if !ok {
		return false
	}
	h.Write(data)
	if c.Last {
		return Hash(h.Sum(nil)) == c.Hash
	}
	v, ok := chainValue(h)
	return ok && v == c.Hash
}
