package chunker

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestManifestIndex(t *testing.T) {
	sizes := []int{0, 1, testCS, 3*testCS + 7, 0, 2 * testCS, testCS - 1}
	var names []string
	var datas [][]byte
	for i, n := range sizes {
		names = append(names, "f"+string(rune('a'+i)))
		datas = append(datas, randBytes(uint64(i), n))
	}
	m := manifestOf(t, testCS, names, datas)

	type want struct {
		file   int
		offset int64
		size   int
	}
	var all []want
	var total int64
	for f, n := range sizes {
		first, cnt := m.FileChunks(f)
		if first != len(all) {
			t.Errorf("file %d: first chunk %d, want %d", f, first, len(all))
		}
		for off := 0; off < n; off += testCS {
			all = append(all, want{f, int64(off), min(testCS, n-off)})
		}
		if cnt != len(all)-first {
			t.Errorf("file %d: %d chunks, want %d", f, cnt, len(all)-first)
		}
		total += int64(n)
	}
	if m.NumChunks() != len(all) || m.TotalSize() != total {
		t.Fatalf("NumChunks=%d TotalSize=%d, want %d %d", m.NumChunks(), m.TotalSize(), len(all), total)
	}
	for i, w := range all {
		ref := m.Chunk(i)
		if ref.Index != i || ref.File != w.file || ref.Offset != w.offset || ref.Size != w.size {
			t.Errorf("Chunk(%d) = %+v, want %+v", i, ref, w)
		}
		if !ref.Verify(chunkData(m, datas, i)) {
			t.Errorf("Chunk(%d) hash wrong", i)
		}
	}
}

