package chunker

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"sync"
	"time"
)

// maxOpenParts bounds the part files a Writer keeps open; beyond it they are
// closed and reopened on demand, which costs a path lookup each time. A
// thousand small files fit within the budget on a usual system, where
// reopening them for every write and again at Finish costs a third of the
// time. Tests lower it.
var maxOpenParts = openFileBudget()

// Writer tuning.
const (
	saveInterval = time.Second // resume state is at most this stale...
	saveBytes    = 64 << 20    // ...or this many bytes behind
	// A save costs two fsyncs per file with new chunks; a timed save waits
	// until it protects at least this much per file, so a thousand small
	// files are not saved one by one in the middle of their transfer
	// (Close still saves everything). A file smaller than this gets its
	// state from Close only: fetching it again costs less than the state,
	// and a 64 MiB save of a tree of 4 KiB files was 16,384 of them.
	minSavePerFile = 64 << 10
)

// flushStep paces write-behind. Left alone, the kernel keeps every page a
// download writes cached and dirty until Finish's fsync, which then writes
// the whole file back while the user waits, and fills memory with a cache
// that nobody reads: each chunk was checked before it was written. So each
// time the written prefix of a file (every chunk up to there present) has
// passed another flushStep, the Writer starts write-back of that stretch
// (sync_file_range) and drops the stretch before it, clean by then, from
// the cache (POSIX_FADV_DONTNEED). A download's page cache stays a few steps plus
// what arrived out of order, and the freed pages are reused while they are
// still warm, which cuts the system time of writing a large file and
// syncing it several-fold (docs/performance.md).
// Peers fetching from a download read those stretches back from the disk.
// Hints only: errors are ignored, and durability still comes from fsync. A
// variable so tests can lower it.
var flushStep int64 = 8 << 20

// WriterOptions adjust CreateWriter.
type WriterOptions struct {
	// Force replaces existing final files (the CLI's --force). Without it
	// an existing file is never overwritten, even by a race at Finish.
	Force bool
	// KeepIdentical takes an existing final file that has the manifest's
	// size and SHA-256 as received, Force or not: it is neither refused
	// nor replaced, its chunks are not asked for, and it is served from
	// where it is (see Kept). Checking costs a read of each existing file
	// of the right size.
	KeepIdentical bool
	// Progress, if not nil, is called while CreateWriter re-verifies the
	// chunks a resume state claims, with bytes checked and bytes claimed;
	// that can take a while for a large half-finished transfer.
	Progress func(done, total int64)
}

// Writer rebuilds a manifest's files under a destination directory from
// chunks arriving in any order. For each file it fills PartName(name),
// keeps resume state in StateName(name), and at Finish moves the part to
// name: every chunk matched its hash in the manifest's chain, so the file
// matches its SHA-256 (chain.go). Every file operation goes
// through an os.Root, so no name and no symlink in the destination can make
// it write outside the directory.
//
// A Writer also serves what it holds, so a receiver can seed while it
// downloads and after: ReadChunk and ReadPiece return verified chunks and
// the parity of complete stripes, checked against the manifest again on
// every read. They read the part files, and once Finish has put a file in
// place the final file, until Close.
//
// WriteChunk, ReadChunk, ReadPiece, StripeComplete, Missing, Have, Verified
// and Bitmap are safe for concurrent use; Finish and Close wait for
// WriteChunk and ReadChunk calls in progress.
type Writer struct {
	maxOpen int // maxOpenParts when created
	// pin holds the lock on the first part claimed (lockFile) until Close.
	pin  *os.File
	root *os.Root
	// barrier is the destination directory, open for syncFS since
	// creation; nil where syncFS is unsupported.
	barrier *os.File
	rootDev uint64 // device of the destination, if fileID knows it
	m       *Manifest
	opts    WriterOptions
	par     *parityCache

	// life is held shared by WriteChunk and ReadChunk and exclusively by
	// Finish and Close, so those never run while a chunk is half written
	// or a file is read that they are about to close or move.
	life   sync.RWMutex
	closed bool // guarded by life

	mu sync.Mutex // guards the fields below and wfile's file/refs/dirty
	// dirs keeps the folders of the parts used last open (rootCache);
	// top is the destination's, for names at the top (root is not its to
	// close).
	dirs     rootCache[string]
	top      folder
	have     *Bitmap
	verified int64
	files    []wfile
	open     []int // files whose part is open, oldest first
	dirty    []int // files with chunks verified since their state was saved
	// dirtySmall is dirty for files under minSavePerFile: saved by Close
	// only, and not counted in unsaved.
	dirtySmall []int
	unsaved    int64
	lastSave   time.Time
	kept       []int // files KeepIdentical found in place; set by setup only
	// made holds the directories created for parts (MkdirAll once each).
	made map[string]bool

	saveMu sync.Mutex     // one state save at a time
	bg     sync.WaitGroup // background saves; Finish and Close wait for them
}

