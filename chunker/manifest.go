package chunker

// Manifest wire format, version 3 (ManifestVersion).
//
// A manifest is one JSON object, at most MaxManifestSize bytes:
//
//	{"v":3,"chunk_size":1048576,"fec":{"k":8,"m":2},"dirs":["photos/empty"],"files":[
//	  {"name":"photos/a.jpg","size":2500000,"sha256":"<64 lowercase hex digits>",
//	   "chunks":"<standard base64, padded, of the chunk hashes concatenated>"},
//	  {"name":"photos/run.sh","size":120,"sha256":"...","chunks":"","exec":true}],
//	 "parity":"<standard base64, padded, of the parity piece hashes concatenated>"}
//
//   - v: ManifestVersion. Any other value is ErrManifestVersion; a format
//     change bumps it rather than adding fields, so unknown fields are refused.
//     (fec and parity joined version 1 before any release. Version 2 made
//     the chunk hashes chained, see chain.go; version 1 listed each chunk's
//     own SHA-256, which cost receivers a second hash pass for the file.
//     Version 3 added dirs and exec, so folders can be sent.)
//   - chunk_size: a power of two in [MinChunkSize, MaxChunkSize]. Every chunk
//     is chunk_size bytes except the last of each file; chunks never span
//     files.
//   - fec: optional, the Reed-Solomon stripe layout (see fec.go): k data
//     chunks and m parity pieces per stripe, 1 <= k <= MaxFECData and
//     1 <= m <= MaxFECParity, both keys required. Absent means FEC is off;
//     there is no other spelling of off.
//   - dirs: optional, at most MaxDirs directories that the receiver creates
//     although no file lies in them: empty folders. Only the deepest are
//     listed: a directory that holds a file or another listed directory
//     is implied by that name and may not be listed itself, so one tree
//     has one manifest. Each is a name checked like a file name (below),
//     appears once, is no file's name and lies under no file's name. Any
//     order is accepted; the canonical order is that of the names sorted
//     component by component (byte order, with '/' before every other
//     byte). The receiver creates directories with its own default mode.
//   - files: 0..MaxFiles entries (files and dirs are not both empty), in
//     the order that numbers the chunks globally (file 0's chunks, then
//     file 1's, ...).
//   - name: a slash-separated relative path accepted by CheckName, not ending
//     (in any component, any case) in a suffix reserved for our partial and
//     state files, not a duplicate, and not a directory of another name.
//     A folder sent arrives as its top-level name: "photos/2024/a.jpg".
//   - size: bytes, 0..MaxFileSize.
//   - sha256: SHA-256 of the whole file, what sha256sum prints.
//   - chunks: the hash of every chunk but the last (whose hash is sha256),
//     32*(ceil(size/chunk_size)-1) bytes before base64, empty for files of
//     at most one chunk; MaxChunks chunks over all files. A chunk's hash is
//     SHA-256's chaining value after the file's bytes up to the chunk's end
//     (chain.go). An empty file's sha256 must be that of no bytes.
//   - exec: optional, true when the sender's file is executable. Only this
//     bit of the mode travels (no owner, no setuid, no other permission):
//     the receiver makes the file executable where its umask lets files be
//     read. Absent (or false) means not executable.
//   - parity: present exactly when fec is. The SHA-256 of every parity
//     piece in piece order (stripe 0's m pieces, then stripe 1's, ...),
//     32*m*ceil(N/k) bytes before base64, N being the chunk count over all
//     files (empty when N is 0).
//
// The canonical encoding is exactly the form above with no whitespace, keys
// in that order, fec and parity left out when FEC is off, dirs left out
// when there are none and in canonical order, exec only where true,
// names escaped as encoding/json does, hex in lower case. It
// is what EncodeManifest produces and what Digest hashes, so two peers that
// decode the same manifest agree on its digest however the bytes they
// received were spelled.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
)

// ManifestVersion is the manifest format version described above.
const ManifestVersion = 3

