package chunker

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
type Source struct {
	m     *Manifest
	files []srcFile
	par   *parityCache // parity pieces, from ReadChunk
}

type srcFile struct {
	f     *os.File
	path  string
	size  int64
	mtime time.Time
}

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
// builds their manifest; each file's name is its base name. chunkSize 0
// means ChooseChunkSize of the total. Each file is read once, and one
// SHA-256 pass gives its chunk hashes and whole-file SHA-256 (chain.go);
// progress, if not nil, is called from the calling goroutine after every
// MiB or so with bytes hashed and the total. Cancelling ctx stops the pass. The files stay open until
// Close so ReadChunk reads the very files that were hashed. OpenSource is
// OpenSourceFEC with FEC off.
func OpenSource(ctx context.Context, paths []string, chunkSize int, progress func(done, total int64)) (*Source, error) {
	return OpenSourceFEC(ctx, paths, chunkSize, FEC{}, progress)
}

// OpenSourceFEC is OpenSource with a FEC layout (FEC{} for none; see
// CheckFEC). The same single read pass also computes every stripe's parity
// pieces and their hashes for the manifest, holding fec.M chunk-sized parity
// buffers, never a stripe's data. ReadPiece then serves data and parity
// pieces alike.
func OpenSourceFEC(ctx context.Context, paths []string, chunkSize int, fec FEC, progress func(done, total int64)) (*Source, error) {
	if err := CheckFEC(fec); err != nil {
		return nil, fmt.Errorf("chunker open: %w", err)
	}
	s := &Source{}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	byName := make(map[string]string, len(paths))
	var total int64
	for _, p := range paths {
		sf, err := openRegular(p)
		if err != nil {
			return nil, err
		}
		s.files = append(s.files, sf)
		name := filepath.Base(p)
		if err := CheckName(name); err != nil {
			return nil, fmt.Errorf("chunker open %s: %w", p, err)
		}
		if prev, dup := byName[name]; dup {
			return nil, fmt.Errorf("chunker open %s: %w: %q is also the name of %s", p, ErrDuplicateName, name, prev)
		}
		byName[name] = p
		if sf.size > MaxFileSize {
			return nil, fmt.Errorf("chunker open %s: %w: %d bytes, limit %d", p, ErrManifestTooLarge, sf.size, int64(MaxFileSize))
		}
		total += sf.size
	}
	if chunkSize == 0 {
		chunkSize = ChooseChunkSize(total)
	}
	if err := CheckChunkSize(chunkSize); err != nil {
		return nil, fmt.Errorf("chunker open: %w", err)
	}
	var nchunks int64
	for _, sf := range s.files {
		nchunks += chunksFor(sf.size, chunkSize)
	}
	var nparity int64
	if fec.Enabled() {
		nparity = (nchunks + int64(fec.K) - 1) / int64(fec.K) * int64(fec.M)
	}
	// Refuse before an hours-long hashing pass, not after: the chunk count
	// and the hashes' base64 alone must fit the limits.
	if nchunks > limitChunks || (nchunks*HashSize+2)/3*4+(nparity*HashSize+2)/3*4 > MaxManifestSize {
		return nil, fmt.Errorf("chunker open: %w: %d chunks of %d bytes and %d parity pieces; use a larger chunk size",
			ErrManifestTooLarge, nchunks, chunkSize, nparity)
	}
	var par *parityPass
	if fec.Enabled() {
		par = newParityPass(fec, int(nchunks), chunkSize, int(nparity))
	}

	files := make([]File, len(s.files))
	var done int64
	report := func(n int64) {
		done += n
		if progress != nil {
			progress(done, total)
		}
	}
	for i, sf := range s.files {
		whole, chunks, err := hashFile(ctx, sf, chunkSize, report, par)
		if err != nil {
			return nil, fmt.Errorf("chunker open %s: %w", sf.path, err)
		}
		if err := sf.check(); err != nil {
			return nil, fmt.Errorf("chunker open %s: %w", sf.path, err)
		}
		files[i] = File{Name: filepath.Base(sf.path), Size: sf.size, SHA256: whole, Chunks: chunks}
	}
	var parity []Hash
	if par != nil {
		var err error
		if parity, err = par.result(); err != nil {
			return nil, fmt.Errorf("chunker open: %w", err)
		}
	}
	m, err := NewManifestFEC(chunkSize, fec, files, parity)
	if err != nil {
		return nil, fmt.Errorf("chunker open: %w", err)
	}
	s.m = m
	// ReadChunk only checks size and mtime, so parity that no longer
	// matches the manifest means a file changed unnoticed.
	s.par = newParityCache(m, s.ReadChunk, ErrSourceChanged)
	ok = true
	return s, nil
}

