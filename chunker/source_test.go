package chunker

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOpenSource(t *testing.T) {
	dir := t.TempDir()
	sizes := []int{0, 1, testCS, 5*testCS + 123, hashBufSize + 1, 3*hashBufSize - 5}
	for _, cs := range []int{testCS, 2 << 20} {
		var paths []string
		var datas [][]byte
		var total int64
		for i, n := range sizes {
			p := filepath.Join(dir, "f"+string(rune('0'+i)))
			d := randBytes(uint64(100+i), n)
			writeFile(t, p, d)
			paths = append(paths, p)
			datas = append(datas, d)
			total += int64(n)
		}
		var last, calls int64
		s, err := OpenSource(context.Background(), paths, cs, func(done, tot int64) {
			if tot != total || done < last || done > total {
				t.Errorf("progress(%d, %d) after %d", done, tot, last)
			}
			last = done
			calls++
		})
		if err != nil {
			t.Fatal(err)
		}
		if last != total || calls == 0 {
			t.Errorf("progress ended at %d of %d", last, total)
		}
		m := s.Manifest()
		if m.ChunkSize != cs {
			t.Errorf("chunk size %d", m.ChunkSize)
		}
		for i, d := range datas {
			want := fileFor(filepath.Base(paths[i]), d, cs)
			got := m.Files[i]
			if got.Name != want.Name || got.Size != want.Size || got.SHA256 != want.SHA256 || len(got.Chunks) != len(want.Chunks) {
				t.Fatalf("cs %d file %d: got %s %d %x, want %s %d %x", cs, i, got.Name, got.Size, got.SHA256, want.Name, want.Size, want.SHA256)
			}
			for k := range want.Chunks {
				if got.Chunks[k] != want.Chunks[k] {
					t.Fatalf("cs %d file %d chunk %d hash differs", cs, i, k)
				}
			}
		}
		buf := make([]byte, cs)
		for i := range m.NumChunks() {
			b, err := s.ReadChunk(i, buf)
			if err != nil {
				t.Fatal(err)
			}
			if !m.Chunk(i).Verify(b) {
				t.Fatalf("ReadChunk(%d) wrong data", i)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := s.ReadChunk(0, buf); !errors.Is(err, ErrClosed) {
			t.Errorf("ReadChunk after Close: %v", err)
		}
	}
}

func TestOpenSourceRefusals(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	writeFile(t, a, []byte("a"))
	writeFile(t, filepath.Join(dir, "sub", "a"), []byte("other a"))
	writeFile(t, filepath.Join(dir, "x.p2pxfer-part"), []byte("x"))
	ctl := filepath.Join(dir, "bad\x1bname")
	writeFile(t, ctl, []byte("x"))
	tests := []struct {
		desc  string
		paths []string
		cs    int
		want  error
	}{
		{"directory", []string{a, filepath.Join(dir, "sub")}, 0, ErrIsDir},
		{"missing", []string{filepath.Join(dir, "nope")}, 0, fs.ErrNotExist},
		{"duplicate base name", []string{a, filepath.Join(dir, "sub", "a")}, 0, ErrDuplicateName},
		{"same path twice", []string{a, a}, 0, ErrDuplicateName},
		{"control character", []string{ctl}, 0, ErrBadName},
		{"reserved name", []string{filepath.Join(dir, "x.p2pxfer-part")}, 0, ErrBadName},
		{"chunk size", []string{a}, 1000, ErrInvalidChunkSize},
	}
	if _, err := os.Stat("/dev/null"); err == nil {
		tests = append(tests, struct {
			desc  string
			paths []string
			cs    int
			want  error
		}{"device", []string{"/dev/null"}, 0, ErrNotRegular})
	}
	for _, tt := range tests {
		s, err := OpenSource(context.Background(), tt.paths, tt.cs, nil)
		if err == nil {
			s.Close()
			t.Errorf("%s: accepted", tt.desc)
			continue
		}
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.desc, err, tt.want)
		}
		if !strings.HasPrefix(err.Error(), "chunker open") {
			t.Errorf("%s: error %q lacks the operation", tt.desc, err)
		}
	}
	_, err := OpenSource(context.Background(), []string{filepath.Join(dir, "sub")}, 0, nil)
	if !errors.Is(err, ErrIsDir) {
		t.Errorf("directory: %v", err)
	}
}

func TestOpenSourceCancel(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	writeFile(t, p, randBytes(1, 4*hashBufSize))
	ctx, cancel := context.WithCancel(context.Background())
	_, err := OpenSource(ctx, []string{p}, 0, func(done, total int64) { cancel() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

func TestSourceChanged(t *testing.T) {
	dir := t.TempDir()
	edits := []struct {
		desc string
		edit func(p string) error
	}{
		{"rewritten in place", func(p string) error {
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			f.WriteAt([]byte("X"), 10)
			f.Close()
			// Some file systems have coarse timestamps; make the change visible.
			later := time.Now().Add(time.Hour)
			return os.Chtimes(p, later, later)
		}},
		{"truncated", func(p string) error { return os.Truncate(p, testCS/2) }},
		{"appended", func(p string) error {
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			_, err = f.Write([]byte("more"))
			f.Close()
			return err
		}},
	}
	for i, e := range edits {
		p := filepath.Join(dir, "file"+string(rune('0'+i)))
		writeFile(t, p, randBytes(uint64(i), 3*testCS))
		s, err := OpenSource(context.Background(), []string{p}, testCS, nil)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, testCS)
		if _, err := s.ReadChunk(0, buf); err != nil {
			t.Fatal(err)
		}
		if err := e.edit(p); err != nil {
			t.Fatal(err)
		}
		_, err = s.ReadChunk(0, buf)
		if !errors.Is(err, ErrSourceChanged) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: got %v, want ErrSourceChanged naming %s", e.desc, err, p)
		}
		s.Close()
	}
}

func TestReadChunkBounds(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	writeFile(t, p, randBytes(1, testCS+1))
	s, err := OpenSource(context.Background(), []string{p}, testCS, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, i := range []int{-1, 2, math.MaxInt} {
		if _, err := s.ReadChunk(i, make([]byte, testCS)); !errors.Is(err, ErrChunkIndex) {
			t.Errorf("ReadChunk(%d): %v", i, err)
		}
	}
	if _, err := s.ReadChunk(0, make([]byte, 10)); !errors.Is(err, io.ErrShortBuffer) {
		t.Errorf("short buffer: %v", err)
	}
	b, err := s.ReadChunk(1, make([]byte, 1)) // the 1-byte last chunk fits
	if err != nil || len(b) != 1 {
		t.Errorf("last chunk: %v %d", err, len(b))
	}
}

func TestChooseChunkSize(t *testing.T) {
	tests := []struct {
		total int64
		want  int
	}{
		{-1, SwarmChunkSize},
		{0, SwarmChunkSize},
		{16 << 20, SwarmChunkSize},
		{256<<20 + 64<<10, 128 << 10},
		{1 << 30, 256 << 10},
		{4 << 30, DefaultChunkSize},
		{64 << 30, DefaultChunkSize},
		{64<<30 + 1<<20, 2 << 20},
		{1 << 40, 16 << 20},
		{1 << 50, MaxChunkSize},
	}
	for _, tt := range tests {
		if got := ChooseChunkSize(tt.total); got != tt.want {
			t.Errorf("ChooseChunkSize(%d) = %d, want %d", tt.total, got, tt.want)
		}
		if CheckChunkSize(ChooseChunkSize(tt.total)) != nil {
			t.Errorf("ChooseChunkSize(%d) invalid", tt.total)
		}
	}
}
