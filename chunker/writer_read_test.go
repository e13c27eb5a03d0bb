package chunker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// readsBack checks that every chunk in idx reads back from w as its data.
func readsBack(t *testing.T, w *Writer, m *Manifest, datas [][]byte, idx []int) {
	t.Helper()
	buf := make([]byte, m.ChunkSize)
	for _, i := range idx {
		b, err := w.ReadChunk(i, buf)
		if err != nil {
			t.Fatalf("ReadChunk(%d): %v", i, err)
		}
		if !bytes.Equal(b, chunkData(m, datas, i)) {
			t.Fatalf("ReadChunk(%d): wrong data", i)
		}
	}
}

func indices(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// TestWriterReadChunk serves chunks during a transfer, from the part files,
// and after Finish, from the final files, until Close.
func TestWriterReadChunk(t *testing.T) {
	names, datas := filesOfSizes(50, []int{3*testCS + 77, 0, 1, testCS, 2*testCS - 1})
	names[4] = "d/e/f04"
	m := manifestOf(t, testCS, names, datas)
	dst := t.TempDir()
	w, err := CreateWriter(dst, m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	order := shuffled(m.NumChunks(), 5)
	half, rest := order[:len(order)/2], order[len(order)/2:]
	writeAll(t, w, m, datas, half)
	readsBack(t, w, m, datas, half)
	for _, i := range rest {
		_, err := w.ReadChunk(i, make([]byte, testCS))
		if !errors.Is(err, ErrNotVerified) {
			t.Errorf("ReadChunk(%d) before it arrived: %v", i, err)
		}
	}
	for _, i := range []int{-1, m.NumChunks(), math.MaxInt, math.MinInt} {
		if _, err := w.ReadChunk(i, make([]byte, testCS)); !errors.Is(err, ErrChunkIndex) {
			t.Errorf("ReadChunk(%d): %v", i, err)
		}
	}
	i := half[0]
	size := m.Chunk(i).Size
	if _, err := w.ReadChunk(i, make([]byte, size-1)); !errors.Is(err, io.ErrShortBuffer) {
		t.Errorf("short buffer: %v", err)
	}
	if b, err := w.ReadChunk(i, make([]byte, 0, size)); err != nil || !bytes.Equal(b, chunkData(m, datas, i)) {
		t.Errorf("empty buffer with capacity: %v", err)
	}

	writeAll(t, w, m, datas, rest)
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if l := leftovers(t, dst); len(l) > 0 {
		t.Fatalf("left after Finish: %v", l)
	}
	readsBack(t, w, m, datas, indices(m.NumChunks()))

	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.ReadChunk(0, make([]byte, testCS)); !errors.Is(err, ErrClosed) {
		t.Errorf("ReadChunk after Close: %v", err)
	}
	if _, err := w.ReadPiece(0, make([]byte, testCS)); !errors.Is(err, ErrClosed) {
		t.Errorf("ReadPiece after Close: %v", err)
	}
}

// TestWriterReadResumed serves the chunks a resumed Writer re-verified.
func TestWriterReadResumed(t *testing.T) {
	dst, m, datas := resumeSetup(t)
	w, err := CreateWriter(dst, m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, m, datas, []int{0, 3, 21, 22})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w, err = CreateWriter(dst, m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	readsBack(t, w, m, datas, []int{0, 3, 21, 22})
	if _, err := w.ReadChunk(1, make([]byte, testCS)); !errors.Is(err, ErrNotVerified) {
		t.Errorf("ReadChunk of a chunk not resumed: %v", err)
	}
}

// TestWriterReadWhileWriting reads pieces, data and parity, while other
// goroutines write chunks and Finish moves the files into place, with more
// files than stay open at once. Every read must give the right bytes or
// ErrNotVerified, never anything else. Run with -race.
func TestWriterReadWhileWriting(t *testing.T) {
	lowerOpenParts(t)
	var sizes []int
	for i := range maxOpenParts + 10 {
		sizes = append(sizes, (i%3)*testCS+i)
	}
	names, datas := filesOfSizes(60, sizes)
	d := fecData(t, testCS, FEC{4, 2}, names, datas)
	m := d.m
	dst := t.TempDir()
	w, err := CreateWriter(dst, m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	var stop atomic.Bool
	var served atomic.Int64
	var readers sync.WaitGroup
	defer readers.Wait() // before Close, also when the test fails early
	defer stop.Store(true)
	for g := range 4 {
		readers.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 7))
			buf := make([]byte, testCS)
			for !stop.Load() {
				p := r.IntN(m.NumPieces())
				b, err := w.ReadPiece(p, buf)
				switch {
				case errors.Is(err, ErrNotVerified):
				case err != nil:
					t.Errorf("ReadPiece(%d): %v", p, err)
					return
				case !bytes.Equal(b, d.piece(p)):
					t.Errorf("ReadPiece(%d): wrong data", p)
					return
				default:
					served.Add(1)
				}
			}
		})
	}
	writeAll(t, w, m, datas, shuffled(m.NumChunks(), 8))
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	// Some reads after Finish too, from the final files.
	after := served.Load()
	eventually(t, "100 reads served after Finish", func() bool { return served.Load() >= after+100 })
	stop.Store(true)
	readers.Wait()

	buf := make([]byte, testCS)
	for p := range m.NumPieces() {
		b, err := w.ReadPiece(p, buf)
		if err != nil || !bytes.Equal(b, d.piece(p)) {
			t.Fatalf("ReadPiece(%d) after Finish: %v", p, err)
		}
	}
	w.mu.Lock()
	open := len(w.open)
	w.mu.Unlock()
	if open > maxOpenParts {
		t.Errorf("%d files open, limit %d", open, maxOpenParts)
	}
}

