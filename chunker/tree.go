package chunker

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// What a sender gathers from the paths it is given, before hashing:
//
//   - a regular file (or a symbolic link to one: the user named it) is sent
//     under its base name;
//   - a directory (or a link to one) is sent as a tree under its base name,
//     taken from the absolute path so that "." and "photos/" have one; "/"
//     has none and is refused. Inside a tree nothing is followed: symbolic
//     links, devices, named pipes and sockets are left out and reported, as
//     are entries whose names a receiver could not hold (CheckName) or that
//     end in our reserved suffixes. The walk goes through an os.Root per
//     tree, so no link swapped in meanwhile can lead it out of the tree;
//   - two paths that would arrive under the same name are refused, naming
//     both.
//
// Files are numbered in the order of the paths, each tree in depth-first
// order with the entries of a directory sorted by name, the files of a
// directory before its subdirectories. A directory left with no file and
// no subdirectory is listed in the manifest's dirs.

// OnSkip, if set in TreeOptions, hears of every entry of a tree that is
// left out: path is the local path, why wraps ErrSymlink, ErrNotRegular or
// ErrBadName.
type OnSkip func(path string, why error)

// gathered is what gather found: the files to hash, with their manifest
// entries (names only so far), and the empty directories.
type gathered struct {
	roots []string // the paths given, which srcFile.root indexes
	files []srcFile
	names []File // Name and Exec; hashing fills in the rest
	dirs  []string
	total int64
}

// gather walks paths as described above. With allowDirs false a directory
// is ErrIsDir (OpenSource's contract).
func gather(paths []string, allowDirs bool, onSkip OnSkip) (*gathered, error) {
	g := &gathered{roots: slices.Clone(paths)}
	byName := make(map[string]string, len(paths))
	for i, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, pathError(OpOpen, p, err)
		}
		var name string
		switch {
		case st.Mode().IsRegular():
			name = filepath.Base(p)
		case st.IsDir() && !allowDirs:
			return nil, pathError(OpOpen, p, ErrIsDir)
		case st.IsDir():
			abs, err := filepath.Abs(p)
			if err != nil {
				return nil, pathError(OpOpen, p, err)
			}
			name = filepath.Base(abs)
			if abs == filepath.Dir(abs) { // "/", or a volume's root
				return nil, pathError(OpOpen, p, fmt.Errorf("%w: the root directory has no name to send it under (send the folders in it)", ErrBadName))
			}
		default:
			return nil, pathError(OpOpen, p, fmt.Errorf("%w (%s)", ErrNotRegular, kind(st.Mode())))
		}
		if err := CheckName(name); err != nil {
			return nil, pathError(OpOpen, p, err)
		}
		if r := reservedProblem(name); r != "" {
			return nil, pathError(OpOpen, p, fmt.Errorf("%w: %s", ErrBadName, r))
		}
		if prev, dup := byName[name]; dup {
			return nil, pathError(OpOpen, "", fmt.Errorf("%w: %q and %q would both arrive as %q", ErrDuplicateName, prev, p, name))
		}
		byName[name] = p
		if !st.IsDir() {
			if err := g.addFile(i, name, false, st); err != nil {
				return nil, pathError(OpOpen, p, err)
			}
			continue
		}
		if err := g.walk(i, p, name, onSkip); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// addFile records a regular file found with info st (from Stat or Lstat),
// in a tree or given itself.
func (g *gathered) addFile(root int, name string, tree bool, st fs.FileInfo) error {
	if st.Size() > MaxFileSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrManifestTooLarge, st.Size(), int64(MaxFileSize))
	}
	if len(g.files) >= limitFiles {
		return fmt.Errorf("%w: more than %d files", ErrManifestTooLarge, limitFiles)
	}
	sf := srcFile{root: int32(root), tree: tree, size: st.Size(), mtime: st.ModTime().UnixNano()}
	sf.id, sf.idOK = fileID(st)
	g.files = append(g.files, sf)
	g.names = append(g.names, File{Name: name, Exec: st.Mode().Perm()&0o111 != 0})
	g.total += st.Size()
	return nil
}

