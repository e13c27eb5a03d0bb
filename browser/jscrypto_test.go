package browser_test

// The page's cryptography and wire code (web/js) must agree with the Go
// packages byte for byte: a browser tab joins the same rooms as the CLI.
// TestJSAgainstGo computes vectors with the real Go code (pake with a
// deterministic crypto/rand, chunker hashing real files, peer signing the
// manifest, room encoding), writes them to a temporary JSON file, and runs
// node's test runner on jstest/ with P2PXFER_JS_VECTORS pointing at it.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/gtank/ristretto255"
	"github.com/p2pxfer/p2pxfer/chunker"
	"github.com/p2pxfer/p2pxfer/pake"
	"github.com/p2pxfer/p2pxfer/peer"
	"github.com/p2pxfer/p2pxfer/room"
)

type cpaceVector struct {
	Password   string   `json:"password"`
	Room       string   `json:"room"`
	Initiator  string   `json:"initiator"`
	Responder  string   `json:"responder"`
	InitRandom string   `json:"initRandom"` // what NewInitiator read: sid, then 64 bytes for the scalar
	RespRandom string   `json:"respRandom"` // what Respond read: 64 bytes for the scalar
	Hello      string   `json:"hello"`
	Reply      string   `json:"reply"`
	Confirm    string   `json:"confirm"`
	Messages   []string `json:"messages"`   // plaintexts, hex
	IToR       []string `json:"iToR"`       // the initiator's session sealing Messages in order
	RToI       []string `json:"rToI"`       // the responder's
	WrongReply string   `json:"wrongReply"` // Respond's Reply to Hello under WrongPassword
	WrongPass  string   `json:"wrongPassword"`
}

type frameKindVector struct {
	Frame string `json:"frame"`
	Kind  int    `json:"kind"` // -1: FrameKind refuses it
}

type chunkVector struct {
	Index  int    `json:"index"`
	File   int    `json:"file"`
	Offset int64  `json:"offset"`
	Size   int    `json:"size"`
	Hash   string `json:"hash"`
	Prev   string `json:"prev"`
	Last   bool   `json:"last"`
	Data   string `json:"data"` // hex of the chunk's bytes
}

type manifestVector struct {
	Room      string        `json:"room"`
	Seed      string        `json:"seed"` // Ed25519 private key seed
	PublicKey string        `json:"publicKey"`
	Signed    string        `json:"signed"` // hex: signature || canonical manifest
	Digest    string        `json:"digest"`
	NumChunks int           `json:"numChunks"`
	NumParity int           `json:"numParity"`
	Total     int64         `json:"totalSize"`
	ChunkSize int           `json:"chunkSize"`
	Files     []fileVector  `json:"files"`
	Dirs      []string      `json:"dirs"`
	Chunks    []chunkVector `json:"chunks"`
	Pieces    []pieceVector `json:"pieces"`
}

// pieceVector is Manifest.Piece, and for parity pieces their bytes.
type pieceVector struct {
	Size   int    `json:"size"`
	Hash   string `json:"hash"`
	Parity bool   `json:"parity"`
	Stripe int    `json:"stripe"`
	Data   string `json:"data,omitempty"`
}

type fileVector struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Exec   bool   `json:"exec"`
	First  int    `json:"first"`
	Count  int    `json:"count"`
}

type badManifest struct {
	What   string `json:"what"`
	Signed string `json:"signed"` // hex, signed with the vector's key for its room
	Code   string `json:"code"`   // the ManifestError code the page must give
}

type vectors struct {
	CPace         []cpaceVector     `json:"cpace"`
	FrameKinds    []frameKindVector `json:"frameKinds"`
	Manifest      manifestVector    `json:"manifest"`
	BadManifests  []badManifest     `json:"badManifests"`
	RoomGood      []string          `json:"roomGood"`      // Go's Encode of valid messages
	RoomAccepted  []string          `json:"roomAccepted"`  // frames Go's Decode accepts that are not its own spelling
	RoomRejected  []string          `json:"roomRejected"`  // frames Go's Decode refuses
	SignatureRoom string            `json:"signatureRoom"` // another room: the manifest's signature must not hold there
	ChainFar      chainFar          `json:"chainFar"`
	OneWay        []oneWay          `json:"oneWay"`
	Bitmaps       []bitmapVector    `json:"bitmaps"`
	ChunkSizes    []chunkSize       `json:"chunkSizes"`
}

