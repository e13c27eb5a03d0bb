package sched

import (
	"math/bits"
	"math/rand/v2"
)

// peer is a connected peer: what it has, what is outstanding on it, and
// its pool pieces in buckets. A pool piece of class c (see refresh) is in
// buckets[parity][2*avail+notStarted]; nonEmpty has bit b of tier t set
// when buckets[t][b] is not empty, so the best bucket is the first set bit
// of tier 0, else of tier 1.
type peer struct {
	id       string
	idx      int // index in Scheduler.order
	has      []uint64
	nhas     int
	pos      []int32 // index of the piece in its bucket, or -1
	buckets  [2][][]int32
	nonEmpty [2][]uint64
	out      map[int32]struct{}
	bytes    int64
	received int
}

func (pr *peer) hasBit(p int32) bool { return pr.has[p/64]&(1<<(p%64)) != 0 }

func bucketOf(c uint32) (tier, b int) {
	return int(c>>1) & 1, int(c>>2)*2 + int(c&1)
}

func (pr *peer) insert(p int32, c uint32) {
	t, b := bucketOf(c)
	for len(pr.buckets[t]) <= b {
		pr.buckets[t] = append(pr.buckets[t], nil)
	}
	for len(pr.nonEmpty[t])*64 <= b {
		pr.nonEmpty[t] = append(pr.nonEmpty[t], 0)
	}
	pr.pos[p] = int32(len(pr.buckets[t][b]))
	pr.buckets[t][b] = append(pr.buckets[t][b], p)
	pr.nonEmpty[t][b/64] |= 1 << (b % 64)
}

func (pr *peer) remove(p int32, c uint32) {
	t, b := bucketOf(c)
	bk := pr.buckets[t][b]
	i := pr.pos[p]
	last := bk[len(bk)-1]
	bk[i] = last
	pr.pos[last] = i
	pr.buckets[t][b] = bk[:len(bk)-1]
	pr.pos[p] = -1
	if len(bk) == 1 {
		pr.nonEmpty[t][b/64] &^= 1 << (b % 64)
	}
}

// pick returns a random piece of the best non-empty bucket.
func (pr *peer) pick(rng *rand.Rand) (int32, bool) {
	for t := range pr.nonEmpty {
		for w, word := range pr.nonEmpty[t] {
			if word == 0 {
				continue
			}
			bk := pr.buckets[t][w*64+bits.TrailingZeros64(word)]
			if len(bk) == 1 {
				return bk[0], true
			}
			return bk[rng.IntN(len(bk))], true
		}
	}
	return -1, false
}

// forEachBit calls f for every set bit of words, in increasing order.
func forEachBit(words []uint64, f func(int32)) {
	for w, word := range words {
		for word != 0 {
			b := bits.TrailingZeros64(word)
			word &= word - 1
			f(int32(w*64 + b))
		}
	}
}
