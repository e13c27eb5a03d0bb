package chunker

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestKeepIdentical: with KeepIdentical, a final file with the manifest's
// size and SHA-256 counts as received and is served from where it is; the
// other files are downloaded as usual. One that differs is refused
// (naming it) unless Force, which replaces it; an identical one is kept
// even with Force.
func TestKeepIdentical(t *testing.T) {
	datas := [][]byte{randBytes(1, 2*testCS+5), randBytes(2, testCS-1), {}}
	m := manifestOf(t, testCS, []string{"a", "b", "e"}, datas)
	firstB, nB := m.FileChunks(1)

	t.Run("some present", func(t *testing.T) {
		dst := t.TempDir()
		writeFile(t, filepath.Join(dst, "a"), datas[0])
		before, _ := os.Stat(filepath.Join(dst, "a"))
		w, err := CreateWriter(dst, m, WriterOptions{KeepIdentical: true, Force: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := w.Kept(); !slices.Equal(got, []int{0}) {
			t.Fatalf("Kept() = %v, want [0]", got)
		}
		if w.Verified() != int64(len(datas[0])) {
			t.Errorf("Verified() = %d, want %d", w.Verified(), len(datas[0]))
		}
		want := []int{}
		for k := range nB {
			want = append(want, firstB+k)
		}
		if got := w.Missing(); !slices.Equal(got, want) {
			t.Fatalf("Missing() = %v, want b's chunks %v", got, want)
		}
		if b, err := w.ReadChunk(1, make([]byte, testCS)); err != nil || !bytes.Equal(b, chunkData(m, datas, 1)) {
			t.Fatalf("a kept file serves chunk 1: %v", err)
		}
		writeAll(t, w, m, datas, want)
		if err := w.Finish(); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		after, _ := os.Stat(filepath.Join(dst, "a"))
		if !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
			t.Error("the identical file was replaced")
		}
		for i, name := range []string{"a", "b", "e"} {
			if !bytes.Equal(mustRead(t, filepath.Join(dst, name)), datas[i]) {
				t.Errorf("%s differs", name)
			}
		}
		if l := leftovers(t, dst); len(l) > 0 {
			t.Errorf("left %v", l)
		}
	})

	t.Run("all present", func(t *testing.T) {
		dst := t.TempDir()
		for i, name := range []string{"a", "b", "e"} {
			writeFile(t, filepath.Join(dst, name), datas[i])
		}
		w, err := CreateWriter(dst, m, WriterOptions{KeepIdentical: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := w.Kept(); len(got) != 3 || len(w.Missing()) != 0 {
			t.Fatalf("Kept() = %v, Missing() = %v", got, w.Missing())
		}
		if l := leftovers(t, dst); len(l) > 0 {
			t.Errorf("created %v", l)
		}
		if err := w.Finish(); err != nil {
			t.Fatal(err)
		}
		w.Close()
	})

	t.Run("one differs", func(t *testing.T) {
		dst := t.TempDir()
		other := bytes.Clone(datas[0])
		other[len(other)-1] ^= 1 // same size, other contents
		writeFile(t, filepath.Join(dst, "a"), other)
		_, err := CreateWriter(dst, m, WriterOptions{KeepIdentical: true})
		var ee *ExistsError
		if !errors.As(err, &ee) || !errors.Is(err, ErrExists) || ee.Name != "a" || !ee.Differs {
			t.Fatalf("got %v, want an ExistsError for a that differs", err)
		}
		if l := leftovers(t, dst); len(l) > 0 {
			t.Errorf("refusal left %v", l)
		}
		w, err := CreateWriter(dst, m, WriterOptions{KeepIdentical: true, Force: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(w.Kept()) != 0 {
			t.Fatalf("kept %v, a file that differs", w.Kept())
		}
		writeAll(t, w, m, datas, w.Missing())
		if err := w.Finish(); err != nil {
			t.Fatal(err)
		}
		w.Close()
		if !bytes.Equal(mustRead(t, filepath.Join(dst, "a")), datas[0]) {
			t.Error("Force did not replace the file that differs")
		}
	})
}
