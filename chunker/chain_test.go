package chunker

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"
	"testing"
)

// refSum is SHA-256 by refBlock with FIPS 180-4's padding, to check the
// reference itself against crypto/sha256.
func refSum(data []byte) Hash {
	msg := append(bytes.Clone(data), 0x80)
	for len(msg)%64 != 56 {
		msg = append(msg, 0)
	}
	msg = binary.BigEndian.AppendUint64(msg, uint64(len(data))*8)
	h := refIV
	for ; len(msg) > 0; msg = msg[64:] {
		refBlock(&h, msg[:64])
	}
	var out Hash
	for i, w := range h {
		binary.BigEndian.PutUint32(out[4*i:], w)
	}
	return out
}

// TestChainMatchesSHA256 checks chain.go's use of crypto/sha256's state
// against a plain-Go SHA-256: the chaining values OpenSource's hashing
// takes at every boundary, and Verify for every chunk. A Go release that
// changed the marshaled state would fail here rather than make every
// transfer fail its checks.
func TestChainMatchesSHA256(t *testing.T) {
	for _, n := range []int{0, 1, 55, 56, 63, 64, 65, 1000} {
		d := randBytes(uint64(n), n)
		if refSum(d) != sha256.Sum256(d) {
			t.Fatalf("reference SHA-256 wrong for %d bytes", n)
		}
	}
	var iv Hash
	for i, w := range refIV {
		binary.BigEndian.PutUint32(iv[4*i:], w)
	}
	if initialChain != iv {
		t.Fatal("initialChain is not SHA-256's initial value")
	}
	for _, cs := range []int{64, testCS} {
		for _, size := range []int{1, cs - 1, cs, cs + 1, 3 * cs, 3*cs + 100} {
			data := randBytes(uint64(size+cs), size)
			want := refChain(data, cs)
			h := sha256.New()
			var cuts []Hash
			for off := 0; off < size; off += cs {
				end := min(off+cs, size)
				h.Write(data[off:end])
				if end < size {
					v, ok := chainValue(h)
					if !ok {
						t.Fatal("chainValue: crypto/sha256's state layout not understood")
					}
					cuts = append(cuts, v)
				}
			}
			if !slices.Equal(cuts, want[:len(want)-1]) {
				t.Errorf("cs %d size %d: chaining values differ from the reference", cs, size)
			}
			if Hash(h.Sum(nil)) != sha256.Sum256(data) {
				t.Errorf("cs %d size %d: Sum is not the SHA-256", cs, size)
			}
			if cs < MinChunkSize {
				continue // below a manifest's chunk sizes
			}
			m := manifestOf(t, cs, []string{"f"}, [][]byte{data})
			for i := range m.NumChunks() {
				if ref := m.Chunk(i); !ref.Verify(chunkData(m, [][]byte{data}, i)) {
					t.Errorf("cs %d size %d: chunk %d does not verify", cs, size, i)
				}
			}
		}
	}
}

