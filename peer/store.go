package peer

import (
	"fmt"
	"sync"

	"github.com/p2pxfer/p2pxfer/chunker"
)

// Source is what Serve sends: a manifest and its pieces. *chunker.Source
// is the usual one.
type Source interface {
	Manifest() *chunker.Manifest
	// ReadPiece reads piece p (a data chunk or a parity piece) into buf (of
	// at least the chunk size) and returns the filled part; it is called
	// from several goroutines.
	ReadPiece(p int, buf []byte) ([]byte, error)
}

// holding is what a serving session serves: the signed manifest, which
// pieces we hold (a snapshot, then a log of what arrives later) and the
// pieces themselves. A sender holds everything from the start (full); a
// receiver's holding grows as it verifies pieces (store).
type holding interface {
	manifest() *chunker.Manifest
	signed() []byte
	// snapshot returns the pieces held now as bitmap bytes, and the log
	// position to pass to since for what arrives later.
	snapshot() (bitmap []byte, pos int)
	// since returns the pieces that arrived from log position pos on, the
	// next position, and a channel closed when more arrive (nil: never).
	since(pos int) (pieces []uint32, next int, more <-chan struct{})
	has(piece int) bool
	// readPiece is called from several goroutines at once.
	readPiece(piece int, buf []byte) ([]byte, error)
}

// full is the sender's holding: every piece, from a Source.
type full struct {
	src  Source
	blob []byte
	bm   []byte
}

func newFull(src Source, signed []byte) *full {
	n := src.Manifest().NumPieces()
	bm := chunker.NewBitmap(n)
	for i := range n {
		bm.Set(i)
	}
	return &full{src: src, blob: signed, bm: bm.Bytes()}
}

func (f *full) manifest() *chunker.Manifest                { return f.src.Manifest() }
func (f *full) signed() []byte                             { return f.blob }
func (f *full) snapshot() ([]byte, int)                    { return f.bm, 0 }
func (f *full) since(int) ([]uint32, int, <-chan struct{}) { return nil, 0, nil }
func (f *full) has(p int) bool                             { return p >= 0 && p < f.src.Manifest().NumPieces() }
func (f *full) readPiece(p int, buf []byte) ([]byte, error) {
	return f.src.ReadPiece(p, buf)
}

// store is a receiver's holding: the data chunks its Writer has verified,
// plus parity pieces. A parity piece is kept in memory while its stripe is
// incomplete (so it can be passed on before anyone can rebuild it); once
// the stripe is complete the Writer recomputes parity on demand.
type store struct {
	w    *chunker.Writer
	m    *chunker.Manifest
	blob []byte

	mu     sync.Mutex
	have   *chunker.Bitmap // over NumPieces
	log    []uint32        // pieces in the order we came to hold them
	more   chan struct{}   // closed and replaced when log grows
	parity map[int][]byte  // held parity pieces of incomplete stripes
}

func newStore(w *chunker.Writer, m *chunker.Manifest, signed []byte) *store {
	s := &store{w: w, m: m, blob: signed, have: chunker.NewBitmap(m.NumPieces()), more: make(chan struct{}), parity: map[int][]byte{}}
	var held []int
	for i := range m.NumChunks() {
		if w.Have(i) {
			held = append(held, i)
		}
	}
	s.add(held...)
	for st := range m.NumStripes() {
		s.stripeDone(st)
	}
	return s
}

func (s *store) manifest() *chunker.Manifest { return s.m }
func (s *store) signed() []byte              { return s.blob }

func (s *store) snapshot() ([]byte, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.have.Bytes(), len(s.log)
}

func (s *store) since(pos int) ([]uint32, int, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pos >= len(s.log) {
		return nil, pos, s.more
	}
	return append([]uint32(nil), s.log[pos:]...), len(s.log), s.more
}

// logLen is how many pieces the log holds: since(pos) has news while
// pos is below it.
func (s *store) logLen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.log)
}

func (s *store) has(p int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.have.Has(p)
}

// add records pieces we now hold and wakes the serving sessions.
func (s *store) add(pieces ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	grew := false
	for _, p := range pieces {
		if p < 0 || p >= s.have.Len() || s.have.Has(p) {
			continue
		}
		s.have.Set(p)
		s.log = append(s.log, uint32(p))
		grew = true
	}
	if grew {
		close(s.more)
		s.more = make(chan struct{})
	}
}

// holdParity keeps a verified parity piece (copied) until its stripe is
// complete.
func (s *store) holdParity(p int, b []byte) {
	s.mu.Lock()
	s.parity[p] = append([]byte(nil), b...)
	s.mu.Unlock()
	s.add(p)
}

// heldParity returns the parity pieces of stripe st held in memory.
func (s *store) heldParity(st chunker.StripeRef) map[int][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int][]byte{}
	for j := range st.NParity {
		if b, ok := s.parity[st.FirstParity+j]; ok {
			out[st.FirstParity+j] = b
		}
	}
	return out
}

// stripeDone is called once every data chunk of stripe st is written: its
// parity can now be recomputed, so the held copies go and every piece of
// the stripe is advertised.
func (s *store) stripeDone(st int) {
	if !s.w.StripeComplete(st) {
		return
	}
	ref := s.m.Stripe(st)
	s.mu.Lock()
	for j := range ref.NParity {
		delete(s.parity, ref.FirstParity+j)
	}
	s.mu.Unlock()
	pieces := make([]int, 0, ref.NData+ref.NParity)
	for k := range ref.NData {
		pieces = append(pieces, ref.FirstChunk+k)
	}
	for j := range ref.NParity {
		pieces = append(pieces, ref.FirstParity+j)
	}
	s.add(pieces...)
}

func (s *store) readPiece(p int, buf []byte) ([]byte, error) {
	if p >= s.m.NumChunks() && p < s.m.NumPieces() {
		s.mu.Lock()
		b, ok := s.parity[p]
		s.mu.Unlock()
		if ok {
			if cap(buf) < len(b) {
				return nil, fmt.Errorf("peer read piece %d: buffer too small", p)
			}
			return buf[:copy(buf[:len(b)], b)], nil
		}
	}
	return s.w.ReadPiece(p, buf)
}

// checkParity verifies a parity piece against the manifest.
func checkParity(m *chunker.Manifest, p int, b []byte) error {
	ref := m.Piece(p)
	if len(b) != ref.Size {
		return fmt.Errorf("peer parity piece %d: %w: %d bytes, want %d", p, chunker.ErrChunkSize, len(b), ref.Size)
	}
	if !ref.Verify(b) {
		return fmt.Errorf("peer parity piece %d: %w", p, chunker.ErrChunkHash)
	}
	return nil
}