// Chunking parameters and manifest limits. The limits bound what a hostile
// manifest can make a receiver allocate or create.
const (
	// DefaultChunkSize is small enough that a lost chunk is cheap to
	// re-fetch and large enough that per-chunk overhead is negligible.
	DefaultChunkSize = 1 << 20
	// SwarmChunkSize is the smallest size ChooseChunkSize picks: pieces
	// small enough to pass quickly from peer to peer, large enough that
	// per-piece costs stay small next to the data.
	SwarmChunkSize = 64 << 10
	// MinChunkSize keeps the hash table at most 1/512 of the data.
	MinChunkSize = 16 << 10
	// MaxChunkSize bounds the buffer a peer must hold for one chunk.
	MaxChunkSize = 64 << 20
	// MaxManifestSize bounds an encoded manifest, in bytes.
	MaxManifestSize = 64 << 20
	// MaxFiles bounds the number of files in one manifest. In practice
	// MaxManifestSize binds first: a file takes about 130 bytes and its
	// name, so some 400,000 files with short names fit.
	MaxFiles = 1 << 20
	// MaxDirs bounds the empty directories listed in one manifest.
	MaxDirs = 1 << 20
	// MaxChunks bounds the total number of chunks in one manifest.
	MaxChunks = 1 << 24
	// MaxFileSize bounds one file, in bytes (1 PiB).
	MaxFileSize = 1 << 50
	// HashSize is the size of a SHA-256 digest.
	HashSize = sha256.Size
)

// Limits as variables so tests can exercise them without gigabytes of input.
var (
	limitFiles  = MaxFiles
	limitDirs   = MaxDirs
	limitChunks = int64(MaxChunks)
)

// emptySHA256 is the SHA-256 of no bytes.
var emptySHA256 = Hash(sha256.Sum256(nil))

// Hash is a SHA-256 digest.
type Hash [HashSize]byte

// String returns the hash in lower-case hex, as sha256sum prints it.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// File describes one file of a manifest. It is the in-memory form; the wire
// form is private to this file.
type File struct {
	// Name is a slash-separated relative path, checked by CheckName.
	Name string
	// Size is the file's length in bytes.
	Size int64
	// SHA256 is the whole-file SHA-256 (what sha256sum prints).
	SHA256 Hash
	// Chunks holds each chunk's hash (chain.go): len == ceil(Size/ChunkSize),
	// so 0 for an empty file, and the last is SHA256. On the wire that last
	// one is left out.
	Chunks []Hash
	// Exec: the file is executable (the only part of its mode that travels).
	Exec bool
}

// Manifest lists the files of a transfer and the hash of every chunk. Build
// one with NewManifest or DecodeManifest, which validate it and index it;
// do not modify it afterwards, since the index and Digest are computed once.
type Manifest struct {
	// ChunkSize is the size of every chunk except the last of each file.
	ChunkSize int
	// FEC is the stripe layout; the zero value means no parity pieces.
	FEC FEC
	// Files are in global chunk order.
	Files []File
	// Dirs are the empty directories to create, each a name checked like a
	// file's, in canonical order (see the format above); the directories
	// that hold files are implied by the files' names.
	Dirs []string
	// Parity holds the SHA-256 of every parity piece: Parity[i] is that of
	// piece NumChunks()+i. Empty when FEC is off.
	Parity []Hash

	first  []int // first[f] = global index of file f's chunk 0; first[len(Files)] = NumChunks
	total  int64
	digest Hash
	encLen int
}

// ChunkRef locates one chunk: global index, file index, byte offset in that
// file, size, and what Verify checks it against.
type ChunkRef struct {
	Index  int   // global chunk index
	File   int   // index into Manifest.Files
	Offset int64 // byte offset within the file
	Size   int   // ChunkSize, or less for a file's last chunk
	Hash   Hash  // the chunk's hash: its chaining value, or the file's SHA-256 if Last
	Prev   Hash  // the chaining value before it: the previous chunk's, or SHA-256's initial value
	Last   bool  // the file's last chunk
}

