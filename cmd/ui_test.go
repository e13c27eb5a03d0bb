package cmd

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/p2pxfer/p2pxfer/chunker"
)

func TestListFiles(t *testing.T) {
	for _, n := range []int{0, 1, maxListed, maxListed + 1, 1000} {
		files := make([]chunker.File, n)
		for i := range files {
			files[i].Name = fmt.Sprintf("f%d", i)
		}
		var b bytes.Buffer
		listFiles(&b, files, func(f chunker.File) string { return f.Name })
		lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		if n == 0 {
			if b.Len() != 0 {
				t.Errorf("0 files: printed %q", b.String())
			}
			continue
		}
		if n <= maxListed {
			if len(lines) != n || lines[n-1] != fmt.Sprintf("  f%d", n-1) {
				t.Errorf("%d files: printed %q", n, b.String())
			}
			continue
		}
		want := fmt.Sprintf("  ... and %d more", n-maxListed+1)
		if len(lines) != maxListed || lines[maxListed-1] != want || lines[maxListed-2] != fmt.Sprintf("  f%d", maxListed-2) {
			t.Errorf("%d files: printed %q", n, b.String())
		}
	}
}
