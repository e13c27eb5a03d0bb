package peer

import (
	"bytes"
	"errors"
	"testing"

	"github.com/p2pxfer/p2pxfer/chunker"
)

func testManifest(t testing.TB) []byte {
	m, err := chunker.NewManifest(chunker.MinChunkSize, []chunker.File{{Name: "a", Size: 3, Chunks: []chunker.Hash{{2}}, SHA256: chunker.Hash{2}}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := chunker.EncodeManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSignedManifest(t *testing.T) {
	pub, priv, err := NewManifestKey()
	if err != nil {
		t.Fatal(err)
	}
	enc := testManifest(t)
	signed, err := SignManifest(priv, "abcdefgh", enc)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := openManifest(pub, "abcdefgh", signed); err != nil || m.Files[0].Name != "a" {
		t.Fatalf("open: %v", err)
	}
	otherPub, otherPriv, _ := NewManifestKey()
	flipped := bytes.Clone(signed)
	flipped[len(flipped)-3] ^= 1
	forgedBy, _ := SignManifest(otherPriv, "abcdefgh", enc)
	for name, tc := range map[string]struct {
		key    []byte
		room   string
		signed []byte
	}{
		"other key":       {otherPub, "abcdefgh", signed},
		"other room":      {pub, "abcdefgk", signed},
		"altered":         {pub, "abcdefgh", flipped},
		"signed by other": {pub, "abcdefgh", forgedBy},
		"short":           {pub, "abcdefgh", signed[:10]},
		"no key":          {nil, "abcdefgh", signed},
	} {
		if _, err := openManifest(tc.key, tc.room, tc.signed); !errors.Is(err, ErrForged) {
			t.Errorf("%s: %v, want ErrForged", name, err)
		}
	}
	if _, err := SignManifest(nil, "abcdefgh", enc); !errors.Is(err, ErrForged) {
		t.Errorf("signing without a key: %v", err)
	}
}

// FuzzOpenManifest: whatever a source sends as the signed manifest, it is
// refused (ErrForged) unless signed by the room's key, and never panics.
func FuzzOpenManifest(f *testing.F) {
	pub, priv, _ := NewManifestKey()
	enc := testManifest(f)
	signed, _ := SignManifest(priv, "abcdefgh", enc)
	f.Add(signed)
	f.Add(enc)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := openManifest(pub, "abcdefgh", b)
		if err == nil && !bytes.Equal(b, signed) {
			if _, e2 := chunker.EncodeManifest(m); e2 != nil {
				t.Fatalf("accepted a manifest that does not encode: %v", e2)
			}
		}
		if err != nil && len(b) >= signatureSize && !bytes.Equal(b[signatureSize:], enc) && !errors.Is(err, ErrForged) {
			t.Fatalf("unsigned input not refused as forged: %v", err)
		}
	})
}