// NewManifest validates files exactly as DecodeManifest would and builds the
// chunk index, so a sender cannot produce a manifest its receivers refuse.
// The Files slice is copied; the Chunks slices are shared and must not be
// modified afterwards.
func NewManifest(chunkSize int, files []File) (*Manifest, error) {
	return NewManifestFEC(chunkSize, FEC{}, files, nil)
}

// NewManifestFEC is NewManifest with a FEC layout and the hashes of the
// parity pieces (see Manifest.Parity; nil when fec is FEC{}), validated as
// DecodeManifest would. The parity slice is shared like the Chunks slices.
func NewManifestFEC(chunkSize int, fec FEC, files []File, parity []Hash) (*Manifest, error) {
	return NewManifestTree(chunkSize, fec, files, nil, parity)
}

// NewManifestTree is NewManifestFEC with empty directories to create (see
// Manifest.Dirs; given in any order, they are sorted into the canonical
// one). Files and dirs are copied.
func NewManifestTree(chunkSize int, fec FEC, files []File, dirs []string, parity []Hash) (*Manifest, error) {
	m, err := build(chunkSize, fec, slices.Clone(files), slices.Clone(dirs), parity)
	if err != nil {
		return nil, fmt.Errorf("chunker new manifest: %w", err)
	}
	return m, nil
}

// NumChunks returns the number of chunks over all files. Global chunk i
// walks file 0's chunks, then file 1's, and so on.
func (m *Manifest) NumChunks() int { return m.first[len(m.Files)] }

// Chunk describes global chunk i in O(log files). The caller guarantees
// 0 <= i < NumChunks (indices from the network must be checked first).
func (m *Manifest) Chunk(i int) ChunkRef {
	f := sort.Search(len(m.Files), func(f int) bool { return m.first[f+1] > i })
	local := i - m.first[f]
	off := int64(local) * int64(m.ChunkSize)
	size := m.ChunkSize
	if rem := m.Files[f].Size - off; rem < int64(size) {
		size = int(rem)
	}
	ref := ChunkRef{Index: i, File: f, Offset: off, Size: size, Hash: m.Files[f].Chunks[local], Prev: initialChain,
		Last: local == len(m.Files[f].Chunks)-1}
	if local > 0 {
		ref.Prev = m.Files[f].Chunks[local-1]
	}
	return ref
}

// FileChunks returns the global index of file f's first chunk and how many
// chunks it has. The caller guarantees 0 <= f < len(Files).
func (m *Manifest) FileChunks(f int) (first, n int) {
	return m.first[f], m.first[f+1] - m.first[f]
}

// TotalSize returns the sum of all file sizes.
func (m *Manifest) TotalSize() int64 { return m.total }

// Digest returns the SHA-256 of the canonical encoding. It identifies the
// manifest: resume state binds to it, and peers can compare it cheaply.
func (m *Manifest) Digest() Hash { return m.digest }

// EncodeManifest returns the canonical encoding of m.
func EncodeManifest(m *Manifest) ([]byte, error) {
	if m == nil || m.first == nil {
		return nil, fmt.Errorf("chunker encode manifest: %w: not built by NewManifest or DecodeManifest", ErrBadManifest)
	}
	var buf bytes.Buffer
	buf.Grow(m.encLen)
	if err := writeCanonical(&buf, m); err != nil {
		return nil, fmt.Errorf("chunker encode manifest: %w", err)
	}
	return buf.Bytes(), nil
}

// wireManifest and wireFile are the JSON shapes; see the comment at the top.
// Files is decoded one element at a time (see decodeFiles) so a hostile list
// of a million empty objects is refused at the limit instead of allocated.
// FEC and Parity stay raw so that absent (nil) differs from null.
type wireManifest struct {
	V         int             `json:"v"`
	ChunkSize int             `json:"chunk_size"`
	FEC       json.RawMessage `json:"fec"`
	Dirs      json.RawMessage `json:"dirs"`
	Files     json.RawMessage `json:"files"`
	Parity    json.RawMessage `json:"parity"`
}

