package cmd

import (
	"bytes"
	"fmt"
	"io"
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

// Bars take every value but render only when drawn: the line kept on
// screen when a bar is removed shows its latest value, however soon after
// the last redraw it came.
func TestBarsLatestValue(t *testing.T) {
	var out bytes.Buffer
	b := newBars(Env{Stderr: &out, Terminal: true})
	b.add("recv", "receiving", 1000)
	for n := int64(1); n <= 500; n++ {
		b.set("recv", n)
	}
	b.remove("recv", true)
	last := strings.TrimSpace(out.String()[strings.LastIndex(strings.TrimSpace(out.String()), "\n")+1:])
	if !strings.Contains(last, " 50% ") {
		t.Fatalf("kept line %q, want the bar at 50%%", last)
	}
}

// BenchmarkBarsSet is recv's cost per arriving piece for its progress bar
// (a bar renders itself in ~30 µs; set should not, between redraws).
func BenchmarkBarsSet(b *testing.B) {
	bs := newBars(Env{Stderr: io.Discard, Terminal: true})
	bs.add("recv", "receiving", 1<<40)
	var n int64
	for b.Loop() {
		n += 4096
		bs.set("recv", n)
	}
}

func TestPathsLabel(t *testing.T) {
	for _, c := range []struct {
		sources map[string]string
		want    string
	}{
		{nil, ""},
		{map[string]string{"a": "LAN"}, " (LAN)"},
		{map[string]string{"a": "relayed", "b": "LAN", "c": "LAN"}, " (LAN, relayed)"},
	} {
		if got := pathsLabel(c.sources); got != c.want {
			t.Errorf("pathsLabel(%v) = %q, want %q", c.sources, got, c.want)
		}
	}
}