// chunkSize is chunker.ChooseChunkSize of Total: the page that sends
// picks the same.
type chunkSize struct {
	Total int64 `json:"total"`
	Size  int   `json:"size"`
}

// bitmapVector is chunker.Bitmap's wire form with Set indices, and wire
// forms FromBytes refuses for that length.
type bitmapVector struct {
	N       int      `json:"n"`
	Set     []int    `json:"set"`
	Bytes   string   `json:"bytes"`
	Refused []string `json:"refused"`
}

// oneWay is ristretto255's one-way map (FromUniformBytes) of In: CPace's
// generator is it, so the page's map must be this one.
type oneWay struct {
	In  string `json:"in"`
	Out string `json:"out"`
}

// chainFar resumes SHA-256 far into a file, where the bit length no
// longer fits 32 bits, which no real file in a test can reach.
type chainFar struct {
	Prev   string `json:"prev"`
	Offset int64  `json:"offset"`
	Data   string `json:"data"`
	Chain  string `json:"chain"`  // chaining value after Data (a whole number of blocks)
	Digest string `json:"digest"` // SHA-256 after Data and 3 more bytes
}

// TestJSAgainstGo runs the page's JS tests against values from the Go code.
// It skips where node is missing unless CI is set, where that fails.
func TestJSAgainstGo(t *testing.T) {
	node, _ := needNode(t, false)
	// cpaceVectors swaps crypto/rand's reader: nothing of an earlier
	// test may still read it (noneOutlive checks each test that runs
	// peers; this says so here too, whatever the order of the tests).
	if left := lingering(2 * time.Second); len(left) > 0 {
		t.Fatalf("%d goroutines of an earlier test are still running, and would read crypto/rand while it is swapped:\n\n%s",
			len(left), strings.Join(left, "\n\n"))
	}
	v := vectors{
		CPace:         cpaceVectors(t),
		FrameKinds:    frameKindVectors(),
		RoomGood:      roomGood(t),
		RoomAccepted:  roomAccepted(t),
		RoomRejected:  roomRejected(t),
		SignatureRoom: "zzzzzzzz",
	}
	v.Manifest, v.BadManifests = manifestVectors(t)
	v.ChainFar = chainFarVector(t)
	v.Bitmaps = bitmapVectors(t)
	for _, base := range []int64{0, 1, 64 << 10, 256 << 20, 4 << 30, 64 << 30, 4 << 40, 1 << 50} {
		for _, d := range []int64{-1, 0, 1, 1 << 10} {
			if total := base + d; total >= 0 {
				v.ChunkSizes = append(v.ChunkSizes, chunkSize{total, chunker.ChooseChunkSize(total)})
			}
		}
	}
	// Just past a doubling's bound, where dividing without rounding down
	// would double once more.
	for cs := int64(64 << 10); cs <= 1<<20; cs <<= 1 {
		v.ChunkSizes = append(v.ChunkSizes, chunkSize{4096*cs + 1, chunker.ChooseChunkSize(4096*cs + 1)})
	}
	for cs := int64(1 << 20); cs <= 64<<20; cs <<= 1 {
		v.ChunkSizes = append(v.ChunkSizes, chunkSize{65536*cs + 1, chunker.ChooseChunkSize(65536*cs + 1)})
	}
	for i := range 4 {
		in := make([]byte, 64)
		for k := range in {
			in[k] = byte(i*64 + k*13)
		}
		out := ristretto255.NewElement().FromUniformBytes(in).Encode(nil)
		v.OneWay = append(v.OneWay, oneWay{In: hex.EncodeToString(in), Out: hex.EncodeToString(out)})
	}

	b, err := json.MarshalIndent(&v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "vectors.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	tests, err := filepath.Glob(filepath.Join("jstest", "*.test.mjs"))
	if err != nil || len(tests) == 0 {
		t.Fatalf("no JS tests in jstest/ (%v)", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60e9)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{"--test", "--test-reporter=spec"}, tests...)...)
	cmd.Env = append(os.Environ(), "P2PXFER_JS_VECTORS="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test failed (%v):\n%s", err, out)
	}
	t.Logf("node --test:\n%s", out)
}

// readRandom returns the next n bytes crypto/rand gives after a reset to seed.
func readRandom(t *testing.T, seed uint64, n int) []byte {
	cryptotest.SetGlobalRandom(t, seed)
	b := make([]byte, n)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		t.Fatal(err)
	}
	return b
}

