package chunker

import (
	"crypto/sha256"
	"fmt"

	"github.com/klauspost/reedsolomon"
)

// Parity is linear, and a data byte at offset x of its chunk only feeds the
// parity bytes at offset x: a chunk's contribution can be added in any
// pieces, in any order, with EncodeIdx on matching slices of the parity
// buffers, and the zero padding of a short chunk contributes nothing. So
// parity is accumulated in m buffers as the data streams past, and no
// stripe's data is ever held whole.

// addParity adds data, bytes [off, off+len(data)) of data chunk idx of a
// stripe, to the stripe's parity; sub is scratch of len(parity).
func addParity(enc reedsolomon.Encoder, data []byte, idx, off int, parity, sub [][]byte) error {
	for j := range parity {
		sub[j] = parity[j][off : off+len(data)]
	}
	return enc.EncodeIdx(data, idx, sub)
}

// parityPass computes the parity hashes during OpenSource's hashing pass.
// feed receives every file's bytes in global order; endFile closes a file's
// short last chunk. It holds m chunk-sized parity buffers.
type parityPass struct {
	fec    FEC
	n, cs  int // chunks in all, chunk size
	chunk  int // global index of the chunk being fed
	off    int // bytes of it fed so far
	first  int // current stripe: first chunk,
	ndata  int // data chunks (0 before it starts),
	shard  int // longest chunk completed so far,
	enc    reedsolomon.Encoder
	parity [][]byte // m buffers of cs bytes; [j][:shard] is parity so far
	sub    [][]byte
	sums   []Hash // parity hashes of the stripes done
	err    error
}

func newParityPass(fec FEC, nchunks, chunkSize, nparity int) *parityPass {
	return &parityPass{fec: fec, n: nchunks, cs: chunkSize, sums: make([]Hash, 0, nparity)}
}

// feed adds the next bytes of the current file. Errors are kept for
// endFile and result; after one, feed does nothing.
func (p *parityPass) feed(b []byte) {
	for len(b) > 0 && p.err == nil {
		if p.ndata == 0 && !p.start() {
			return
		}
		take := min(len(b), p.cs-p.off)
		if p.err = addParity(p.enc, b[:take], p.chunk-p.first, p.off, p.parity, p.sub); p.err != nil {
			return
		}
		b = b[take:]
		if p.off += take; p.off == p.cs {
			p.endChunk()
		}
	}
}

// start begins the stripe at p.chunk.
func (p *parityPass) start() bool {
	if p.chunk >= p.n {
		// Only a file that grew while it was read gets here, and hashFile
		// reports that as ErrSourceChanged first.
		p.err = fmt.Errorf("%w: more data than hashed", ErrSourceChanged)
		return false
	}
	if p.parity == nil {
		p.parity = make([][]byte, p.fec.M)
		for j := range p.parity {
			p.parity[j] = make([]byte, p.cs)
		}
		p.sub = make([][]byte, p.fec.M)
	}
	p.first, p.ndata, p.shard = p.chunk, min(p.fec.K, p.n-p.chunk), 0
	p.enc, p.err = encoderFor(p.ndata, p.fec.M)
	return p.err == nil
}

func (p *parityPass) endChunk() {
	p.shard = max(p.shard, p.off)
	p.chunk++
	p.off = 0
	if p.chunk < p.first+p.ndata {
		return
	}
	for j := range p.parity {
		par := p.parity[j][:p.shard]
		p.sums = append(p.sums, sha256.Sum256(par))
		clear(par)
	}
	p.ndata = 0
}

// endFile ends the current file: its last chunk may be short.
func (p *parityPass) endFile() error {
	if p.err == nil && p.off > 0 {
		p.endChunk()
	}
	return p.err
}

// result returns the parity hashes once every file has been fed.
func (p *parityPass) result() ([]Hash, error) {
	if p.err != nil {
		return nil, p.err
	}
	if p.chunk != p.n || p.ndata != 0 || len(p.sums) != cap(p.sums) {
		return nil, fmt.Errorf("parity pass ended at chunk %d of %d with %d of %d hashes", p.chunk, p.n, len(p.sums), cap(p.sums))
	}
	return p.sums, nil
}

// ReadPiece reads piece p into buf[:size] and returns that slice; buf must
// have capacity for the piece (ChunkSize always suffices). A data piece is
// ReadChunk(p, buf). A parity piece is computed from its stripe's data
// chunks, read from the files one at a time, and checked against its hash
// in the manifest (a mismatch is ErrSourceChanged); the parity of the last
// few stripes is kept, so serving all of a stripe's parity pieces reads its
// data once. Computing a stripe's parity holds its parity pieces and one
// chunk buffer, never its data; the cache keeps at most 32 MiB of parity, or
// the latest stripe's if that alone is more. p may come straight from a
// peer: out of range is ErrChunkIndex.
func (s *Source) ReadPiece(p int, buf []byte) ([]byte, error) {
	m := s.m
	if p < 0 || p >= m.NumPieces() {
		return nil, fmt.Errorf("chunker read piece %d: %w (have %d)", p, ErrChunkIndex, m.NumPieces())
	}
	if p < m.NumChunks() {
		return s.ReadChunk(p, buf)
	}
	return s.par.readParity(p, buf)
}
