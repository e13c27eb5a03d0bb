package chunker

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
)

// ExistsError is ErrExists for one file: its final name is taken, so the
// Writer would have to overwrite it. Name is the manifest's name for it.
type ExistsError struct {
	Name string
	// Dir: a directory has the name, which even Force does not replace.
	Dir bool
	// Differs: a regular file has the name, and WriterOptions.KeepIdentical
	// found that its size or SHA-256 differs from the manifest's.
	Differs bool
}

func (e *ExistsError) Error() string {
	switch {
	case e.Dir:
		return fmt.Sprintf("%q: %v as a directory", e.Name, ErrExists)
	case e.Differs:
		return fmt.Sprintf("%q: %v with other contents (use --force to replace it)", e.Name, ErrExists)
	}
	return fmt.Sprintf("%q: %v (use --force to replace it)", e.Name, ErrExists)
}

func (e *ExistsError) Unwrap() error { return ErrExists }

// identical reports whether fi's final file, which st describes, is a
// regular file with the manifest's size and SHA-256: the file the
// transfer would write. The size is compared first, so a file of another
// size is never read.
func (w *Writer) identical(fi int, st fs.FileInfo) (bool, error) {
	f := &w.m.Files[fi]
	if !st.Mode().IsRegular() || st.Size() != f.Size {
		return false, nil
	}
	file, err := w.openExisting(f.Name, os.O_RDONLY)
	if err != nil {
		return false, err
	}
	defer file.Close()
	h := sha256.New()
	if n, err := io.Copy(h, file); err != nil || n != f.Size {
		return false, err
	}
	var sum Hash
	h.Sum(sum[:0])
	return sum == f.SHA256, nil
}

// keep takes fi's identical final file as received: every chunk of it is
// held, and it is served from its final name, as after Finish. Called by
// setup, before the Writer is shared.
func (w *Writer) keep(fi int) {
	first, n := w.m.FileChunks(fi)
	for k := range n {
		w.have.Set(first + k)
	}
	w.verified += w.m.Files[fi].Size
	wf := &w.files[fi]
	wf.placed, wf.next = true, n
	w.kept = append(w.kept, fi)
}

// Kept returns the indices of the files that WriterOptions.KeepIdentical
// found already in place, ascending.
func (w *Writer) Kept() []int { return slices.Clone(w.kept) }