type wireFEC struct {
	K int `json:"k"`
	M int `json:"m"`
}

type wireFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Chunks []byte `json:"chunks"` // encoding/json uses padded standard base64
	Exec   bool   `json:"exec,omitempty"`
}

// DecodeManifest parses and validates a manifest received from a peer. Every
// error wraps ErrBadManifest (and ErrManifestVersion, ErrManifestTooLarge,
// ErrInvalidChunkSize, ErrInvalidFEC, ErrBadName or ErrDuplicateName where
// one applies).
func DecodeManifest(b []byte) (*Manifest, error) {
	m, err := decode(b)
	if err != nil {
		return nil, fmt.Errorf("chunker decode manifest: %w", err)
	}
	return m, nil
}

func decode(b []byte) (*Manifest, error) {
	if len(b) > MaxManifestSize {
		return nil, badf(ErrManifestTooLarge, "%d bytes, limit %d", len(b), MaxManifestSize)
	}
	var wm wireManifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&wm); err != nil {
		// Another version may have another shape; report the version, which
		// is what the user can act on, rather than a type error.
		var peek struct {
			V *int `json:"v"`
		}
		if json.Unmarshal(b, &peek) == nil && peek.V != nil && *peek.V != ManifestVersion {
			return nil, badf(ErrManifestVersion, "version %d, want %d", *peek.V, ManifestVersion)
		}
		return nil, badf(nil, "%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badf(nil, "data after the manifest object")
	}
	if wm.V != ManifestVersion {
		return nil, badf(ErrManifestVersion, "version %d, want %d", wm.V, ManifestVersion)
	}
	fec, parity, err := decodeFEC(wm.FEC, wm.Parity)
	if err != nil {
		return nil, err
	}
	dirs, err := decodeDirs(wm.Dirs)
	if err != nil {
		return nil, err
	}
	files, err := decodeFiles(wm.Files)
	if err != nil {
		return nil, err
	}
	return build(wm.ChunkSize, fec, files, dirs, parity)
}

// decodeDirs decodes the optional dirs array element by element, stopping
// at limitDirs; build checks the names.
func decodeDirs(raw json.RawMessage) ([]string, error) {
	if raw == nil {
		return nil, nil
	}
	if string(raw) == "null" {
		return nil, badf(nil, "dirs is null (leave it out for none)")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, badf(nil, "dirs is not an array")
	}
	var dirs []string
	for i := 0; dec.More(); i++ {
		if i == limitDirs {
			return nil, badf(ErrManifestTooLarge, "more than %d directories", limitDirs)
		}
		var d string
		if err := dec.Decode(&d); err != nil {
			return nil, badf(nil, "dir %d: %v", i, err)
		}
		dirs = append(dirs, d)
	}
	if _, err := dec.Token(); err != nil {
		return nil, badf(nil, "dirs: %v", err)
	}
	return dirs, nil
}

// decodeFEC decodes the optional fec and parity fields, which come
// together; build checks the layout and the parity count.
func decodeFEC(rawFEC, rawParity json.RawMessage) (FEC, []Hash, error) {
	if rawFEC == nil && rawParity == nil {
		return FEC{}, nil, nil
	}
	if rawFEC == nil || rawParity == nil {
		return FEC{}, nil, badf(ErrInvalidFEC, "fec and parity must come together")
	}
	if string(rawFEC) == "null" {
		return FEC{}, nil, badf(ErrInvalidFEC, "fec is null (leave it out for no FEC)")
	}
	var wf wireFEC
	dec := json.NewDecoder(bytes.NewReader(rawFEC))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&wf); err != nil {
		return FEC{}, nil, badf(ErrInvalidFEC, "fec: %v", err)
	}
	fec := FEC{K: wf.K, M: wf.M}
	if !fec.Enabled() {
		return FEC{}, nil, badf(ErrInvalidFEC, "fec 0+0 (leave it out for no FEC)")
	}
	if p := fecProblem(fec); p != "" {
		return FEC{}, nil, badf(ErrInvalidFEC, "fec %s", p)
	}
	if string(rawParity) == "null" {
		return FEC{}, nil, badf(nil, "parity is null")
	}
	var blob []byte
	if err := json.Unmarshal(rawParity, &blob); err != nil {
		return FEC{}, nil, badf(nil, "parity: %v", err)
	}
	if len(blob)%HashSize != 0 {
		return FEC{}, nil, badf(nil, "parity hashes are %d bytes, not a multiple of %d", len(blob), HashSize)
	}
	parity := make([]Hash, len(blob)/HashSize)
	for k := range parity {
		copy(parity[k][:], blob[k*HashSize:])
	}
	return fec, parity, nil
}