// walk adds the tree at dir, given as paths[root], under the name top.
func (g *gathered) walk(root int, dir, top string, onSkip OnSkip) error {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return pathError(OpOpen, dir, err)
	}
	defer r.Close()
	skip := func(rel string, why error) {
		if onSkip != nil {
			onSkip(filepath.Join(dir, filepath.FromSlash(rel)), why)
		}
	}
	type pending struct {
		rel string      // slash-separated, "." for the top
		st  fs.FileInfo // what the parent's listing saw, nil for the top
	}
	stack := []pending{{rel: "."}}
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		dr, entries, err := readDir(r, d.rel, d.st)
		if err != nil {
			return pathError(OpOpen, filepath.Join(dir, filepath.FromSlash(d.rel)), err)
		}
		name := top
		if d.rel != "." {
			name = top + "/" + d.rel
		}
		kept := 0
		var subdirs []pending
		for _, e := range entries {
			rel := path.Join(d.rel, e.Name())
			full := name + "/" + e.Name()
			st, err := dr.Lstat(e.Name())
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed since the listing
			}
			if err != nil {
				dr.Close()
				return pathError(OpOpen, filepath.Join(dir, filepath.FromSlash(rel)), err)
			}
			mode := st.Mode()
			if !mode.IsRegular() && !mode.IsDir() {
				why := fmt.Errorf("%w (%s)", ErrNotRegular, kind(mode))
				if mode&fs.ModeSymlink != 0 {
					why = ErrSymlink
				}
				skip(rel, why)
				continue
			}
			if p := nameProblem(full); p != "" {
				skip(rel, fmt.Errorf("%w: %s", ErrBadName, p))
				continue
			}
			if p := reservedProblem(e.Name()); p != "" {
				skip(rel, fmt.Errorf("%w: %s", ErrBadName, p))
				continue
			}
			kept++
			if mode.IsDir() {
				subdirs = append(subdirs, pending{rel: rel, st: st})
				continue
			}
			if err := g.addFile(root, full, true, st); err != nil {
				dr.Close()
				return pathError(OpOpen, filepath.Join(dir, filepath.FromSlash(rel)), err)
			}
		}
		dr.Close()
		if kept == 0 {
			if len(g.dirs) >= limitDirs {
				return pathError(OpOpen, dir, fmt.Errorf("%w: more than %d empty directories", ErrManifestTooLarge, limitDirs))
			}
			g.dirs = append(g.dirs, name)
		}
		// Depth first, in name order: the stack pops the first subdirectory
		// next.
		for k := len(subdirs) - 1; k >= 0; k-- {
			stack = append(stack, subdirs[k])
		}
	}
	return nil
}

// readDir opens the directory rel of r as a root of its own, so each entry
// costs one lookup, and lists it sorted by name, after checking it is
// still the directory the parent's listing saw (st; nil for the top), so a
// directory swapped for a link meanwhile is not walked. The caller closes
// the root.
func readDir(r *os.Root, rel string, st fs.FileInfo) (*os.Root, []fs.DirEntry, error) {
	dr, err := r.OpenRoot(filepath.FromSlash(rel))
	if err != nil {
		return nil, nil, err
	}
	entries, err := func() ([]fs.DirEntry, error) {
		f, err := dr.Open(".")
		if err != nil {
			return nil, err
		}
		defer f.Close()
		now, err := f.Stat()
		if err != nil {
			return nil, err
		}
		if !now.IsDir() || st != nil && !os.SameFile(st, now) {
			return nil, fmt.Errorf("%w: replaced while reading the folder", ErrSourceChanged)
		}
		return f.ReadDir(-1)
	}()
	if err != nil {
		dr.Close()
		return nil, nil, err
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return dr, entries, nil
}

// localPath is where a file named name lies: the path given for a file,
// or, for a file of a tree, the tree's path and its name below the top.
func localPath(roots []string, sf *srcFile, name string) (root, rel string) {
	root = roots[sf.root]
	if !sf.tree {
		return root, ""
	}
	_, below, _ := strings.Cut(name, "/")
	return root, filepath.FromSlash(below)
}

// joinLocal is a local path for messages.
func joinLocal(root, rel string) string {
	if rel == "" {
		return root
	}
	return filepath.Join(root, rel)
}
