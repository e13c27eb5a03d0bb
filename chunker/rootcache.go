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
	keys []K // least recently used first
	dirs map[K]*folder
}

// folder is a folder open as a root and, once asked for (file), as a
// file: openIn opens its files by base name through that descriptor.
type folder struct {
	root *os.Root
	f    *os.File
	// dev is the device holding the folder (devOK), once devKnown.
	dev             uint64
	devOK, devKnown bool
}

// device returns the device holding the folder, as fileID reports it: a
// file just created in it is on the same one.
func (d *folder) device() (uint64, bool) {
	if !d.devKnown {
		d.devKnown = true
		if f, err := d.file(); err == nil {
			if st, err := f.Stat(); err == nil {
				if id, ok := fileID(st); ok {
					d.dev, d.devOK = id[0], true
				}
			}
		}
	}
	return d.dev, d.devOK
}

// file returns the folder open as a file.
func (d *folder) file() (*os.File, error) {
	if d.f == nil {
		f, err := d.root.Open(".")
		if err != nil {
			return nil, err
		}
		d.f = f
	}
	return d.f, nil
}

func (d *folder) close() {
	if d.f != nil {
		d.f.Close()
	}
	d.root.Close()
}

// get returns the folder key, opening it with open if it is not cached
// (and closing the least recently used beyond rootCacheSize). A folder it
// returns stays valid until the next get of another key, or close.
func (c *rootCache[K]) get(key K, open func() (*os.Root, error)) (*folder, error) {
	if d, ok := c.dirs[key]; ok {
		if i := slices.Index(c.keys, key); i != len(c.keys)-1 {
			c.keys = append(slices.Delete(c.keys, i, i+1), key)
		}
		return d, nil
	}
	r, err := open()
	if err != nil {
		return nil, err
	}
	if c.dirs == nil {
		c.dirs = make(map[K]*folder, rootCacheSize)
	}
	if len(c.keys) >= rootCacheSize {
		c.dirs[c.keys[0]].close()
		delete(c.dirs, c.keys[0])
		c.keys = slices.Delete(c.keys, 0, 1)
	}
	d := &folder{root: r}
	c.dirs[key] = d
	c.keys = append(c.keys, key)
	return d, nil
}

func (c *rootCache[K]) close() {
	for _, d := range c.dirs {
		d.close()
	}
	c.dirs, c.keys = nil, nil
}
