package peer

import (
	"sync"

	"github.com/p2pxfer/p2pxfer/chunker"
)

// The sender's upload is what a swarm waits for: every piece must leave it
// at least once, and each piece it sends twice before all have left once
// delays the last receiver. Receivers cannot see what the others fetched
// from it, so the sender steers (BitTorrent's "super-seeding"): it offers
// each receiver a batch of pieces, those offered to the fewest receivers so
// far first, and offers more as the batch is fetched. One receiver alone
// is offered everything in turn at the same speed.

// spreadBytes is about how much a batch offers a receiver: twice the
// request window, so a refill always arrives before the window runs dry.
const spreadBytes = 32 << 20

// spreader counts, per piece, how many receivers it was offered to.
type spreader struct {
	mu      sync.Mutex
	count   []int32
	atLevel map[int32]int // pieces per count, to find the lowest in O(1)
	min     int32
	cursor  int
	batch   int
}

func newSpreader(m *chunker.Manifest) *spreader {
	n := m.NumPieces()
	return &spreader{count: make([]int32, n), atLevel: map[int32]int{0: n}, batch: batchPieces(m)}
}

// maxBatch bounds a batch's pieces, whatever their size: the offering
// bitmap is the receiver's, and only its requests cost us memory (at most
// maxOutstanding queued).
const maxBatch = 1 << 16

// batchPieces is how many pieces make spreadBytes, at the manifest's
// average piece size: a tree of small files has pieces far smaller than
// its chunk size, and batches counted in chunks (512 files of 4 KiB, 2
// MiB) made each receiver wait for a refill every few hundred files.
func batchPieces(m *chunker.Manifest) int {
	avg := max(1, m.TotalSize()/int64(max(1, m.NumPieces())))
	return int(max(16, min(maxBatch, spreadBytes/avg)))
}

// pick offers up to n pieces for which skip is false, least offered first,
// round-robin from where the last pick stopped so batches differ.
func (s *spreader) pick(n int, skip func(int) bool) []uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	total := len(s.count)
	var out []uint32
	picked := map[int]bool{} // a lower level's pick is not picked again at a higher one
	for level := s.min; len(out) < n && total > 0; level++ {
		found := false
		start := s.cursor
		for i := 0; i < total && len(out) < n; i++ {
			p := (start + i) % total
			c := s.count[p]
			if c > level {
				found = true // some piece is offered more: levels above exist
				continue
			}
			if picked[p] || skip(p) {
				continue
			}
			picked[p] = true
			s.bump(p, 1)
			out = append(out, uint32(p))
			s.cursor = (p + 1) % total
		}
		if !found && len(out) < n {
			break // every piece is at most at this level: nothing more to offer
		}
	}
	return out
}

func (s *spreader) bump(p int, d int32) {
	c := s.count[p]
	if s.atLevel[c]--; s.atLevel[c] == 0 {
		delete(s.atLevel, c)
	}
	s.count[p] = c + d
	s.atLevel[c+d]++
	for s.atLevel[s.min] == 0 && s.min < c+1 {
		s.min++
	}
	if c+d < s.min {
		s.min = c + d
	}
}

// unoffer takes back pieces a receiver left without fetching.
func (s *spreader) unoffer(pieces []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range pieces {
		if s.count[p] > 0 {
			s.bump(p, -1)
		}
	}
}

// offering is one receiver's view of the spreader: what it was offered
// and how much of that it has not fetched yet. The reader goroutine
// reports haves, the sending loop offers more.
type offering struct {
	sp      *spreader
	mu      sync.Mutex
	to      *chunker.Bitmap // offered to this receiver
	held    *chunker.Bitmap // the receiver has it
	pending int             // offered, not yet held
}

func (sp *spreader) session(n int) *offering {
	return &offering{sp: sp, to: chunker.NewBitmap(n), held: chunker.NewBitmap(n)}
}

func (o *offering) has(p int) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.to.Has(p)
}

// got records pieces the receiver now holds; it reports whether the batch
// runs low.
func (o *offering) got(pieces []int) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, p := range pieces {
		if o.held.Has(p) {
			continue
		}
		o.held.Set(p)
		if o.to.Has(p) {
			o.pending--
		}
	}
	return o.pending < o.sp.batch/2
}

// more offers the next batch (nil when everything was offered).
func (o *offering) more() []uint32 {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.pending >= o.sp.batch/2 {
		return nil
	}
	ids := o.sp.pick(o.sp.batch-o.pending, func(p int) bool { return o.to.Has(p) || o.held.Has(p) })
	for _, p := range ids {
		o.to.Set(int(p))
	}
	o.pending += len(ids)
	return ids
}

// close gives back what the receiver was offered and never fetched.
func (o *offering) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	var back []int
	for p := range o.to.Len() {
		if o.to.Has(p) && !o.held.Has(p) {
			back = append(back, p)
		}
	}
	o.sp.unoffer(back)
}