// openRegular opens p for reading if it is a regular file. The Stat before
// the open keeps us from blocking forever opening a FIFO; the Stat after it
// makes sure the file we hold is the one we checked.
func openRegular(p string) (srcFile, error) {
	before, err := os.Stat(p)
	if err != nil {
		return srcFile{}, fmt.Errorf("chunker open %s: %w", p, err)
	}
	if before.IsDir() {
		return srcFile{}, fmt.Errorf("chunker open %s: %w", p, ErrIsDir)
	}
	if !before.Mode().IsRegular() {
		return srcFile{}, fmt.Errorf("chunker open %s: %w (%s)", p, ErrNotRegular, kind(before.Mode()))
	}
	f, err := os.Open(p)
	if err != nil {
		return srcFile{}, fmt.Errorf("chunker open %s: %w", p, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return srcFile{}, fmt.Errorf("chunker open %s: %w", p, err)
	}
	if !st.Mode().IsRegular() || !os.SameFile(before, st) {
		f.Close()
		return srcFile{}, fmt.Errorf("chunker open %s: %w: replaced while opening", p, ErrNotRegular)
	}
	return srcFile{f: f, path: p, size: st.Size(), mtime: st.ModTime()}, nil
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

// check compares the open file with what was hashed. Size and mtime are
// what an edit changes; the receiver's chunk hashes catch anything subtler,
// this just gives the sender a clear error instead of a stream of rejected
// chunks.
func (sf *srcFile) check() error {
	st, err := sf.f.Stat()
	if err != nil {
		return err
	}
	if st.Size() != sf.size || !st.ModTime().Equal(sf.mtime) {
		return fmt.Errorf("%w: size %d -> %d, modified %s -> %s", ErrSourceChanged,
			sf.size, st.Size(), sf.mtime.Format(time.RFC3339Nano), st.ModTime().Format(time.RFC3339Nano))
	}
	return nil
}

// hashFile reads sf once from the start. The calling goroutine reads while
// a second one computes the chunk hashes, one SHA-256 pass that also gives
// the whole-file hash (chain.go), so reading and hashing overlap. With par, a
// third goroutine feeds the buffers to the parity pass after the hasher.
// hashBufs buffers circulate: the last stage hands each back when done, and
// every stage is finished with a buffer before it hands it on.
func hashFile(ctx context.Context, sf srcFile, chunkSize int, report func(int64), par *parityPass) (Hash, []Hash, error) {
	var whole Hash
	chunks := make([]Hash, 0, chunksFor(sf.size, chunkSize))
	chainOK := true
	// A small file gets small buffers: 4 MiB allocated and zeroed per file
	// made hashing a thousand 4 KiB files take seconds. One byte more than
	// the size lets a file that grew meanwhile be noticed.
	bufSize := int(min(hashBufSize, sf.size+1))
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
				if off += take; off%cs == 0 && off < sf.size {
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
		n, err = io.ReadFull(sf.f, buf)
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
		if read > sf.size {
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
	if read != sf.size {
		return Hash{}, nil, fmt.Errorf("%w: size %d, read %d bytes", ErrSourceChanged, sf.size, read)
	}
	if par != nil {
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
// truncated, resized or modified since it was hashed the error wraps
// ErrSourceChanged and names the file.
func (s *Source) ReadChunk(i int, buf []byte) ([]byte, error) {
	if i < 0 || i >= s.m.NumChunks() {
		return nil, fmt.Errorf("chunker read chunk %d: %w (have %d)", i, ErrChunkIndex, s.m.NumChunks())
	}
	ref := s.m.Chunk(i)
	sf := &s.files[ref.File]
	if cap(buf) < ref.Size {
		return nil, fmt.Errorf("chunker read chunk %d: %w: capacity %d, need %d", i, io.ErrShortBuffer, cap(buf), ref.Size)
	}
	buf = buf[:ref.Size]
	n, err := sf.f.ReadAt(buf, ref.Offset)
	if err == io.EOF && n < ref.Size {
		err = fmt.Errorf("%w: truncated", ErrSourceChanged)
	} else if err == io.EOF {
		err = nil
	}
	if err != nil {
		if errors.Is(err, os.ErrClosed) {
			err = ErrClosed
		}
		return nil, fmt.Errorf("chunker read chunk %d of %s: %w", i, sf.path, err)
	}
	// After the read, so an edit that raced with it is seen.
	if err := sf.check(); err != nil {
		if errors.Is(err, os.ErrClosed) {
			err = ErrClosed
		}
		return nil, fmt.Errorf("chunker read chunk %d of %s: %w", i, sf.path, err)
	}
	return buf, nil
}

// Close closes the files. Further ReadChunk and ReadPiece calls fail with
// ErrClosed.
func (s *Source) Close() error {
	var errs []error
	for _, sf := range s.files {
		if err := sf.f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, fmt.Errorf("chunker close %s: %w", sf.path, err))
		}
	}
	return errors.Join(errs...)
}
