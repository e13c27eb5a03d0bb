package sched

import (
	"fmt"
	"testing"
)

// benchSwarm builds a scheduler for l with one seed and peers-1 peers that
// each have a random half of the pieces.
func benchSwarm(b *testing.B, l Layout, peers int, seed uint64) (*Scheduler, []string) {
	rng := seeded(seed)
	s, err := New(l, nil, Options{Rand: seeded(seed + 1)})
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, peers)
	for i := range ids {
		ids[i] = fmt.Sprintf("peer%d", i)
		if i == 0 {
			err = s.AddSeed(ids[i])
		} else {
			bm := make([]byte, (l.NumPieces+7)/8)
			for p := range l.NumPieces {
				if rng.IntN(2) == 0 {
					bm[p/8] |= 1 << (p % 8)
				}
			}
			err = s.AddPeer(ids[i], bm)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	return s, ids
}

// BenchmarkNextReceived measures the per-chunk cost: each op is one Next
// for a peer (round robin) and, once the peer has 8 requests outstanding
// or nothing more to ask, one Received for its oldest request. A finished
// transfer is rebuilt off the clock.
func BenchmarkNextReceived(b *testing.B) {
	const n, peers = 100_000, 8
	for _, bc := range []struct {
		name string
		l    Layout
	}{
		{"plain", plain(n, 1<<20)},
		{"fec10+4", fecLayout(n, 10, 4, 1<<20)},
	} {
		b.Run(fmt.Sprintf("%s/pieces=%d/peers=%d", bc.name, bc.l.NumPieces, peers), func(b *testing.B) {
			seed := uint64(1)
			s, ids := benchSwarm(b, bc.l, peers, seed)
			fifo := make([][]int, peers)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k := i % peers
				p, ok := s.Next(ids[k])
				if ok {
					fifo[k] = append(fifo[k], p)
				}
				if q := fifo[k]; len(q) > 0 && (len(q) >= 8 || !ok) {
					s.Received(ids[k], q[0])
					fifo[k] = q[1:]
				}
				if s.Complete() {
					b.StopTimer()
					seed++
					s, ids = benchSwarm(b, bc.l, peers, seed)
					clear(fifo)
					b.StartTimer()
				}
			}
		})
	}
}

// BenchmarkSetup measures New and adding the peers, once per transfer.
func BenchmarkSetup(b *testing.B) {
	l := plain(100_000, 1<<20)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		benchSwarm(b, l, 8, 1)
	}
}
