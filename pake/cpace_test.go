package pake

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/gtank/ristretto255"
)

// unhex decodes hex that may be split over lines, as in the reference.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// Test vectors of draft-irtf-cfrg-cpace for ristretto255/SHA-512, as
// summarised in /work/shared/reference/cpace-ristretto255.md.
const (
	vecPRS = "50617373776f7264"
	vecCI  = "0b415f696e69746961746f720b425f726573706f6e646572"
	vecSID = "7e4b4791d6a8ef019b936c79fb7f2c57"
	vecGS  = `11435061636552697374726574746f3235350850617373776f726464
		00000000000000000000000000000000000000000000000000000000
		00000000000000000000000000000000000000000000000000000000
		00000000000000000000000000000000000000000000000000000000
		00000000000000000000000000000000180b415f696e69746961746f
		720b425f726573706f6e646572107e4b4791d6a8ef019b936c79fb7f
		2c57`
	vecGSHash = `da6d3ddc8802fca9058755ffd3ebde08a9c2c74945901a258482a288
		b6663af06bf645c93cd1c51512307199c80e84908916d983b34af772
		05f90851a657ee27`
	vecG   = "222b6b195fe84b1652badb6f6a3ae3d24341e7306967f0b8115b40d5698c7e56"
	vecADa = "414461"
	vecYa  = "da3d23700a9e5699258aef94dc060dfda5ebb61f02a5ea77fad53f4ff0976d08"
	vecYaP = "d6bac480f2c386c394efc7c47adb9925dcd2630b64f240c50f8d0eec482b9157"
	vecADb = "414462"
	vecYb  = "d2316b454718c35362d83d69df6320f38578ed5984651435e2949762d900b80d"
	vecYbP = "3ea7e0b19560d7c0b0f5734f63b955286dfa8232b5ebe63324e2d9e7433f7258"
	vecK   = "80b69a8a76457ab6a4d7f887a4bf6b55a2f80ac19c333f917a05fc9887c8b40f"
	vecTIR = `20d6bac480f2c386c394efc7c47adb9925dcd2630b64f240c50f8d0e
		ec482b915703414461203ea7e0b19560d7c0b0f5734f63b955286dfa
		8232b5ebe63324e2d9e7433f725803414462`
	vecISKIR = `b69effbf61b51d56401c0f65601abe428de8206feaaf0e32198896dc
		ae7b35cd2b38950a39dfd5d4a79164614c2984f7daa460b588c1e80c
		3fa2068af7900447`
	vecTOC = `6f6320d6bac480f2c386c394efc7c47adb9925dcd2630b64f240c50f
		8d0eec482b915703414461203ea7e0b19560d7c0b0f5734f63b95528
		6dfa8232b5ebe63324e2d9e7433f725803414462`
	vecISKOC = `544199d71f62f8d9a1fee55727e24fe4a45844593c2b6013c4fa3969
		d0e5debb2244675c0b43397cbb68d342b01fc0f98fc961469a25134d
		e9f0f813c1a57476`
)

func decodeScalar(t *testing.T, s string) *ristretto255.Scalar {
	t.Helper()
	y := ristretto255.NewScalar()
	if err := y.Decode(unhex(t, s)); err != nil {
		t.Fatalf("scalar %s: %v", s, err)
	}
	return y
}

func eqHex(t *testing.T, name string, got []byte, want string) {
	t.Helper()
	if w := unhex(t, want); !bytes.Equal(got, w) {
		t.Errorf("%s:\n got  %x\n want %x", name, got, w)
	}
}

func TestCPaceVectors(t *testing.T) {
	prs, ci, sid := unhex(t, vecPRS), unhex(t, vecCI), unhex(t, vecSID)

	gs := generatorString(prs, ci, sid)
	if len(gs) != 170 {
		t.Errorf("generator string length %d, want 170", len(gs))
	}
	eqHex(t, "generator_string", gs, vecGS)
	h := sha512.Sum512(gs)
	eqHex(t, "SHA-512(generator_string)", h[:], vecGSHash)

	g := calculateGenerator(prs, ci, sid)
	eqHex(t, "g", g.Encode(nil), vecG)

	ya, yb := decodeScalar(t, vecYa), decodeScalar(t, vecYb)
	Ya, Yb := scalarMult(ya, g), scalarMult(yb, g)
	eqHex(t, "Ya", Ya, vecYaP)
	eqHex(t, "Yb", Yb, vecYbP)

	ka, err := scalarMultVfy(ya, Yb)
	if err != nil {
		t.Fatalf("scalarMultVfy(ya, Yb): %v", err)
	}
	kb, err := scalarMultVfy(yb, Ya)
	if err != nil {
		t.Fatalf("scalarMultVfy(yb, Ya): %v", err)
	}
	eqHex(t, "K (initiator)", ka, vecK)
	eqHex(t, "K (responder)", kb, vecK)

	ada, adb := unhex(t, vecADa), unhex(t, vecADb)
	tir := transcriptIR(Ya, ada, Yb, adb)
	eqHex(t, "transcript_ir", tir, vecTIR)
	eqHex(t, "ISK (ir)", deriveISK(sid, ka, tir), vecISKIR)

	toc := transcriptOC(Ya, ada, Yb, adb)
	eqHex(t, "transcript_oc", toc, vecTOC)
	// The symmetric ordering must not depend on who is "a".
	eqHex(t, "transcript_oc (swapped)", transcriptOC(Yb, adb, Ya, ada), vecTOC)
	eqHex(t, "ISK (parallel)", deriveISK(sid, ka, toc), vecISKOC)
}

