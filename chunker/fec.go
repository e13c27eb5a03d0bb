package chunker

import (
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/reedsolomon"
)

// Forward error correction (FEC). With FEC k+m, consecutive global chunks
// are grouped k at a time into stripes (a stripe may span files; the last
// one may hold k' < k chunks) and every stripe gets m Reed-Solomon parity
// pieces, so a receiver can rebuild a stripe from any k' of its k'+m pieces.
//
// Pieces are numbered in one index space: data pieces are the chunk indices
// [0, NumChunks); parity piece j of stripe s is NumChunks + s*m + j. A
// stripe's shard size is its longest chunk; shorter chunks are padded with
// zeros for encoding only, and parity pieces are shard-size long.
//
// The parity bytes are part of the wire format (their hashes are in the
// manifest): they are what github.com/klauspost/reedsolomon computes with
// New(k', m, WithInversionCache(false)), that is the library's default
// systematic Vandermonde matrix over GF(2^8). Choosing another matrix or
// field is a format change.

// FEC limits. RS over GF(2^8), which klauspost/reedsolomon uses below 257
// shards, allows 256 shards per stripe; we stay well inside it, and within
// what a receiver can hold for one stripe.
const (
	// MaxFECData bounds k, the data chunks per stripe.
	MaxFECData = 64
	// MaxFECParity bounds m, the parity pieces per stripe.
	MaxFECParity = 64
)

// FEC is a stripe layout: K data chunks and M parity pieces per stripe. The
// zero value means FEC is off: no stripes and no parity pieces.
type FEC struct {
	K int // data chunks per stripe, 1..MaxFECData
	M int // parity pieces per stripe, 1..MaxFECParity
}

// Enabled reports whether f adds parity pieces, that is f is not FEC{}.
func (f FEC) Enabled() bool { return f != FEC{} }

// String returns "K+M", or "off" for the zero value; ParseFEC reads both.
func (f FEC) String() string {
	if !f.Enabled() {
		return "off"
	}
	return strconv.Itoa(f.K) + "+" + strconv.Itoa(f.M)
}

// CheckFEC reports whether f is FEC{} (off) or a valid layout with
// 1 <= K <= MaxFECData and 1 <= M <= MaxFECParity; the error wraps
// ErrInvalidFEC.
func CheckFEC(f FEC) error {
	if p := fecProblem(f); p != "" {
		return fmt.Errorf("%w: %s", ErrInvalidFEC, p)
	}
	return nil
}

// fecProblem describes what is wrong with f, or returns "".
func fecProblem(f FEC) string {
	if f.Enabled() && (f.K < 1 || f.K > MaxFECData || f.M < 1 || f.M > MaxFECParity) {
		return fmt.Sprintf("%d+%d: data chunks per stripe must be in [1, %d] and parity pieces in [1, %d]",
			f.K, f.M, MaxFECData, MaxFECParity)
	}
	return ""
}

// ParseFEC parses a FEC layout as the CLI takes it: "K+M" in decimal (for
// example "8+2"), or "off" (or "") for none. The result passes CheckFEC;
// errors wrap ErrInvalidFEC.
func ParseFEC(s string) (FEC, error) {
	if s == "" || s == "off" {
		return FEC{}, nil
	}
	ks, ms, ok := strings.Cut(s, "+")
	k, kerr := parseSmall(ks)
	m, merr := parseSmall(ms)
	if !ok || kerr != nil || merr != nil {
		return FEC{}, fmt.Errorf("%w: %q is not K+M (such as 8+2) or off", ErrInvalidFEC, s)
	}
	f := FEC{K: k, M: m}
	if !f.Enabled() { // "0+0" is not a spelling of off
		return FEC{}, fmt.Errorf("%w: %q: use off for no parity", ErrInvalidFEC, s)
	}
	if err := CheckFEC(f); err != nil {
		return FEC{}, err
	}
	return f, nil
}

