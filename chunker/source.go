package chunker

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

// hashBufSize is the read size of the hashing pass. It is independent of the
// chunk size so memory stays at a few MiB even with 64 MiB chunks.
const (
	hashBufSize = 1 << 20
	hashBufs    = 4
)

// Source serves the chunks of local files on the sending side, and with FEC
// their parity pieces. Its methods are safe for concurrent use.
//
// It keeps at most maxOpen files open (see maxOpenSources): a tree of a
// hundred thousand files would otherwise exhaust the descriptors. A file
// closed to make room is reopened on demand and must be the very file
// that was hashed (the same inode, size and modification time), else
// reading it is ErrSourceChanged.
type Source struct {
	m     *Manifest
	roots []string   // the paths given; srcFile.root indexes them
	trees []*os.Root // the trees among them, opened as needed (see openFile)
	files []srcFile
	par   *parityCache // parity pieces, from ReadChunk

	maxOpen int
	mu      sync.Mutex // guards closed, open, dir, and srcFile's f and refs
	closed  bool
	open    []int // files open, oldest first
	// dirs keeps the folders of the tree files used last open
	// (rootCache), by tree and folder.
	dirs rootCache[treeDir]
}

type treeDir struct {
	tree int
	dir  string
}

// srcFile is what a Source keeps of a file: how to find it again and what
// it was when hashed. Kept small: a tree may hold a hundred thousand.
type srcFile struct {
	f     *os.File // nil while closed to save descriptors
	refs  int32    // readers of f; it is only closed at 0
	root  int32    // index into Source.roots
	tree  bool     // found in the tree at roots[root], else it is roots[root]
	idOK  bool
	size  int64
	mtime int64 // UnixNano
	id    [2]uint64
}

// maxOpenSources bounds the files a Source keeps open, as maxOpenParts
// does a Writer's. Tests lower it.
var maxOpenSources = openFileBudget()

// ChooseChunkSize picks a chunk size for total bytes. A swarm spreads a
// file only as fast as pieces pass from peer to peer, so a small transfer
// gets small chunks (from SwarmChunkSize, doubled while there would be more
// than 4096); from 4 GiB on it is DefaultChunkSize, doubled (up to
// MaxChunkSize) while there would be more than 1<<16 chunks, so a huge
// transfer keeps a manifest of a few MiB and per-chunk overhead stays small.
func ChooseChunkSize(total int64) int {
	cs := SwarmChunkSize
	for cs < DefaultChunkSize && total/int64(cs) > 4096 {
		cs <<= 1
	}
	for cs < MaxChunkSize && total/int64(cs) > 1<<16 {
		cs <<= 1
	}
	return cs
}

// OpenSource opens and hashes the regular files at paths, in order, and
// builds their manifest; each file's name is its base name, and a
// directory is ErrIsDir (OpenTree sends directories). chunkSize 0 means
// ChooseChunkSize of the total. Each file is read once, and one SHA-256
// pass gives its chunk hashes and whole-file SHA-256 (chain.go);
// progress, if not nil, is called from the calling goroutine after every
// MiB or so with bytes hashed and the total. Cancelling ctx stops the
// pass. ReadChunk later reads the very files that were hashed, or fails
// with ErrSourceChanged. OpenSource is OpenSourceFEC with FEC off.
func OpenSource(ctx context.Context, paths []string, chunkSize int, progress func(done, total int64)) (*Source, error) {
	return OpenSourceFEC(ctx, paths, chunkSize, FEC{}, progress)
}

// OpenSourceFEC is OpenSource with a FEC layout (FEC{} for none; see
// CheckFEC). The same single read pass also computes every stripe's parity
// pieces and their hashes for the manifest, holding fec.M chunk-sized parity
// buffers, never a stripe's data. ReadPiece then serves data and parity
// pieces alike.
func OpenSourceFEC(ctx context.Context, paths []string, chunkSize int, fec FEC, progress func(done, total int64)) (*Source, error) {
	return open(ctx, paths, false, TreeOptions{ChunkSize: chunkSize, FEC: fec, Progress: progress})
}

