package chunker

import (
	"context"
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

// BenchmarkWriteChunk measures verify-and-write of 1 MiB chunks in order,
// including the running whole-file hash.
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