// decodeFiles decodes the files array element by element, converting each
// to a File at once and stopping at limitFiles.
func decodeFiles(raw json.RawMessage) ([]File, error) {
	if raw == nil || string(raw) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, badf(nil, "files is not an array")
	}
	var files []File
	for i := 0; dec.More(); i++ {
		if i == limitFiles {
			return nil, badf(ErrManifestTooLarge, "more than %d files", limitFiles)
		}
		var wf wireFile
		if err := dec.Decode(&wf); err != nil {
			return nil, badf(nil, "file %d: %v", i, err)
		}
		f := File{Name: wf.Name, Size: wf.Size, Exec: wf.Exec}
		if len(wf.SHA256) != 2*HashSize {
			return nil, badf(nil, "file %d: sha256 is not %d hex digits", i, 2*HashSize)
		}
		if _, err := hex.Decode(f.SHA256[:], []byte(wf.SHA256)); err != nil {
			return nil, badf(nil, "file %d: sha256: %v", i, err)
		}
		if len(wf.Chunks)%HashSize != 0 {
			return nil, badf(nil, "file %d: chunk hashes are %d bytes, not a multiple of %d", i, len(wf.Chunks), HashSize)
		}
		if f.Size > 0 { // build checks the count against the size
			f.Chunks = make([]Hash, len(wf.Chunks)/HashSize+1)
			for k := range len(f.Chunks) - 1 {
				copy(f.Chunks[k][:], wf.Chunks[k*HashSize:])
			}
			f.Chunks[len(f.Chunks)-1] = f.SHA256
		} else if len(wf.Chunks) > 0 {
			return nil, badf(nil, "file %d: chunk hashes for an empty file", i)
		}
		files = append(files, f)
	}
	if _, err := dec.Token(); err != nil { // the closing ']'; RawMessage was already well-formed
		return nil, badf(nil, "files: %v", err)
	}
	return files, nil
}

// badf builds a validation error that matches ErrBadManifest and, if not nil,
// the more specific sentinel.
func badf(specific error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	switch {
	case specific == nil:
		return fmt.Errorf("%w: %s", ErrBadManifest, msg)
	case errors.Is(specific, ErrBadManifest):
		return fmt.Errorf("%w: %s", specific, msg)
	default:
		return fmt.Errorf("%w: %w: %s", ErrBadManifest, specific, msg)
	}
}

// CheckChunkSize reports whether n is a valid chunk size; the error wraps
// ErrInvalidChunkSize. Powers of two keep offsets cheap to compute and make
// every valid size divide the larger ones.
func CheckChunkSize(n int) error {
	if n < MinChunkSize || n > MaxChunkSize || n&(n-1) != 0 {
		return fmt.Errorf("%w: %d is not a power of two in [%d, %d]", ErrInvalidChunkSize, n, MinChunkSize, MaxChunkSize)
	}
	return nil
}

// chunksFor returns ceil(size/chunkSize); size is already known to be in
// [0, MaxFileSize], so this cannot overflow.
func chunksFor(size int64, chunkSize int) int64 {
	return (size + int64(chunkSize) - 1) / int64(chunkSize)
}

