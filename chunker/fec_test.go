package chunker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/reedsolomon"
)

// fecTestData holds files, their manifest with FEC, and every parity piece
// as computed independently of the package (whole padded stripes through
// reedsolomon's Encode, not EncodeIdx).
type fecTestData struct {
	m      *Manifest
	datas  [][]byte
	parity [][]byte // parity piece NumChunks+i is parity[i]
}

func fecData(t testing.TB, cs int, fec FEC, names []string, datas [][]byte) fecTestData {
	t.Helper()
	plain := manifestOf(t, cs, names, datas)
	n := plain.NumChunks()
	var parity [][]byte
	var hashes []Hash
	if fec.Enabled() {
		for first := 0; first < n; first += fec.K {
			k := min(fec.K, n-first)
			shard := 0
			for i := first; i < first+k; i++ {
				shard = max(shard, plain.Chunk(i).Size)
			}
			shards := make([][]byte, k+fec.M)
			for i := range shards {
				shards[i] = make([]byte, shard)
				if i < k {
					copy(shards[i], chunkData(plain, datas, first+i))
				}
			}
			enc, err := reedsolomon.New(k, fec.M)
			if err != nil {
				t.Fatal(err)
			}
			if err := enc.Encode(shards); err != nil {
				t.Fatal(err)
			}
			for _, p := range shards[k:] {
				parity = append(parity, p)
				hashes = append(hashes, sha256.Sum256(p))
			}
		}
	}
	m, err := NewManifestFEC(cs, fec, plain.Files, hashes)
	if err != nil {
		t.Fatal(err)
	}
	return fecTestData{m: m, datas: datas, parity: parity}
}

// piece returns the bytes of piece p.
func (d fecTestData) piece(p int) []byte {
	if n := d.m.NumChunks(); p >= n {
		return d.parity[p-n]
	}
	return chunkData(d.m, d.datas, p)
}

func filesOfSizes(seed uint64, sizes []int) (names []string, datas [][]byte) {
	for i, n := range sizes {
		names = append(names, fmt.Sprintf("f%02d", i))
		datas = append(datas, randBytes(seed+uint64(i), n))
	}
	return names, datas
}

