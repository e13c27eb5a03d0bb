package chunker

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func FuzzDecodeManifest(f *testing.F) {
	valid, _ := json.Marshal(validWire())
	f.Add(valid)
	f.Add([]byte(`{"v":3,"chunk_size":16384,"files":[{"name":"e","size":0,"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","chunks":""}]}`))
	names, datas := filesOfSizes(5, []int{3*testCS + 1, 0, 9})
	withFEC, _ := EncodeManifest(fecData(f, testCS, FEC{2, 2}, names, datas).m)
	f.Add(withFEC)
	tree := []File{fileFor("top/a b/ü.txt", []byte("x"), testCS), fileFor("top/run", nil, testCS)}
	tree[1].Exec = true
	if m, err := NewManifestTree(testCS, FEC{}, tree, []string{"top/empty", "top/a b/e"}, nil); err == nil {
		enc, _ := EncodeManifest(m)
		f.Add(enc)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeManifest(b)
		if err != nil {
			if !errors.Is(err, ErrBadManifest) {
				t.Fatalf("error does not wrap ErrBadManifest: %v", err)
			}
			return
		}
		enc, err := EncodeManifest(m)
		if err != nil {
			t.Fatalf("decoded manifest does not encode: %v", err)
		}
		if sha256.Sum256(enc) != m.Digest() {
			t.Fatal("Digest is not the hash of the encoding")
		}
		m2, err := DecodeManifest(enc)
		if err != nil {
			t.Fatalf("canonical encoding refused: %v\n%s", err, enc)
		}
		if m2.Digest() != m.Digest() {
			t.Fatal("digest changed across re-encoding")
		}
		if enc2, _ := EncodeManifest(m2); !bytes.Equal(enc, enc2) {
			t.Fatal("encoding not stable")
		}
		names := map[string]bool{}
		for _, fl := range m.Files {
			if CheckName(fl.Name) != nil || fl.Size < 0 || fl.Size > MaxFileSize {
				t.Fatalf("unsafe file accepted: %q %d", fl.Name, fl.Size)
			}
			names[fl.Name] = true
		}
		for i, d := range m.Dirs {
			if CheckName(d) != nil || reservedProblem(d) != "" {
				t.Fatalf("unsafe directory accepted: %q", d)
			}
			if i > 0 && cmpPath(m.Dirs[i-1], d) >= 0 {
				t.Fatalf("dirs not in canonical order: %q", m.Dirs)
			}
			if names[d] {
				t.Fatalf("%q is a file and a directory", d)
			}
		}
		// No name lies under a file or under a listed directory.
		for d := range m.Dirs {
			names[m.Dirs[d]] = true
		}
		for n := range names {
			for p := path.Dir(n); p != "."; p = path.Dir(p) {
				if names[p] {
					t.Fatalf("%q lies under %q, a file or a listed directory", n, p)
				}
			}
		}
		var total int64
		for i := range m.NumChunks() {
			ref := m.Chunk(i)
			fl := m.Files[ref.File]
			if ref.Size <= 0 || ref.Size > m.ChunkSize || ref.Offset < 0 || ref.Offset+int64(ref.Size) > fl.Size {
				t.Fatalf("chunk %d out of its file: %+v size %d", i, ref, fl.Size)
			}
			if ref.Last != (ref.Offset+int64(ref.Size) == fl.Size) || ref.Last && ref.Hash != fl.SHA256 {
				t.Fatalf("chunk %d: Last %v, hash %s, file size %d sha256 %s", i, ref.Last, ref.Hash, fl.Size, fl.SHA256)
			}
			total += int64(ref.Size)
		}
		if total != m.TotalSize() {
			t.Fatalf("chunks cover %d bytes, TotalSize %d", total, m.TotalSize())
		}
		checkPieces(t, m)
	})
}

func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"a", "dir/file.txt", "../x", "/etc/passwd", "a/../../b", `a\b`, "x\x1b[2J", "\u202etxt.exe", "a//b", "日本/語"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := CheckName(name)
		if err != nil {
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("error does not wrap ErrBadName: %v", err)
			}
			return
		}
		// Independent restatement of the rules.
		if !utf8.ValidString(name) || len(name) == 0 || len(name) > MaxNameLen || strings.ContainsRune(name, '\\') {
			t.Fatalf("accepted %q", name)
		}
		if !filepath.IsLocal(filepath.FromSlash(name)) {
			t.Fatalf("accepted non-local %q", name)
		}
		for _, c := range strings.Split(name, "/") {
			if c == "" || c == "." || c == ".." || len(c) > MaxComponentLen {
				t.Fatalf("accepted %q with component %q", name, c)
			}
		}
		for _, r := range name {
			if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) && r != '\u200e' && r != '\u200f' && r != '\u061c' || r == '\u2028' || r == '\u2029' {
				t.Fatalf("accepted %q with %U", name, r)
			}
		}
	})
}

// checkPieces restates the FEC layout rules for a decoded manifest.
func checkPieces(t *testing.T, m *Manifest) {
	n, fec := m.NumChunks(), m.FEC
	if CheckFEC(fec) != nil {
		t.Fatalf("invalid FEC accepted: %+v", fec)
	}
	if !fec.Enabled() {
		if m.NumStripes() != 0 || m.NumPieces() != n || len(m.Parity) != 0 {
			t.Fatalf("FEC off but %d stripes, %d pieces, %d parity hashes", m.NumStripes(), m.NumPieces(), len(m.Parity))
		}
		return
	}
	ns := m.NumStripes()
	if ns*fec.K < n || (ns-1)*fec.K >= n && n > 0 || n == 0 && ns != 0 {
		t.Fatalf("%d stripes of %d for %d chunks", ns, fec.K, n)
	}
	if len(m.Parity) != ns*fec.M || m.NumPieces() != n+ns*fec.M {
		t.Fatalf("%d parity hashes, %d pieces for %d stripes", len(m.Parity), m.NumPieces(), ns)
	}
	for s := range ns {
		st := m.Stripe(s)
		if st.FirstChunk != s*fec.K || st.NData < 1 || st.NData > fec.K || st.FirstChunk+st.NData > n ||
			st.FirstParity != n+s*fec.M || st.NParity != fec.M || st.ShardSize < 1 || st.ShardSize > m.ChunkSize {
			t.Fatalf("Stripe(%d) = %+v", s, st)
		}
	}
	for p := range m.NumPieces() {
		ref := m.Piece(p)
		if ref.Index != p || ref.Parity != (p >= n) || ref.Stripe != m.StripeOf(p) || ref.Stripe < 0 || ref.Stripe >= ns ||
			ref.Size < 1 || ref.Size > m.ChunkSize {
			t.Fatalf("Piece(%d) = %+v", p, ref)
		}
	}
}
