package chunker

import (
	"fmt"
	"io"
)

// ReadChunk reads verified chunk i into buf[:size] and returns that slice,
// so a receiver can serve what it holds to other peers; buf must have
// capacity for the chunk (ChunkSize always suffices). i may come straight
// from a peer: out of range is ErrChunkIndex, a chunk not verified yet
// ErrNotVerified. It reads the part file, or the final file once Finish has
// put it in place, and never returns data that no longer matches the
// manifest: if the file was edited, truncated or corrupted since the chunk
// was verified, the error wraps ErrSourceChanged and names the file. After
// Close it fails with ErrClosed.
func (w *Writer) ReadChunk(i int, buf []byte) ([]byte, error) {
	w.life.RLock()
	defer w.life.RUnlock()
	if w.closed {
		return nil, fmt.Errorf("chunker read chunk %d: %w", i, ErrClosed)
	}
	if i < 0 || i >= w.m.NumChunks() {
		return nil, fmt.Errorf("chunker read chunk %d: %w (have %d)", i, ErrChunkIndex, w.m.NumChunks())
	}
	ref := w.m.Chunk(i)
	if cap(buf) < ref.Size {
		return nil, fmt.Errorf("chunker read chunk %d: %w: capacity %d, need %d", i, io.ErrShortBuffer, cap(buf), ref.Size)
	}
	if !w.Have(i) {
		return nil, fmt.Errorf("chunker read chunk %d of %q: %w", i, w.m.Files[ref.File].Name, ErrNotVerified)
	}
	name := w.diskName(ref.File)
	f, err := w.acquire(ref.File)
	if err != nil {
		return nil, fmt.Errorf("chunker read chunk %d of %q: %w", i, name, err)
	}
	buf = buf[:ref.Size]
	n, err := f.ReadAt(buf, ref.Offset)
	w.release(ref.File)
	if err == io.EOF && n < ref.Size {
		err = fmt.Errorf("%w: truncated", ErrSourceChanged)
	} else if err == io.EOF {
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("chunker read chunk %d of %q: %w", i, name, err)
	}
	// Verified once is not enough: the disk, or the user, may have changed
	// the file since, and a seed must never pass bad data on. Unlike a
	// Source's size and mtime check this also catches silent corruption.
	if !ref.Verify(buf) {
		return nil, fmt.Errorf("chunker read chunk %d of %q: %w: no longer matches the manifest", i, name, ErrSourceChanged)
	}
	return buf, nil
}

// ReadPiece reads piece p into buf[:size] and returns that slice, as
// Source.ReadPiece does. A data piece is ReadChunk(p, buf). A parity piece
// is computed from its stripe's data chunks, which must all be verified
// (ErrNotVerified otherwise; see StripeComplete) and are each checked as
// ReadChunk checks them, and the result is checked against the manifest's
// parity hash: a mismatch is ErrChunkHash, since the manifest then
// contradicts itself. The parity of the last few stripes is cached, as in a
// Source. p may come straight from a peer: out of range is ErrChunkIndex.
func (w *Writer) ReadPiece(p int, buf []byte) ([]byte, error) {
	m := w.m
	if p < 0 || p >= m.NumPieces() {
		return nil, fmt.Errorf("chunker read piece %d: %w (have %d)", p, ErrChunkIndex, m.NumPieces())
	}
	if p < m.NumChunks() {
		return w.ReadChunk(p, buf)
	}
	// life is not held while the parity is computed: ReadChunk takes it,
	// and a nested read lock deadlocks once Finish or Close waits for it.
	// Parity from the cache after a racing Close is still correct.
	w.life.RLock()
	closed := w.closed
	w.life.RUnlock()
	if closed {
		return nil, fmt.Errorf("chunker read piece %d: %w", p, ErrClosed)
	}
	if s := m.StripeOf(p); !w.StripeComplete(s) {
		return nil, fmt.Errorf("chunker read piece %d: %w: stripe %d is incomplete", p, ErrNotVerified, s)
	}
	return w.par.readParity(p, buf)
}

// StripeComplete reports whether every data chunk of stripe s is verified,
// that is whether ReadPiece can serve the stripe's parity pieces; false if
// s is out of range or FEC is off. It costs at most FEC.K bitmap lookups.
func (w *Writer) StripeComplete(s int) bool {
	m := w.m
	if s < 0 || s >= m.NumStripes() {
		return false
	}
	first := s * m.FEC.K
	end := min(first+m.FEC.K, m.NumChunks())
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := first; i < end; i++ {
		if !w.have.Has(i) {
			return false
		}
	}
	return true
}