func cpaceVectors(t *testing.T) []cpaceVector {
	cases := []struct{ pw, room, ini, resp string }{
		{"k7m2x-pq9fd", "abcdefgh", "23456789abcd", "efghjkmnpqrs"},
		// A password longer than a SHA-512 block (ZPAD 0, two-byte LEB128
		// length) and not ASCII: both ends must hash its UTF-8 bytes alike.
		{strings.Repeat("pässwörd ✓ ", 20), "zzzzzzzz", "222222222222", "zzzzzzzzzzzz"},
	}
	var out []cpaceVector
	for i, c := range cases {
		p := pake.Params{Room: c.room, Initiator: c.ini, Responder: c.resp}
		seedI, seedR := uint64(100+i), uint64(200+i)
		v := cpaceVector{Password: c.pw, Room: c.room, Initiator: c.ini, Responder: c.resp, WrongPass: c.pw + "x"}
		v.InitRandom = hex.EncodeToString(readRandom(t, seedI, 16+64))
		v.RespRandom = hex.EncodeToString(readRandom(t, seedR, 64))

		cryptotest.SetGlobalRandom(t, seedI)
		ini, hello, err := pake.NewInitiator(c.pw, p)
		if err != nil {
			t.Fatal(err)
		}
		cryptotest.SetGlobalRandom(t, seedR)
		resp, reply, err := pake.Respond(c.pw, p, hello)
		if err != nil {
			t.Fatal(err)
		}
		si, confirm, err := ini.Finish(reply)
		if err != nil {
			t.Fatal(err)
		}
		sr, err := resp.Finish(confirm)
		if err != nil {
			t.Fatal(err)
		}
		v.Hello, v.Reply, v.Confirm = hex.EncodeToString(hello), hex.EncodeToString(reply), hex.EncodeToString(confirm)
		for _, m := range [][]byte{{}, []byte(`{"v":3,"t":"offer","sdp":"v=0"}`), make([]byte, pake.MaxPlaintext)} {
			v.Messages = append(v.Messages, hex.EncodeToString(m))
			a, err := si.Seal(m)
			if err != nil {
				t.Fatal(err)
			}
			b, err := sr.Seal(m)
			if err != nil {
				t.Fatal(err)
			}
			v.IToR, v.RToI = append(v.IToR, hex.EncodeToString(a)), append(v.RToI, hex.EncodeToString(b))
		}
		cryptotest.SetGlobalRandom(t, seedR)
		_, wrong, err := pake.Respond(v.WrongPass, p, hello)
		if err != nil {
			t.Fatal(err)
		}
		v.WrongReply = hex.EncodeToString(wrong)
		out = append(out, v)
	}
	return out
}

func frameKindVectors() []frameKindVector {
	var out []frameKindVector
	add := func(b []byte) {
		k, err := pake.FrameKind(b)
		kind := int(k)
		if err != nil {
			kind = -1
		}
		out = append(out, frameKindVector{Frame: hex.EncodeToString(b), Kind: kind})
	}
	add(nil)
	for kind := 0; kind <= 6; kind++ {
		for _, n := range []int{1, 2, 3, 24, 25, 33, 34, 50, 64, 65, 66, 9 + pake.MaxPlaintext + 16, 9 + pake.MaxPlaintext + 17} {
			b := make([]byte, n)
			b[0] = byte(kind)
			if n > 1 {
				b[1] = pake.Version
			}
			add(b)
			if kind == 1 && n > 1 {
				b[1] = pake.Version + 1 // another version: a Hello whatever its length
				add(append([]byte(nil), b...))
			}
		}
	}
	return out
}