// wfile is the Writer's per-file bookkeeping.
type wfile struct {
	// The part file, or once placed the final file, read-only; nil when
	// closed to save descriptors.
	file  *os.File
	refs  int // users of file; it is only closed at 0
	dirty bool
	// placed only changes under life held exclusively.
	placed bool // final file in place
	// dev is the device holding the part, if fileID knows it (devOK):
	// syncFS on the destination does not reach a part under a mount point.
	dev   uint64
	devOK bool
	// hasState: a state file may exist (one was found or written), so
	// placing the file must remove it; saves an unlink per small file.
	hasState bool
	// pending: setup found no part file, and left creating it to the
	// first write (createPart), so a tree of many small files starts
	// downloading at once and each part is written while it is open.
	pending bool

	// Write-behind, under wmu (apart from Writer.mu, which its system
	// calls must not hold up): next is the file-local index of the first
	// chunk not yet written, the end of the written prefix; write-back was
	// started up to flushed and the cache dropped up to dropped (see
	// flushStep).
	wmu              sync.Mutex
	next             int
	flushed, dropped int64
}

// CreateWriter prepares to receive m into dir, resuming where a previous
// Writer for the same files left off. It refuses with ErrExists (an
// *ExistsError) if a final file exists (unless opts.Force, or it is
// identical and opts.KeepIdentical), with ErrExists if something other
// than a directory holds the name of one of the manifest's empty
// directories, and with ErrNoSpace if dir's file system
// cannot hold what is still missing; then it creates directories and part
// files and re-verifies every chunk the resume state claims.
func CreateWriter(dir string, m *Manifest, opts WriterOptions) (*Writer, error) {
	if m == nil || m.first == nil {
		return nil, pathError(OpCreateWriter, dir, fmt.Errorf("%w: not built by NewManifest or DecodeManifest", ErrBadManifest))
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, pathError(OpCreateWriter, dir, err)
	}
	w := &Writer{
		maxOpen:  maxOpenParts,
		root:     root,
		m:        m,
		opts:     opts,
		have:     NewBitmap(m.NumChunks()),
		files:    make([]wfile, len(m.Files)),
		lastSave: time.Now(),
		made:     make(map[string]bool),
	}
	w.top.root = root
	if b, err := openFSBarrier(root); err == nil {
		if st, err := b.Stat(); err == nil {
			if id, ok := fileID(st); ok {
				w.barrier, w.rootDev = b, id[0]
			}
		}
		if w.barrier == nil {
			b.Close()
		}
	}
	// ReadChunk only returns data that matches the manifest, so parity that
	// does not means the manifest's parity hashes contradict its data.
	w.par = newParityCache(m, w.ReadChunk, ErrChunkHash)
	var created []int
	if err := w.setup(dir, &created); err != nil {
		w.abort(created)
		return nil, pathError(OpCreateWriter, dir, err)
	}
	return w, nil
}

// setup does CreateWriter's work. Everything that can refuse without side
// effects (existing files, free space) comes before anything is created.
func (w *Writer) setup(dir string, created *[]int) error {
	claims := make([]*Bitmap, len(w.m.Files))
	fresh := make([]bool, len(w.m.Files)) // no part file yet
	var claimed, need int64
	kept := make([]bool, len(w.m.Files))
	// Folders found missing: nothing under them exists, so their files
	// need no lookups (three a file, each a walk through the path), which
	// is most of setup's time for a fresh tree of many files.
	absent := make(map[string]bool)
	for fi := range w.m.Files {
		f := &w.m.Files[fi]
		if d := path.Dir(f.Name); d != "." {
			if !absent[d] {
				if _, _, err := w.inDir(f.Name); errors.Is(err, fs.ErrNotExist) {
					absent[d] = true
				} // any other error, the lookups below report as before
			}
			if absent[d] {
				fresh[fi] = true
				need += f.Size
				continue
			}
		}
		// The file's folder, kept open (inDir): each lookup below is then
		// of a base name, not a walk through the path.
		r, base, err := w.inDir(f.Name)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%q: %w", f.Name, err)
		}
		if err != nil { // not a folder after all: checkDir and openPart say what is in the way
			r, base = w.root, f.Name
		}
		if kept[fi], err = w.checkFinal(fi, r, base); err != nil {
			return err
		}
		if kept[fi] {
			continue
		}
		st, err := r.Lstat(PartName(base))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			fresh[fi] = true
		case err != nil:
			return fmt.Errorf("%q: %w", f.Name, err)
		}
		// Read even without a part file, so a stale state is known and
		// removed when the file is placed.
		held := int64(0)
		if claims[fi] = w.readState(fi, r, base); claims[fi] != nil && !fresh[fi] {
			held = w.claimedBytes(fi, claims[fi])
			claimed += held
		}
		// What a part file holds already, claimed or not (chunks written
		// after the last state save), is space the file needs no more; one
		// started over gives its blocks back (preparePart) before growing.
		if !fresh[fi] && st.Mode().IsRegular() {
			held = max(held, min(allocated(st), f.Size))
		}
		need += f.Size - held
	}
	for _, d := range w.m.Dirs {
		if err := w.checkDir(d); err != nil {
			return err
		}
	}
	if readOnlyFS(dir) {
		return fmt.Errorf("%w: nothing can be written there", ErrReadOnly)
	}
	free, err := FreeSpace(dir)
	switch {
	case errors.Is(err, errors.ErrUnsupported):
	case err != nil:
		return err
	case free < need:
		return fmt.Errorf("%w: need %d more bytes, %d available", ErrNoSpace, need, free)
	}
	var buf []byte // one chunk, only if there is something to re-verify
	if claimed > 0 {
		buf = make([]byte, w.m.ChunkSize)
	}
	ids := make(map[[2]uint64]int)
	dirs := w.made
	var checked int64
	for fi := range w.m.Files {
		if kept[fi] {
			w.keep(fi)
			continue
		}
		if fresh[fi] && w.pin != nil {
			// Created at its first chunk (createPart). The pin already
			// makes a second Writer of the same files meet our lock.
			w.files[fi].pending = true
			continue
		}
		name := w.m.Files[fi].Name
		pf, isNew, err := w.openPart(fi, fresh[fi], dirs)
		if err != nil {
			return err
		}
		if err := w.claimPart(fi, pf, ids); err != nil {
			pf.Close()
			return fmt.Errorf("%q: %w", name, err)
		}
		if isNew { // only once locked: another's part is never removed
			*created = append(*created, fi)
		}
		err = w.preparePart(fi, pf, isNew, claims[fi], buf, &checked, claimed)
		if err != nil {
			pf.Close()
			return fmt.Errorf("%q: %w", name, err)
		}
		if len(w.open) < w.maxOpen {
			w.files[fi].file = pf
			w.open = append(w.open, fi)
		} else if err := pf.Close(); err != nil {
			return fmt.Errorf("%q: %w", name, err)
		}
	}
	return nil
}

