package chunker

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// writeAll writes the given chunks from several goroutines.
func writeAll(t *testing.T, w *Writer, m *Manifest, datas [][]byte, idx []int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(idx))
	for g := range 4 {
		wg.Go(func() {
			for k := g; k < len(idx); k += 4 {
				if err := w.WriteChunk(idx[k], chunkData(m, datas, idx[k])); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func shuffled(n int, seed uint64) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	r := rand.New(rand.NewPCG(seed, seed))
	r.Shuffle(n, func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
	return idx
}

// leftovers lists part, state and temporary files under dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if strings.Contains(p, ".p2pxfer-") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestRoundTrip(t *testing.T) {
	cases := []struct {
		desc  string
		sizes []int
	}{
		{"empty", []int{0}},
		{"one byte", []int{1}},
		{"exactly one chunk", []int{testCS}},
		{"odd last chunk", []int{5*testCS + 321}},
		{"mixed", []int{0, 1, testCS, 3*testCS + 1, 0, 2*testCS - 1}},
	}
	for n, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			src, dst := t.TempDir(), t.TempDir()
			var paths []string
			var datas [][]byte
			for i, size := range tc.sizes {
				p := filepath.Join(src, "file"+string(rune('a'+i))+".bin")
				d := randBytes(uint64(10*n+i), size)
				writeFile(t, p, d)
				paths = append(paths, p)
				datas = append(datas, d)
			}
			s, err := OpenSource(context.Background(), paths, testCS, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			enc, err := EncodeManifest(s.Manifest())
			if err != nil {
				t.Fatal(err)
			}
			m, err := DecodeManifest(enc) // the receiver's view
			if err != nil {
				t.Fatal(err)
			}
			if m.Digest() != s.Manifest().Digest() {
				t.Fatal("digest changed across encode/decode")
			}
			w, err := CreateWriter(dst, m, WriterOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(w.Missing()); got != m.NumChunks() {
				t.Fatalf("Missing %d, want %d", got, m.NumChunks())
			}
			var wg sync.WaitGroup
			idx := shuffled(m.NumChunks(), uint64(n))
			for g := range 3 {
				wg.Go(func() {
					buf := make([]byte, m.ChunkSize)
					for k := g; k < len(idx); k += 3 {
						b, err := s.ReadChunk(idx[k], buf)
						if err == nil {
							err = w.WriteChunk(idx[k], b)
						}
						if err != nil {
							t.Error(err)
						}
					}
				})
			}
			wg.Wait()
			if len(w.Missing()) != 0 || w.Verified() != m.TotalSize() {
				t.Fatalf("Missing %v, Verified %d of %d", w.Missing(), w.Verified(), m.TotalSize())
			}
			if err := w.Finish(); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			for i, p := range paths {
				if got := mustRead(t, filepath.Join(dst, filepath.Base(p))); !bytes.Equal(got, datas[i]) {
					t.Errorf("file %d differs", i)
				}
			}
			if l := leftovers(t, dst); len(l) > 0 {
				t.Errorf("left behind: %v", l)
			}
		})
	}
}

func TestSubdirectories(t *testing.T) {
	bothFinishes(t, func(t *testing.T) {
		dst := t.TempDir()
		names := []string{"top", "a/b/c.txt", "a/d", "e/f"}
		datas := [][]byte{randBytes(1, 100), randBytes(2, testCS+1), nil, randBytes(3, 5)}
		m := manifestOf(t, testCS, names, datas)
		w, err := CreateWriter(dst, m, WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		writeAll(t, w, m, datas, shuffled(m.NumChunks(), 1))
		if err := w.Finish(); err != nil {
			t.Fatal(err)
		}
		for i, n := range names {
			if !bytes.Equal(mustRead(t, filepath.Join(dst, filepath.FromSlash(n))), datas[i]) {
				t.Errorf("%s differs", n)
			}
		}
	})
}

// TestManyFiles exceeds the open-part cache so parts are closed and reopened.
func TestManyFiles(t *testing.T) {
	bothFinishes(t, func(t *testing.T) {
		lowerOpenParts(t)
		dst := t.TempDir()
		var names []string
		var datas [][]byte
		for i := range 2*maxOpenParts + 5 {
			names = append(names, "f"+strings.Repeat("x", i%7)+string(rune('A'+i%26))+string(rune('a'+i/26)))
			datas = append(datas, randBytes(uint64(i), (i%3)*testCS+i))
		}
		m := manifestOf(t, testCS, names, datas)
		w, err := CreateWriter(dst, m, WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		writeAll(t, w, m, datas, shuffled(m.NumChunks(), 2))
		if err := w.Finish(); err != nil {
			t.Fatal(err)
		}
		for i, n := range names {
			if !bytes.Equal(mustRead(t, filepath.Join(dst, n)), datas[i]) {
				t.Fatalf("%s differs", n)
			}
		}
	})
}

func resumeSetup(t *testing.T) (dst string, m *Manifest, datas [][]byte) {
	dst = t.TempDir()
	datas = [][]byte{randBytes(1, 20*testCS+17), randBytes(2, 3*testCS)}
	return dst, manifestOf(t, testCS, []string{"big.bin", "d/small.bin"}, datas), datas
}

func TestResume(t *testing.T) {
	dst, m, datas := resumeSetup(t)
	w, err := CreateWriter(dst, m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var even, odd []int
	for i := range m.NumChunks() {
		if i%2 == 0 {
			even = append(even, i)
		} else {
			odd = append(odd, i)
		}
	}
	writeAll(t, w, m, datas, even)
	verified := w.Verified()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteChunk(1, chunkData(m, datas, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteChunk after Close: %v", err)
	}
	if !exists(filepath.Join(dst, StateName("big.bin"))) {
		t.Fatal("no state file after Close")
	}

	var progress int64
	w, err = CreateWriter(dst, m, WriterOptions{Progress: func(done, total int64) { progress = done }})
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Missing(); !slices.Equal(got, odd) {
		t.Fatalf("Missing after resume = %v, want %v", got, odd)
	}
	if w.Verified() != verified || progress != verified {
		t.Errorf("Verified %d, progress %d, want %d", w.Verified(), progress, verified)
	}
	writeAll(t, w, m, datas, odd)
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	for i, n := range []string{"big.bin", "d/small.bin"} {
		if !bytes.Equal(mustRead(t, filepath.Join(dst, n)), datas[i]) {
			t.Errorf("%s differs", n)
		}
	}
	if l := leftovers(t, dst); len(l) > 0 {
		t.Errorf("left behind: %v", l)
	}
}

func TestResumeCorruptChunk(t *testing.T) {
	dst, m, datas := resumeSetup(t)
	w, err := CreateWriter(dst, m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, m, datas, []int{0, 1, 2, 3, 4})
	w.Close()
	part := filepath.Join(dst, PartName("big.bin"))
	f, err := os.OpenFile(part, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte{0}
	f.ReadAt(b, 2*testCS+100)
	b[0] ^= 0xff
	f.WriteAt(b, 2*testCS+100)
	f.Close()

	w, err = CreateWriter(dst, m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	missing := w.Missing()
	if len(missing) != m.NumChunks()-4 || missing[0] != 2 || w.Have(2) || !w.Have(3) {
		t.Fatalf("Missing = %v", missing[:min(5, len(missing))])
	}
	writeAll(t, w, m, datas, missing)
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustRead(t, filepath.Join(dst, "big.bin")), datas[0]) {
		t.Error("big.bin differs")
	}
}

func TestResumeDifferentManifest(t *testing.T) {
	dst, m, datas := resumeSetup(t)
	w, err := CreateWriter(dst, m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, m, datas, []int{0, 1, 2, 3})
	w.Close()

	// Same name, other content: starts over.
	datas2 := [][]byte{randBytes(9, 20*testCS+17)}
	m2 := manifestOf(t, testCS, []string{"big.bin"}, datas2)
	w, err = CreateWriter(dst, m2, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Missing()) != m2.NumChunks() || w.Verified() != 0 {
		t.Fatalf("resumed across manifests: %d missing of %d", len(w.Missing()), m2.NumChunks())
	}
	writeAll(t, w, m2, datas2, shuffled(m2.NumChunks(), 3))
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if !bytes.Equal(mustRead(t, filepath.Join(dst, "big.bin")), datas2[0]) {
		t.Error("big.bin differs")
	}
}

// The same file re-sent as part of another set still resumes: the state is
// only a hint, so matching on the file's own hash is safe.
func TestResumeSameFileOtherSet(t *testing.T) {
	dst, m, datas := resumeSetup(t)
	w, err := CreateWriter(dst, m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, m, datas, []int{0, 1, 2, 3})
	w.Close()
	datas2 := [][]byte{[]byte("new"), datas[0]}
	m2 := manifestOf(t, testCS, []string{"new.txt", "big.bin"}, datas2)
	w, err = CreateWriter(dst, m2, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Verified() != 4*testCS {
		t.Fatalf("Verified %d, want %d", w.Verified(), 4*testCS)
	}
}

// kill closes w's files as a killed process's end, without a word:
// nothing saved, the locks released.
func kill(w *Writer) {
	w.life.Lock()
	defer w.life.Unlock()
	w.closed = true
	w.bg.Wait()
	for _, fi := range w.open {
		w.files[fi].file.Close()
	}
	if w.pin != nil {
		w.pin.Close()
	}
	if w.barrier != nil {
		w.barrier.Close()
	}
	w.root.Close()
}

// A writer killed without Close resumes from its last periodic save.
func TestResumeAfterKill(t *testing.T) {
	dst, m, datas := resumeSetup(t)
	w, err := CreateWriter(dst, m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	writeAll(t, w, m, datas, []int{0, 1, 2})
	if err := w.save(); err != nil { // what WriteChunk does every second
		t.Fatal(err)
	}
	writeAll(t, w, m, datas, []int{5, 6}) // not saved: lost by the "kill"
	kill(w)
	w2, err := CreateWriter(dst, m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if got := w2.Missing(); got[0] != 3 || len(got) != m.NumChunks()-3 {
		t.Fatalf("Missing %v", got)
	}
}

func TestWriteChunkRefusals(t *testing.T) {
	dst := t.TempDir()
	datas := [][]byte{randBytes(1, 2*testCS+5)}
	m := manifestOf(t, testCS, []string{"f"}, datas)
	w, err := CreateWriter(dst, m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	bad := bytes.Clone(chunkData(m, datas, 1))
	bad[0] ^= 1
	tests := []struct {
		desc string
		i    int
		data []byte
		want error
	}{
		{"bad hash", 1, bad, ErrChunkHash},
		{"other chunk's data", 0, chunkData(m, datas, 1), ErrChunkHash},
		{"short", 0, chunkData(m, datas, 0)[:10], ErrChunkSize},
		{"long last chunk", 2, make([]byte, testCS), ErrChunkSize},
		{"negative index", -1, nil, ErrChunkIndex},
		{"index past end", 3, chunkData(m, datas, 2), ErrChunkIndex},
		{"huge index", math.MaxInt, nil, ErrChunkIndex},
	}
	for _, tt := range tests {
		if err := w.WriteChunk(tt.i, tt.data); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.desc, err, tt.want)
		}
	}
	part := mustRead(t, filepath.Join(dst, PartName("f")))
	// A new part file grows as chunks land: empty, or zeros, is right.
	if len(part) > len(datas[0]) || !bytes.Equal(part, make([]byte, len(part))) {
		t.Error("refused chunk data reached the part file")
	}
	if len(w.Missing()) != 3 || w.Verified() != 0 {
		t.Error("refused chunk counted")
	}
	if err := w.WriteChunk(1, chunkData(m, datas, 1)); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteChunk(1, chunkData(m, datas, 1)); err != nil {
		t.Fatalf("duplicate write: %v", err)
	}
	if err := w.WriteChunk(1, bad); !errors.Is(err, ErrChunkHash) {
		t.Errorf("bad duplicate: %v", err)
	}
	if w.Verified() != testCS || !w.Have(1) || w.Bitmap().Count() != 1 {
		t.Error("duplicate write counted twice")
	}
	if err := w.Finish(); !errors.Is(err, ErrIncomplete) {
		t.Errorf("Finish incomplete: %v", err)
	}
}

func TestExistingFinal(t *testing.T) {
	dst := t.TempDir()
	datas := [][]byte{randBytes(1, testCS+1)}
	m := manifestOf(t, testCS, []string{"f"}, datas)
	final := filepath.Join(dst, "f")
	writeFile(t, final, []byte("precious"))

	_, err := CreateWriter(dst, m, WriterOptions{})
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), `"f"`) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("got %v", err)
	}
	if l := leftovers(t, dst); len(l) > 0 {
		t.Errorf("refusal left %v", l)
	}

	w, err := CreateWriter(dst, m, WriterOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, m, datas, []int{1, 0})
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if !bytes.Equal(mustRead(t, final), datas[0]) {
		t.Error("Force did not replace")
	}

	// A directory is never replaced.
	m2 := manifestOf(t, testCS, []string{"d"}, [][]byte{[]byte("x")})
	os.Mkdir(filepath.Join(dst, "d"), 0o755)
	if _, err := CreateWriter(dst, m2, WriterOptions{Force: true}); !errors.Is(err, ErrExists) {
		t.Errorf("directory: %v", err)
	}
}

// A final file that appears during the transfer is not overwritten.
func TestExistingFinalRace(t *testing.T) {
	bothFinishes(t, func(t *testing.T) {
		dst := t.TempDir()
		datas := [][]byte{randBytes(1, testCS+1)}
		m := manifestOf(t, testCS, []string{"f"}, datas)
		w, err := CreateWriter(dst, m, WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		writeAll(t, w, m, datas, []int{0, 1})
		final := filepath.Join(dst, "f")
		writeFile(t, final, []byte("appeared"))
		if err := w.Finish(); !errors.Is(err, ErrExists) {
			t.Fatalf("Finish: %v", err)
		}
		w.Close()
		if string(mustRead(t, final)) != "appeared" {
			t.Error("overwritten")
		}
		// The verified part survives for a rerun with --force.
		w, err = CreateWriter(dst, m, WriterOptions{Force: true})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if len(w.Missing()) != 0 {
			t.Fatalf("Missing %v", w.Missing())
		}
		if err := w.Finish(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(mustRead(t, final), datas[0]) {
			t.Error("not replaced")
		}
	})
}

func TestNoEscape(t *testing.T) {
	base := t.TempDir()
	dst, outside := filepath.Join(base, "dst"), filepath.Join(base, "outside")
	os.Mkdir(dst, 0o755)
	os.Mkdir(outside, 0o755)
	target := filepath.Join(outside, "target")
	writeFile(t, target, []byte("outside"))
	writeFile(t, filepath.Join(dst, "victim"), []byte("victim"))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(outside, filepath.Join(dst, "evil")))
	must(os.Symlink(target, filepath.Join(dst, "link.txt")))
	must(os.Symlink(target, filepath.Join(dst, PartName("p"))))
	must(os.Symlink("victim", filepath.Join(dst, PartName("q"))))

	one := [][]byte{[]byte("payload")}
	for _, name := range []string{"evil/x", "evil/sub/x", "p", "q"} {
		m := manifestOf(t, testCS, []string{name}, one)
		w, err := CreateWriter(dst, m, WriterOptions{Force: true})
		if err == nil {
			writeAll(t, w, m, one, []int{0})
			err = w.Finish()
			w.Close()
		}
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// The symlink itself may be replaced (Force), never written through.
	m := manifestOf(t, testCS, []string{"link.txt"}, one)
	if _, err := CreateWriter(dst, m, WriterOptions{}); !errors.Is(err, ErrExists) {
		t.Errorf("symlink final without Force: %v", err)
	}
	w, err := CreateWriter(dst, m, WriterOptions{Force: true})
	must(err)
	writeAll(t, w, m, one, []int{0})
	must(w.Finish())
	w.Close()
	if st, err := os.Lstat(filepath.Join(dst, "link.txt")); err != nil || !st.Mode().IsRegular() {
		t.Errorf("link.txt not replaced by a file: %v", err)
	}

	// A directory swapped for a symlink mid-transfer does not lead out either.
	two := [][]byte{[]byte("late")}
	m = manifestOf(t, testCS, []string{"sub/late"}, two)
	w, err = CreateWriter(dst, m, WriterOptions{})
	must(err)
	writeAll(t, w, m, two, []int{0})
	must(os.Rename(filepath.Join(dst, "sub"), filepath.Join(dst, "sub.old")))
	must(os.Symlink(outside, filepath.Join(dst, "sub")))
	if err := w.Finish(); err == nil {
		t.Error("Finish through a swapped-in symlink succeeded")
	}
	w.Close()

	entries, _ := os.ReadDir(outside)
	if len(entries) != 1 || string(mustRead(t, target)) != "outside" {
		t.Errorf("outside directory touched: %v", entries)
	}
	if string(mustRead(t, filepath.Join(dst, "victim"))) != "victim" {
		t.Error("victim written through a part-file symlink")
	}
}

// Two names mapping to one file (as on a case-insensitive volume) are refused.
func TestAliasedParts(t *testing.T) {
	dst := t.TempDir()
	writeFile(t, filepath.Join(dst, PartName("a")), nil)
	if err := os.Link(filepath.Join(dst, PartName("a")), filepath.Join(dst, PartName("b"))); err != nil {
		t.Skip(err)
	}
	m := manifestOf(t, testCS, []string{"a", "b"}, [][]byte{[]byte("1"), []byte("2")})
	if _, err := CreateWriter(dst, m, WriterOptions{}); !errors.Is(err, ErrDuplicateName) {
		t.Fatalf("got %v", err)
	}
}

func TestNoSpace(t *testing.T) {
	dst := t.TempDir()
	free, err := FreeSpace(dst)
	if err != nil {
		t.Skip(err)
	}
	// 64 TiB of sparse promises: 1<<20 chunk hashes, about 32 MiB.
	const size = 1 << 46
	if free >= size {
		t.Skip("more than 64 TiB free")
	}
	f := File{Name: "huge", Size: size, Chunks: make([]Hash, size/MaxChunkSize)}
	m, err := NewManifest(MaxChunkSize, []File{f})
	if err != nil {
		t.Fatal(err)
	}
	_, err = CreateWriter(dst, m, WriterOptions{})
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "70368744177664") {
		t.Fatalf("got %v", err)
	}
	if l := leftovers(t, dst); len(l) > 0 {
		t.Errorf("refusal left %v", l)
	}
}

// TestTimedSave: once saveInterval has passed, a chunk triggers a state
// save if it protects at least minSavePerFile per file with new chunks, and
// not otherwise (a thousand tiny files would each cost two fsyncs).
func TestTimedSave(t *testing.T) {
	for _, tt := range []struct {
		name  string
		size  int
		saved bool
	}{{"tiny", 100, false}, {"large", minSavePerFile, true}} {
		t.Run(tt.name, func(t *testing.T) {
			dst := t.TempDir()
			cs := max(testCS, tt.size)
			datas := [][]byte{randBytes(1, tt.size), randBytes(2, tt.size)}
			m := manifestOf(t, cs, []string{"a", "b"}, datas)
			w, err := CreateWriter(dst, m, WriterOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if err := w.WriteChunk(0, datas[0]); err != nil {
				t.Fatal(err)
			}
			w.mu.Lock()
			w.lastSave = time.Now().Add(-2 * saveInterval)
			w.mu.Unlock()
			if err := w.WriteChunk(1, datas[1]); err != nil {
				t.Fatal(err)
			}
			w.bg.Wait()
			for _, name := range []string{"a", "b"} {
				if got := exists(filepath.Join(dst, StateName(name))); got != tt.saved {
					t.Errorf("state of %s saved: %v, want %v", name, got, tt.saved)
				}
			}
		})
	}
}

// TestWriteBehind checks the ranges write-behind hands the kernel: write-back
// starts only on the written prefix (every chunk up to there present), step
// by step without gaps, and each stretch is dropped from the cache one step
// after its write-back started. Out-of-order chunks hold the steps back.
func TestWriteBehind(t *testing.T) {
	defer func(step int64, wb, drop func(*os.File, int64, int64)) {
		flushStep, startWriteback, dropCached = step, wb, drop
	}(flushStep, startWriteback, dropCached)
	flushStep = 4 * testCS

	data := randBytes(7, 21*testCS+100)
	m := manifestOf(t, testCS, []string{"f"}, [][]byte{data})
	dst := t.TempDir()
	w, err := CreateWriter(dst, m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	type span struct{ off, n int64 }
	var started, dropped []span
	allWritten := func(s span) {
		for off := s.off; off < s.off+s.n; off += testCS {
			if !w.Have(int(off / testCS)) {
				t.Errorf("range %+v includes chunk %d, not written yet", s, off/testCS)
			}
		}
	}
	startWriteback = func(f *os.File, off, n int64) {
		if filepath.Base(f.Name()) != PartName("f") {
			t.Errorf("write-back on %s", f.Name())
		}
		allWritten(span{off, n})
		started = append(started, span{off, n})
	}
	dropCached = func(_ *os.File, off, n int64) { dropped = append(dropped, span{off, n}) }

	// 0-4 in order, then 9 down to 6 before 5: no step while 5 is
	// missing, then one reaching past all of them. The 100-byte tail
	// chunk 21 leaves less than a step.
	order := []int{0, 1, 2, 3, 4, 9, 8, 7, 6, 5}
	for i := 10; i < m.NumChunks(); i++ {
		order = append(order, i)
	}
	for _, i := range order {
		if err := w.WriteChunk(i, chunkData(m, [][]byte{data}, i)); err != nil {
			t.Fatal(err)
		}
		if i == 6 && len(started) != 1 {
			t.Fatalf("after chunk 6 (5 missing): %d write-backs, want 1", len(started))
		}
	}
	want := []span{{0, 4 * testCS}, {4 * testCS, 6 * testCS}, {10 * testCS, 4 * testCS}, {14 * testCS, 4 * testCS}}
	if !slices.Equal(started, want) {
		t.Errorf("write-back ranges %v, want %v", started, want)
	}
	// Each drop is the range whose write-back started a step before (the
	// first call drops nothing: n 0).
	if len(dropped) != len(started) || dropped[0].n != 0 {
		t.Fatalf("drops %v for write-backs %v", dropped, started)
	}
	for k := 1; k < len(dropped); k++ {
		if dropped[k] != started[k-1] {
			t.Errorf("drop %d is %v, want %v", k, dropped[k], started[k-1])
		}
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, filepath.Join(dst, "f")); !bytes.Equal(got, data) {
		t.Error("file differs")
	}
}

// TestWriteBehindConcurrent: chunks written from several goroutines in any
// order still move the written prefix to the end, so write-back covers the
// file from 0 without gaps up to less than a step from its end.
func TestWriteBehindConcurrent(t *testing.T) {
	defer func(step int64, wb, drop func(*os.File, int64, int64)) {
		flushStep, startWriteback, dropCached = step, wb, drop
	}(flushStep, startWriteback, dropCached)
	flushStep = 2 * testCS
	var mu sync.Mutex
	var started [][2]int64
	startWriteback = func(_ *os.File, off, n int64) {
		mu.Lock()
		started = append(started, [2]int64{off, n})
		mu.Unlock()
	}
	dropCached = func(*os.File, int64, int64) {}

	data := randBytes(8, 64*testCS+5)
	datas := [][]byte{data}
	m := manifestOf(t, testCS, []string{"f"}, datas)
	w, err := CreateWriter(t.TempDir(), m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	order := rand.New(rand.NewPCG(1, 2)).Perm(m.NumChunks())
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for k := g; k < len(order); k += 4 {
				if err := w.WriteChunk(order[k], chunkData(m, datas, order[k])); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	slices.SortFunc(started, func(a, b [2]int64) int { return int(a[0] - b[0]) })
	var end int64
	for _, s := range started {
		if s[0] != end {
			t.Fatalf("write-back ranges %v have a gap or overlap at %d", started, end)
		}
		end += s[1]
	}
	if size := int64(len(data)); end <= size-flushStep || end > size {
		t.Errorf("write-back reached %d of %d bytes (step %d)", end, size, flushStep)
	}
}

// TestSmallFilesSavedAtClose: a save during the transfer leaves out files
// under minSavePerFile (two fsyncs, a create and a rename each, for what
// costs less to fetch again); Close saves them too, and a resume finds
// them.
func TestSmallFilesSavedAtClose(t *testing.T) {
	dst := t.TempDir()
	cs := 2 * minSavePerFile
	names := []string{"big", "s1", "s2"}
	datas := [][]byte{randBytes(1, 2*cs), randBytes(2, 1000), randBytes(3, minSavePerFile-1)}
	m := manifestOf(t, cs, names, datas)
	w, err := CreateWriter(dst, m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{2, 3, 0} { // the small files, then half of big
		if i == 0 {
			w.mu.Lock()
			w.lastSave = time.Now().Add(-2 * saveInterval)
			w.mu.Unlock()
		}
		if err := w.WriteChunk(i, chunkData(m, datas, i)); err != nil {
			t.Fatal(err)
		}
	}
	w.bg.Wait()
	for fi, want := range []bool{true, false, false} {
		if got := exists(filepath.Join(dst, StateName(names[fi]))); got != want {
			t.Errorf("after a save mid-transfer, state of %s: %v, want %v", names[fi], got, want)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if !exists(filepath.Join(dst, StateName(name))) {
			t.Errorf("after Close, no state of %s", name)
		}
	}
	w, err = CreateWriter(dst, m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got, want := w.Verified(), int64(cs+1000+minSavePerFile-1); got != want {
		t.Errorf("resumed with %d bytes verified, want %d", got, want)
	}
}