// parseSmall parses 1 to 3 decimal digits, without the sign and spaces
// strconv.Atoi would let through.
func parseSmall(s string) (int, error) {
	if len(s) == 0 || len(s) > 3 {
		return 0, strconv.ErrSyntax
	}
	n := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, strconv.ErrSyntax
		}
		n = n*10 + int(c-'0')
	}
	return n, nil
}

// StripeRef locates one stripe in the chunk and piece index spaces.
type StripeRef struct {
	Index       int // stripe index, 0..NumStripes-1
	FirstChunk  int // global index of its first data chunk
	NData       int // data chunks: FEC.K, or fewer for the last stripe
	FirstParity int // piece index of its first parity piece
	NParity     int // parity pieces: FEC.M
	ShardSize   int // its longest chunk, the size of each parity piece
}

// PieceRef describes one piece: a data chunk or a parity piece.
type PieceRef struct {
	Index  int  // piece index, 0..NumPieces-1; for a data piece, the chunk index
	Stripe int  // stripe it belongs to, or -1 when FEC is off
	Parity bool // a parity piece rather than a data chunk
	Size   int  // the chunk's size for data, the stripe's ShardSize for parity
	Hash   Hash // the chunk's hash (ChunkRef.Hash) for data, the piece's SHA-256 for parity

	chunk ChunkRef // a data piece's chunk, for Verify
}

// Verify reports whether b is this piece: a data chunk by ChunkRef.Verify, a
// parity piece by its size and SHA-256.
func (p PieceRef) Verify(b []byte) bool {
	if !p.Parity {
		return p.chunk.Verify(b)
	}
	return len(b) == p.Size && sha256.Sum256(b) == p.Hash
}

// NumStripes returns the number of stripes: ceil(NumChunks/FEC.K), or 0
// when FEC is off.
func (m *Manifest) NumStripes() int {
	if !m.FEC.Enabled() {
		return 0
	}
	return (m.NumChunks() + m.FEC.K - 1) / m.FEC.K
}

// NumPieces returns NumChunks plus NumStripes*FEC.M parity pieces; it is
// NumChunks when FEC is off.
func (m *Manifest) NumPieces() int { return m.NumChunks() + m.NumStripes()*m.FEC.M }

// Stripe describes stripe s in O(K log files). The caller guarantees
// 0 <= s < NumStripes (indices from the network must be checked first).
func (m *Manifest) Stripe(s int) StripeRef {
	n := m.NumChunks()
	first := s * m.FEC.K
	ref := StripeRef{
		Index:       s,
		FirstChunk:  first,
		NData:       min(m.FEC.K, n-first),
		FirstParity: n + s*m.FEC.M,
		NParity:     m.FEC.M,
	}
	for i := first; i < first+ref.NData && ref.ShardSize < m.ChunkSize; i++ {
		ref.ShardSize = max(ref.ShardSize, m.Chunk(i).Size)
	}
	return ref
}

// StripeOf returns the stripe piece p belongs to, or -1 when FEC is off.
// The caller guarantees 0 <= p < NumPieces.
func (m *Manifest) StripeOf(p int) int {
	if !m.FEC.Enabled() {
		return -1
	}
	if n := m.NumChunks(); p >= n {
		return (p - n) / m.FEC.M
	}
	return p / m.FEC.K
}

// Piece describes piece p. The caller guarantees 0 <= p < NumPieces
// (indices from the network must be checked first).
func (m *Manifest) Piece(p int) PieceRef {
	n := m.NumChunks()
	if p < n {
		c := m.Chunk(p)
		return PieceRef{Index: p, Stripe: m.StripeOf(p), Size: c.Size, Hash: c.Hash, chunk: c}
	}
	s := m.StripeOf(p)
	return PieceRef{Index: p, Stripe: s, Parity: true, Size: m.Stripe(s).ShardSize, Hash: m.Parity[p-n]}
}