// checkFinal refuses an existing final file unless Force, and a directory
// in its place always (Rename could not replace it, and the user would only
// find out after the whole transfer). With KeepIdentical it reports an
// identical file as one to keep. r and base are fi's folder and base name
// (inDir).
func (w *Writer) checkFinal(fi int, r *os.Root, base string) (keep bool, err error) {
	name := w.m.Files[fi].Name
	st, err := r.Lstat(base)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	case st.IsDir():
		return false, &ExistsError{Name: name, Dir: true}
	}
	if w.opts.KeepIdentical {
		same, err := w.identical(fi, st)
		if err != nil || same {
			return same, err
		}
	}
	if !w.opts.Force {
		return false, &ExistsError{Name: name, Differs: w.opts.KeepIdentical}
	}
	return false, nil
}

// checkDir refuses an empty directory of the manifest whose name, or that
// of a directory above it, is taken by something else than a directory.
func (w *Writer) checkDir(d string) error {
	for i := 0; i <= len(d); i++ {
		if i < len(d) && d[i] != '/' {
			continue
		}
		p := d[:i]
		st, err := w.root.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil // MkdirAll makes the rest
		case err != nil:
			return err
		case !st.IsDir():
			return fmt.Errorf("%q: %w, and is not a directory", p, ErrExists)
		}
	}
	return nil
}

// claimedBytes sums the sizes of the chunks a state claims.
func (w *Writer) claimedBytes(fi int, claim *Bitmap) int64 {
	first, n := w.m.FileChunks(fi)
	var sum int64
	for k := range n {
		if claim.Has(k) {
			sum += int64(w.m.Chunk(first + k).Size)
		}
	}
	return sum
}