// build validates and indexes; it takes ownership of files and dirs.
func build(chunkSize int, fec FEC, files []File, dirs []string, parity []Hash) (*Manifest, error) {
	if err := CheckChunkSize(chunkSize); err != nil {
		return nil, badf(ErrInvalidChunkSize, "chunk size %d", chunkSize)
	}
	if p := fecProblem(fec); p != "" {
		return nil, badf(ErrInvalidFEC, "fec %s", p)
	}
	if len(files) == 0 && len(dirs) == 0 {
		return nil, badf(nil, "no files")
	}
	if len(files) > limitFiles {
		return nil, badf(ErrManifestTooLarge, "%d files, limit %d", len(files), limitFiles)
	}
	if len(dirs) > limitDirs {
		return nil, badf(ErrManifestTooLarge, "%d directories, limit %d", len(dirs), limitDirs)
	}
	for i, d := range dirs {
		if p := nameProblem(d); p != "" {
			return nil, badf(ErrBadName, "dir %d %q: %s", i, d, p)
		}
		if p := reservedProblem(d); p != "" {
			return nil, badf(ErrBadName, "dir %d %q: %s", i, d, p)
		}
	}
	slices.SortFunc(dirs, cmpPath)
	if len(dirs) == 0 {
		dirs = nil // one in-memory form for "no directories"
	}
	first := make([]int, len(files)+1)
	var nchunks, total int64
	for i := range files {
		f := &files[i]
		if p := nameProblem(f.Name); p != "" {
			return nil, badf(ErrBadName, "file %d %q: %s", i, f.Name, p)
		}
		if p := reservedProblem(f.Name); p != "" {
			return nil, badf(ErrBadName, "file %d %q: %s", i, f.Name, p)
		}
		if f.Size < 0 {
			return nil, badf(nil, "file %d %q: negative size %d", i, f.Name, f.Size)
		}
		if f.Size > MaxFileSize {
			return nil, badf(ErrManifestTooLarge, "file %d %q: %d bytes, limit %d", i, f.Name, f.Size, int64(MaxFileSize))
		}
		n := chunksFor(f.Size, chunkSize)
		if nchunks+n > limitChunks {
			return nil, badf(ErrManifestTooLarge, "more than %d chunks", limitChunks)
		}
		if int64(len(f.Chunks)) != n {
			return nil, badf(nil, "file %d %q: %d chunk hashes for %d bytes, want %d", i, f.Name, len(f.Chunks), f.Size, n)
		}
		// Verify takes the last chunk's hash as the whole file's, and an
		// empty file has no chunk to check at all.
		if n > 0 && f.Chunks[n-1] != f.SHA256 || n == 0 && f.SHA256 != emptySHA256 {
			return nil, badf(nil, "file %d %q: sha256 is not its last chunk's hash or, empty, that of no bytes", i, f.Name)
		}
		nchunks += n
		total += f.Size
		first[i+1] = int(nchunks)
	}
	if err := checkNameSet(files, dirs); err != nil {
		return nil, err
	}
	var want int64 // parity pieces
	if fec.Enabled() {
		want = (nchunks + int64(fec.K) - 1) / int64(fec.K) * int64(fec.M)
	}
	if int64(len(parity)) != want {
		return nil, badf(nil, "%d parity hashes, want %d for %d chunks with FEC %s", len(parity), want, nchunks, fec)
	}
	if len(parity) == 0 {
		parity = nil // one in-memory form for "no parity pieces"
	}
	m := &Manifest{ChunkSize: chunkSize, FEC: fec, Files: files, Dirs: dirs, Parity: parity, first: first, total: total}
	h := sha256.New()
	cw := &limitWriter{w: h, left: MaxManifestSize}
	if err := writeCanonical(cw, m); err != nil {
		return nil, badf(ErrManifestTooLarge, "encodes to more than %d bytes", MaxManifestSize)
	}
	h.Sum(m.digest[:0])
	m.encLen = MaxManifestSize - cw.left
	return m, nil
}

