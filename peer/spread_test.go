package peer

import (
	"fmt"
	"testing"

	"github.com/p2pxfer/p2pxfer/chunker"
)

// TestSpreader: receivers are offered disjoint batches while unoffered
// pieces remain, then the least offered; one receiver alone is offered
// everything; pieces a receiver leaves without are offered again first.
func TestSpreader(t *testing.T) {
	const n = 100
	files := []chunker.File{{Name: "f", Size: n * chunker.MinChunkSize, Chunks: make([]chunker.Hash, n)}}
	m, err := chunker.NewManifest(chunker.MinChunkSize, files)
	if err != nil {
		t.Fatal(err)
	}
	sp := newSpreader(m)
	sp.batch = 30
	a, b := sp.session(n), sp.session(n)
	first := map[uint32]int{}
	for _, o := range []*offering{a, b, a, b} {
		ids := o.more()
		o.got(toInts(ids)) // fetched at once: the batch runs low
		for _, p := range ids {
			first[p]++
		}
	}
	if len(first) != n {
		t.Fatalf("4 batches of 30 covered %d of %d pieces", len(first), n)
	}
	for p, c := range first {
		if c > 2 {
			t.Fatalf("piece %d offered %d times while others were offered once", p, c)
		}
	}
	// Alone, a receiver is eventually offered everything, each piece once.
	solo := newSpreader(m)
	solo.batch = 30
	o := solo.session(n)
	seen := map[uint32]bool{}
	for range 10 {
		ids := o.more()
		for _, p := range ids {
			if seen[p] {
				t.Fatalf("piece %d offered twice to one receiver", p)
			}
			seen[p] = true
		}
		o.got(toInts(ids))
	}
	if len(seen) != n {
		t.Fatalf("a lone receiver was offered %d of %d pieces", len(seen), n)
	}
	// A receiver that leaves gives back what it did not fetch.
	s3 := newSpreader(m)
	s3.batch = 50
	gone := s3.session(n)
	lost := gone.more()
	gone.close()
	next := s3.session(n).more()
	if len(lost) != 50 || len(next) != 50 {
		t.Fatalf("offered %d then %d", len(lost), len(next))
	}
	if s3.min != 0 {
		t.Fatalf("min level %d after give-back", s3.min)
	}
}

func toInts(ids []uint32) []int {
	out := make([]int, len(ids))
	for i, p := range ids {
		out[i] = int(p)
	}
	return out
}

// TestBatchPieces: a batch is about spreadBytes of pieces at their
// average size, so a tree of small files is offered thousands at a time
// rather than spreadBytes/ChunkSize; never fewer than 16, nor more than
// maxBatch.
func TestBatchPieces(t *testing.T) {
	tree := func(files int, size int64, cs int) *chunker.Manifest {
		t.Helper()
		fs := make([]chunker.File, files)
		for i := range fs {
			n := int((size + int64(cs) - 1) / int64(cs))
			fs[i] = chunker.File{Name: fmt.Sprintf("f%06d", i), Size: size, Chunks: make([]chunker.Hash, n)}
			if n > 0 {
				fs[i].SHA256 = fs[i].Chunks[n-1]
			}
		}
		m, err := chunker.NewManifest(cs, fs)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, c := range []struct {
		name string
		m    *chunker.Manifest
		want int
	}{
		{"10,000 files of 4 KiB", tree(10000, 4<<10, 64<<10), spreadBytes / (4 << 10)},
		{"one file of 64 MiB in chunks of 256 KiB", tree(1, 64<<20, 256<<10), spreadBytes / (256 << 10)},
		{"100,000 files of 8 bytes", tree(100000, 8, 64<<10), maxBatch},
		{"two chunks of 4 MiB", tree(1, 8<<20, 4<<20), 16},
	} {
		if got := batchPieces(c.m); got != c.want {
			t.Errorf("%s: batch of %d pieces, want %d", c.name, got, c.want)
		}
	}
}