// openPart opens fi's part file, creating it (and its directories, unless
// in made) if needed. fresh says setup saw no part file: then it is created
// at once, and only if that finds one after all is it opened as existing.
func (w *Writer) openPart(fi int, fresh bool, made map[string]bool) (pf *os.File, isNew bool, err error) {
	name := w.m.Files[fi].Name
	part := PartName(name)
	if d := path.Dir(name); d != "." && !made[d] {
		if err := w.root.MkdirAll(d, 0o777); err != nil {
			return nil, false, err
		}
		made[d] = true
	}
	for range 2 {
		if fresh {
			r, base, err := w.inDir(part)
			if err != nil {
				return nil, false, err
			}
			pf, err = r.OpenFile(base, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
			if !errors.Is(err, fs.ErrExist) {
				return pf, err == nil, err
			}
		}
		pf, err = w.openExisting(part, os.O_RDWR)
		if !errors.Is(err, fs.ErrNotExist) {
			return pf, false, err
		}
		fresh = true // removed meanwhile
	}
	return nil, false, err
}

// openExisting opens name with flag if it is a regular file, and makes sure
// the file opened is the one checked, so a symlink or device planted under
// the name is refused rather than written or read through, and a FIFO
// is refused before opening it could block.
func (w *Writer) openExisting(name string, flag int) (*os.File, error) {
	r, base, err := w.inDir(name)
	if err != nil {
		return nil, err
	}
	lst, err := r.Lstat(base)
	if err != nil {
		return nil, err
	}
	if !lst.Mode().IsRegular() {
		return nil, fmt.Errorf("%q: %w (%s)", name, ErrNotRegular, kind(lst.Mode()))
	}
	f, err := r.OpenFile(base, flag, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && !os.SameFile(lst, st) {
		err = fmt.Errorf("%q: %w: replaced while opening", name, ErrNotRegular)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// inDir returns the root to find name's base name in: the destination, or
// the directory of name, kept open in w.dirs. The caller holds mu, or is
// setup.
func (w *Writer) inDir(name string) (*os.Root, string, error) {
	f, base, err := w.folderOf(name)
	if err != nil {
		return nil, "", err
	}
	return f.root, base, nil
}

// folderOf is inDir's folder, for openIn: the destination's own for a
// name at the top.
func (w *Writer) folderOf(name string) (*folder, string, error) {
	d := path.Dir(name)
	if d == "." {
		return &w.top, name, nil
	}
	f, err := w.dirs.get(d, func() (*os.Root, error) { return w.root.OpenRoot(d) })
	if err != nil {
		return nil, "", err
	}
	return f, path.Base(name), nil
}

func (w *Writer) closeDir() {
	w.dirs.close()
	if w.top.f != nil {
		w.top.f.Close()
		w.top.f = nil
	}
}

// claimPart makes fi's freshly opened part file ours, before anything
// changes it: not another name's of the same Writer, nor another
// Writer's.
func (w *Writer) claimPart(fi int, pf *os.File, ids map[[2]uint64]int) error {
	st, err := pf.Stat()
	if err != nil {
		return err
	}
	// Two names, one file: a case-insensitive volume ("A" and "a") or a
	// planted hard link. Writing both would corrupt both.
	if id, ok := fileID(st); ok {
		if other, dup := ids[id]; dup {
			return fmt.Errorf("%w: the file system maps it and %q to the same file", ErrDuplicateName, w.m.Files[other].Name)
		}
		ids[id] = fi
		w.files[fi].dev, w.files[fi].devOK = id[0], true
	}
	// Another Writer (another recv into the same directory) holds it. The
	// first part's lock is held for the Writer's life (pin), whatever the
	// budget of open files closes, so two Writers of the same files
	// always meet on it, before either changed anything.
	if err := lockFile(pf); err != nil {
		return err
	}
	if w.pin == nil {
		if w.pin, err = dupFile(pf); err != nil {
			return err
		}
	}
	return nil
}

// preparePart sizes fi's part file and re-verifies what claim says it holds.
func (w *Writer) preparePart(fi int, pf *os.File, isNew bool, claim *Bitmap, buf []byte, checked *int64, claimed int64) error {
	f := &w.m.Files[fi]
	if isNew {
		claim = nil // whatever a state says, the data is not here
	}
	st, err := pf.Stat()
	if err != nil {
		return err
	}
	if claim == nil && st.Size() != 0 && !isNew {
		// Left over from another transfer or a lost state: start over, and
		// give the blocks back so the free-space check stays honest.
		if err := pf.Truncate(0); err != nil {
			return err
		}
	}
	// A new part grows to its size as chunks land; sizing it here would
	// cost a system call per file and reserve nothing (it is sparse).
	if !isNew && (st.Size() != f.Size || claim == nil) {
		if err := pf.Truncate(f.Size); err != nil {
			return err
		}
	}

	wf := &w.files[fi]
	first, n := w.m.FileChunks(fi)
	dropped := false
	for k := range n {
		if claim == nil || !claim.Has(k) {
			continue
		}
		ref := w.m.Chunk(first + k)
		b := buf[:ref.Size]
		if _, err := pf.ReadAt(b, ref.Offset); err != nil {
			return err
		}
		*checked += int64(ref.Size)
		if w.opts.Progress != nil {
			w.opts.Progress(*checked, claimed)
		}
		if !ref.Verify(b) {
			dropped = true
			continue
		}
		w.have.Set(first + k)
		w.verified += int64(ref.Size)
		if k == wf.next {
			wf.next++
		}
	}
	if dropped {
		w.markDirty(fi) // so the next save stops claiming the bad chunks
	}
	return nil
}

// abort undoes a failed CreateWriter: close what is open and remove the
// part files this call created (they are empty; older ones hold progress).
func (w *Writer) abort(created []int) {
	for _, fi := range w.open {
		w.files[fi].file.Close()
	}
	w.closeDir()
	for _, fi := range created {
		w.root.Remove(PartName(w.m.Files[fi].Name))
	}
	if w.pin != nil {
		w.pin.Close()
	}
	if w.barrier != nil {
		w.barrier.Close()
	}
	w.root.Close()
}

// markDirty queues fi for the next state save; the caller holds mu (or is
// setup).
func (w *Writer) markDirty(fi int) {
	if wf := &w.files[fi]; !wf.dirty {
		wf.dirty = true
		if w.m.Files[fi].Size < minSavePerFile {
			w.dirtySmall = append(w.dirtySmall, fi)
		} else {
			w.dirty = append(w.dirty, fi)
		}
	}
}

// Missing returns the global indices of chunks not yet verified, ascending.
func (w *Writer) Missing() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]int, 0, w.have.Len()-w.have.Count())
	for i := range w.have.Len() {
		if !w.have.Has(i) {
			out = append(out, i)
		}
	}
	return out
}

// Have reports whether chunk i is verified and written; false if out of range.
func (w *Writer) Have(i int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.have.Has(i)
}

// Bitmap returns a snapshot of the verified chunks, for have-messages.
func (w *Writer) Bitmap() *Bitmap {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.have.Clone()
}

// Verified returns the bytes verified so far, including what a resume found.
func (w *Writer) Verified() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.verified
}

