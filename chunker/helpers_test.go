package chunker

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"math/bits"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// eventually waits up to 10 s for cond, for what concurrent goroutines
// reach without telling anyone (a count they keep, say). It is the one
// place these tests poll: every millisecond, a pause between looks at
// cond, not a wait for anything.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

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

// fileFor builds the manifest entry of data in memory with refChain,
// independently of OpenSource's hashing and of crypto/sha256's state layout.
func fileFor(name string, data []byte, cs int) File {
	f := File{Name: name, Size: int64(len(data)), SHA256: sha256.Sum256(data)}
	f.Chunks = refChain(data, cs)
	if len(f.Chunks) > 0 {
		f.Chunks[len(f.Chunks)-1] = f.SHA256
	}
	return f
}

// refChain returns SHA-256's chaining value after each cs-byte chunk of
// data (cs a multiple of 64), the last chunk included even when short:
// there it is only the state after the last whole block, which callers
// replace with the file's SHA-256. It runs FIPS 180-4's compression
// function in plain Go, a reference for chain.go.
func refChain(data []byte, cs int) []Hash {
	h := refIV
	var out []Hash
	for off := 0; off < len(data); off += cs {
		c := data[off:min(off+cs, len(data))]
		for len(c) >= 64 {
			refBlock(&h, c[:64])
			c = c[64:]
		}
		var v Hash
		for i, w := range h {
			binary.BigEndian.PutUint32(v[4*i:], w)
		}
		out = append(out, v)
	}
	return out
}

// refIV is SHA-256's initial value (FIPS 180-4 §5.3.3).
var refIV = [8]uint32{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}

var refK = [64]uint32{
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

// refBlock is SHA-256's compression function on one 64-byte block.
func refBlock(h *[8]uint32, p []byte) {
	var w [64]uint32
	for i := range 16 {
		w[i] = binary.BigEndian.Uint32(p[4*i:])
	}
	for i := 16; i < 64; i++ {
		s0 := bits.RotateLeft32(w[i-15], -7) ^ bits.RotateLeft32(w[i-15], -18) ^ w[i-15]>>3
		s1 := bits.RotateLeft32(w[i-2], -17) ^ bits.RotateLeft32(w[i-2], -19) ^ w[i-2]>>10
		w[i] = w[i-16] + s0 + w[i-7] + s1
	}
	a, b, c, d, e, f, g, hh := h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]
	for i := range 64 {
		t1 := hh + (bits.RotateLeft32(e, -6) ^ bits.RotateLeft32(e, -11) ^ bits.RotateLeft32(e, -25)) + (e&f ^ ^e&g) + refK[i] + w[i]
		t2 := (bits.RotateLeft32(a, -2) ^ bits.RotateLeft32(a, -13) ^ bits.RotateLeft32(a, -22)) + (a&b ^ a&c ^ b&c)
		a, b, c, d, e, f, g, hh = t1+t2, a, b, c, d+t1, e, f, g
	}
	for i, v := range [8]uint32{a, b, c, d, e, f, g, hh} {
		h[i] += v
	}
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