func TestEncodeDecode(t *testing.T) {
	datas := [][]byte{randBytes(1, 3*testCS+5), nil, []byte("<&>"), []byte("#!/bin/sh\n")}
	names := []string{"a<b>&c.bin", "empty", "dir/ü", "dir/run me.sh"}
	files := make([]File, len(names))
	for i := range names {
		files[i] = fileFor(names[i], datas[i], testCS)
	}
	files[3].Exec = true
	// Given out of order; kept in the canonical order.
	dirs := []string{"dir/z", "dir/sub/empty", "dir!", "dir/sub/ä"}
	m, err := NewManifestTree(testCS, FEC{}, files, dirs, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantDirs := []string{"dir/sub/empty", "dir/sub/ä", "dir/z", "dir!"}
	if !slices.Equal(m.Dirs, wantDirs) {
		t.Fatalf("Dirs %q, want %q", m.Dirs, wantDirs)
	}
	enc, err := EncodeManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(enc) != m.Digest() {
		t.Error("Digest is not the SHA-256 of the encoding")
	}
	// The canonical form is what encoding/json makes of the wire structs.
	w := testWire{V: ManifestVersion, ChunkSize: m.ChunkSize, Dirs: wantDirs}
	for _, f := range m.Files {
		chunks := []byte{}
		for _, c := range f.Chunks[:max(len(f.Chunks)-1, 0)] { // the last is sha256
			chunks = append(chunks, c[:]...)
		}
		w.Files = append(w.Files, wireFile{Name: f.Name, Size: f.Size, SHA256: hex.EncodeToString(f.SHA256[:]), Chunks: chunks, Exec: f.Exec})
	}
	viaJSON, _ := json.Marshal(w)
	if !bytes.Equal(enc, viaJSON) {
		t.Errorf("canonical encoding differs from encoding/json:\n%s\n%s", enc, viaJSON)
	}
	m2, err := DecodeManifest(enc)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Digest() != m.Digest() || m2.ChunkSize != m.ChunkSize || len(m2.Files) != len(m.Files) {
		t.Fatal("decoded manifest differs")
	}
	if !slices.Equal(m2.Dirs, m.Dirs) {
		t.Fatalf("decoded dirs %q, want %q", m2.Dirs, m.Dirs)
	}
	for i := range m.Files {
		a, b := m.Files[i], m2.Files[i]
		if a.Name != b.Name || a.Size != b.Size || a.SHA256 != b.SHA256 || len(a.Chunks) != len(b.Chunks) || a.Exec != b.Exec {
			t.Fatalf("file %d differs", i)
		}
		for k := range a.Chunks {
			if a.Chunks[k] != b.Chunks[k] {
				t.Fatalf("file %d chunk %d differs", i, k)
			}
		}
	}
	enc2, _ := EncodeManifest(m2)
	if !bytes.Equal(enc, enc2) {
		t.Error("re-encoding is not stable")
	}

	// Another spelling of the same manifest has the same digest.
	var v any
	json.Unmarshal(enc, &v)
	pretty, _ := json.MarshalIndent(v, "", "  ")
	pretty = bytes.ReplaceAll(pretty, []byte(hex.EncodeToString(m.Files[0].SHA256[:])),
		[]byte(strings.ToUpper(hex.EncodeToString(m.Files[0].SHA256[:]))))
	m3, err := DecodeManifest(pretty)
	if err != nil {
		t.Fatal(err)
	}
	if m3.Digest() != m.Digest() {
		t.Error("digest depends on spelling")
	}
	// So does a shuffled dirs list, and exec spelled false where absent.
	shuffled := bytes.Replace(enc, []byte(`"dirs":["dir/sub/empty","dir/sub/ä"`), []byte(`"dirs":["dir/sub/ä","dir/sub/empty"`), 1)
	shuffled = bytes.Replace(shuffled, []byte(`"chunks":""}`), []byte(`"chunks":"","exec":false}`), 1)
	if bytes.Equal(shuffled, enc) {
		t.Fatal("could not respell the manifest")
	}
	if m4, err := DecodeManifest(shuffled); err != nil || m4.Digest() != m.Digest() {
		t.Errorf("respelled dirs and exec: %v, or another digest", err)
	}
}

// TestManifestOnlyDirs: a manifest may hold empty directories and no file
// (an empty folder sent alone), but not nothing at all.
func TestManifestOnlyDirs(t *testing.T) {
	m, err := NewManifestTree(testCS, FEC{}, nil, []string{"empty"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.NumChunks() != 0 || m.TotalSize() != 0 || len(m.Files) != 0 {
		t.Fatalf("%d chunks, %d bytes, %d files", m.NumChunks(), m.TotalSize(), len(m.Files))
	}
	enc, _ := EncodeManifest(m)
	if string(enc) != `{"v":3,"chunk_size":16384,"dirs":["empty"],"files":[]}` {
		t.Errorf("encoded as %s", enc)
	}
	if _, err := DecodeManifest(enc); err != nil {
		t.Errorf("refused: %v", err)
	}
	withFEC, err := NewManifestTree(testCS, FEC{K: 2, M: 1}, nil, []string{"empty"}, nil)
	if err != nil || withFEC.NumPieces() != 0 {
		t.Errorf("with FEC: %v", err)
	}
	if _, err := NewManifestTree(testCS, FEC{}, nil, nil, nil); !errors.Is(err, ErrBadManifest) {
		t.Errorf("nothing at all: %v", err)
	}
}

func TestEncodeUnbuilt(t *testing.T) {
	if _, err := EncodeManifest(&Manifest{ChunkSize: testCS}); !errors.Is(err, ErrBadManifest) {
		t.Errorf("got %v", err)
	}
	if _, err := EncodeManifest(nil); !errors.Is(err, ErrBadManifest) {
		t.Errorf("got %v", err)
	}
}

// testWire is wireManifest with Files decoded, for building test input.
type testWire struct {
	V         int        `json:"v"`
	ChunkSize int        `json:"chunk_size"`
	Dirs      []string   `json:"dirs,omitempty"`
	Files     []wireFile `json:"files"`
}

// validWire is a small valid manifest in wire form for mutation.
func validWire() testWire {
	data := randBytes(7, 2*testCS+3)
	f := fileFor("a.bin", data, testCS)
	var chunks []byte // every chunk hash but the last, which is sha256
	for _, c := range f.Chunks[:len(f.Chunks)-1] {
		chunks = append(chunks, c[:]...)
	}
	empty := sha256.Sum256(nil)
	return testWire{V: ManifestVersion, ChunkSize: testCS, Files: []wireFile{
		{Name: "a.bin", Size: f.Size, SHA256: hex.EncodeToString(f.SHA256[:]), Chunks: chunks},
		{Name: "e", Size: 0, SHA256: hex.EncodeToString(empty[:])},
	}}
}

func TestDecodeHostile(t *testing.T) {
	mut := func(f func(w *testWire)) []byte {
		w := validWire()
		f(&w)
		b, err := json.Marshal(w)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	name := func(names ...string) []byte {
		return mut(func(w *testWire) {
			base := w.Files[1]
			w.Files = w.Files[:1]
			for _, n := range names {
				f := base
				f.Name = n
				w.Files = append(w.Files, f)
			}
		})
	}
	valid, _ := json.Marshal(validWire())
	if _, err := DecodeManifest(valid); err != nil {
		t.Fatalf("valid manifest refused: %v", err)
	}
	tests := []struct {
		desc string
		in   []byte
		want error
	}{
		{"version 1", mut(func(w *testWire) { w.V = 1 }), ErrManifestVersion},
		{"version 2", mut(func(w *testWire) { w.V = 2 }), ErrManifestVersion},
		{"version 4", mut(func(w *testWire) { w.V = 4 }), ErrManifestVersion},
		{"version 0", mut(func(w *testWire) { w.V = 0 }), ErrManifestVersion},
		{"version missing", []byte(`{"chunk_size":16384,"files":[]}`), ErrManifestVersion},
		{"version 1, other shape", []byte(`{"v":1,"files":"elsewhere","x":1}`), ErrManifestVersion},
		{"chunk size 0", mut(func(w *testWire) { w.ChunkSize = 0 }), ErrInvalidChunkSize},
		{"chunk size negative", mut(func(w *testWire) { w.ChunkSize = -16384 }), ErrInvalidChunkSize},
		{"chunk size 8 KiB", mut(func(w *testWire) { w.ChunkSize = 8 << 10 }), ErrInvalidChunkSize},
		{"chunk size 128 MiB", mut(func(w *testWire) { w.ChunkSize = 128 << 20 }), ErrInvalidChunkSize},
		{"chunk size not power of 2", mut(func(w *testWire) { w.ChunkSize = 3 << 14 }), ErrInvalidChunkSize},
		{"size negative", mut(func(w *testWire) { w.Files[1].Size = -1 }), ErrBadManifest},
		{"size too large", mut(func(w *testWire) { w.Files[1].Size = MaxFileSize + 1 }), ErrManifestTooLarge},
		{"size int64 max", mut(func(w *testWire) { w.Files[1].Size = 1<<63 - 1 }), ErrManifestTooLarge},
		{"size overflows int64", []byte(strings.Replace(string(valid), `"size":0`, `"size":9223372036854775808`, 1)), ErrBadManifest},
		{"size float", []byte(strings.Replace(string(valid), `"size":0`, `"size":0.5`, 1)), ErrBadManifest},
		{"size larger than chunks", mut(func(w *testWire) { w.Files[0].Size += testCS }), ErrBadManifest},
		{"size smaller than chunks", mut(func(w *testWire) { w.Files[0].Size = testCS }), ErrBadManifest},
		{"chunks missing for size", mut(func(w *testWire) { w.Files[1].Size = testCS + 1 }), ErrBadManifest},
		{"chunk blob short", mut(func(w *testWire) { w.Files[0].Chunks = w.Files[0].Chunks[:32] }), ErrBadManifest},
		{"chunk blob long", mut(func(w *testWire) { w.Files[0].Chunks = append(w.Files[0].Chunks, make([]byte, 32)...) }), ErrBadManifest},
		{"chunk blob ragged", mut(func(w *testWire) { w.Files[0].Chunks = w.Files[0].Chunks[:63] }), ErrBadManifest},
		{"chunks for an empty file", mut(func(w *testWire) { w.Files[1].Chunks = make([]byte, 32) }), ErrBadManifest},
		{"empty file, sha256 not of no bytes", mut(func(w *testWire) { w.Files[1].SHA256 = w.Files[0].SHA256 }), ErrBadManifest},
		{"chunk blob not base64", []byte(strings.Replace(string(valid), `"chunks":"`, `"chunks":"!!`, 1)), ErrBadManifest},
		{"sha256 short", mut(func(w *testWire) { w.Files[0].SHA256 = w.Files[0].SHA256[:62] }), ErrBadManifest},
		{"sha256 not hex", mut(func(w *testWire) { w.Files[0].SHA256 = strings.Repeat("zz", 32) }), ErrBadManifest},
		{"no files", mut(func(w *testWire) { w.Files = nil }), ErrBadManifest},
		{"unknown field", []byte(strings.Replace(string(valid), `{"v":3`, `{"v":3,"extra":true`, 1)), ErrBadManifest},
		{"trailing data", append(append([]byte{}, valid...), []byte(` {}`)...), ErrBadManifest},
		{"truncated", valid[:len(valid)-1], ErrBadManifest},
		{"empty input", nil, ErrBadManifest},
		{"array", []byte(`[1,2]`), ErrBadManifest},
		{"null", []byte(`null`), ErrBadManifest},
		{"files not an array", []byte(`{"v":3,"chunk_size":16384,"files":{"name":"a"}}`), ErrBadManifest},
		{"files null", []byte(`{"v":3,"chunk_size":16384,"files":null}`), ErrBadManifest},
		{"file unknown field", []byte(strings.Replace(string(valid), `"size":0`, `"size":0,"mode":420`, 1)), ErrBadManifest},
		{"file not an object", []byte(`{"v":3,"chunk_size":16384,"files":[1]}`), ErrBadManifest},
		{"too large", bytes.Repeat([]byte(" "), MaxManifestSize+1), ErrManifestTooLarge},
		{"name ../x", name("../x"), ErrBadName},
		{"name /etc/passwd", name("/etc/passwd"), ErrBadName},
		{"name a/../../b", name("a/../../b"), ErrBadName},
		{"name backslash", name(`a\b`), ErrBadName},
		{"name escape sequence", name("x\x1b[2J"), ErrBadName},
		{"name bidi override", name("\u202etxt.exe"), ErrBadName},
		{"name empty", name(""), ErrBadName},
		{"name 300-byte component", name(strings.Repeat("x", 300)), ErrBadName},
		{"name trailing slash", name("d/"), ErrBadName},
		{"name reserved part", name("x.p2pxfer-part"), ErrBadName},
		{"name reserved state, other case", name("x.P2PXFER-STATE"), ErrBadName},
		{"name reserved directory", name("x.p2pxfer-part/y"), ErrBadName},
		{"name reserved tmp", name("x.p2pxfer-tmp"), ErrBadName},
		{"duplicate", name("a.bin"), ErrDuplicateName},
		{"duplicate pair", name("q", "q"), ErrDuplicateName},
		{"file and directory", name("a.bin/x"), ErrDuplicateName},
		{"directory then file", name("d/e/f", "d/e"), ErrDuplicateName},
		{"prefix with sort trap", name("p", "p!", "p.x", "p/q"), ErrDuplicateName},
	}
	for _, tt := range tests {
		m, err := DecodeManifest(tt.in)
		if err == nil {
			t.Errorf("%s: accepted (%d files)", tt.desc, len(m.Files))
			continue
		}
		if !errors.Is(err, tt.want) || !errors.Is(err, ErrBadManifest) {
			t.Errorf("%s: got %v, want %v and %v", tt.desc, err, tt.want, ErrBadManifest)
		}
		if !strings.HasPrefix(err.Error(), "chunker decode manifest: ") {
			t.Errorf("%s: error %q lacks the operation", tt.desc, err)
		}
	}
	dirs := func(d ...string) []byte { return mut(func(w *testWire) { w.Dirs = d }) }
	withDirs := func(raw string) []byte {
		return []byte(strings.Replace(string(valid), `"files":`, `"dirs":`+raw+`,"files":`, 1))
	}
	for _, tt := range []struct {
		desc string
		in   []byte
		want error
		says string
	}{
		{"dir ../x", dirs("../x"), ErrBadName, ""},
		{"dir absolute", dirs("/tmp/x"), ErrBadName, ""},
		{"dir empty name", dirs(""), ErrBadName, ""},
		{"dir trailing slash", dirs("d/"), ErrBadName, ""},
		{"dir escape sequence", dirs("d\x1b[2J"), ErrBadName, ""},
		{"dir reserved", dirs("d.p2pxfer-state"), ErrBadName, ""},
		{"dir reserved inside", dirs("x.P2PXFER-PART/d"), ErrBadName, ""},
		{"dir twice", dirs("d", "d"), ErrDuplicateName, ""},
		{"dir is a file", dirs("e"), ErrDuplicateName, ""},
		{"dir under a file", dirs("a.bin/d"), ErrDuplicateName, ""},
		{"dir holds a file", mut(func(w *testWire) {
			w.Files = append(w.Files, w.Files[1])
			w.Files[2].Name = "d/f"
			w.Dirs = []string{"d"}
		}), ErrBadManifest, "list only empty directories"},
		{"dir holds a listed dir", dirs("d", "d/sub"), ErrBadManifest, "list only empty directories"},
		{"dirs null", withDirs("null"), ErrBadManifest, ""},
		{"dirs not an array", withDirs(`{"d":1}`), ErrBadManifest, ""},
		{"dir not a string", withDirs(`[1]`), ErrBadManifest, ""},
		{"dirs truncated", withDirs(`["d"`), ErrBadManifest, ""},
		{"exec not a bool", []byte(strings.Replace(string(valid), `"size":0`, `"size":0,"exec":"yes"`, 1)), ErrBadManifest, ""},
		{"mode field", []byte(strings.Replace(string(valid), `"size":0`, `"size":0,"mode":493`, 1)), ErrBadManifest, ""},
	} {
		m, err := DecodeManifest(tt.in)
		if err == nil {
			t.Errorf("%s: accepted (%q)", tt.desc, m.Dirs)
			continue
		}
		if !errors.Is(err, tt.want) || !errors.Is(err, ErrBadManifest) || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("%s: got %v, want %v (%q)", tt.desc, err, tt.want, tt.says)
		}
	}
	// Empty directories beside files, and beside each other, are fine.
	if m, err := DecodeManifest(dirs("d/x", "d/y", "d!", "a.bin!")); err != nil || len(m.Dirs) != 4 {
		t.Errorf("empty directories refused: %v", err)
	}
	if _, err := DecodeManifest(withDirs(`[]`)); err != nil {
		t.Errorf("an empty dirs list refused: %v", err)
	}
	// Names that share a prefix but are not directories of each other are fine.
	if _, err := DecodeManifest(name("p", "p!", "p.x", "pq/r", "r/p")); err != nil {
		t.Errorf("siblings refused: %v", err)
	}
}

func TestManifestLimits(t *testing.T) {
	// MaxChunks: caught from the sizes alone, before any hash is needed.
	_, err := NewManifest(MinChunkSize, []File{{Name: "big", Size: 1 << 40}})
	if !errors.Is(err, ErrManifestTooLarge) {
		t.Errorf("too many chunks: %v", err)
	}
	// MaxFiles and MaxChunks with test-sized limits.
	defer func(f, d int, c int64) { limitFiles, limitDirs, limitChunks = f, d, c }(limitFiles, limitDirs, limitChunks)
	limitFiles, limitChunks = 2, 3
	entry := `{"name":"e","size":0,"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},`
	many := []byte(`{"v":3,"chunk_size":16384,"files":[` + strings.Repeat(entry, 1000) + `{}]}`)
	if _, err := DecodeManifest(many); !errors.Is(err, ErrManifestTooLarge) {
		t.Errorf("many empty files: %v", err)
	}
	w := validWire()
	w.Files = append(w.Files, w.Files[1])
	w.Files[2].Name = "z"
	b, _ := json.Marshal(w)
	if _, err := DecodeManifest(b); !errors.Is(err, ErrManifestTooLarge) {
		t.Errorf("too many files: %v", err)
	}
	// MaxDirs, likewise: counted while decoding, and in NewManifestTree.
	limitDirs = 2
	w = validWire()
	w.Dirs = []string{"d1", "d2", "d3"}
	b, _ = json.Marshal(w)
	if _, err := DecodeManifest(b); !errors.Is(err, ErrManifestTooLarge) {
		t.Errorf("too many dirs: %v", err)
	}
	if _, err := NewManifestTree(testCS, FEC{}, nil, []string{"d1", "d2", "d3"}, nil); !errors.Is(err, ErrManifestTooLarge) {
		t.Errorf("too many dirs built: %v", err)
	}
	w.Dirs = w.Dirs[:2]
	b, _ = json.Marshal(w)
	if _, err := DecodeManifest(b); err != nil {
		t.Errorf("dirs at the limit: %v", err)
	}
	limitFiles = 10
	w = validWire()
	w.Files[1] = w.Files[0]
	w.Files[1].Name = "b.bin"
	b, _ = json.Marshal(w)
	if _, err := DecodeManifest(b); !errors.Is(err, ErrManifestTooLarge) {
		t.Errorf("too many chunks: %v", err)
	}
}
