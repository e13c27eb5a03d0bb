package chunker

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkOpenSource measures the hashing pass (chunk hashes and whole-file
// SHA-256 in parallel) over a 64 MiB file in the page cache.
func BenchmarkOpenSource(b *testing.B) {
	const size = 64 << 20
	p := filepath.Join(b.TempDir(), "bench.bin")
	writeFile(b, p, randBytes(1, size))
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		s, err := OpenSource(context.Background(), []string{p}, DefaultChunkSize, nil)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

// BenchmarkWriteChunk measures verify-and-write of 1 MiB chunks in order:
// one SHA-256 pass from the previous chunk's chaining value, and pwrite.
func BenchmarkWriteChunk(b *testing.B) {
	const n = 64
	data := randBytes(2, n*DefaultChunkSize)
	m := manifestOf(b, DefaultChunkSize, []string{"f"}, [][]byte{data})
	var w *Writer
	newWriter := func() {
		var err error
		if w, err = CreateWriter(b.TempDir(), m, WriterOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	newWriter()
	b.SetBytes(DefaultChunkSize)
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if i == n {
			b.StopTimer()
			w.Close()
			newWriter()
			i = 0
			b.StartTimer()
		}
		if err := w.WriteChunk(i, data[i*DefaultChunkSize:(i+1)*DefaultChunkSize]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.StopTimer()
	w.Close()
}

// BenchmarkParity measures Reed-Solomon 8+2 parity of one stripe of 1 MiB
// chunks, in bytes of data: as the package computes it (EncodeIdx, one
// chunk at a time into the parity buffers) and, for reference, with the
// whole stripe in memory (Encode).
func BenchmarkParity(b *testing.B) {
	const k, m, cs = 8, 2, DefaultChunkSize
	shards := make([][]byte, k+m)
	for i := range shards {
		shards[i] = make([]byte, cs)
		if i < k {
			copy(shards[i], randBytes(uint64(i), cs))
		}
	}
	enc, err := encoderFor(k, m)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("EncodeIdx", func(b *testing.B) {
		sub := make([][]byte, m)
		b.SetBytes(k * cs)
		for b.Loop() {
			for _, p := range shards[k:] {
				clear(p)
			}
			for i := range k {
				if err := addParity(enc, shards[i], i, 0, shards[k:], sub); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("Encode", func(b *testing.B) {
		b.SetBytes(k * cs)
		for b.Loop() {
			if err := enc.Encode(shards); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkOpenSourceFEC is BenchmarkOpenSource with FEC 8+2: the same read
// pass also computes the parity hashes.
func BenchmarkOpenSourceFEC(b *testing.B) {
	const size = 64 << 20
	p := filepath.Join(b.TempDir(), "bench.bin")
	writeFile(b, p, randBytes(1, size))
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		s, err := OpenSourceFEC(context.Background(), []string{p}, DefaultChunkSize, FEC{8, 2}, nil)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

// BenchmarkReadPieceParity measures serving a stripe's 2 parity pieces on
// the sending side (8+2, 1 MiB chunks, page cache): read 8 chunks, encode,
// check the parity hashes; the second piece comes from the cache. Bytes
// are the stripe's data.
func BenchmarkReadPieceParity(b *testing.B) {
	const stripes = 4
	p := filepath.Join(b.TempDir(), "bench.bin")
	writeFile(b, p, randBytes(1, stripes*8*DefaultChunkSize))
	s, err := OpenSourceFEC(context.Background(), []string{p}, DefaultChunkSize, FEC{8, 2}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	m := s.Manifest()
	buf := make([]byte, DefaultChunkSize)
	b.SetBytes(8 * DefaultChunkSize)
	b.ResetTimer()
	i := 0
	for b.Loop() {
		st := m.Stripe(i % stripes)
		i++
		s.par.mu.Lock()
		s.par.entries, s.par.bytes = nil, 0
		s.par.mu.Unlock()
		for j := range st.NParity {
			if _, err := s.ReadPiece(st.FirstParity+j, buf); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkReconstruct rebuilds 2 lost chunks of an 8+2 stripe of 1 MiB
// chunks from the other 6 and both parity pieces, verifying the 8 inputs
// and the 2 outputs. Bytes are the stripe's data.
func BenchmarkReconstruct(b *testing.B) {
	const k = 8
	names, datas := filesOfSizes(1, []int{k * DefaultChunkSize})
	d := fecData(b, DefaultChunkSize, FEC{k, 2}, names, datas)
	pieces := make(map[int][]byte)
	for p := 2; p < k+2; p++ {
		pieces[p] = d.piece(p)
	}
	b.SetBytes(k * DefaultChunkSize)
	for b.Loop() {
		if _, err := d.m.Reconstruct(0, pieces); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSmallFiles receives 1000 files of 4 KiB: CreateWriter, every
// chunk, Finish, Close. Per-file costs (creating, syncing and placing files)
// dominate here, not bytes.
func BenchmarkSmallFiles(b *testing.B) {
	const n, size = 1000, 4 << 10
	names := make([]string, n)
	datas := make([][]byte, n)
	for i := range n {
		names[i] = fmt.Sprintf("f%04d", i)
		datas[i] = randBytes(uint64(i+10), size)
	}
	m := manifestOf(b, SwarmChunkSize, names, datas)
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		b.StartTimer()
		w, err := CreateWriter(dir, m, WriterOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for i := range n {
			if err := w.WriteChunk(i, datas[i]); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Finish(); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenSourceSmallFiles hashes 1000 files of 4 KiB, where per-file
// costs (opening, buffers, goroutines) matter more than bytes.
func BenchmarkOpenSourceSmallFiles(b *testing.B) {
	dir := b.TempDir()
	paths := make([]string, 1000)
	for i := range paths {
		paths[i] = filepath.Join(dir, fmt.Sprintf("f%04d", i))
		writeFile(b, paths[i], randBytes(uint64(i), 4<<10))
	}
	for b.Loop() {
		s, err := OpenSource(context.Background(), paths, DefaultChunkSize, nil)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