// checkNameSet refuses duplicates and names that are a directory of another
// ("a" and "a/b"), which would make one file's creation fail or, worse,
// write into another's place; and a listed directory that holds another
// name, which the canonical form leaves out. Sorting with '/' ordered
// before every other byte puts each name directly before the names below
// it, so comparing neighbours is enough, in O(n log n) whatever the names
// look like. Indices from len(files) on are dirs.
func checkNameSet(files []File, dirs []string) error {
	name := func(i int) string {
		if i < len(files) {
			return files[i].Name
		}
		return dirs[i-len(files)]
	}
	idx := make([]int, len(files)+len(dirs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmpPath(name(a), name(b)) })
	for k := 1; k < len(idx); k++ {
		a, b := name(idx[k-1]), name(idx[k])
		if a == b {
			return badf(ErrDuplicateName, "%q appears twice", a)
		}
		if len(b) > len(a) && b[len(a)] == '/' && b[:len(a)] == a {
			if idx[k-1] >= len(files) {
				return badf(nil, "directory %q is listed but holds %q (list only empty directories)", a, b)
			}
			return badf(ErrDuplicateName, "%q is both a file and a directory of %q", a, b)
		}
	}
	return nil
}

// cmpPath orders names component by component: '/' sorts before any other
// byte (names never contain NUL).
func cmpPath(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		if ca == '/' {
			return -1
		}
		if cb == '/' {
			return 1
		}
		return int(ca) - int(cb)
	}
	return len(a) - len(b)
}

// writeCanonical streams the canonical encoding, so Digest never needs the
// whole encoding in memory.
func writeCanonical(w io.Writer, m *Manifest) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	fmt.Fprintf(bw, `{"v":%d,"chunk_size":%d,`, ManifestVersion, m.ChunkSize)
	if m.FEC.Enabled() {
		fmt.Fprintf(bw, `"fec":{"k":%d,"m":%d},`, m.FEC.K, m.FEC.M)
	}
	if len(m.Dirs) > 0 {
		bw.WriteString(`"dirs":[`)
		for i, d := range m.Dirs {
			if i > 0 {
				bw.WriteByte(',')
			}
			name, err := json.Marshal(d)
			if err != nil {
				return err
			}
			bw.Write(name)
		}
		bw.WriteString(`],`)
	}
	bw.WriteString(`"files":[`)
	for i := range m.Files {
		f := &m.Files[i]
		if i > 0 {
			bw.WriteByte(',')
		}
		name, err := json.Marshal(f.Name)
		if err != nil {
			return err
		}
		bw.WriteString(`{"name":`)
		bw.Write(name)
		fmt.Fprintf(bw, `,"size":%d,"sha256":"%x","chunks":"`, f.Size, f.SHA256[:])
		enc := base64.NewEncoder(base64.StdEncoding, bw)
		for k := range max(len(f.Chunks)-1, 0) { // the last is sha256
			enc.Write(f.Chunks[k][:])
		}
		enc.Close()
		bw.WriteByte('"')
		if f.Exec {
			bw.WriteString(`,"exec":true`)
		}
		bw.WriteByte('}')
	}
	bw.WriteByte(']')
	if m.FEC.Enabled() {
		bw.WriteString(`,"parity":"`)
		enc := base64.NewEncoder(base64.StdEncoding, bw)
		for k := range m.Parity {
			enc.Write(m.Parity[k][:])
		}
		enc.Close()
		bw.WriteByte('"')
	}
	bw.WriteByte('}')
	return bw.Flush() // bufio keeps the first write error; Flush reports it
}

// limitWriter passes writes to w until left bytes have gone through, then
// fails, so sizing a hostile-but-valid manifest stays bounded.
type limitWriter struct {
	w    io.Writer
	left int
}

var errLimit = errors.New("limit exceeded")

func (l *limitWriter) Write(p []byte) (int, error) {
	if len(p) > l.left {
		return 0, errLimit
	}
	l.left -= len(p)
	return l.w.Write(p)
}
