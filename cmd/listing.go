package cmd

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/p2pxfer/p2pxfer/chunker"
)

// What is offered, as send and recv show it. Plain files are listed one
// per line as they always were. A transfer with folders gets a summary
// ("1204 files in 37 folders, 2.3 GiB") and one line per top-level entry,
// at most maxTop of them: a tree of a hundred thousand files must not
// scroll the room ID and the command to run off the screen.

// maxTop bounds the top-level entries listed for a transfer with folders.
const maxTop = 8

// topEntry is a file or folder given to send: what arrives directly under
// --out.
type topEntry struct {
	name  string
	dir   bool
	files int
	size  int64
}

// isTree reports whether m holds folders: some name has a '/', or there
// are empty folders.
func isTree(m *chunker.Manifest) bool {
	if len(m.Dirs) > 0 {
		return true
	}
	for i := range m.Files {
		if strings.Contains(m.Files[i].Name, "/") {
			return true
		}
	}
	return false
}

// topEntries lists m's top-level entries in the order the files come.
func topEntries(m *chunker.Manifest) []topEntry {
	var out []topEntry
	at := map[string]int{}
	add := func(name string, dir bool, size int64, file bool) {
		top, _, nested := strings.Cut(name, "/")
		k, ok := at[top]
		if !ok {
			k = len(out)
			at[top] = k
			out = append(out, topEntry{name: top, dir: dir || nested})
		}
		if file {
			out[k].files++
			out[k].size += size
		}
	}
	for i := range m.Files {
		add(m.Files[i].Name, false, m.Files[i].Size, true)
	}
	for _, d := range m.Dirs {
		add(d, true, 0, false)
	}
	return out
}

// folderCount is the number of folders m creates: every directory that a
// file or an empty folder lies in, and the empty folders themselves.
func folderCount(m *chunker.Manifest) int {
	seen := map[string]struct{}{}
	note := func(dir string) {
		for dir != "." {
			if _, ok := seen[dir]; ok {
				return // and so are the ones above it
			}
			seen[dir] = struct{}{}
			dir = filepath.ToSlash(filepath.Dir(dir))
		}
	}
	for i := range m.Files {
		if k := strings.LastIndexByte(m.Files[i].Name, '/'); k > 0 {
			note(m.Files[i].Name[:k])
		}
	}
	for _, d := range m.Dirs {
		note(d)
	}
	return len(seen)
}

// offerSummary is the headline of a listing: "3 file(s), 2.0 MiB", or
// with folders "1204 files in 37 folders, 2.3 GiB".
func offerSummary(m *chunker.Manifest) string {
	if !isTree(m) {
		return fmt.Sprintf("%d file(s), %s", len(m.Files), humanBytes(m.TotalSize()))
	}
	return fmt.Sprintf("%s in %s, %s", plural(len(m.Files), "file"), plural(folderCount(m), "folder"), humanBytes(m.TotalSize()))
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// listOffer prints what m holds under its summary: each file, or with
// folders each top-level entry. where names an entry's place: its name,
// or its path under --out.
func listOffer(w io.Writer, m *chunker.Manifest, where func(name string) string) {
	if !isTree(m) {
		listFiles(w, m.Files, func(f chunker.File) string { return where(f.Name) + "  " + humanBytes(f.Size) })
		return
	}
	top := topEntries(m)
	for i, e := range top {
		if i == maxTop-1 && len(top) > maxTop {
			fmt.Fprintf(w, "  ... and %d more\n", len(top)-i)
			return
		}
		if !e.dir {
			fmt.Fprintf(w, "  %s  %s\n", where(e.name), humanBytes(e.size))
			continue
		}
		fmt.Fprintf(w, "  %s%c  %s, %s\n", where(e.name), filepath.Separator, plural(e.files, "file"), humanBytes(e.size))
	}
}

// maxSkipShown bounds the warnings about skipped entries printed one by
// one; a tree full of links gets a count of the rest.
const maxSkipShown = 10

// skipped prints send's warnings about the entries of a tree left out
// (chunker.OnSkip): symbolic links, special files, names a receiver could
// not hold.
type skipped struct {
	w        io.Writer
	n        int
	reported bool
}

func (s *skipped) add(path string, why error) {
	if s.n++; s.n <= maxSkipShown {
		fmt.Fprintf(s.w, "warning: skipped %s (%v)\n", quoteName(path), why)
	}
}

// end prints how many more were skipped than shown, once.
func (s *skipped) end() {
	if s.reported {
		return
	}
	s.reported = true
	if s.n > maxSkipShown {
		fmt.Fprintf(s.w, "warning: skipped %d more (symbolic links, special files or unusable names)\n", s.n-maxSkipShown)
	}
}
