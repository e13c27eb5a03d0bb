package chunker

import (
	"fmt"
	"math/bits"
)

// Bitmap is a fixed-length set of chunk indices, used for the chunks a
// receiver has verified. Its byte form (Bytes/FromBytes) is what goes into
// state files and, later, have-messages between peers: bit i is bit i%8
// (least significant first) of byte i/8, and unused bits of the last byte
// are zero. A Bitmap is not safe for concurrent use.
type Bitmap struct {
	n     int
	count int
	b     []byte
}

// NewBitmap returns an empty bitmap for indices 0..n-1.
func NewBitmap(n int) *Bitmap {
	if n < 0 {
		n = 0
	}
	return &Bitmap{n: n, b: make([]byte, (n+7)/8)}
}

// Len returns the number of indices the bitmap covers.
func (m *Bitmap) Len() int { return m.n }

// Set adds i; out-of-range indices are ignored so a hostile index can never
// grow or corrupt the map.
func (m *Bitmap) Set(i int) {
	if i < 0 || i >= m.n {
		return
	}
	mask := byte(1) << (i % 8)
	if m.b[i/8]&mask == 0 {
		m.b[i/8] |= mask
		m.count++
	}
}

// Clear removes i; out-of-range indices are ignored.
func (m *Bitmap) Clear(i int) {
	if i < 0 || i >= m.n {
		return
	}
	mask := byte(1) << (i % 8)
	if m.b[i/8]&mask != 0 {
		m.b[i/8] &^= mask
		m.count--
	}
}

// Has reports whether i is set; false for out-of-range indices.
func (m *Bitmap) Has(i int) bool {
	return i >= 0 && i < m.n && m.b[i/8]&(byte(1)<<(i%8)) != 0
}

// Count returns how many indices are set, in O(1).
func (m *Bitmap) Count() int { return m.count }

// Bytes returns a copy of the wire form, (Len()+7)/8 bytes.
func (m *Bitmap) Bytes() []byte { return append([]byte(nil), m.b...) }

// FromBytes replaces the contents with the wire form p. It refuses a p of
// the wrong length or with padding bits set, since either means the sender
// disagrees about the chunk count, leaving the bitmap unchanged.
func (m *Bitmap) FromBytes(p []byte) error {
	if len(p) != len(m.b) {
		return fmt.Errorf("chunker bitmap: %d bytes for %d bits, want %d", len(p), m.n, len(m.b))
	}
	if r := m.n % 8; r != 0 && p[len(p)-1]>>r != 0 {
		return fmt.Errorf("chunker bitmap: bits set beyond index %d", m.n-1)
	}
	copy(m.b, p)
	m.count = 0
	for _, x := range p {
		m.count += bits.OnesCount8(x)
	}
	return nil
}

// Clone returns an independent copy.
func (m *Bitmap) Clone() *Bitmap {
	return &Bitmap{n: m.n, count: m.count, b: m.Bytes()}
}