// WriteChunk checks data against chunk i of the manifest and writes it to
// its part file. A wrong index, size or hash (ErrChunkIndex, ErrChunkSize,
// ErrChunkHash) writes nothing; a valid chunk already verified is a no-op.
// The check is one SHA-256 pass over the chunk from its predecessor's
// chaining value (chain.go), outside any lock, so several peers' chunks are
// checked in parallel and in any order. Resume state is saved from here
// about every second or 64 MiB; a failure to save is retried then and
// reported by Close.
func (w *Writer) WriteChunk(i int, data []byte) error {
	w.life.RLock()
	defer w.life.RUnlock()
	if w.closed {
		return fmt.Errorf("chunker write chunk %d: %w", i, ErrClosed)
	}
	if i < 0 || i >= w.m.NumChunks() {
		return fmt.Errorf("chunker write chunk %d: %w (have %d)", i, ErrChunkIndex, w.m.NumChunks())
	}
	ref := w.m.Chunk(i)
	name := w.m.Files[ref.File].Name
	if len(data) != ref.Size {
		return fmt.Errorf("chunker write chunk %d of %q: %w: %d bytes, want %d", i, name, ErrChunkSize, len(data), ref.Size)
	}
	// Hashed even when we already have the chunk, so ErrChunkHash always
	// exposes a peer that sends bad data.
	if !ref.Verify(data) {
		return fmt.Errorf("chunker write chunk %d of %q: %w", i, name, ErrChunkHash)
	}
	if w.Have(i) {
		return nil
	}
	pf, err := w.acquire(ref.File)
	if err != nil {
		return fmt.Errorf("chunker write chunk %d of %q: %w", i, name, err)
	}
	_, err = pf.WriteAt(data, ref.Offset)
	w.release(ref.File)
	if err != nil {
		return fmt.Errorf("chunker write chunk %d of %q: %w", i, name, err)
	}

	w.mu.Lock()
	if w.have.Has(i) { // a concurrent duplicate got there first
		w.mu.Unlock()
		return nil
	}
	w.have.Set(i)
	w.verified += int64(ref.Size)
	if w.m.Files[ref.File].Size >= minSavePerFile {
		w.unsaved += int64(ref.Size)
	}
	w.markDirty(ref.File)
	due := w.unsaved >= saveBytes ||
		time.Since(w.lastSave) >= saveInterval && w.unsaved >= int64(len(w.dirty))*minSavePerFile
	w.mu.Unlock()

	first, _ := w.m.FileChunks(ref.File)
	w.advance(ref.File, i-first)
	if due {
		w.saveBackground()
	}
	return nil
}

// advance moves fi's written prefix on past chunk k, just written, if the
// prefix ended there, and starts write-behind when a step has gathered.
// Chunks written meanwhile are set in have before their own advance, so
// whichever call comes last takes the prefix past all of them.
func (w *Writer) advance(fi, k int) {
	wf := &w.files[fi]
	wf.wmu.Lock()
	defer wf.wmu.Unlock()
	if k != wf.next {
		return
	}
	first, n := w.m.FileChunks(fi)
	w.mu.Lock()
	for wf.next < n && w.have.Has(first+wf.next) {
		wf.next++
	}
	w.mu.Unlock()
	w.writeBehind(fi)
}

// writeBehind starts write-back of the written prefix since the last step
// and drops the step before from the cache, once a flushStep has gathered;
// the caller holds fi's wmu.
func (w *Writer) writeBehind(fi int) {
	wf := &w.files[fi]
	if wf.next == 0 {
		return
	}
	first, _ := w.m.FileChunks(fi)
	ref := w.m.Chunk(first + wf.next - 1)
	end := ref.Offset + int64(ref.Size)
	if end-wf.flushed < flushStep {
		return
	}
	pf, err := w.acquire(fi)
	if err != nil {
		return
	}
	defer w.release(fi)
	startWriteback(pf, wf.flushed, end-wf.flushed)
	dropCached(pf, wf.dropped, wf.flushed-wf.dropped)
	wf.dropped, wf.flushed = wf.flushed, end
}