func TestLEB128(t *testing.T) {
	for _, c := range []struct {
		n    uint64
		want string
	}{
		{0, "00"}, {1, "01"}, {127, "7f"}, {128, "8001"}, {300, "ac02"}, {16383, "ff7f"}, {16384, "808001"},
	} {
		got := appendLEB128(nil, c.n)
		if hex.EncodeToString(got) != c.want {
			t.Errorf("LEB128(%d) = %x, want %s", c.n, got, c.want)
		}
		if leb128Len(c.n) != len(got) {
			t.Errorf("leb128Len(%d) = %d, want %d", c.n, leb128Len(c.n), len(got))
		}
	}
	// A long password: ZPAD goes to zero, the length prefix to two bytes.
	long := bytes.Repeat([]byte{'x'}, 200)
	gs := generatorString(long, nil, nil)
	want := lvCat([]byte(dsi), long, nil, nil, nil)
	if !bytes.Equal(gs, want) {
		t.Errorf("generator string with long password has padding")
	}
}

// TestScalarMultVfyRejects checks that every share that is not a canonical
// encoding of a non-identity element is refused.
func TestScalarMultVfyRejects(t *testing.T) {
	y := decodeScalar(t, vecYa)
	valid := unhex(t, vecYbP)
	highBit := bytes.Clone(valid)
	highBit[31] |= 0x80

	bad := map[string][]byte{
		"empty":                  nil,
		"short":                  valid[:31],
		"long":                   append(bytes.Clone(valid), 0),
		"identity":               make([]byte, 32),
		"high bit":               highBit,
		"p (=0 non-canonical)":   unhex(t, "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
		"p+1 (=1 non-canonical)": unhex(t, "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
		"2^255-1":                unhex(t, "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
		"all ones":               bytes.Repeat([]byte{0xff}, 32),
		// Negative (odd) field elements are non-canonical in ristretto255.
		"negative 3":   unhex(t, "0300000000000000000000000000000000000000000000000000000000000000"),
		"negative p-2": unhex(t, "ebffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
		// Encodings of the Edwards25519 points of small order, which some
		// other groups must reject explicitly: ristretto255 has none, and
		// their byte strings either fail to decode or decode to the identity.
		"ed25519 identity":     unhex(t, "0100000000000000000000000000000000000000000000000000000000000000"),
		"ed25519 order 2":      unhex(t, "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
		"ed25519 order 4 (a)":  unhex(t, "0000000000000000000000000000000000000000000000000000000000000000"),
		"ed25519 order 4 (b)":  unhex(t, "0000000000000000000000000000000000000000000000000000000000000080"),
		"ed25519 order 8 (a)":  unhex(t, "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
		"ed25519 order 8 (b)":  unhex(t, "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
		"ed25519 order 8 (a')": unhex(t, "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"),
		"ed25519 order 8 (b')": unhex(t, "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"),
	}
	for name, p := range bad {
		if k, err := scalarMultVfy(y, p); !errors.Is(err, ErrBadPoint) {
			t.Errorf("%s (%x): got K=%x err=%v, want ErrBadPoint", name, p, k, err)
		}
	}
	if _, err := scalarMultVfy(y, valid); err != nil {
		t.Errorf("valid share rejected: %v", err)
	}
}

// TestIdentityShareRejectedByHandshake checks that both handshake steps
// run scalar_mult_vfy on the peer's share.
func TestIdentityShareRejectedByHandshake(t *testing.T) {
	p := Params{Room: "r", Initiator: "i", Responder: "s"}
	hello := helloFrame(make([]byte, sidLen), make([]byte, pointLen))
	if _, _, err := Respond("pw", p, hello); !errors.Is(err, ErrBadPoint) {
		t.Fatalf("Respond with identity share: %v, want ErrBadPoint", err)
	}
	ini, _, err := NewInitiator("pw", p)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ini.Finish(replyFrame(make([]byte, pointLen), make([]byte, macLen))); !errors.Is(err, ErrBadPoint) {
		t.Fatalf("Finish with identity share: %v, want ErrBadPoint", err)
	}
}