// Reconstruct rebuilds the data chunks of stripe s from pieces, which maps
// piece indices of that stripe to their bytes: data chunks at their true
// size, parity pieces at the stripe's ShardSize. Any NData of the stripe's
// pieces are enough; more are allowed. Every piece given is checked against
// its size and hash first (ErrChunkSize, ErrChunkHash): the caller may pass
// what peers sent as is. A piece of another stripe is ErrChunkIndex, fewer
// than NData pieces ErrNotEnoughPieces.
//
// The result maps every data chunk index of the stripe to its bytes at its
// true size: the caller's own slice for chunks it gave, new memory for
// rebuilt ones, each of which has been verified against its hash in the
// manifest (ErrChunkHash if not: the sender's parity contradicts its data).
// Memory use is about one stripe.
func (m *Manifest) Reconstruct(s int, pieces map[int][]byte) (map[int][]byte, error) {
	if s < 0 || s >= m.NumStripes() {
		return nil, fmt.Errorf("chunker reconstruct stripe %d: %w (have %d stripes)", s, ErrChunkIndex, m.NumStripes())
	}
	st := m.Stripe(s)
	shards := make([][]byte, st.NData+st.NParity)
	found, have := 0, 0
	for k := range shards {
		p := st.FirstChunk + k
		if k >= st.NData {
			p = st.FirstParity + k - st.NData
		}
		b, ok := pieces[p]
		if !ok {
			continue
		}
		found++
		ref := m.Piece(p)
		if len(b) != ref.Size {
			return nil, fmt.Errorf("chunker reconstruct stripe %d: piece %d: %w: %d bytes, want %d", s, p, ErrChunkSize, len(b), ref.Size)
		}
		if !ref.Verify(b) {
			return nil, fmt.Errorf("chunker reconstruct stripe %d: piece %d: %w", s, p, ErrChunkHash)
		}
		shards[k] = b
		have++
	}
	if found != len(pieces) {
		for p := range pieces {
			if p < 0 || p >= m.NumPieces() || m.StripeOf(p) != s {
				return nil, fmt.Errorf("chunker reconstruct stripe %d: piece %d: %w: not in this stripe", s, p, ErrChunkIndex)
			}
		}
	}
	if have < st.NData {
		return nil, fmt.Errorf("chunker reconstruct stripe %d: %w: %d of %d pieces, need %d", s, ErrNotEnoughPieces, have, st.NData+st.NParity, st.NData)
	}

	out := make(map[int][]byte, st.NData)
	var missing []int
	for k := range st.NData {
		b := shards[k]
		if b == nil {
			missing = append(missing, k)
			continue
		}
		out[st.FirstChunk+k] = b
		if len(b) < st.ShardSize { // zero-padded copy for the decoder
			padded := make([]byte, st.ShardSize)
			copy(padded, b)
			shards[k] = padded
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	enc, err := encoderFor(st.NData, st.NParity)
	if err == nil {
		err = enc.ReconstructData(shards)
	}
	if err != nil {
		return nil, fmt.Errorf("chunker reconstruct stripe %d: %w", s, err)
	}
	for _, k := range missing {
		ref := m.Chunk(st.FirstChunk + k)
		b := shards[k][:ref.Size:ref.Size]
		if !ref.Verify(b) {
			return nil, fmt.Errorf("chunker reconstruct stripe %d: rebuilt chunk %d: %w: the parity contradicts the data", s, ref.Index, ErrChunkHash)
		}
		out[ref.Index] = b
	}
	return out, nil
}

// encoders caches one Reed-Solomon encoder per (k, m): a transfer uses at
// most two, and encoders are safe for concurrent use. The inversion cache is
// off: a long transfer could otherwise keep one matrix per loss pattern,
// while inverting a matrix of at most 64x64 costs little next to the data.
var encoders sync.Map // [2]int -> reedsolomon.Encoder

func encoderFor(k, m int) (reedsolomon.Encoder, error) {
	key := [2]int{k, m}
	if e, ok := encoders.Load(key); ok {
		return e.(reedsolomon.Encoder), nil
	}
	e, err := reedsolomon.New(k, m, reedsolomon.WithInversionCache(false))
	if err != nil {
		return nil, fmt.Errorf("reed-solomon %d+%d: %w", k, m, err)
	}
	actual, _ := encoders.LoadOrStore(key, e)
	return actual.(reedsolomon.Encoder), nil
}
