package pake

// CPace (draft-irtf-cfrg-cpace) over ristretto255 with SHA-512, the
// primitives only. The names follow the draft so the code can be read
// against it and checked with its test vectors (cpace_test.go).

import (
	"bytes"
	"crypto/sha512"
	"fmt"
	"io"

	"github.com/gtank/ristretto255"
)

const (
	// dsi is the domain separation string of the ristretto255/SHA-512
	// cipher suite; dsiISK separates the ISK hash from the generator hash.
	dsi    = "CPaceRistretto255"
	dsiISK = "CPaceRistretto255_ISK"
	// sInBytes is SHA-512's input block size; the generator string is
	// zero-padded so the password fills the first block.
	sInBytes = 128
	// pointLen is the size of an encoded ristretto255 element.
	pointLen = 32
	// iskLen is the size of the intermediate session key (SHA-512 output).
	iskLen = sha512.Size
)

// appendLEB128 appends n as unsigned LEB128.
func appendLEB128(dst []byte, n uint64) []byte {
	for n >= 0x80 {
		dst = append(dst, byte(n)|0x80)
		n >>= 7
	}
	return append(dst, byte(n))
}

// leb128Len is len(appendLEB128(nil, n)).
func leb128Len(n uint64) int {
	l := 1
	for n >= 0x80 {
		n >>= 7
		l++
	}
	return l
}

// prependLen appends the draft's prepend_len(x): LEB128 length, then x.
func prependLen(dst, x []byte) []byte {
	dst = appendLEB128(dst, uint64(len(x)))
	return append(dst, x...)
}

// lvCat is the draft's lv_cat: the concatenation of prepend_len of each part.
// Length prefixes make the encoding injective, so no two different tuples
// hash alike.
func lvCat(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += leb128Len(uint64(len(p))) + len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = prependLen(out, p)
	}
	return out
}

// generatorString is lv_cat(DSI, PRS, zero_bytes(ZPAD), CI, sid).
func generatorString(prs, ci, sid []byte) []byte {
	zpad := sInBytes - (leb128Len(uint64(len(prs))) + len(prs)) -
		(leb128Len(uint64(len(dsi))) + len(dsi)) - 1
	if zpad < 0 {
		zpad = 0
	}
	return lvCat([]byte(dsi), prs, make([]byte, zpad), ci, sid)
}

// calculateGenerator maps the generator string to a group element:
// SHA-512, then ristretto255's one-way map. Nobody knows the discrete log
// of g, which is what makes a password guess cost one protocol run.
func calculateGenerator(prs, ci, sid []byte) *ristretto255.Element {
	gs := generatorString(prs, ci, sid)
	h := sha512.Sum512(gs)
	clear(gs) // holds the password
	g := ristretto255.NewElement().FromUniformBytes(h[:])
	clear(h[:])
	return g
}

// sampleScalar draws a uniformly random scalar from 64 bytes of r (the
// wide reduction has negligible bias).
func sampleScalar(r io.Reader) (*ristretto255.Scalar, error) {
	var b [64]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return nil, fmt.Errorf("reading randomness: %w", err)
	}
	s := ristretto255.NewScalar().FromUniformBytes(b[:])
	clear(b[:])
	return s, nil
}

// scalarMult returns the encoding of y·g, the share a party sends.
func scalarMult(y *ristretto255.Scalar, g *ristretto255.Element) []byte {
	return ristretto255.NewElement().ScalarMult(y, g).Encode(make([]byte, 0, pointLen))
}

// identity is the encoding of the neutral element (all zeros).
var identity = make([]byte, pointLen)

// scalarMultVfy is the draft's scalar_mult_vfy: it decodes the peer's
// share, rejecting anything that is not a canonical ristretto255 encoding,
// and returns the encoding of K = y·Y. It fails if K is the identity, which
// (ristretto255 having prime order and no small subgroups) happens only
// when the peer sent the identity: such a share would fix K without any
// knowledge of the password.
func scalarMultVfy(y *ristretto255.Scalar, peer []byte) ([]byte, error) {
	if len(peer) != pointLen {
		return nil, ErrBadPoint
	}
	var Y ristretto255.Element
	if err := Y.Decode(peer); err != nil {
		return nil, ErrBadPoint
	}
	k := ristretto255.NewElement().ScalarMult(y, &Y).Encode(make([]byte, 0, pointLen))
	// Encodings are canonical, so comparing bytes is comparing elements.
	if bytes.Equal(k, identity) {
		return nil, ErrBadPoint
	}
	return k, nil
}

// transcriptIR is the initiator/responder-ordered transcript
// lv_cat(Ya, ADa) || lv_cat(Yb, ADb), which p2pxfer uses: the roles are
// fixed by the signalling protocol.
func transcriptIR(ya, ada, yb, adb []byte) []byte {
	return append(lvCat(ya, ada), lvCat(yb, adb)...)
}

// transcriptOC is the draft's symmetric ("parallel") transcript
// "oc" || max(A, B) || min(A, B). p2pxfer does not use it; it is kept so the
// draft's vectors can be checked in full.
func transcriptOC(ya, ada, yb, adb []byte) []byte {
	a, b := lvCat(ya, ada), lvCat(yb, adb)
	if bytes.Compare(a, b) < 0 { // bytes.Compare: a longer string wins a tie on the prefix
		a, b = b, a
	}
	out := append([]byte("oc"), a...)
	return append(out, b...)
}

// deriveISK is ISK = SHA-512(lv_cat(DSI_ISK, sid, K) || transcript).
func deriveISK(sid, k, transcript []byte) []byte {
	h := sha512.New()
	pre := lvCat([]byte(dsiISK), sid, k)
	h.Write(pre)
	h.Write(transcript)
	clear(pre)
	return h.Sum(make([]byte, 0, iskLen))
}