// acquire returns fi's open file, opening it if needed; release must
// follow. Opening may close the least recently opened idle file.
func (w *Writer) acquire(fi int) (*os.File, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wf := &w.files[fi]
	if wf.file == nil {
		if len(w.open) >= w.maxOpen {
			for k, o := range w.open {
				if w.files[o].refs == 0 {
					// A close error here would be a write-back error,
					// which the fsync before every state save and before
					// Finish's placement reports too.
					w.files[o].file.Close()
					w.files[o].file = nil
					w.open = slices.Delete(w.open, k, k+1)
					break
				}
			}
		}
		// A placed file is the user's now and is only read: read-only,
		// no mistake here can change it.
		flag := os.O_RDWR
		if wf.placed {
			flag = os.O_RDONLY
		}
		var pf *os.File
		var err error
		if wf.pending {
			pf, err = w.createPart(fi)
		} else {
			pf, err = w.openExisting(w.diskName(fi), flag)
		}
		if err != nil {
			return nil, err
		}
		wf.file = pf
		w.open = append(w.open, fi)
	}
	wf.refs++
	return wf.file, nil
}

// createPart creates fi's part file, which setup found missing, and
// locks it; the caller holds mu. It must not exist: if it does, another
// download into the same directory created it since setup, and it is
// never taken over (ErrInUse).
func (w *Writer) createPart(fi int) (*os.File, error) {
	part := PartName(w.m.Files[fi].Name)
	if d := path.Dir(part); d != "." && !w.made[d] {
		if err := w.root.MkdirAll(d, 0o777); err != nil {
			return nil, err
		}
		w.made[d] = true
	}
	dir, base, err := w.folderOf(part)
	if err != nil {
		return nil, err
	}
	pf, err := openIn(dir, base, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%w: its part file appeared since the download started", ErrInUse)
	}
	if err != nil {
		return nil, err
	}
	wf := &w.files[fi]
	wf.dev, wf.devOK = dir.device()
	// Held while it is open, as for parts opened by setup.
	if err := lockFile(pf); err != nil {
		pf.Close()
		return nil, err
	}
	wf.pending = false
	return pf, nil
}

// diskName is the file holding fi's data: its part file until Finish
// places it. placed only changes while life is held exclusively, so any
// holder of life, or a background save (which skips placed files), may call
// it.
func (w *Writer) diskName(fi int) string {
	if w.files[fi].placed {
		return w.m.Files[fi].Name
	}
	return PartName(w.m.Files[fi].Name)
}

func (w *Writer) release(fi int) {
	w.mu.Lock()
	w.files[fi].refs--
	w.mu.Unlock()
}

// closePart closes fi's part file if open; the caller holds life
// exclusively, so nobody else is using it.
func (w *Writer) closePart(fi int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	wf := &w.files[fi]
	if wf.file == nil {
		return nil
	}
	err := wf.file.Close()
	wf.file = nil
	if k := slices.Index(w.open, fi); k >= 0 {
		w.open = slices.Delete(w.open, k, k+1)
	}
	return err
}

// save persists the state of every dirty file: fsync the part, then
// atomically replace the state. The bitmap is snapshotted first, and only
// chunks whose WriteAt has returned are in it, so after the fsync the state
// never claims data that is not on disk.
func (w *Writer) save() error {
	w.saveMu.Lock()
	defer w.saveMu.Unlock()
	return w.saveLocked(true)
}

// saveBackground saves without making the caller wait for fsync, which can
// take long enough to stall a transfer; it gives way to a save in progress.
// Errors leave the files dirty: retried, and reported by Close.
func (w *Writer) saveBackground() {
	if !w.saveMu.TryLock() {
		return
	}
	w.bg.Add(1)
	go func() {
		defer w.bg.Done()
		defer w.saveMu.Unlock()
		_ = w.saveLocked(false)
	}()
}