// TreeOptions adjust OpenTree.
type TreeOptions struct {
	// ChunkSize is the chunk size; 0 means ChooseChunkSize of the total.
	ChunkSize int
	// FEC is the stripe layout, FEC{} for none (see OpenSourceFEC).
	FEC FEC
	// Progress, if not nil, hears of the hashing pass as in OpenSource.
	Progress func(done, total int64)
	// OnSkip, if not nil, hears of every entry of a tree left out (see
	// OnSkip), from the calling goroutine, before hashing starts.
	OnSkip OnSkip
}

// OpenTree is OpenSourceFEC for files and directories alike: each
// directory is sent as a tree under its own name, with its empty folders
// and each file's executable bit (tree.go says what is left out, and
// OnSkip hears of it). Two paths that would arrive under the same name are
// ErrDuplicateName, naming both.
func OpenTree(ctx context.Context, paths []string, opts TreeOptions) (*Source, error) {
	return open(ctx, paths, true, opts)
}

func open(ctx context.Context, paths []string, allowDirs bool, opts TreeOptions) (*Source, error) {
	fec := opts.FEC
	if err := CheckFEC(fec); err != nil {
		return nil, pathError(OpOpen, "", err)
	}
	g, err := gather(paths, allowDirs, opts.OnSkip)
	if err != nil {
		return nil, err
	}
	s := &Source{roots: g.roots, files: g.files, maxOpen: maxOpenSources}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	total := g.total
	chunkSize := opts.ChunkSize
	if chunkSize == 0 {
		chunkSize = ChooseChunkSize(total)
	}
	if err := CheckChunkSize(chunkSize); err != nil {
		return nil, pathError(OpOpen, "", err)
	}
	var nchunks int64
	for i := range s.files {
		nchunks += chunksFor(s.files[i].size, chunkSize)
	}
	var nparity int64
	if fec.Enabled() {
		nparity = (nchunks + int64(fec.K) - 1) / int64(fec.K) * int64(fec.M)
	}
	// Refuse before an hours-long hashing pass, not after: the chunk count,
	// the hashes' base64 and what each name costs at least must fit the
	// limits.
	if nchunks > limitChunks || (nchunks*HashSize+2)/3*4+(nparity*HashSize+2)/3*4 > MaxManifestSize {
		return nil, pathError(OpOpen, "", fmt.Errorf("%w: %d chunks of %d bytes and %d parity pieces; use a larger chunk size",
			ErrManifestTooLarge, nchunks, chunkSize, nparity))
	}
	if est := minEncodedSize(g, nchunks, nparity); est > MaxManifestSize {
		return nil, pathError(OpOpen, "", fmt.Errorf("%w: %d files and %d empty folders make a file list of more than %d MiB; send fewer at once",
			ErrManifestTooLarge, len(g.files), len(g.dirs), MaxManifestSize>>20))
	}
	var par *parityPass
	if fec.Enabled() {
		par = newParityPass(fec, int(nchunks), chunkSize, int(nparity))
	}

	files := g.names
	var done int64
	report := func(n int64) {
		done += n
		if opts.Progress != nil {
			opts.Progress(done, total)
		}
	}
	small := make([]byte, smallFile+1)
	for i := range s.files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		root, rel := localPath(s.roots, &s.files[i], files[i].Name)
		f, err := s.openHashing(i, root, rel)
		if err != nil {
			return nil, pathError(OpOpen, joinLocal(root, rel), err)
		}
		sf := &s.files[i]
		whole, chunks, err := hashFile(ctx, f, sf.size, chunkSize, report, par, small)
		if err == nil {
			err = sf.check(f)
		}
		if err != nil {
			f.Close()
			return nil, pathError(OpOpen, joinLocal(root, rel), err)
		}
		files[i].Size, files[i].SHA256, files[i].Chunks = sf.size, whole, chunks
		// The first files stay open, up to the budget: a few files are
		// never reopened.
		if len(s.open) < s.maxOpen {
			sf.f = f
			s.open = append(s.open, i)
		} else if err := f.Close(); err != nil {
			return nil, pathError(OpOpen, joinLocal(root, rel), err)
		}
	}
	var parity []Hash
	if par != nil {
		var err error
		if parity, err = par.result(); err != nil {
			return nil, pathError(OpOpen, "", err)
		}
	}
	m, err := NewManifestTree(chunkSize, fec, files, g.dirs, parity)
	if err != nil {
		return nil, pathError(OpOpen, "", err)
	}
	s.m = m
	// ReadChunk only checks size and mtime, so parity that no longer
	// matches the manifest means a file changed unnoticed.
	s.par = newParityCache(m, s.ReadChunk, ErrSourceChanged)
	ok = true
	return s, nil
}

