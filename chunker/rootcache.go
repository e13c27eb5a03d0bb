package chunker

import (
	"os"
	"slices"
)

// rootCacheSize is how many folders a rootCache keeps open: pieces of a
// tree arrive in no particular order within the sender's batch, which
// spans dozens of folders, and a single open folder was reopened (and
// closed) for most of them.
const rootCacheSize = 64

// rootCache keeps the folders used last open as roots of their own, so
// that a file is found with one lookup of its base name where a path
// costs one per component. The caller serializes its use.
type rootCache[K comparable] struct {
	keys  []K // least recently used first
	roots map[K]*os.Root
}

// get returns the folder key, opening it with open if it is not cached
// (and closing the least recently used beyond rootCacheSize). A root it
// returns stays valid until the next get of another key, or close.
func (c *rootCache[K]) get(key K, open func() (*os.Root, error)) (*os.Root, error) {
	if r, ok := c.roots[key]; ok {
		if i := slices.Index(c.keys, key); i != len(c.keys)-1 {
			c.keys = append(slices.Delete(c.keys, i, i+1), key)
		}
		return r, nil
	}
	r, err := open()
	if err != nil {
		return nil, err
	}
	if c.roots == nil {
		c.roots = make(map[K]*os.Root, rootCacheSize)
	}
	if len(c.keys) >= rootCacheSize {
		c.roots[c.keys[0]].Close()
		delete(c.roots, c.keys[0])
		c.keys = slices.Delete(c.keys, 0, 1)
	}
	c.roots[key] = r
	c.keys = append(c.keys, key)
	return r, nil
}

func (c *rootCache[K]) close() {
	for _, r := range c.roots {
		r.Close()
	}
	c.roots, c.keys = nil, nil
}