// TestWriterReadChanged: a chunk edited, truncated or replaced on disk after
// it was verified is never served, before or after Finish.
func TestWriterReadChanged(t *testing.T) {
	t.Run("part file", func(t *testing.T) {
		datas := [][]byte{randBytes(70, 3*testCS), randBytes(71, 10)}
		m := manifestOf(t, testCS, []string{"f", "g"}, datas)
		dst := t.TempDir()
		w, err := CreateWriter(dst, m, WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		writeAll(t, w, m, datas, []int{0, 1, 2})
		corrupt(t, filepath.Join(dst, PartName("f")), testCS+5)
		_, err = w.ReadChunk(1, make([]byte, testCS))
		if !errors.Is(err, ErrSourceChanged) || !strings.Contains(err.Error(), PartName("f")) {
			t.Errorf("edited part: %v", err)
		}
		readsBack(t, w, m, datas, []int{0, 2})
		if err := os.Truncate(filepath.Join(dst, PartName("f")), 2*testCS+1); err != nil {
			t.Fatal(err)
		}
		if _, err := w.ReadChunk(2, make([]byte, testCS)); !errors.Is(err, ErrSourceChanged) {
			t.Errorf("truncated part: %v", err)
		}
	})

	t.Run("final file", func(t *testing.T) {
		names := []string{"f", "g", "h"}
		datas := [][]byte{randBytes(72, 2*testCS+3), randBytes(73, testCS), randBytes(74, 9)}
		m := manifestOf(t, testCS, names, datas)
		dst := t.TempDir()
		w, err := CreateWriter(dst, m, WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		writeAll(t, w, m, datas, indices(m.NumChunks()))
		if err := w.Finish(); err != nil {
			t.Fatal(err)
		}
		readsBack(t, w, m, datas, []int{0, 1, 2})
		corrupt(t, filepath.Join(dst, "f"), 3)
		_, err = w.ReadChunk(0, make([]byte, testCS))
		if !errors.Is(err, ErrSourceChanged) || !strings.Contains(err.Error(), `"f"`) {
			t.Errorf("edited final file: %v", err)
		}
		readsBack(t, w, m, datas, []int{1, 2})

		// Not opened since Finish, so the next read opens what is there
		// now: a symbolic link is refused even to a good copy.
		g := filepath.Join(dst, "g")
		writeFile(t, filepath.Join(dst, "copy"), datas[1])
		os.Remove(g)
		if err := os.Symlink("copy", g); err != nil {
			t.Skipf("no symbolic links: %v", err)
		}
		if _, err := w.ReadChunk(3, make([]byte, testCS)); !errors.Is(err, ErrNotRegular) {
			t.Errorf("final file replaced by a symbolic link: %v", err)
		}
		os.Remove(filepath.Join(dst, "h"))
		if _, err := w.ReadChunk(4, make([]byte, testCS)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("final file deleted: %v", err)
		}
	})
}

// corrupt flips the byte at off of the file at path in place.
func corrupt(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestWriterReadPiece: a Writer serves the parity of the stripes it holds
// whole, byte for byte what the sender's Source serves, before and after
// Finish; odd file sizes, stripes across files, short last stripes.
func TestWriterReadPiece(t *testing.T) {
	cs := testCS
	tests := []struct {
		desc  string
		sizes []int
		fec   FEC
	}{
		{"odd sizes, empty file, stripes across files", []int{2*cs + 5, 0, 1, 3 * cs, 7, cs + 1}, FEC{3, 2}},
		{"short chunks, longest not last", []int{cs, cs - 1, 2*cs + 3, 5}, FEC{4, 1}},
		{"single-chunk files", []int{7, 2, 5, 1, 3, 6, 4}, FEC{3, 4}},
		{"K larger than the chunk count", []int{2*cs + 1}, FEC{64, 3}},
	}
	for ti, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			names, datas := filesOfSizes(uint64(80+10*ti), tt.sizes)
			src := t.TempDir()
			var paths []string
			for i, n := range names {
				p := filepath.Join(src, n)
				writeFile(t, p, datas[i])
				paths = append(paths, p)
			}
			s, err := OpenSourceFEC(context.Background(), paths, cs, tt.fec, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			m := s.Manifest()
			dst := t.TempDir()
			w, err := CreateWriter(dst, m, WriterOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			// same checks that every piece p for which want(p) is served as
			// the Source serves it, and the others are ErrNotVerified.
			same := func(when string, want func(p int) bool) {
				t.Helper()
				wbuf, sbuf := make([]byte, cs), make([]byte, cs)
				for p := range m.NumPieces() {
					got, err := w.ReadPiece(p, wbuf)
					if !want(p) {
						if !errors.Is(err, ErrNotVerified) {
							t.Errorf("%s: ReadPiece(%d): %v, want ErrNotVerified", when, p, err)
						}
						continue
					}
					exp, serr := s.ReadPiece(p, sbuf)
					if err != nil || serr != nil || !bytes.Equal(got, exp) {
						t.Errorf("%s: ReadPiece(%d): %v (Source: %v), equal %v", when, p, err, serr, bytes.Equal(got, exp))
					}
				}
			}
			complete := func(st StripeRef) bool {
				ok := w.StripeComplete(st.Index)
				for k := range st.NData {
					if !w.Have(st.FirstChunk+k) && ok {
						t.Errorf("StripeComplete(%d) with chunk %d missing", st.Index, st.FirstChunk+k)
					}
				}
				return ok
			}
			inComplete := func(p int) bool {
				if p < m.NumChunks() {
					return w.Have(p)
				}
				return complete(m.Stripe(m.StripeOf(p)))
			}

			same("nothing written", inComplete)
			// Every stripe but the first, whose last chunk is kept back.
			st0 := m.Stripe(0)
			last0 := st0.FirstChunk + st0.NData - 1
			var first []int
			for i := range m.NumChunks() {
				if i != last0 {
					first = append(first, i)
				}
			}
			writeAll(t, w, m, datas, first)
			if complete(st0) {
				t.Errorf("stripe 0 complete without chunk %d", last0)
			}
			for st := 1; st < m.NumStripes(); st++ {
				if !complete(m.Stripe(st)) {
					t.Errorf("stripe %d not complete", st)
				}
			}
			same("first chunk missing", inComplete)

			writeAll(t, w, m, datas, []int{last0})
			same("all written", func(int) bool { return true })
			if err := w.Finish(); err != nil {
				t.Fatal(err)
			}
			w.par.entries, w.par.bytes = nil, 0 // read the final files
			same("after Finish", func(int) bool { return true })

			for _, p := range []int{-1, m.NumPieces(), math.MaxInt} {
				if _, err := w.ReadPiece(p, make([]byte, cs)); !errors.Is(err, ErrChunkIndex) {
					t.Errorf("ReadPiece(%d): %v", p, err)
				}
			}
			for _, st := range []int{-1, m.NumStripes(), math.MaxInt} {
				if w.StripeComplete(st) {
					t.Errorf("StripeComplete(%d)", st)
				}
			}
			p := st0.FirstParity
			if _, err := w.ReadPiece(p, make([]byte, m.Piece(p).Size-1)); !errors.Is(err, io.ErrShortBuffer) {
				t.Errorf("short buffer: %v", err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := w.ReadPiece(p, make([]byte, cs)); !errors.Is(err, ErrClosed) {
				t.Errorf("cached parity after Close: %v", err)
			}
		})
	}
}

// TestWriterReadPieceRefused: parity is only served if it matches the
// manifest, whether the data changed on disk or the manifest lies.
func TestWriterReadPieceRefused(t *testing.T) {
	names, datas := filesOfSizes(90, []int{2*testCS + 1, testCS})
	fec := FEC{2, 1}
	d := fecData(t, testCS, fec, names, datas)

	dst := t.TempDir()
	w, err := CreateWriter(dst, d.m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	writeAll(t, w, d.m, datas, []int{0, 1, 2, 3})
	p := d.m.Stripe(1).FirstParity
	if b, err := w.ReadPiece(p, make([]byte, testCS)); err != nil || !bytes.Equal(b, d.piece(p)) {
		t.Fatalf("ReadPiece(%d): %v", p, err)
	}
	corrupt(t, filepath.Join(dst, PartName(names[0])), 2*testCS)
	// The cached parity is still right, and served.
	if b, err := w.ReadPiece(p, make([]byte, testCS)); err != nil || !bytes.Equal(b, d.piece(p)) {
		t.Fatalf("ReadPiece(%d) cached: %v", p, err)
	}
	w.par.entries, w.par.bytes = nil, 0
	if _, err := w.ReadPiece(p, make([]byte, testCS)); !errors.Is(err, ErrSourceChanged) {
		t.Errorf("parity from corrupted data: %v", err)
	}

	// Chunk hashes right, parity hashes wrong: the manifest contradicts
	// itself, and nothing it disagrees with is served.
	parity := make([]Hash, len(d.m.Parity))
	copy(parity, d.m.Parity)
	parity[0][0] ^= 1
	liar, err := NewManifestFEC(testCS, fec, d.m.Files, parity)
	if err != nil {
		t.Fatal(err)
	}
	w2, err := CreateWriter(t.TempDir(), liar, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	writeAll(t, w2, liar, datas, []int{0, 1})
	if _, err := w2.ReadPiece(liar.NumChunks(), make([]byte, testCS)); !errors.Is(err, ErrChunkHash) {
		t.Errorf("parity contradicting the manifest: %v", err)
	}
}

// TestWriterReadNoFEC: without FEC every piece is a chunk and there are no
// stripes.
func TestWriterReadNoFEC(t *testing.T) {
	datas := [][]byte{randBytes(95, testCS+3)}
	m := manifestOf(t, testCS, []string{"f"}, datas)
	w, err := CreateWriter(t.TempDir(), m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	writeAll(t, w, m, datas, []int{0, 1})
	if w.StripeComplete(0) {
		t.Error("StripeComplete(0) without FEC")
	}
	if b, err := w.ReadPiece(1, make([]byte, testCS)); err != nil || !bytes.Equal(b, chunkData(m, datas, 1)) {
		t.Errorf("ReadPiece(1): %v", err)
	}
	if _, err := w.ReadPiece(2, make([]byte, testCS)); !errors.Is(err, ErrChunkIndex) {
		t.Errorf("ReadPiece(2): %v", err)
	}
}
