package chunker

import (
	"crypto/sha256"
	"fmt"
	"io"
	"sync"
)

// parityCacheBytes bounds the parity a parityCache keeps of recent stripes;
// the most recent stripe is kept even if it alone is larger.
const parityCacheBytes = 32 << 20

// parityCache serves parity pieces for whoever holds a stripe's data (a
// Source, or a Writer seeding what it received) by computing them from the
// data chunks and checking them against the manifest. It keeps the parity
// of the stripes computed last, most recent first, so the m parity pieces
// of a stripe cost one read of its data. It is safe for concurrent use.
type parityCache struct {
	m         *Manifest
	readChunk func(i int, buf []byte) ([]byte, error)
	// mismatch is what parity that contradicts the manifest's hash wraps;
	// what it means depends on whether readChunk checks what it reads.
	mismatch error

	mu      sync.Mutex
	entries []*stripeParity
	bytes   int       // parity bytes in entries
	bufs    sync.Pool // *[]byte of ChunkSize, for reading a stripe's chunks
}

func newParityCache(m *Manifest, readChunk func(i int, buf []byte) ([]byte, error), mismatch error) *parityCache {
	return &parityCache{m: m, readChunk: readChunk, mismatch: mismatch}
}

// readParity reads parity piece p into buf[:size] and returns that slice.
// The caller has checked that p is a parity piece: NumChunks <= p < NumPieces.
func (c *parityCache) readParity(p int, buf []byte) ([]byte, error) {
	m := c.m
	ref := m.Piece(p)
	if cap(buf) < ref.Size {
		return nil, fmt.Errorf("chunker read piece %d: %w: capacity %d, need %d", p, io.ErrShortBuffer, cap(buf), ref.Size)
	}
	sp, err := c.stripe(ref.Stripe)
	if err != nil {
		return nil, fmt.Errorf("chunker read piece %d: %w", p, err)
	}
	j := p - m.NumChunks() - ref.Stripe*m.FEC.M
	return buf[:copy(buf[:ref.Size], sp.parity[j])], nil
}

// stripeParity is the computed parity of one stripe, shared by the callers
// that want it: done is closed once parity or err is set.
type stripeParity struct {
	stripe int
	size   int // bytes of parity
	done   chan struct{}
	parity [][]byte
	err    error
}

// stripe returns stripe st's parity from the cache, or computes it (once,
// however many callers want it meanwhile) and caches it.
func (c *parityCache) stripe(st int) (*stripeParity, error) {
	c.mu.Lock()
	for i, e := range c.entries {
		if e.stripe == st {
			copy(c.entries[1:i+1], c.entries[:i])
			c.entries[0] = e
			c.mu.Unlock()
			<-e.done
			return e, e.err
		}
	}
	ref := c.m.Stripe(st)
	e := &stripeParity{stripe: st, size: ref.NParity * ref.ShardSize, done: make(chan struct{})}
	c.entries = append(c.entries, nil)
	copy(c.entries[1:], c.entries)
	c.entries[0] = e
	c.bytes += e.size
	for len(c.entries) > 1 && c.bytes > parityCacheBytes {
		c.bytes -= c.entries[len(c.entries)-1].size
		c.entries[len(c.entries)-1] = nil
		c.entries = c.entries[:len(c.entries)-1]
	}
	c.mu.Unlock()

	e.parity, e.err = c.compute(ref)
	close(e.done)
	if e.err != nil { // let a later call try again
		c.mu.Lock()
		for i, x := range c.entries {
			if x == e {
				c.bytes -= e.size
				c.entries = append(c.entries[:i], c.entries[i+1:]...)
				break
			}
		}
		c.mu.Unlock()
	}
	return e, e.err
}

// compute reads stripe st's data chunks one at a time and encodes them,
// then checks the parity against the manifest.
func (c *parityCache) compute(st StripeRef) ([][]byte, error) {
	enc, err := encoderFor(st.NData, st.NParity)
	if err != nil {
		return nil, err
	}
	parity := make([][]byte, st.NParity)
	for j := range parity {
		parity[j] = make([]byte, st.ShardSize)
	}
	sub := make([][]byte, st.NParity)
	bp, _ := c.bufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, c.m.ChunkSize)
		bp = &b
	}
	defer c.bufs.Put(bp)
	for k := range st.NData {
		data, err := c.readChunk(st.FirstChunk+k, *bp)
		if err != nil {
			return nil, err
		}
		if err := addParity(enc, data, k, 0, parity, sub); err != nil {
			return nil, err
		}
	}
	for j := range parity {
		if sha256.Sum256(parity[j]) != c.m.Parity[st.FirstParity-c.m.NumChunks()+j] {
			return nil, fmt.Errorf("%w: parity of stripe %d does not match the manifest", c.mismatch, st.Index)
		}
	}
	return parity, nil
}
