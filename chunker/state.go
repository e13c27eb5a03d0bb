package chunker

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Resume state, one small JSON file per partial file (StateName):
//
//	{"v":1,"manifest":"<hex Digest>","file":3,"size":N,"chunk_size":N,
//	 "sha256":"<hex whole-file hash>","have":"<base64 Bitmap.Bytes of the file's chunks>"}
//
// It is only a hint: every chunk it claims is read back and re-hashed before
// it counts, so a stale, corrupt or planted state can cost time but never
// let bad data through. It applies when it was written for the same manifest
// and file index, or for a file with the same size, chunk size and
// whole-file hash (the sender re-sent the same file in a different set).
const stateVersion = 1

// maxStateSize bounds what we read: a bitmap of MaxChunks bits in base64 plus
// the fixed fields.
const maxStateSize = 4 << 20

type wireState struct {
	V         int    `json:"v"`
	Manifest  string `json:"manifest"`
	File      int    `json:"file"`
	Size      int64  `json:"size"`
	ChunkSize int    `json:"chunk_size"`
	SHA256    string `json:"sha256"`
	Have      []byte `json:"have"`
}

// readState returns the chunks (file-local indices) that fi's state claims,
// or nil when there is no usable state; r and base are fi's folder and
// base name (inDir). Problems reading it are not errors:
// without a state the file simply starts over.
func (w *Writer) readState(fi int, r *os.Root, base string) *Bitmap {
	f := &w.m.Files[fi]
	sf, err := r.Open(StateName(base))
	if err != nil {
		return nil
	}
	w.files[fi].hasState = true
	b, err := io.ReadAll(io.LimitReader(sf, maxStateSize+1))
	sf.Close()
	if err != nil || len(b) > maxStateSize {
		return nil
	}
	var ws wireState
	if json.Unmarshal(b, &ws) != nil || ws.V != stateVersion ||
		ws.Size != f.Size || ws.ChunkSize != w.m.ChunkSize {
		return nil
	}
	digest := w.m.Digest()
	sameManifest := ws.Manifest == hex.EncodeToString(digest[:]) && ws.File == fi
	if !sameManifest && ws.SHA256 != f.SHA256.String() {
		return nil
	}
	_, n := w.m.FileChunks(fi)
	bm := NewBitmap(n)
	if bm.FromBytes(ws.Have) != nil {
		return nil
	}
	return bm
}

// writeState atomically replaces fi's state with have. The caller has
// already fsynced the part file, so the state never claims data that a crash
// could lose. The temporary is created exclusively after removing any
// leftover, so a symlink planted under its name is replaced, not followed.
func (w *Writer) writeState(fi int, have *Bitmap) error {
	f := &w.m.Files[fi]
	digest := w.m.Digest()
	b, err := json.Marshal(wireState{
		V:         stateVersion,
		Manifest:  hex.EncodeToString(digest[:]),
		File:      fi,
		Size:      f.Size,
		ChunkSize: w.m.ChunkSize,
		SHA256:    f.SHA256.String(),
		Have:      have.Bytes(),
	})
	if err != nil {
		return err
	}
	tmp := tmpName(f.Name)
	if err := w.root.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	tf, err := w.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return err
	}
	_, err = tf.Write(b)
	if err == nil {
		err = tf.Sync()
	}
	if cerr := tf.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = w.root.Rename(tmp, StateName(f.Name))
	}
	if err != nil {
		w.root.Remove(tmp) // best effort; the error that matters is err
		return fmt.Errorf("save state of %q: %w", f.Name, err)
	}
	w.files[fi].hasState = true
	return nil
}

// removeState deletes fi's state, if it may have one; a missing one is
// fine.
func (w *Writer) removeState(fi int) error {
	if !w.files[fi].hasState {
		return nil
	}
	err := w.root.Remove(StateName(w.m.Files[fi].Name))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	w.files[fi].hasState = false
	return nil
}