// TestVerify: a chunk verifies with its own bytes only, at its own place in
// its own file's chain; and a file's chunks all verifying is its SHA-256
// matching.
func TestVerify(t *testing.T) {
	// Chunks 0 and 2 of "rep" have the same bytes: they verify alike
	// though their hashes differ (each chains from what came before).
	block := randBytes(7, testCS)
	rep := bytes.Join([][]byte{block, randBytes(8, testCS), block, []byte("tail")}, nil)
	datas := [][]byte{rep, randBytes(9, 2*testCS), randBytes(10, 5)}
	m := manifestOf(t, testCS, []string{"rep", "b", "c"}, datas)
	if a, b := m.Chunk(0).Hash, m.Chunk(2).Hash; a == b {
		t.Fatal("equal chunks at different places have the same hash")
	}
	for i := range m.NumChunks() {
		ref := m.Chunk(i)
		good := chunkData(m, datas, i)
		if !ref.Verify(good) {
			t.Fatalf("chunk %d: its own bytes do not verify", i)
		}
		if ref.Last != (i == 3 || i == 5 || i == 6) {
			t.Errorf("chunk %d: Last %v", i, ref.Last)
		}
		if ref.Last && ref.Hash != m.Files[ref.File].SHA256 {
			t.Errorf("chunk %d: last chunk's hash is not the file's SHA-256", i)
		}
		bad := bytes.Clone(good)
		bad[len(bad)/2] ^= 1
		if ref.Verify(bad) {
			t.Errorf("chunk %d: a flipped bit verifies", i)
		}
		if ref.Verify(good[:len(good)-1]) || ref.Verify(append(bytes.Clone(good), 0)) {
			t.Errorf("chunk %d: a wrong length verifies", i)
		}
		for j := range m.NumChunks() {
			if other := chunkData(m, datas, j); j != i && !bytes.Equal(other, good) && ref.Verify(other) {
				t.Errorf("chunk %d verifies with chunk %d's bytes", i, j)
			}
		}
	}
	if !m.Chunk(2).Verify(block) {
		t.Error("chunk 2 does not verify with its bytes, equal to chunk 0's")
	}
	// The same bytes at another file's chunk 1 (same offset, other chain).
	if m.Chunk(5).Verify(chunkData(m, datas, 1)) {
		t.Error("another file's chunk verifies")
	}
	// A ref taken out of its chain: the right bytes, the wrong predecessor.
	ref := m.Chunk(1)
	ref.Prev = m.Chunk(4).Hash
	if ref.Verify(chunkData(m, datas, 1)) {
		t.Error("a chunk verifies after the wrong predecessor")
	}
	// Pieces: a data piece verifies as its chunk.
	if p := m.Piece(1); !p.Verify(chunkData(m, datas, 1)) || p.Verify(chunkData(m, datas, 4)) {
		t.Error("PieceRef.Verify differs from ChunkRef.Verify for a data piece")
	}
}

// TestManifestChainRules: a manifest whose last chunk hash is not its
// sha256, or whose empty file claims a sha256 other than that of no bytes,
// is refused both when built and when decoded, and the wire form leaves
// the last chunk hash out.
func TestManifestChainRules(t *testing.T) {
	data := randBytes(3, 2*testCS+9)
	f := fileFor("a", data, testCS)

	liar := f
	liar.Chunks = append([]Hash(nil), f.Chunks...)
	liar.SHA256[0] ^= 1
	if _, err := NewManifest(testCS, []File{liar}); !errors.Is(err, ErrBadManifest) {
		t.Errorf("sha256 other than the last chunk's: %v", err)
	}
	empty := File{Name: "e", SHA256: Hash{1}}
	if _, err := NewManifest(testCS, []File{empty}); !errors.Is(err, ErrBadManifest) {
		t.Errorf("empty file with a wrong sha256: %v", err)
	}
	empty.SHA256 = sha256.Sum256(nil)
	m, err := NewManifest(testCS, []File{f, empty})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := EncodeManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	// Two of three hashes on the wire: 64 bytes, 88 in base64.
	if w := decodeWireForTest(t, enc); len(w.Files[0].Chunks) != 2*HashSize || len(w.Files[1].Chunks) != 0 {
		t.Errorf("wire chunk blobs of %d and %d bytes", len(w.Files[0].Chunks), len(w.Files[1].Chunks))
	}
	back, err := DecodeManifest(enc)
	if err != nil {
		t.Fatal(err)
	}
	if back.Digest() != m.Digest() || !slices.Equal(back.Files[0].Chunks, f.Chunks) {
		t.Error("decoded manifest differs")
	}
	// The last chunk's hash sent as well is one too many.
	w := decodeWireForTest(t, enc)
	w.Files[0].Chunks = append(w.Files[0].Chunks, f.SHA256[:]...)
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeManifest(b); !errors.Is(err, ErrBadManifest) {
		t.Errorf("last chunk hash on the wire: %v", err)
	}
}

func decodeWireForTest(t *testing.T, enc []byte) testWire {
	t.Helper()
	var w testWire
	if err := json.Unmarshal(enc, &w); err != nil {
		t.Fatal(err)
	}
	return w
}
