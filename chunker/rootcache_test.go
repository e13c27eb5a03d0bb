package chunker

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestRootCache: folders stay open up to rootCacheSize, the least
// recently used is closed to make room, and a hit opens nothing.
func TestRootCache(t *testing.T) {
	dir := t.TempDir()
	name := func(i int) string { return fmt.Sprintf("d%02d", i) }
	for i := range rootCacheSize + 1 {
		if err := os.Mkdir(filepath.Join(dir, name(i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	top, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer top.Close()
	var c rootCache[string]
	defer c.close()
	opens := 0
	get := func(i int) *os.Root {
		t.Helper()
		d, err := c.get(name(i), func() (*os.Root, error) { opens++; return top.OpenRoot(name(i)) })
		if err != nil {
			t.Fatal(err)
		}
		return d.root
	}
	first := get(0)
	second := get(1)
	for i := 2; i < rootCacheSize; i++ {
		get(i)
	}
	if get(0) != first || opens != rootCacheSize {
		t.Fatalf("after %d folders and a hit: %d opens", rootCacheSize, opens)
	}
	get(rootCacheSize) // evicts 1, the least recently used
	if _, err := second.Stat("."); err == nil {
		t.Error("the least recently used folder is still open")
	}
	if _, err := first.Stat("."); err != nil {
		t.Errorf("the folder used last but one was closed: %v", err)
	}
	if get(1); opens != rootCacheSize+2 {
		t.Errorf("%d opens, want %d: an evicted folder is opened again", opens, rootCacheSize+2)
	}
}