func TestParseFEC(t *testing.T) {
	good := []struct {
		in   string
		want FEC
	}{
		{"off", FEC{}},
		{"", FEC{}},
		{"8+2", FEC{8, 2}},
		{"1+1", FEC{1, 1}},
		{"64+64", FEC{64, 64}},
		{"010+03", FEC{10, 3}},
	}
	for _, tt := range good {
		got, err := ParseFEC(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseFEC(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			continue
		}
		if back, err := ParseFEC(got.String()); err != nil || back != got {
			t.Errorf("ParseFEC(%q.String() = %q) = %v, %v", tt.in, got.String(), back, err)
		}
	}
	for _, in := range []string{"0+0", "0+2", "8+0", "65+1", "1+65", "8+", "+2", "8", "8+-2", "8++2", "+8+2",
		" 8+2", "8+2 ", "8 + 2", "a+b", "OFF", "none", "8+2+1", "0008+2", "8x2", "１+２"} {
		if got, err := ParseFEC(in); !errors.Is(err, ErrInvalidFEC) {
			t.Errorf("ParseFEC(%q) = %v, %v; want ErrInvalidFEC", in, got, err)
		}
	}
	if (FEC{}).String() != "off" || (FEC{8, 2}).String() != "8+2" {
		t.Error("String")
	}
	for _, f := range []FEC{{0, 1}, {1, 0}, {-1, 1}, {65, 1}, {1, 65}, {math.MaxInt, 1}} {
		if err := CheckFEC(f); !errors.Is(err, ErrInvalidFEC) {
			t.Errorf("CheckFEC(%+v) = %v", f, err)
		}
	}
}

func TestFECLayout(t *testing.T) {
	cs := testCS
	tests := []struct {
		desc  string
		sizes []int
		fec   FEC
	}{
		{"several files, odd sizes, empty files between", []int{2*cs + 5, 0, 1, 3 * cs, 7, 0, cs + 1}, FEC{3, 2}},
		{"stripes span files, last stripe short", []int{cs, cs - 1, 2*cs + 3, 5}, FEC{4, 1}},
		{"single-chunk files", []int{1, 2, 3, 4, 5}, FEC{2, 3}},
		{"short chunks, longest not last", []int{9, 3, cs - 1, 2, 1, 4}, FEC{3, 1}},
		{"K larger than the chunk count", []int{2*cs + 1}, FEC{64, 3}},
		{"K = 1", []int{cs + 2, 9}, FEC{1, 2}},
		{"exact multiple of K", []int{4 * cs}, FEC{2, 2}},
		{"only empty files", []int{0, 0}, FEC{3, 2}},
		{"FEC off", []int{cs + 1, 0, 3}, FEC{}},
	}
	for _, tt := range tests {
		names, datas := filesOfSizes(1, tt.sizes)
		d := fecData(t, cs, tt.fec, names, datas)
		m := d.m
		// Expected layout, straight from the sizes.
		var chunkSizes []int
		for _, n := range tt.sizes {
			for off := 0; off < n; off += cs {
				chunkSizes = append(chunkSizes, min(cs, n-off))
			}
		}
		n := len(chunkSizes)
		stripes := 0
		if tt.fec.Enabled() {
			stripes = (n + tt.fec.K - 1) / tt.fec.K
		}
		if m.NumChunks() != n || m.NumStripes() != stripes || m.NumPieces() != n+stripes*tt.fec.M {
			t.Errorf("%s: NumChunks %d NumStripes %d NumPieces %d, want %d %d %d", tt.desc,
				m.NumChunks(), m.NumStripes(), m.NumPieces(), n, stripes, n+stripes*tt.fec.M)
			continue
		}
		if len(m.Parity) != stripes*tt.fec.M {
			t.Errorf("%s: %d parity hashes", tt.desc, len(m.Parity))
		}
		for s := range stripes {
			first := s * tt.fec.K
			ndata := min(tt.fec.K, n-first)
			shard := 0
			for _, sz := range chunkSizes[first : first+ndata] {
				shard = max(shard, sz)
			}
			want := StripeRef{Index: s, FirstChunk: first, NData: ndata, FirstParity: n + s*tt.fec.M, NParity: tt.fec.M, ShardSize: shard}
			if got := m.Stripe(s); got != want {
				t.Errorf("%s: Stripe(%d) = %+v, want %+v", tt.desc, s, got, want)
			}
		}
		for p := range m.NumPieces() {
			var want PieceRef
			if p < n {
				want = PieceRef{Index: p, Stripe: -1, Size: chunkSizes[p], Hash: m.Chunk(p).Hash, chunk: m.Chunk(p)}
				if tt.fec.Enabled() {
					want.Stripe = p / tt.fec.K
				}
			} else {
				s := (p - n) / tt.fec.M
				want = PieceRef{Index: p, Stripe: s, Parity: true, Size: m.Stripe(s).ShardSize, Hash: sha256.Sum256(d.parity[p-n])}
				if len(d.parity[p-n]) != want.Size {
					t.Errorf("%s: parity piece %d is %d bytes, shard size %d", tt.desc, p, len(d.parity[p-n]), want.Size)
				}
			}
			if got := m.Piece(p); got != want {
				t.Errorf("%s: Piece(%d) = %+v, want %+v", tt.desc, p, got, want)
			}
			if data := d.piece(p); !m.Piece(p).Verify(data) {
				t.Errorf("%s: Piece(%d) does not verify its bytes", tt.desc, p)
			}
			if got := m.StripeOf(p); got != want.Stripe {
				t.Errorf("%s: StripeOf(%d) = %d, want %d", tt.desc, p, got, want.Stripe)
			}
			if want.Stripe >= 0 {
				st := m.Stripe(want.Stripe)
				in := p >= st.FirstChunk && p < st.FirstChunk+st.NData || p >= st.FirstParity && p < st.FirstParity+st.NParity
				if !in {
					t.Errorf("%s: piece %d not inside its stripe %+v", tt.desc, p, st)
				}
			}
		}
	}
}

// TestFECManifestRoundTrip checks the wire form of fec and parity: the
// canonical encoding is what encoding/json makes of the wire shape, decoding
// gives the same manifest and Digest, and a manifest without FEC encodes
// without the new keys.
func TestFECManifestRoundTrip(t *testing.T) {
	type wireFECManifest struct {
		V         int        `json:"v"`
		ChunkSize int        `json:"chunk_size"`
		FEC       *wireFEC   `json:"fec,omitempty"`
		Files     []wireFile `json:"files"`
		Parity    *[]byte    `json:"parity,omitempty"`
	}
	tests := []struct {
		desc  string
		sizes []int
		fec   FEC
	}{
		{"3+2", []int{3*testCS + 5, 0, 40}, FEC{3, 2}},
		{"64+64, one short stripe", []int{testCS + 1}, FEC{64, 64}},
		{"no chunks", []int{0}, FEC{1, 1}},
		{"off", []int{testCS + 1, 0}, FEC{}},
	}
	for _, tt := range tests {
		names, datas := filesOfSizes(3, tt.sizes)
		m := fecData(t, testCS, tt.fec, names, datas).m
		enc, err := EncodeManifest(m)
		if err != nil {
			t.Fatal(err)
		}
		if sha256.Sum256(enc) != m.Digest() {
			t.Errorf("%s: Digest is not the SHA-256 of the encoding", tt.desc)
		}
		w := wireFECManifest{V: ManifestVersion, ChunkSize: m.ChunkSize}
		for _, f := range m.Files {
			chunks := []byte{}
			for _, c := range f.Chunks[:max(len(f.Chunks)-1, 0)] { // the last is sha256
				chunks = append(chunks, c[:]...)
			}
			w.Files = append(w.Files, wireFile{Name: f.Name, Size: f.Size, SHA256: hex.EncodeToString(f.SHA256[:]), Chunks: chunks, Exec: f.Exec})
		}
		if tt.fec.Enabled() {
			w.FEC = &wireFEC{tt.fec.K, tt.fec.M}
			blob := []byte{}
			for _, h := range m.Parity {
				blob = append(blob, h[:]...)
			}
			w.Parity = &blob
		} else if bytes.Contains(enc, []byte(`"fec"`)) || bytes.Contains(enc, []byte(`"parity"`)) {
			t.Errorf("%s: FEC keys in a manifest without FEC: %s", tt.desc, enc)
		}
		if viaJSON, _ := json.Marshal(w); !bytes.Equal(enc, viaJSON) {
			t.Errorf("%s: canonical encoding differs from encoding/json:\n%s\n%s", tt.desc, enc, viaJSON)
		}
		m2, err := DecodeManifest(enc)
		if err != nil {
			t.Fatalf("%s: %v", tt.desc, err)
		}
		if m2.Digest() != m.Digest() || m2.FEC != m.FEC || len(m2.Parity) != len(m.Parity) {
			t.Fatalf("%s: decoded manifest differs: %v %d", tt.desc, m2.FEC, len(m2.Parity))
		}
		for i := range m.Parity {
			if m2.Parity[i] != m.Parity[i] {
				t.Fatalf("%s: parity hash %d differs", tt.desc, i)
			}
		}
		var v any
		json.Unmarshal(enc, &v)
		pretty, _ := json.MarshalIndent(v, "", "  ")
		if m3, err := DecodeManifest(pretty); err != nil || m3.Digest() != m.Digest() {
			t.Errorf("%s: another spelling: %v", tt.desc, err)
		}
	}
	// Turning FEC on changes the digest.
	names, datas := filesOfSizes(3, []int{testCS + 1})
	if fecData(t, testCS, FEC{}, names, datas).m.Digest() == fecData(t, testCS, FEC{1, 1}, names, datas).m.Digest() {
		t.Error("FEC does not change the digest")
	}
}

// validFECWire is a valid FEC 2+1 manifest (3 chunks, 2 stripes) in wire
// form, with fec and parity as raw JSON for mutation.
func validFECWire(t *testing.T) map[string]json.RawMessage {
	names, datas := filesOfSizes(9, []int{2*testCS + 3, 0})
	enc, err := EncodeManifest(fecData(t, testCS, FEC{2, 1}, names, datas).m)
	if err != nil {
		t.Fatal(err)
	}
	var w map[string]json.RawMessage
	if err := json.Unmarshal(enc, &w); err != nil {
		t.Fatal(err)
	}
	return w
}

func TestDecodeHostileFEC(t *testing.T) {
	w := validFECWire(t)
	var blob []byte
	json.Unmarshal(w["parity"], &blob)
	if len(blob) != 2*HashSize {
		t.Fatalf("parity blob %d bytes", len(blob))
	}
	b64 := func(b []byte) string { s, _ := json.Marshal(b); return string(s) }
	mut := func(fec, parity string) []byte {
		c := make(map[string]json.RawMessage, len(w))
		for k, v := range w {
			c[k] = v
		}
		for k, v := range map[string]string{"fec": fec, "parity": parity} {
			switch v {
			case "-": // leave as is
			case "":
				delete(c, k)
			default:
				c[k] = json.RawMessage(v)
			}
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if _, err := DecodeManifest(mut("-", "-")); err != nil {
		t.Fatalf("valid FEC manifest refused: %v", err)
	}
	tests := []struct {
		desc        string
		fec, parity string
		want        error
	}{
		{"fec without parity", "-", "", ErrInvalidFEC},
		{"parity without fec", "", "-", ErrInvalidFEC},
		{"empty parity without fec", "", `""`, ErrInvalidFEC},
		{"fec null", "null", "-", ErrInvalidFEC},
		{"both null", "null", "null", ErrInvalidFEC},
		{"parity null", "-", "null", ErrBadManifest},
		{"fec 0+0", `{"k":0,"m":0}`, `""`, ErrInvalidFEC},
		{"fec empty object", `{}`, `""`, ErrInvalidFEC},
		{"k 0", `{"k":0,"m":1}`, "-", ErrInvalidFEC},
		{"m 0", `{"k":2,"m":0}`, `""`, ErrInvalidFEC},
		{"k missing", `{"m":1}`, "-", ErrInvalidFEC},
		{"m missing", `{"k":2}`, "-", ErrInvalidFEC},
		{"k 65", `{"k":65,"m":1}`, "-", ErrInvalidFEC},
		{"m 65", `{"k":2,"m":65}`, "-", ErrInvalidFEC},
		{"k negative", `{"k":-2,"m":1}`, "-", ErrInvalidFEC},
		{"m negative", `{"k":2,"m":-1}`, "-", ErrInvalidFEC},
		{"k huge", `{"k":9223372036854775807,"m":1}`, "-", ErrInvalidFEC},
		{"k overflows int64", `{"k":9223372036854775808,"m":1}`, "-", ErrInvalidFEC},
		{"k float", `{"k":2.5,"m":1}`, "-", ErrInvalidFEC},
		{"k string", `{"k":"2","m":1}`, "-", ErrInvalidFEC},
		{"fec unknown field", `{"k":2,"m":1,"x":0}`, "-", ErrInvalidFEC},
		{"fec array", `[2,1]`, "-", ErrInvalidFEC},
		{"fec string", `"2+1"`, "-", ErrInvalidFEC},
		{"fec number", `3`, "-", ErrInvalidFEC},
		{"parity short", "-", b64(blob[:HashSize]), ErrBadManifest},
		{"parity long", "-", b64(append(append([]byte{}, blob...), make([]byte, HashSize)...)), ErrBadManifest},
		{"parity ragged", "-", b64(blob[:len(blob)-1]), ErrBadManifest},
		{"parity empty", "-", `""`, ErrBadManifest},
		{"parity not base64", "-", `"!!` + strings.Trim(b64(blob), `"`) + `"`, ErrBadManifest},
		{"parity a number", "-", `3`, ErrBadManifest},
		{"parity an array", "-", `[1,2]`, ErrBadManifest},
		{"parity for another layout", `{"k":1,"m":1}`, "-", ErrBadManifest},
		{"parity for 64+64", `{"k":64,"m":64}`, "-", ErrBadManifest},
	}
	for _, tt := range tests {
		m, err := DecodeManifest(mut(tt.fec, tt.parity))
		if err == nil {
			t.Errorf("%s: accepted (FEC %v, %d parity)", tt.desc, m.FEC, len(m.Parity))
			continue
		}
		if !errors.Is(err, tt.want) || !errors.Is(err, ErrBadManifest) {
			t.Errorf("%s: got %v, want %v and %v", tt.desc, err, tt.want, ErrBadManifest)
		}
	}
	// NewManifestFEC validates the same way.
	names, datas := filesOfSizes(9, []int{2*testCS + 3})
	plain := manifestOf(t, testCS, names, datas)
	for _, c := range []struct {
		fec    FEC
		parity int
	}{{FEC{2, 1}, 1}, {FEC{2, 1}, 3}, {FEC{}, 1}, {FEC{0, 1}, 0}, {FEC{65, 1}, 1}} {
		if _, err := NewManifestFEC(testCS, c.fec, plain.Files, make([]Hash, c.parity)); !errors.Is(err, ErrBadManifest) {
			t.Errorf("NewManifestFEC(%+v, %d parity hashes): %v", c.fec, c.parity, err)
		}
	}
}

// TestOpenSourceFEC checks that the parity hashes of the hashing pass match
// an independent computation (so the whole manifest, and its Digest, does)
// and what ReadPiece serves, for chunks smaller and larger than the read
// buffer.
func TestOpenSourceFEC(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		desc  string
		cs    int
		sizes []int
		fec   FEC
	}{
		{"small chunks, odd sizes, empty file between", testCS, []int{5*testCS + 123, 0, 1, testCS, 3 * testCS}, FEC{3, 2}},
		{"chunks larger than the read buffer", 2 << 20, []int{2<<20 + hashBufSize/2 + 7, 0, 3 << 20}, FEC{2, 1}},
		{"K larger than the chunk count", testCS, []int{2*testCS + 1}, FEC{64, 3}},
		{"single-chunk files", testCS, []int{7, 2, 5, 1, 3, 6, 4}, FEC{3, 4}},
		{"1+1", testCS, []int{testCS + 9}, FEC{1, 1}},
		{"only empty files", testCS, []int{0, 0}, FEC{2, 2}},
	}
	for ti, tt := range tests {
		names, datas := filesOfSizes(uint64(10*ti), tt.sizes)
		var paths []string
		for i := range names {
			p := filepath.Join(dir, fmt.Sprint(ti), names[i])
			writeFile(t, p, datas[i])
			paths = append(paths, p)
		}
		s, err := OpenSourceFEC(context.Background(), paths, tt.cs, tt.fec, nil)
		if err != nil {
			t.Fatalf("%s: %v", tt.desc, err)
		}
		m := s.Manifest()
		want := fecData(t, tt.cs, tt.fec, names, datas)
		if m.Digest() != want.m.Digest() {
			t.Errorf("%s: manifest differs from an independent computation", tt.desc)
		}
		// Every piece, from several goroutines at once, parity pieces of a
		// stripe out of order.
		var wg sync.WaitGroup
		for g := range 3 {
			wg.Go(func() {
				buf := make([]byte, tt.cs)
				for p := m.NumPieces() - 1 - g; p >= 0; p -= 2 {
					b, err := s.ReadPiece(p, buf)
					if err != nil {
						t.Errorf("%s: ReadPiece(%d): %v", tt.desc, p, err)
						return
					}
					ref := m.Piece(p)
					if !ref.Verify(b) || !bytes.Equal(b, want.piece(p)) {
						t.Errorf("%s: ReadPiece(%d) wrong (%d bytes)", tt.desc, p, len(b))
					}
				}
			})
		}
		wg.Wait()
		for _, p := range []int{-1, m.NumPieces(), math.MaxInt} {
			if _, err := s.ReadPiece(p, make([]byte, tt.cs)); !errors.Is(err, ErrChunkIndex) {
				t.Errorf("%s: ReadPiece(%d): %v", tt.desc, p, err)
			}
		}
		if m.NumStripes() > 0 {
			p := m.Stripe(0).FirstParity
			if _, err := s.ReadPiece(p, make([]byte, m.Piece(p).Size-1)); !errors.Is(err, io.ErrShortBuffer) {
				t.Errorf("%s: short buffer: %v", tt.desc, err)
			}
		}
		s.Close()
		if m.NumStripes() > 0 {
			// Past the cache, so the data must be read.
			s.par.entries, s.par.bytes = nil, 0
			if _, err := s.ReadPiece(m.NumChunks(), make([]byte, tt.cs)); !errors.Is(err, ErrClosed) {
				t.Errorf("%s: ReadPiece after Close: %v", tt.desc, err)
			}
		}
	}
	// FEC off is OpenSource.
	s1, err := OpenSourceFEC(context.Background(), []string{filepath.Join(dir, "0", "f00")}, testCS, FEC{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	s2, err := OpenSource(context.Background(), []string{filepath.Join(dir, "0", "f00")}, testCS, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s1.Manifest().Digest() != s2.Manifest().Digest() || s1.Manifest().NumPieces() != s1.Manifest().NumChunks() {
		t.Error("OpenSourceFEC with FEC off differs from OpenSource")
	}
	if b, err := s1.ReadPiece(0, make([]byte, testCS)); err != nil || !s1.Manifest().Chunk(0).Verify(b) {
		t.Errorf("ReadPiece without FEC: %v", err)
	}
	if _, err := OpenSourceFEC(context.Background(), []string{filepath.Join(dir, "0", "f00")}, testCS, FEC{65, 1}, nil); !errors.Is(err, ErrInvalidFEC) {
		t.Errorf("invalid FEC: %v", err)
	}
}

// TestReadPieceSourceChanged: parity computed from edited data is refused
// rather than served.
func TestReadPieceSourceChanged(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	writeFile(t, p, randBytes(4, 3*testCS))
	s, err := OpenSourceFEC(context.Background(), []string{p}, testCS, FEC{3, 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("X"), 10)
	f.Close()
	later := time.Now().Add(time.Hour)
	os.Chtimes(p, later, later)
	if _, err := s.ReadPiece(3, make([]byte, testCS)); !errors.Is(err, ErrSourceChanged) {
		t.Errorf("got %v", err)
	}
	// The same edit with the old mtime restored still fails: the parity is
	// checked against the manifest.
	old := time.Unix(0, s.files[0].mtime)
	os.Chtimes(p, old, old)
	if _, err := s.ReadPiece(3, make([]byte, testCS)); !errors.Is(err, ErrSourceChanged) {
		t.Errorf("with the old mtime: got %v", err)
	}
}

// TestReconstructSubsets rebuilds every stripe from every subset of its
// pieces: any NData of them must give the data back byte for byte, fewer
// must be ErrNotEnoughPieces. The files end in short chunks, and the last
// stripes are short.
func TestReconstructSubsets(t *testing.T) {
	sizes := []int{3*testCS + 10, 5 * testCS / 2} // chunks: 3 full, 10 B | 2 full, 8 KiB
	for _, fec := range []FEC{{3, 2}, {4, 2}, {5, 3}, {1, 1}, {2, 3}} {
		names, datas := filesOfSizes(20, sizes)
		d := fecData(t, testCS, fec, names, datas)
		m := d.m
		for s := range m.NumStripes() {
			st := m.Stripe(s)
			var ids []int
			for k := range st.NData {
				ids = append(ids, st.FirstChunk+k)
			}
			for j := range st.NParity {
				ids = append(ids, st.FirstParity+j)
			}
			for mask := range 1 << len(ids) {
				pieces := make(map[int][]byte)
				for i, p := range ids {
					if mask&(1<<i) != 0 {
						pieces[p] = bytes.Clone(d.piece(p))
					}
				}
				got, err := m.Reconstruct(s, pieces)
				if bits.OnesCount(uint(mask)) < st.NData {
					if !errors.Is(err, ErrNotEnoughPieces) {
						t.Fatalf("%v stripe %d mask %b: got %v, want ErrNotEnoughPieces", fec, s, mask, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%v stripe %d mask %b: %v", fec, s, mask, err)
				}
				if len(got) != st.NData {
					t.Fatalf("%v stripe %d mask %b: %d chunks back", fec, s, mask, len(got))
				}
				for k := range st.NData {
					i := st.FirstChunk + k
					if !bytes.Equal(got[i], chunkData(m, datas, i)) {
						t.Fatalf("%v stripe %d mask %b: chunk %d wrong (%d bytes)", fec, s, mask, i, len(got[i]))
					}
				}
				for p, b := range pieces { // inputs untouched
					if !bytes.Equal(b, d.piece(p)) {
						t.Fatalf("%v stripe %d mask %b: input piece %d modified", fec, s, mask, p)
					}
				}
			}
		}
	}
}

func TestReconstructErrors(t *testing.T) {
	names, datas := filesOfSizes(30, []int{3*testCS + 10, 2 * testCS})
	d := fecData(t, testCS, FEC{3, 2}, names, datas) // stripes [0 1 2 | 3 4 5] parity 6 7 | 8 9
	m := d.m
	with := func(ps ...int) map[int][]byte {
		out := make(map[int][]byte)
		for _, p := range ps {
			out[p] = bytes.Clone(d.piece(p))
		}
		return out
	}
	flip := func(pieces map[int][]byte, p int) map[int][]byte {
		pieces[p][len(pieces[p])-1] ^= 1
		return pieces
	}
	short := func(pieces map[int][]byte, p int) map[int][]byte {
		pieces[p] = pieces[p][:len(pieces[p])-1]
		return pieces
	}
	// A manifest whose parity hashes match parity that does not match the
	// data: a lying sender. The rebuilt chunk must fail its hash.
	bogus := bytes.Repeat([]byte{7}, testCS)
	plain := manifestOf(t, testCS, names, datas)
	parity := slices.Clone(m.Parity)
	parity[0] = sha256.Sum256(bogus)
	liar, err := NewManifestFEC(testCS, m.FEC, plain.Files, parity)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		desc   string
		m      *Manifest
		stripe int
		pieces map[int][]byte
		want   error
	}{
		{"corrupt data piece", m, 0, flip(with(0, 1, 6), 1), ErrChunkHash},
		{"corrupt parity piece", m, 0, flip(with(0, 1, 6), 6), ErrChunkHash},
		{"corrupt extra piece", m, 0, flip(with(0, 1, 2, 7), 7), ErrChunkHash},
		{"corrupt short chunk", m, 1, flip(with(3, 4, 8), 3), ErrChunkHash},
		{"short chunk padded", m, 1, map[int][]byte{3: append(bytes.Clone(d.piece(3)), 0), 4: d.piece(4), 8: d.piece(8)}, ErrChunkSize},
		{"truncated parity", m, 0, short(with(0, 1, 6), 6), ErrChunkSize},
		{"empty piece", m, 0, map[int][]byte{0: {}, 1: d.piece(1), 6: d.piece(6)}, ErrChunkSize},
		{"too few", m, 0, with(0, 6), ErrNotEnoughPieces},
		{"too few in stripe 1", m, 1, with(9), ErrNotEnoughPieces},
		{"none", m, 0, nil, ErrNotEnoughPieces},
		{"piece of another stripe", m, 0, with(0, 1, 6, 8), ErrChunkIndex},
		{"data piece of another stripe", m, 1, with(2, 3, 4, 5), ErrChunkIndex},
		{"negative piece", m, 0, map[int][]byte{-1: {1}, 0: d.piece(0), 1: d.piece(1), 2: d.piece(2)}, ErrChunkIndex},
		{"piece past the end", m, 1, map[int][]byte{10: {1}, 3: d.piece(3), 4: d.piece(4), 5: d.piece(5)}, ErrChunkIndex},
		{"stripe negative", m, -1, with(0, 1, 2), ErrChunkIndex},
		{"stripe past the end", m, 2, with(0, 1, 2), ErrChunkIndex},
		{"FEC off", plain, 0, with(0, 1, 2), ErrChunkIndex},
		{"parity contradicts data", liar, 0, map[int][]byte{0: d.piece(0), 1: d.piece(1), 6: bogus}, ErrChunkHash},
	}
	dir := t.TempDir()
	w, err := CreateWriter(dir, m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, tt := range tests {
		got, err := tt.m.Reconstruct(tt.stripe, tt.pieces)
		if !errors.Is(err, tt.want) || got != nil {
			t.Errorf("%s: got %d chunks, %v; want %v", tt.desc, len(got), err, tt.want)
		}
		// The caller writes what Reconstruct returns; nothing here.
		for i, b := range got {
			w.WriteChunk(i, b)
		}
	}
	if n := w.Bitmap().Count(); n != 0 {
		t.Errorf("%d chunks written after failed reconstructions", n)
	}
}

// TestReconstructToWriter is the receiving flow: some data chunks arrive,
// the rest of each stripe is rebuilt from parity and written, and the files
// come out whole.
func TestReconstructToWriter(t *testing.T) {
	names, datas := filesOfSizes(40, []int{4*testCS + 99, 0, 7, 2 * testCS})
	d := fecData(t, testCS, FEC{3, 2}, names, datas)
	m := d.m
	dir := t.TempDir()
	w, err := CreateWriter(dir, m, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for s := range m.NumStripes() {
		st := m.Stripe(s)
		// Lose the first min(NData, NParity) data chunks of each stripe.
		lost := min(st.NData, st.NParity)
		pieces := make(map[int][]byte)
		for k := lost; k < st.NData; k++ {
			pieces[st.FirstChunk+k] = d.piece(st.FirstChunk + k)
		}
		for j := range lost {
			pieces[st.FirstParity+j] = d.piece(st.FirstParity + j)
		}
		data, err := m.Reconstruct(s, pieces)
		if err != nil {
			t.Fatal(err)
		}
		for i, b := range data {
			if err := w.WriteChunk(i, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		if !bytes.Equal(mustRead(t, filepath.Join(dir, n)), datas[i]) {
			t.Errorf("%s differs", n)
		}
	}
}