// saveLocked does the work of save, and with all of the small files' too
// (dirtySmall); the caller holds saveMu.
func (w *Writer) saveLocked(all bool) error {
	type snap struct {
		fi   int
		have *Bitmap
	}
	w.mu.Lock()
	var snaps []snap
	todo := w.dirty
	if all {
		todo = append(todo, w.dirtySmall...)
		w.dirtySmall = w.dirtySmall[:0]
	}
	for _, fi := range todo {
		wf := &w.files[fi]
		wf.dirty = false
		if wf.placed {
			continue
		}
		first, n := w.m.FileChunks(fi)
		bm := NewBitmap(n)
		for k := range n {
			if w.have.Has(first + k) {
				bm.Set(k)
			}
		}
		snaps = append(snaps, snap{fi, bm})
	}
	w.dirty = w.dirty[:0]
	w.unsaved = 0
	w.lastSave = time.Now()
	w.mu.Unlock()

	results := parallel(syncWorkers, snaps, func(s snap) error {
		err := w.syncPart(s.fi)
		if err == nil {
			err = w.writeState(s.fi, s.have)
		}
		return err
	})
	var errs []error
	for i, s := range snaps {
		if err := results[i]; err != nil {
			errs = append(errs, fmt.Errorf("%q: %w", w.m.Files[s.fi].Name, err))
			w.mu.Lock()
			w.markDirty(s.fi)
			w.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

func (w *Writer) syncPart(fi int) error {
	pf, err := w.acquire(fi)
	if err != nil {
		return err
	}
	defer w.release(fi)
	return pf.Sync()
}

// Finish completes the transfer once every chunk is verified (ErrIncomplete
// otherwise). For each file it fsyncs the part, makes it executable if the
// manifest says so, puts it in place and removes the state, and it creates
// the manifest's empty directories; there is nothing left to check, since every chunk was
// checked against the manifest's hash chain on the way in. Without Force
// the part is hard-linked to the final name, which fails rather than
// overwrite a file that appeared meanwhile (ErrExists; the part and state
// stay for a rerun with --force); where hard links are unsupported it
// falls back to check-then-rename. With Force it renames over the old file. Files are processed independently and all
// errors are returned joined; calling Finish again retries the failed ones.
// ReadChunk waits for Finish; afterwards ReadChunk and ReadPiece serve the
// files placed from their final names, until Close.
func (w *Writer) Finish() error {
	w.life.Lock()
	defer w.life.Unlock()
	w.bg.Wait()
	if w.closed {
		return fmt.Errorf("chunker finish: %w", ErrClosed)
	}
	w.mu.Lock()
	missing := w.have.Len() - w.have.Count()
	w.mu.Unlock()
	if missing > 0 {
		return fmt.Errorf("chunker finish: %w: %d of %d chunks missing", ErrIncomplete, missing, w.have.Len())
	}
	var todo []int
	for fi := range w.m.Files {
		if !w.files[fi].placed {
			todo = append(todo, fi)
		}
		if w.files[fi].pending { // an empty file: no chunk created it
			if _, err := w.acquire(fi); err != nil {
				return fmt.Errorf("chunker finish %q: %w", w.m.Files[fi].Name, err)
			}
			w.release(fi)
		}
	}
	dirs := newDirCache(w.root)
	defer dirs.close()
	done := w.finishFiles(todo, dirs)
	var errs []error
	placedIn := make(map[string]bool)
	for i, fi := range todo {
		if err := done[i]; err != nil {
			errs = append(errs, fmt.Errorf("chunker finish %q: %w", w.m.Files[fi].Name, err))
			continue
		}
		placedIn[path.Dir(w.m.Files[fi].Name)] = true
	}
	for _, d := range w.m.Dirs {
		// MkdirAll through the root: no link planted meanwhile leads out.
		if err := w.root.MkdirAll(d, 0o777); err != nil {
			errs = append(errs, fmt.Errorf("chunker finish: create directory %q: %w", d, err))
			continue
		}
		placedIn[path.Dir(d)] = true
	}
	for d := range placedIn {
		if err := dirs.sync(d); err != nil {
			errs = append(errs, fmt.Errorf("chunker finish: sync directory %q: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// finishFiles makes durable and places each file of todo, and returns
// their errors in todo's order. Making a file durable takes a disk
// cache flush: one per fsync, which costs more than everything else
// together for a thousand small files even with syncWorkers overlapping
// them. With at least syncFSMin files, one syncFS serves them all.
func (w *Writer) finishFiles(todo []int, dirs *dirCache) []error {
	oneByOne := func(fi int) error {
		if err := w.syncPart(fi); err != nil {
			return err
		}
		return w.placeFile(fi, dirs)
	}
	if !w.useSyncFS(todo) {
		// Files are independent: each is placed as soon as it is durable.
		return parallel(syncWorkers, todo, oneByOne)
	}
	synced := syncFS(w.barrier) == nil
	// A failed syncfs names no file: fsyncing each then says which
	// failed, and is the only way where a part sits on another file
	// system (under a mount point) than the destination.
	return parallel(syncWorkers, todo, func(fi int) error {
		if wf := &w.files[fi]; !synced || !wf.devOK || wf.dev != w.rootDev {
			return oneByOne(fi)
		}
		return w.placeFile(fi, dirs)
	})
}

// useSyncFS says whether finishFiles should make todo durable with one
// syncFS: enough files for it to pay, and not much more dirty data on the
// system than todo's, since syncfs would wait for that too (another
// program writing gigabytes must not hold up our Finish).
func (w *Writer) useSyncFS(todo []int) bool {
	if len(todo) < syncFSMin || w.barrier == nil {
		return false
	}
	// The cache counts whole pages: a file of a few bytes is a dirty page
	// of data, and its inode and directory entry dirty metadata blocks;
	// 100,000 such files are 400 MiB of dirty data that is all ours.
	var ours int64
	for _, fi := range todo {
		ours += (w.m.Files[fi].Size+pageSize-1)/pageSize*pageSize + pageSize
	}
	dirty, ok := dirtyBytes()
	return ok && dirty <= ours+maxForeignDirty
}

// placeFile moves fi's durable part into place and drops its state.
func (w *Writer) placeFile(fi int, dirs *dirCache) error {
	f, wf := &w.m.Files[fi], &w.files[fi]
	// Closed before the move: Windows cannot rename an open file.
	if err := w.closePart(fi); err != nil {
		return err
	}
	if f.Exec {
		if err := w.makeExecutable(PartName(f.Name)); err != nil {
			return err
		}
	}
	placed, err := w.place(f.Name, dirs)
	if placed {
		wf.placed = true
	}
	if err != nil {
		return err
	}
	return w.removeState(fi)
}

// makeExecutable gives name execute permission wherever it has read
// permission: what the umask let the part have decides who may run it,
// as cp and tar do.
func (w *Writer) makeExecutable(name string) error {
	st, err := w.root.Lstat(name)
	if err != nil {
		return err
	}
	perm := st.Mode().Perm()
	return w.root.Chmod(name, perm|perm&0o444>>2)
}

// place moves name's part file to name; see Finish for the rules. placed
// reports whether the final file is in place, even if err is not nil.
func (w *Writer) place(name string, dirs *dirCache) (placed bool, err error) {
	part := PartName(name)
	if w.opts.Force {
		err := w.root.Rename(part, name)
		return err == nil, err
	}
	if d := dirs.get(path.Dir(name)); d != nil {
		err := renameNoReplace(d, path.Base(part), path.Base(name))
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, fs.ErrExist):
			return false, fmt.Errorf("%w (use --force to replace it)", ErrExists)
		case !errors.Is(err, errors.ErrUnsupported):
			return false, err
		}
	}
	err = w.root.Link(part, name)
	switch {
	case err == nil:
		if err := w.root.Remove(part); err != nil {
			return true, fmt.Errorf("file in place, but removing the part file: %w", err)
		}
		return true, nil
	case errors.Is(err, fs.ErrExist):
		return false, fmt.Errorf("%w (use --force to replace it)", ErrExists)
	}
	// No hard links on this file system (FAT, some network shares): check
	// then rename, accepting the small race Link would have closed.
	if _, serr := w.root.Lstat(name); serr == nil {
		return false, fmt.Errorf("%w (use --force to replace it)", ErrExists)
	} else if !errors.Is(serr, fs.ErrNotExist) {
		return false, serr
	}
	err = w.root.Rename(part, name)
	return err == nil, err
}

// Close saves the resume state of every file with new chunks and closes all
// files; part files stay for a later CreateWriter to resume. It is
// idempotent, and WriteChunk, ReadChunk and ReadPiece fail with ErrClosed
// afterwards.
func (w *Writer) Close() error {
	w.life.Lock()
	defer w.life.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	w.bg.Wait()
	var errs []error
	if err := w.save(); err != nil {
		errs = append(errs, err)
	}
	w.mu.Lock()
	for _, fi := range w.open {
		if err := w.files[fi].file.Close(); err != nil {
			errs = append(errs, fmt.Errorf("%q: %w", w.m.Files[fi].Name, err))
		}
		w.files[fi].file = nil
	}
	w.open = nil
	w.closeDir()
	w.mu.Unlock()
	if w.pin != nil {
		w.pin.Close()
	}
	if w.barrier != nil {
		w.barrier.Close()
	}
	if err := w.root.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("chunker close: %w", err)
	}
	return nil
}

// syncFSMin is how many files Finish must have to place before one syncFS
// replaces their fsyncs. syncfs also waits for whatever else is dirty on
// the file system, so a few files, where fsyncs cost little, keep them.
// A variable so tests cover both ways.
var syncFSMin = 32

// pageSize is what useSyncFS counts a file's dirty data in.
const pageSize = 4096

// maxForeignDirty is how much more unwritten data than its own Finish lets
// syncfs wait for: about a second of a slow disk.
const maxForeignDirty = 64 << 20

// syncWorkers bounds the files fsynced at once. Concurrent fsyncs overlap:
// they share journal commits where the file system has a journal, and keep
// the disk's queue full where it has none (ext4 can run without one): for
// a thousand small new files, 64 at a time take about half as long as 16.
const syncWorkers = 64

// parallel calls f for every item on up to workers goroutines and returns
// the errors in the order of items.
func parallel[T any](workers int, items []T, f func(T) error) []error {
	errs := make([]error, len(items))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, len(items)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				errs[i] = f(items[i])
			}
		}()
	}
	for i := range items {
		next <- i
	}
	close(next)
	wg.Wait()
	return errs
}

// dirCache opens each destination directory once per Finish, for
// renameNoReplace, which works on a directory descriptor so that only base
// names, never a path, are resolved outside the os.Root, and for the
// directory's fsync after.
type dirCache struct {
	root *os.Root
	mu   sync.Mutex
	m    map[string]*os.File // nil value: could not open, or unsupported
}

func newDirCache(root *os.Root) *dirCache {
	return &dirCache{root: root, m: make(map[string]*os.File)}
}

// get returns dir opened, or nil if renameNoReplace cannot use it.
func (c *dirCache) get(dir string) *os.File {
	if !haveRenameNoReplace {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.m[dir]
	if !ok {
		d, _ = c.root.Open(dir)
		c.m[dir] = d
	}
	return d
}

// sync makes the renames and links in dir durable, through the
// descriptor get opened where there is one.
func (c *dirCache) sync(dir string) error {
	if d := c.get(dir); d != nil {
		return d.Sync()
	}
	return syncDir(c.root, dir)
}

func (c *dirCache) close() {
	for _, d := range c.m {
		if d != nil {
			d.Close()
		}
	}
}
