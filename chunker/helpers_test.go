package chunker

import (
	"crypto/sha256"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// testCS is the chunk size used by most tests: the smallest allowed, so
// multi-chunk files stay small.
const testCS = MinChunkSize

// randBytes returns n deterministic pseudo-random bytes.
func randBytes(seed uint64, n int) []byte {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	r := rand.NewChaCha8(s)
	b := make([]byte, n)
	r.Read(b)
	return b
}

// fileFor builds the manifest entry of data in memory, independently of
// OpenSource's pipelined hashing.
func fileFor(name string, data []byte, cs int) File {
	f := File{Name: name, Size: int64(len(data)), SHA256: sha256.Sum256(data)}
	for off := 0; off < len(data); off += cs {
		f.Chunks = append(f.Chunks, sha256.Sum256(data[off:min(off+cs, len(data))]))
	}
	return f
}

// manifestOf builds a manifest for name/data pairs.
func manifestOf(t testing.TB, cs int, names []string, datas [][]byte) *Manifest {
	t.Helper()
	files := make([]File, len(names))
	for i := range names {
		files[i] = fileFor(names[i], datas[i], cs)
	}
	m, err := NewManifest(cs, files)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// chunkData returns global chunk i of datas under m.
func chunkData(m *Manifest, datas [][]byte, i int) []byte {
	ref := m.Chunk(i)
	return datas[ref.File][ref.Offset : ref.Offset+int64(ref.Size)]
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// lowerOpenParts makes Writers created during t keep at most 64 part files
// open, so a test can exceed the budget with few files.
func lowerOpenParts(t testing.TB) {
	old := maxOpenParts
	maxOpenParts = 64
	t.Cleanup(func() { maxOpenParts = old })
}

// bothFinishes runs f once with Finish fsyncing file by file and once with
// one syncFS for all files, where the platform has it.
func bothFinishes(t *testing.T, f func(t *testing.T)) {
	t.Run("fsync", func(t *testing.T) {
		setSyncFSMin(t, math.MaxInt)
		f(t)
	})
	t.Run("syncfs", func(t *testing.T) {
		setSyncFSMin(t, 1)
		f(t)
	})
}

func setSyncFSMin(t *testing.T, n int) {
	old := syncFSMin
	syncFSMin = n
	t.Cleanup(func() { syncFSMin = old })
}
