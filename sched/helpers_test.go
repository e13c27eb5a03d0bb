package sched

import (
	"math/bits"
	"math/rand/v2"
	"slices"
	"testing"
)

// seeded returns a deterministic source for tests.
func seeded(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

// plain is a FEC-off layout of n pieces of the given size.
func plain(n, size int) Layout {
	return Layout{NumPieces: n, Size: func(int) int { return size }}
}

// fecLayout lays out nData data pieces in stripes of k data and m parity
// pieces as docs/swarm.md does: data pieces are [0, nData), parity j of
// stripe s is nData + s*m + j; the last stripe may hold fewer data pieces.
func fecLayout(nData, k, m, size int) Layout {
	ns := (nData + k - 1) / k
	l := Layout{NumPieces: nData + ns*m, Size: func(int) int { return size }}
	for s := range ns {
		var st Stripe
		for d := s * k; d < min(nData, (s+1)*k); d++ {
			st.Pieces = append(st.Pieces, d)
			st.DataPieces = append(st.DataPieces, d)
		}
		st.Need = len(st.DataPieces)
		for j := range m {
			st.Pieces = append(st.Pieces, nData+s*m+j)
		}
		l.Stripes = append(l.Stripes, st)
	}
	return l
}

// bitmap builds the wire form of a set of pieces.
func bitmap(n int, pieces ...int) []byte {
	b := make([]byte, (n+7)/8)
	for _, p := range pieces {
		b[p/8] |= 1 << (p % 8)
	}
	return b
}

func span(from, to int) []int {
	var r []int
	for i := from; i < to; i++ {
		r = append(r, i)
	}
	return r
}

func haveSet(pieces ...int) func(int) bool {
	return func(p int) bool { return slices.Contains(pieces, p) }
}

func mustNew(t testing.TB, l Layout, have func(int) bool, o Options) *Scheduler {
	t.Helper()
	if o.Rand == nil {
		o.Rand = seeded(1)
	}
	s, err := New(l, have, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func mustAdd(t testing.TB, s *Scheduler, id string, bm []byte) {
	t.Helper()
	var err error
	if bm == nil {
		err = s.AddSeed(id)
	} else {
		err = s.AddPeer(id, bm)
	}
	if err != nil {
		t.Fatalf("add %s: %v", id, err)
	}
}

// check verifies every internal invariant by recomputing from scratch, in
// O(n·P). Tests call it after operations; the simulation every few steps.
func (s *Scheduler) check(t testing.TB) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("invariant: "+format, args...)
	}
	if len(s.peers) != len(s.order) {
		fail("%d peers in map, %d in order", len(s.peers), len(s.order))
	}
	for i, pr := range s.order {
		if pr.idx != i || s.peers[pr.id] != pr {
			fail("peer %q order index %d/%d", pr.id, pr.idx, i)
		}
		if _, ok := s.banned[pr.id]; ok {
			fail("banned peer %q connected", pr.id)
		}
		n := 0
		for _, w := range pr.has {
			n += bits.OnesCount64(w)
		}
		if n != pr.nhas {
			fail("peer %q nhas %d, bitmap %d", pr.id, pr.nhas, n)
		}
	}
	nreqs, verified, pool := 0, 0, 0
	busy := make([]int32, len(s.need))
	nreq := make([]int32, len(s.need))
	done := make([]int32, len(s.need))
	for p := range s.n {
		q := int32(p)
		st := s.stripe[q]
		if s.flags[q]&fVerified != 0 {
			verified++
			done[st]++
		}
		r := s.reqs[q]
		if (r != nil) != (s.flags[q]&fRequested != 0) {
			fail("piece %d requested flag", p)
		}
		if r != nil {
			if len(r.peers) == 0 || len(r.peers) > s.copies {
				fail("piece %d on %d peers", p, len(r.peers))
			}
			if !s.endgame && len(r.peers) > 1 {
				fail("piece %d duplicated without endgame", p)
			}
			for i, pr := range r.peers {
				if s.peers[pr.id] != pr {
					fail("piece %d requested from gone peer %q", p, pr.id)
				}
				if slices.Index(r.peers, pr) != i {
					fail("piece %d twice on %q", p, pr.id)
				}
				if _, ok := pr.out[q]; !ok {
					fail("piece %d not in %q's out", p, pr.id)
				}
				if !pr.hasBit(q) {
					fail("piece %d requested from %q which lacks it", p, pr.id)
				}
			}
			busy[st]++
			nreq[st] += int32(len(r.peers))
			nreqs += len(r.peers)
		}
		avail := int32(0)
		for _, pr := range s.order {
			if pr.hasBit(q) {
				avail++
			}
		}
		if avail != s.avail[q] {
			fail("piece %d avail %d, want %d", p, s.avail[q], avail)
		}
	}
	if nreqs != s.nrequests || verified != s.verified {
		fail("nrequests %d/%d verified %d/%d", s.nrequests, nreqs, s.verified, verified)
	}
	incomplete := 0
	for st := range s.need {
		if busy[st] != s.busy[st] || nreq[st] != s.nreq[st] {
			fail("stripe %d busy %d/%d nreq %d/%d", st, s.busy[st], busy[st], s.nreq[st], nreq[st])
		}
		if s.done[st] < s.need[st] {
			incomplete++
			if s.done[st] != done[st] {
				fail("stripe %d done %d, verified members %d", st, s.done[st], done[st])
			}
			if !s.endgame && s.done[st]+s.busy[st] > s.need[st] {
				fail("stripe %d over-requested without endgame", st)
			}
		} else if s.nreq[st] != 0 {
			fail("complete stripe %d has %d requests", st, s.nreq[st])
		}
		if (s.openPos[st] >= 0) != (s.nreq[st] > 0) || s.openPos[st] >= 0 && s.open[s.openPos[st]] != int32(st) {
			fail("stripe %d open index", st)
		}
	}
	if incomplete != s.incomplete {
		fail("incomplete %d, want %d", s.incomplete, incomplete)
	}
	inPool := make([]bool, s.n)
	for p := range s.n {
		q := int32(p)
		st := s.stripe[q]
		in := s.flags[q]&(fVerified|fRequested) == 0 && s.done[st]+s.busy[st] < s.need[st]
		inPool[p] = in
		if in != (s.flags[q]&fInPool != 0) {
			fail("piece %d pool flag %v, want %v", p, !in, in)
		}
		if in {
			c := uint32(s.avail[q]) << 2
			if s.flags[q]&fParity != 0 {
				c |= 2
			}
			if s.done[st]+s.busy[st] == 0 {
				c |= 1
			}
			if c != s.cls[q] {
				fail("piece %d class %#x, want %#x", p, s.cls[q], c)
			}
			if s.avail[q] > 0 {
				pool++
			}
		}
	}
	if pool != s.poolAvail {
		fail("poolAvail %d, want %d", s.poolAvail, pool)
	}
	for _, pr := range s.order {
		var bytes int64
		for q := range pr.out {
			r := s.reqs[q]
			if r == nil || !slices.Contains(r.peers, pr) {
				fail("%q out piece %d has no request", pr.id, q)
			}
			bytes += int64(s.size[q])
		}
		if bytes != pr.bytes {
			fail("%q bytes %d, want %d", pr.id, pr.bytes, bytes)
		}
		count := 0
		for t := range pr.buckets {
			for b, bk := range pr.buckets[t] {
				nonEmpty := b/64 < len(pr.nonEmpty[t]) && pr.nonEmpty[t][b/64]&(1<<(b%64)) != 0
				if nonEmpty != (len(bk) > 0) {
					fail("%q bucket %d/%d nonEmpty bit", pr.id, t, b)
				}
				for i, q := range bk {
					tt, bb := bucketOf(s.cls[q])
					if pr.pos[q] != int32(i) || tt != t || bb != b || !inPool[q] || !pr.hasBit(q) {
						fail("%q bucket %d/%d holds piece %d wrongly", pr.id, t, b, q)
					}
					count++
				}
			}
		}
		want := 0
		for p := range s.n {
			if inPool[p] && pr.hasBit(int32(p)) {
				want++
				if pr.pos[p] < 0 {
					fail("%q misses pool piece %d", pr.id, p)
				}
			} else if pr.pos[p] >= 0 {
				fail("%q has stale position for piece %d", pr.id, p)
			}
		}
		if count != want {
			fail("%q buckets hold %d pieces, want %d", pr.id, count, want)
		}
	}
}