// minEncodedSize is a lower bound of the manifest's encoded size, from the
// names and counts alone.
func minEncodedSize(g *gathered, nchunks, nparity int64) int64 {
	const perFile = len(`{"name":"","size":0,"sha256":"","chunks":""},`) + 2*HashSize
	n := int64(64) + (nchunks*HashSize+2)/3*4 + (nparity*HashSize+2)/3*4
	for i := range g.names {
		n += int64(perFile + len(g.names[i].Name))
	}
	for _, d := range g.dirs {
		n += int64(len(d) + 3)
	}
	return n
}

// openHashing opens file i for the hashing pass and checks that it is the
// regular file gather saw, and records its identity for later reopens. A
// file of a tree is opened inside the tree's root, so no link leads out.
func (s *Source) openHashing(i int, root, rel string) (*os.File, error) {
	f, err := s.openFile(int(s.files[i].root), root, rel)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	sf := &s.files[i]
	if err := sf.same(st); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// openFile opens a file given itself (rel "") or the file rel of the tree
// at root, paths[k], for reading, without blocking should a named pipe
// have taken its place. Each tree's os.Root is opened once and kept until
// Close: opening it anew for every file cost a path walk each time.
// Callers are open's hashing pass, and acquire, under mu.
func (s *Source) openFile(k int, root, rel string) (*os.File, error) {
	if rel == "" {
		return os.OpenFile(root, os.O_RDONLY|openNoBlock, 0)
	}
	if s.trees == nil {
		s.trees = make([]*os.Root, len(s.roots))
	}
	if s.trees[k] == nil {
		r, err := os.OpenRoot(root)
		if err != nil {
			return nil, err
		}
		s.trees[k] = r
	}
	d := filepath.Dir(rel)
	if d == "." {
		return s.trees[k].OpenFile(rel, os.O_RDONLY|openNoBlock, 0)
	}
	f, err := s.dirs.get(treeDir{k, d}, func() (*os.Root, error) { return s.trees[k].OpenRoot(d) })
	if err != nil {
		return nil, err
	}
	file, err := openIn(f, filepath.Base(rel), os.O_RDONLY|openNoBlock, 0)
	if errors.Is(err, syscall.ELOOP) {
		// openIn does not follow a link that took the file's place.
		err = fmt.Errorf("%w: replaced by a %s", ErrSourceChanged, kind(os.ModeSymlink))
	}
	return file, err
}

// kind names a non-regular file type for error messages.
func kind(m os.FileMode) string {
	switch {
	case m&os.ModeSymlink != 0:
		return "symbolic link"
	case m.IsDir():
		return "directory"
	case m&os.ModeNamedPipe != 0:
		return "named pipe"
	case m&os.ModeSocket != 0:
		return "socket"
	case m&os.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// same checks that st, of a file just opened, is the regular file gather
// saw, so that what is hashed, and later served, is that file: a file
// replaced by another (even of the same size) or edited since is
// ErrSourceChanged.
func (sf *srcFile) same(st os.FileInfo) error {
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%w: replaced by a %s", ErrSourceChanged, kind(st.Mode()))
	}
	if id, ok := fileID(st); sf.idOK && (!ok || id != sf.id) {
		return fmt.Errorf("%w: replaced by another file", ErrSourceChanged)
	}
	return sf.changed(st)
}

// changed compares size and mtime with what was hashed. They are what an
// edit changes; the receiver's chunk hashes catch anything subtler, this
// just gives the sender a clear error instead of a stream of rejected
// chunks.
func (sf *srcFile) changed(st os.FileInfo) error {
	if st.Size() != sf.size || st.ModTime().UnixNano() != sf.mtime {
		return fmt.Errorf("%w: size %d -> %d, modified %s -> %s", ErrSourceChanged,
			sf.size, st.Size(), time.Unix(0, sf.mtime).Format(time.RFC3339Nano), st.ModTime().Format(time.RFC3339Nano))
	}
	return nil
}

// check compares the open file f with what was hashed.
func (sf *srcFile) check(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	return sf.changed(st)
}

// smallFile is the size up to which hashFile reads a file in one go into
// a buffer the caller reuses and hashes it on the calling goroutine: a
// tree of a hundred thousand small files would otherwise start two
// goroutines and allocate buffers per file.
const smallFile = 256 << 10

// hashFile reads f, of size bytes when gathered, once from the start. A
// small file (smallFile) is read whole into small, which has room for one
// byte more so a file that grew is noticed. Otherwise the calling
// goroutine reads while a second one computes the chunk hashes, one
// SHA-256 pass that also gives the whole-file hash (chain.go), so reading
// and hashing overlap. With par, a third goroutine feeds the buffers to
// the parity pass after the hasher. hashBufs buffers circulate: the last
// stage hands each back when done, and every stage is finished with a
// buffer before it hands it on.
func hashFile(ctx context.Context, f *os.File, size int64, chunkSize int, report func(int64), par *parityPass, small []byte) (Hash, []Hash, error) {
	if size < int64(len(small)) {
		return hashSmall(f, size, chunkSize, report, par, small)
	}
	var whole Hash
	chunks := make([]Hash, 0, chunksFor(size, chunkSize))
	chainOK := true
	bufSize := int(min(hashBufSize, size+1))
	free := make(chan []byte, hashBufs)
	for range hashBufs {
		free <- make([]byte, bufSize)
	}
	work := make(chan []byte, hashBufs)
	hashDone := make(chan struct{})
	parDone := make(chan struct{})
	var parWork chan []byte
	if par != nil {
		parWork = make(chan []byte, hashBufs)
		go func() {
			defer close(parDone)
			for b := range parWork {
				par.feed(b)
				free <- b[:cap(b)]
			}
		}()
	} else {
		close(parDone)
	}
	go func() {
		defer close(hashDone)
		h := sha256.New()
		var off int64
		cs := int64(chunkSize)
		for b := range work {
			for p := b; len(p) > 0; {
				take := min(int64(len(p)), cs-off%cs)
				h.Write(p[:take])
				p = p[take:]
				// A boundary at the end is the last chunk's: its hash is
				// the file's SHA-256, taken below. If the file grew, the
				// caller reports it and the hashes are dropped.
				if off += take; off%cs == 0 && off < size {
					v, ok := chainValue(h)
					chainOK = chainOK && ok
					chunks = append(chunks, v)
				}
			}
			if parWork != nil {
				parWork <- b
			} else {
				free <- b[:cap(b)]
			}
		}
		if parWork != nil {
			close(parWork)
		}
		whole = Hash(h.Sum(nil))
		if off > 0 {
			chunks = append(chunks, whole)
		}
	}()

	var read int64
	var err error
	for {
		if err = ctx.Err(); err != nil {
			break
		}
		buf := <-free
		var n int
		n, err = io.ReadFull(f, buf)
		if n > 0 {
			read += int64(n)
			work <- buf[:n]
			report(int64(n))
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = nil
			break
		}
		if err != nil {
			break
		}
		if read > size {
			break // grew while we read; reported below without reading it all
		}
	}
	close(work)
	<-hashDone
	<-parDone
	if err == nil && !chainOK {
		err = errChainState
	}
	if err != nil {
		return Hash{}, nil, err
	}
	if read != size {
		return Hash{}, nil, fmt.Errorf("%w: size %d, read %d bytes", ErrSourceChanged, size, read)
	}
	if par != nil {
		if err := par.endFile(); err != nil {
			return Hash{}, nil, err
		}
	}
	return whole, chunks, nil
}

// hashSmall is hashFile for a file shorter than small.
func hashSmall(f *os.File, size int64, chunkSize int, report func(int64), par *parityPass, small []byte) (Hash, []Hash, error) {
	n, err := io.ReadFull(f, small)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return Hash{}, nil, err
	}
	if int64(n) != size {
		return Hash{}, nil, fmt.Errorf("%w: size %d, read %d bytes", ErrSourceChanged, size, n)
	}
	data := small[:n]
	report(int64(n))
	chunks := make([]Hash, 0, chunksFor(size, chunkSize))
	h := sha256.New()
	for off := 0; off < n; off += chunkSize {
		end := min(off+chunkSize, n)
		h.Write(data[off:end])
		if end < n {
			v, ok := chainValue(h)
			if !ok {
				return Hash{}, nil, errChainState
			}
			chunks = append(chunks, v)
		}
	}
	whole := Hash(h.Sum(nil))
	if n > 0 {
		chunks = append(chunks, whole)
	}
	if par != nil {
		par.feed(data)
		if err := par.endFile(); err != nil {
			return Hash{}, nil, err
		}
	}
	return whole, chunks, nil
}

// Manifest returns the manifest of the source's files.
func (s *Source) Manifest() *Manifest { return s.m }

// ReadChunk reads global chunk i into buf[:size] and returns that slice;
// buf must have capacity for the chunk (ChunkSize always suffices). i may
// come straight from a peer: out of range is ErrChunkIndex. If the file was
// replaced, truncated, resized or modified since it was hashed the error
// wraps ErrSourceChanged and names the file.
func (s *Source) ReadChunk(i int, buf []byte) ([]byte, error) {
	if i < 0 || i >= s.m.NumChunks() {
		return nil, fmt.Errorf("chunker read chunk %d: %w (have %d)", i, ErrChunkIndex, s.m.NumChunks())
	}
	ref := s.m.Chunk(i)
	if cap(buf) < ref.Size {
		return nil, fmt.Errorf("chunker read chunk %d: %w: capacity %d, need %d", i, io.ErrShortBuffer, cap(buf), ref.Size)
	}
	buf = buf[:ref.Size]
	f, err := s.acquire(ref.File)
	if err != nil {
		return nil, fmt.Errorf("chunker read chunk %d of %s: %w", i, s.pathOf(ref.File), err)
	}
	defer s.release(ref.File)
	sf := &s.files[ref.File]
	n, err := f.ReadAt(buf, ref.Offset)
	if err == io.EOF && n < ref.Size {
		err = fmt.Errorf("%w: truncated", ErrSourceChanged)
	} else if err == io.EOF {
		err = nil
	}
	if err == nil {
		// After the read, so an edit that raced with it is seen.
		err = sf.check(f)
	}
	if err != nil {
		if errors.Is(err, os.ErrClosed) {
			err = ErrClosed
		}
		return nil, fmt.Errorf("chunker read chunk %d of %s: %w", i, s.pathOf(ref.File), err)
	}
	return buf, nil
}

// pathOf is file fi's local path, for messages: the tree's before the
// manifest is built.
func (s *Source) pathOf(fi int) string {
	if s.m == nil {
		return s.roots[s.files[fi].root]
	}
	return joinLocal(localPath(s.roots, &s.files[fi], s.m.Files[fi].Name))
}

// acquire returns file fi open, reopening it if it was closed to save
// descriptors (closing the least recently opened idle one if the budget is
// spent); release must follow.
func (s *Source) acquire(fi int) (*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	sf := &s.files[fi]
	if sf.f == nil {
		if len(s.open) >= s.maxOpen {
			for k, o := range s.open {
				if s.files[o].refs == 0 {
					s.files[o].f.Close()
					s.files[o].f = nil
					s.open = slices.Delete(s.open, k, k+1)
					break
				}
			}
		}
		root, rel := localPath(s.roots, sf, s.m.Files[fi].Name)
		f, err := s.openHashing(fi, root, rel)
		if err != nil {
			return nil, err
		}
		sf.f = f
		s.open = append(s.open, fi)
	}
	sf.refs++
	return sf.f, nil
}

func (s *Source) release(fi int) {
	s.mu.Lock()
	s.files[fi].refs--
	s.mu.Unlock()
}

// Close closes the files. Further ReadChunk and ReadPiece calls fail with
// ErrClosed; reads in progress finish first.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	var errs []error
	for _, fi := range s.open {
		// A reader in progress still holds it: closing under it makes its
		// read fail with os.ErrClosed, reported as ErrClosed.
		if err := s.files[fi].f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, fmt.Errorf("chunker close %s: %w", s.pathOf(fi), err))
		}
		s.files[fi].f = nil
	}
	s.open = nil
	s.dirs.close()
	for k, r := range s.trees {
		if r != nil {
			r.Close()
			s.trees[k] = nil
		}
	}
	return errors.Join(errs...)
}