// writeFiles makes the tree OpenTree hashes: sizes around the chunk size,
// an empty file, an executable one, an empty folder.
func writeFiles(t *testing.T, chunkSize int) string {
	dir := filepath.Join(t.TempDir(), "photos")
	for _, d := range []string{"", "empty", "sub"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := []struct {
		name string
		size int
		mode os.FileMode
	}{
		{"a<&>.bin", 3*chunkSize + 100, 0o644},
		{"one", 1, 0o644},
		{"zero", 0, 0o644},
		{"sub/exact", chunkSize, 0o755},
		{"sub/two", 2 * chunkSize, 0o644},
		{"ünï ✓", chunkSize - 1, 0o644},
	}
	for i, f := range files {
		b := make([]byte, f.size)
		for k := range b {
			b[k] = byte(k*7 + k>>9 + i)
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), b, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func manifestVectors(t *testing.T) (manifestVector, []badManifest) {
	const chunkSize = chunker.MinChunkSize
	src, err := chunker.OpenTree(t.Context(), []string{writeFiles(t, chunkSize)},
		chunker.TreeOptions{ChunkSize: chunkSize, FEC: chunker.FEC{K: 2, M: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	m := src.Manifest()
	enc, err := chunker.EncodeManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	key := ed25519.NewKeyFromSeed(seed)
	const roomID = "k7m2xpq9"
	signed, err := peer.SignManifest(key, roomID, enc)
	if err != nil {
		t.Fatal(err)
	}
	v := manifestVector{
		Room: roomID, Seed: hex.EncodeToString(seed), PublicKey: hex.EncodeToString(key.Public().(ed25519.PublicKey)),
		Signed: hex.EncodeToString(signed), Digest: m.Digest().String(), NumChunks: m.NumChunks(),
		NumParity: len(m.Parity), Total: m.TotalSize(), ChunkSize: m.ChunkSize, Dirs: m.Dirs,
	}
	for f, file := range m.Files {
		first, n := m.FileChunks(f)
		v.Files = append(v.Files, fileVector{Name: file.Name, Size: file.Size, SHA256: file.SHA256.String(), Exec: file.Exec, First: first, Count: n})
	}
	buf := make([]byte, chunkSize)
	for i := range m.NumChunks() {
		ref := m.Chunk(i)
		data, err := src.ReadChunk(i, buf)
		if err != nil {
			t.Fatal(err)
		}
		if !ref.Verify(data) {
			t.Fatalf("chunk %d does not verify in Go", i)
		}
		v.Chunks = append(v.Chunks, chunkVector{Index: i, File: ref.File, Offset: ref.Offset, Size: ref.Size,
			Hash: ref.Hash.String(), Prev: ref.Prev.String(), Last: ref.Last, Data: hex.EncodeToString(data)})
	}
	for p := range m.NumPieces() {
		ref := m.Piece(p)
		pv := pieceVector{Size: ref.Size, Hash: ref.Hash.String(), Parity: ref.Parity, Stripe: ref.Stripe}
		if ref.Parity {
			data, err := src.ReadPiece(p, make([]byte, chunkSize))
			if err != nil {
				t.Fatal(err)
			}
			pv.Data = hex.EncodeToString(data)
		}
		v.Pieces = append(v.Pieces, pv)
	}
	if len(v.Files) < 5 || len(v.Dirs) != 1 || v.NumParity == 0 {
		t.Fatalf("the tree did not make the manifest this test needs: %d files, dirs %q, %d parity", len(v.Files), v.Dirs, v.NumParity)
	}
	return v, badManifests(t, m, enc, key, roomID)
}

// canon writes a manifest in the canonical form from raw parts, so hostile
// variants can be spelled as a sender would; badManifests checks that it
// reproduces EncodeManifest for the real one.
type rawFile struct {
	Name   string
	Size   int64
	SHA256 string
	Chunks []byte
	Exec   bool
}

func canon(v, chunkSize int, fec string, dirs []string, files []rawFile, parity []byte) []byte {
	var s strings.Builder
	fmt.Fprintf(&s, `{"v":%d,"chunk_size":%d,`, v, chunkSize)
	if fec != "" {
		s.WriteString(`"fec":` + fec + `,`)
	}
	if len(dirs) > 0 {
		s.WriteString(`"dirs":[`)
		for i, d := range dirs {
			if i > 0 {
				s.WriteByte(',')
			}
			b, _ := json.Marshal(d)
			s.Write(b)
		}
		s.WriteString(`],`)
	}
	s.WriteString(`"files":[`)
	for i, f := range files {
		if i > 0 {
			s.WriteByte(',')
		}
		name, _ := json.Marshal(f.Name)
		chunks, _ := json.Marshal(f.Chunks)
		if f.Chunks == nil {
			chunks = []byte(`""`)
		}
		fmt.Fprintf(&s, `{"name":%s,"size":%d,"sha256":"%s","chunks":%s`, name, f.Size, f.SHA256, chunks)
		if f.Exec {
			s.WriteString(`,"exec":true`)
		}
		s.WriteByte('}')
	}
	s.WriteByte(']')
	if fec != "" {
		p, _ := json.Marshal(parity)
		if parity == nil {
			p = []byte(`""`)
		}
		s.WriteString(`,"parity":` + string(p))
	}
	s.WriteByte('}')
	return []byte(s.String())
}

func rawOf(m *chunker.Manifest) (files []rawFile, parity []byte, fec string) {
	for _, f := range m.Files {
		var c []byte
		for k := 0; k < len(f.Chunks)-1; k++ {
			c = append(c, f.Chunks[k][:]...)
		}
		files = append(files, rawFile{Name: f.Name, Size: f.Size, SHA256: f.SHA256.String(), Chunks: c, Exec: f.Exec})
	}
	for _, h := range m.Parity {
		parity = append(parity, h[:]...)
	}
	if m.FEC.Enabled() {
		fec = fmt.Sprintf(`{"k":%d,"m":%d}`, m.FEC.K, m.FEC.M)
	}
	return files, parity, fec
}

func badManifests(t *testing.T, m *chunker.Manifest, enc []byte, key ed25519.PrivateKey, roomID string) []badManifest {
	files, parity, fec := rawOf(m)
	if got := canon(chunker.ManifestVersion, m.ChunkSize, fec, m.Dirs, files, parity); string(got) != string(enc) {
		t.Fatalf("the test's canonical writer differs from EncodeManifest:\n%s\n%s", got, enc)
	}
	// One small file to vary: a single chunk, so its hash is its sha256.
	one := files[1]
	if one.Size != 1 {
		t.Fatalf("file 1 is %q of %d bytes, want the 1-byte file", one.Name, one.Size)
	}
	withName := func(name string) []byte {
		f := one
		f.Name = name
		return canon(3, m.ChunkSize, "", nil, []rawFile{f}, nil)
	}
	empty := sha256Hex(nil)
	cases := []struct {
		what string
		body []byte
		want error  // the sentinel Go's DecodeManifest must report
		code string // the page's ManifestError code
	}{
		{"dot-dot", withName("../x"), chunker.ErrBadName, "bad_name"},
		{"inner dot-dot", withName("a/../b"), chunker.ErrBadName, "bad_name"},
		{"absolute", withName("/etc/passwd"), chunker.ErrBadName, "bad_name"},
		{"trailing slash", withName("a/"), chunker.ErrBadName, "bad_name"},
		{"dot", withName("./a"), chunker.ErrBadName, "bad_name"},
		{"backslash", withName(`a\b`), chunker.ErrBadName, "bad_name"},
		{"control", withName("a\x01b"), chunker.ErrBadName, "bad_name"},
		{"C1 control", withName("a\u0085b"), chunker.ErrBadName, "bad_name"},
		{"DEL", withName("a\x7fb"), chunker.ErrBadName, "bad_name"},
		{"bidi override", withName("exe\u202etxt"), chunker.ErrBadName, "bad_name"},
		{"bidi isolate", withName("a\u2066b"), chunker.ErrBadName, "bad_name"},
		{"line separator", withName("a\u2028b"), chunker.ErrBadName, "bad_name"},
		{"reserved suffix", withName("x.p2pxfer-part"), chunker.ErrBadName, "bad_name"},
		{"reserved suffix, other case, in a folder", withName("D.P2PXFER-STATE/x"), chunker.ErrBadName, "bad_name"},
		{"reserved tmp", withName("x.p2pxfer-tmp"), chunker.ErrBadName, "bad_name"},
		{"long component", withName(strings.Repeat("a", 256)), chunker.ErrBadName, "bad_name"},
		{"long name", withName(strings.Repeat("abcdefg/", 512) + "x"), chunker.ErrBadName, "bad_name"},
		{"empty name", withName(""), chunker.ErrBadName, "bad_name"},
		{"duplicate", canon(3, m.ChunkSize, "", nil, []rawFile{one, one}, nil), chunker.ErrDuplicateName, "duplicate_name"},
		{"file and folder", canon(3, m.ChunkSize, "", nil, []rawFile{one, func() rawFile { f := one; f.Name += "/x"; return f }()}, nil), chunker.ErrDuplicateName, "duplicate_name"},
		{"dir holding a file", canon(3, m.ChunkSize, "", []string{"d"}, []rawFile{func() rawFile { f := one; f.Name = "d/x"; return f }()}, nil), chunker.ErrBadManifest, "bad"},
		{"dir named like a file", canon(3, m.ChunkSize, "", []string{one.Name}, []rawFile{one}, nil), chunker.ErrDuplicateName, "duplicate_name"},
		{"bad dir", canon(3, m.ChunkSize, "", []string{"../up"}, []rawFile{one}, nil), chunker.ErrBadName, "bad_name"},
		{"version 2", canon(2, m.ChunkSize, "", nil, []rawFile{one}, nil), chunker.ErrManifestVersion, "version"},
		{"chunk size not a power of two", canon(3, 3<<14, "", nil, []rawFile{one}, nil), chunker.ErrInvalidChunkSize, "chunk_size"},
		{"chunk size too small", canon(3, 8<<10, "", nil, []rawFile{one}, nil), chunker.ErrInvalidChunkSize, "chunk_size"},
		{"chunk size too large", canon(3, 128<<20, "", nil, []rawFile{one}, nil), chunker.ErrInvalidChunkSize, "chunk_size"},
		{"negative size", canon(3, m.ChunkSize, "", nil, []rawFile{func() rawFile { f := one; f.Size = -1; return f }()}, nil), chunker.ErrBadManifest, "bad"},
		{"size beyond the limit", canon(3, m.ChunkSize, "", nil, []rawFile{func() rawFile { f := one; f.Size = chunker.MaxFileSize + 1; return f }()}, nil), chunker.ErrManifestTooLarge, "too_large"},
		{"too many chunks", canon(3, m.ChunkSize, "", nil, []rawFile{func() rawFile { f := one; f.Size = int64(chunker.MaxChunks+1) * int64(m.ChunkSize); return f }()}, nil), chunker.ErrManifestTooLarge, "too_large"},
		{"size without its chunk hashes", canon(3, m.ChunkSize, "", nil, []rawFile{func() rawFile { f := one; f.Size = int64(m.ChunkSize) + 1; return f }()}, nil), chunker.ErrBadManifest, "bad"},
		{"extra chunk hash", canon(3, m.ChunkSize, "", nil, []rawFile{func() rawFile { f := one; f.Chunks = make([]byte, 32); return f }()}, nil), chunker.ErrBadManifest, "bad"},
		{"chunk hashes not whole", canon(3, m.ChunkSize, "", nil, []rawFile{func() rawFile { f := one; f.Chunks = make([]byte, 31); return f }()}, nil), chunker.ErrBadManifest, "bad"},
		{"empty file with a wrong sha256", canon(3, m.ChunkSize, "", nil, []rawFile{func() rawFile { f := one; f.Size = 0; return f }()}, nil), chunker.ErrBadManifest, "bad"},
		{"empty file with chunk hashes", canon(3, m.ChunkSize, "", nil, []rawFile{{Name: "e", Size: 0, SHA256: empty, Chunks: make([]byte, 32)}}, nil), chunker.ErrBadManifest, "bad"},
		{"short sha256", canon(3, m.ChunkSize, "", nil, []rawFile{func() rawFile { f := one; f.SHA256 = f.SHA256[:62]; return f }()}, nil), chunker.ErrBadManifest, "bad"},
		{"non-hex sha256", canon(3, m.ChunkSize, "", nil, []rawFile{func() rawFile { f := one; f.SHA256 = "zz" + f.SHA256[2:]; return f }()}, nil), chunker.ErrBadManifest, "bad"},
		{"no files", canon(3, m.ChunkSize, "", nil, nil, nil), chunker.ErrBadManifest, "bad"},
		{"fec 0+1", canon(3, m.ChunkSize, `{"k":0,"m":1}`, nil, []rawFile{one}, nil), chunker.ErrInvalidFEC, "fec"},
		{"fec 65+1", canon(3, m.ChunkSize, `{"k":65,"m":1}`, nil, []rawFile{one}, make([]byte, 32)), chunker.ErrInvalidFEC, "fec"},
		{"fec 1+65", canon(3, m.ChunkSize, `{"k":1,"m":65}`, nil, []rawFile{one}, make([]byte, 65*32)), chunker.ErrInvalidFEC, "fec"},
		{"parity count", canon(3, m.ChunkSize, `{"k":1,"m":2}`, nil, []rawFile{one}, make([]byte, 32)), chunker.ErrBadManifest, "bad"},
		{"unknown field", []byte(strings.Replace(string(withName("a")), `"v":3,`, `"v":3,"x":1,`, 1)), chunker.ErrBadManifest, "bad"},
		{"unknown file field", []byte(strings.Replace(string(withName("a")), `"size"`, `"mode":1,"size"`, 1)), chunker.ErrBadManifest, "bad"},
		{"not JSON", []byte(`{"v":3,`), chunker.ErrBadManifest, "bad"},
		{"trailing data", append(withName("a"), "{}"...), chunker.ErrBadManifest, "bad"},
	}
	var out []badManifest
	for _, c := range cases {
		_, err := chunker.DecodeManifest(c.body)
		if !errors.Is(err, c.want) {
			t.Fatalf("%s: Go's DecodeManifest gave %v, want %v", c.what, err, c.want)
		}
		s, err := peer.SignManifest(key, roomID, c.body)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, badManifest{What: c.what, Signed: hex.EncodeToString(s), Code: c.code})
	}
	return out
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func roomGood(t *testing.T) []string {
	ice := []room.ICEServer{{URLs: []string{"stun:127.0.0.1:3478"}}, {URLs: []string{"turn:127.0.0.1:3478?transport=udp"}, Username: "u<&>", Credential: "c"}}
	key := make([]byte, room.KeySize)
	for i := range key {
		key[i] = byte(i * 9)
	}
	msgs := []room.Message{
		{Type: room.TypeCreate, Version: room.ProtocolVersion, Slots: 4, Key: key, MaxFailures: 10},
		{Type: room.TypeCreated, Room: "k7m2xpq9", Peer: "23456789abcd", ICE: ice},
		{Type: room.TypeJoin, Version: room.ProtocolVersion, Room: "k7m2xpq9"},
		{Type: room.TypeJoined, Room: "k7m2xpq9", Peer: "23456789abcd", Host: "efghjkmnpqrs", Key: key, ICE: ice[:1]},
		{Type: room.TypeRelay, Peer: "efghjkmnpqrs", Data: []byte{1, 1, 0xff, 0, 0xfe}},
		{Type: room.TypeRelay, Peer: "efghjkmnpqrs", Data: make([]byte, room.MaxDataSize)},
		{Type: room.TypeClose, Code: room.CodeRoomClosed},
		{Type: room.TypeLeave, Peer: "efghjkmnpqrs"},
		{Type: room.TypeLeft, Peer: "efghjkmnpqrs"},
		{Type: room.TypeSeed, Slots: 2, Complete: true},
		{Type: room.TypeWant, Count: room.MaxWant},
		{Type: room.TypePeers, Peers: []string{"efghjkmnpqrs", "23456789abcd"}},
		{Type: room.TypeRelease, Peer: "efghjkmnpqrs"},
		{Type: room.TypeQueued, Position: 3, Sources: 2},
		{Type: room.TypeFail},
		{Type: room.TypeError, Code: room.CodeTooManyFailures, Text: "room closed <after> too many & wrong passwords ✓"},
	}
	var out []string
	for i := range msgs {
		b, err := room.Encode(&msgs[i])
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		out = append(out, string(b))
	}
	return out
}

func roomAccepted(t *testing.T) []string {
	in := []string{
		`{"type":"left","peer":"efghjkmnpqrs","future":{"x":[1,2]}}`,
		`{"peer":"efghjkmnpqrs","type":"left"}`,
		`{"type":"queued","position":1,"sources":0}`,
		`{"type":"created","room":"k7m2xpq9","peer":"23456789abcd","ice":null}`,
	}
	for _, s := range in {
		if _, err := room.Decode([]byte(s)); err != nil {
			t.Fatalf("Go refuses %s: %v", s, err)
		}
	}
	return in
}

func roomRejected(t *testing.T) []string {
	big := `{"type":"relay","peer":"efghjkmnpqrs","data":"` + strings.Repeat("A", 4*(room.MaxDataSize+3)/3) + `"}`
	in := []string{
		`not json`,
		`[]`,
		`{}`,
		`{"type":"nope"}`,
		`{"type":"join","room":"k7m2xpq9"}`,
		`{"type":"join","v":2}`,
		`{"type":"join","v":2,"room":"K7M2XPQ9"}`,
		`{"type":"join","v":2,"room":"k7m2xpq0"}`,
		`{"type":"join","v":2,"room":"k7m2xpq"}`,
		`{"type":"relay","peer":"efghjkmnpqrs"}`,
		`{"type":"relay","peer":"efghjkmnpqr1","data":"AQ=="}`,
		`{"type":"relay","peer":"efghjkmnpqrs","data":"not base64!"}`,
		big,
		`{"type":"joined","room":"k7m2xpq9","peer":"23456789abcd"}`,
		`{"type":"joined","room":"k7m2xpq9","peer":"23456789abcd","host":"efghjkmnpqrs","key":"AQID"}`,
		`{"type":"error"}`,
		`{"type":"error","code":"what"}`,
		`{"type":"error","code":"internal","text":"` + strings.Repeat("x", 513) + `"}`,
		`{"type":"seed","slots":65}`,
		`{"type":"seed","slots":-1}`,
		`{"type":"want","count":17}`,
		`{"type":"peers","peers":[]}`,
		`{"type":"peers","peers":["efghjkmnpqrs","efghjkmnpqrs","efghjkmnpqrs","efghjkmnpqrs","efghjkmnpqrs","efghjkmnpqrs","efghjkmnpqrs","efghjkmnpqrs","efghjkmnpqrs","efghjkmnpqrs","efghjkmnpqrs","efghjkmnpqrs","efghjkmnpqrs","efghjkmnpqrs","efghjkmnpqrs","efghjkmnpqrs","efghjkmnpqrs"]}`,
		`{"type":"queued","position":0}`,
		`{"type":"left","peer":"efghjkmnpqrs","sources":1}`,
		`{"type":"joined","room":"k7m2xpq9","peer":"23456789abcd","host":"efghjkmnpqrs","ice":[{"urls":["http://x"]}]}`,
		`{"type":"joined","room":"k7m2xpq9","peer":"23456789abcd","host":"efghjkmnpqrs","ice":[{"urls":[]}]}`,
		`{"type":"left","peer":"efghjkmnpqrs","ice":[{"urls":["stun:x"]}]}`,
		`{"type":"create","v":"2"}`,
		`{"type":"create","v":2,"max_failures":1001}`,
	}
	for _, s := range in {
		if _, err := room.Decode([]byte(s)); err == nil {
			t.Fatalf("Go accepts %.100s", s)
		}
	}
	return in
}

// chainFarVector resumes crypto/sha256 through its documented marshaled
// state (magic "sha\x03", the eight words, a block buffer, the length:
// the layout chunker/chain.go uses and tests) at an offset beyond 2^32.
func chainFarVector(t *testing.T) chainFar {
	prev := make([]byte, 32)
	for i := range prev {
		prev[i] = byte(0xa0 + i)
	}
	const off = int64(5)<<40 + 64*3
	data := make([]byte, 128)
	for i := range data {
		data[i] = byte(i * 3)
	}
	resume := func() hash.Hash {
		h := sha256.New()
		st := make([]byte, 4+32+64+8)
		copy(st, "sha\x03")
		copy(st[4:], prev)
		binary.BigEndian.PutUint64(st[4+32+64:], uint64(off))
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st); err != nil {
			t.Fatal(err)
		}
		h.Write(data)
		return h
	}
	st, err := resume().(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil || string(st[:4]) != "sha\x03" {
		t.Fatalf("crypto/sha256 state layout changed: %v", err)
	}
	h := resume()
	h.Write([]byte{1, 2, 3})
	return chainFar{Prev: hex.EncodeToString(prev), Offset: off, Data: hex.EncodeToString(data),
		Chain: hex.EncodeToString(st[4:36]), Digest: hex.EncodeToString(h.Sum(nil))}
}

func bitmapVectors(t *testing.T) []bitmapVector {
	var out []bitmapVector
	for _, n := range []int{0, 1, 7, 8, 9, 16, 100} {
		bm := chunker.NewBitmap(n)
		v := bitmapVector{N: n, Set: []int{}}
		for _, i := range []int{0, 3, 7, 8, 9, 15, 63, 99, n - 1, n, -1, 1 << 20} {
			bm.Set(i) // out-of-range indices are ignored
			v.Set = append(v.Set, i)
		}
		v.Bytes = hex.EncodeToString(bm.Bytes())
		refuse := func(p []byte) {
			if chunker.NewBitmap(n).FromBytes(p) == nil {
				t.Fatalf("bitmap of %d: Go accepts %x", n, p)
			}
			v.Refused = append(v.Refused, hex.EncodeToString(p))
		}
		refuse(make([]byte, (n+7)/8+1))
		if n > 0 {
			refuse(make([]byte, (n+7)/8-1))
		}
		if n%8 != 0 {
			p := make([]byte, (n+7)/8)
			p[len(p)-1] = 0x80
			refuse(p)
		}
		if err := chunker.NewBitmap(n).FromBytes(bm.Bytes()); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}
