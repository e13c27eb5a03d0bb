package sched

import (
	"fmt"
	"math"
)

// Stripe is a group of pieces of which any Need, once verified, complete
// it: with Reed-Solomon k+m, the k data pieces and m parity pieces of one
// stripe, and Need = k.
type Stripe struct {
	// Pieces are the stripe's piece indices, data and parity.
	Pieces []int
	// Need is how many of Pieces must be verified to complete the stripe
	// (the number of data pieces); 1 <= Need <= len(Pieces).
	Need int
	// DataPieces is the subset of Pieces that needs no decoding, preferred
	// over the others. Empty means every piece is a data piece.
	DataPieces []int
}

// Layout describes what is to be fetched: NumPieces pieces, indexed from 0,
// grouped into stripes. With FEC off every stripe is one piece with Need 1;
// leaving Stripes nil says exactly that without building n stripes.
type Layout struct {
	// NumPieces is the number of pieces, data and parity.
	NumPieces int
	// Stripes partition the pieces: each piece is in exactly one stripe.
	// Nil means one stripe per piece, Need 1 (FEC off).
	Stripes []Stripe
	// Size returns a piece's size in bytes, at least 1; it is what a
	// request counts against the peer's window. New calls it once per
	// piece and keeps the answers.
	Size func(piece int) int
}

// maxPieces keeps piece and stripe indices in int32.
const maxPieces = math.MaxInt32

// Piece flags.
const (
	fVerified  uint8 = 1 << iota // verified (had before New, or Received)
	fParity                      // not a data piece of its stripe
	fInPool                      // eligible for a normal request; cls is valid
	fRequested                   // outstanding on at least one peer (in reqs)
)

// build validates l and fills the per-piece and per-stripe tables of s.
func (s *Scheduler) build(l Layout) error {
	n := l.NumPieces
	if n < 0 || n > maxPieces {
		return fmt.Errorf("%w: %d pieces", ErrBadLayout, n)
	}
	if l.Size == nil {
		return fmt.Errorf("%w: no Size function", ErrBadLayout)
	}
	s.n = n
	s.size = make([]int32, n)
	for p := range n {
		z := l.Size(p)
		if z < 1 || z > math.MaxInt32 {
			return fmt.Errorf("%w: piece %d has size %d", ErrBadLayout, p, z)
		}
		s.size[p] = int32(z)
	}
	s.flags = make([]uint8, n)
	s.avail = make([]int32, n)
	s.cls = make([]uint32, n)
	s.stripe = make([]int32, n)

	if l.Stripes == nil {
		s.members = make([]int32, n)
		s.start = make([]int32, n+1)
		s.need = make([]int32, n)
		for p := range n {
			s.stripe[p] = int32(p)
			s.members[p] = int32(p)
			s.start[p+1] = int32(p + 1)
			s.need[p] = 1
		}
	} else {
		if err := s.buildStripes(l.Stripes); err != nil {
			return err
		}
	}
	ns := len(s.need)
	s.done = make([]int32, ns)
	s.busy = make([]int32, ns)
	s.nreq = make([]int32, ns)
	s.openPos = make([]int32, ns)
	for i := range s.openPos {
		s.openPos[i] = -1
	}
	return nil
}

func (s *Scheduler) buildStripes(stripes []Stripe) error {
	n := s.n
	if len(stripes) > n {
		return fmt.Errorf("%w: %d stripes for %d pieces", ErrBadLayout, len(stripes), n)
	}
	for p := range s.stripe {
		s.stripe[p] = -1
	}
	s.members = make([]int32, 0, n)
	s.start = make([]int32, 1, len(stripes)+1)
	s.need = make([]int32, len(stripes))
	for i, st := range stripes {
		if len(st.Pieces) == 0 {
			return fmt.Errorf("%w: stripe %d has no pieces", ErrBadLayout, i)
		}
		if st.Need < 1 || st.Need > len(st.Pieces) {
			return fmt.Errorf("%w: stripe %d needs %d of %d pieces", ErrBadLayout, i, st.Need, len(st.Pieces))
		}
		for _, p := range st.Pieces {
			if p < 0 || p >= n {
				return fmt.Errorf("%w: stripe %d: piece %d out of range [0, %d)", ErrBadLayout, i, p, n)
			}
			if s.stripe[p] >= 0 {
				return fmt.Errorf("%w: piece %d is in stripes %d and %d", ErrBadLayout, p, s.stripe[p], i)
			}
			s.stripe[p] = int32(i)
			s.members = append(s.members, int32(p))
		}
		if len(st.DataPieces) > 0 {
			for _, p := range st.Pieces {
				s.flags[p] |= fParity
			}
			for _, d := range st.DataPieces {
				if d < 0 || d >= n || s.stripe[d] != int32(i) {
					return fmt.Errorf("%w: stripe %d: data piece %d is not one of its pieces", ErrBadLayout, i, d)
				}
				if s.flags[d]&fParity == 0 {
					return fmt.Errorf("%w: stripe %d: data piece %d listed twice", ErrBadLayout, i, d)
				}
				s.flags[d] &^= fParity
			}
		}
		s.need[i] = int32(st.Need)
		s.start = append(s.start, int32(len(s.members)))
	}
	for p, st := range s.stripe {
		if st < 0 {
			return fmt.Errorf("%w: piece %d is in no stripe", ErrBadLayout, p)
		}
	}
	return nil
}
