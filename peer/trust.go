package peer

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"

	"github.com/p2pxfer/p2pxfer/chunker"
)

// Manifest signatures. Everyone in a room knows the password, so a seed
// could lie about the files; what it cannot do is sign. The sender makes a
// fresh Ed25519 key per room (NewManifestKey), registers the public half
// with the signalling server at create, and signs the manifest:
//
//	signed manifest = signature(64) || manifest
//	signature       = Ed25519(key, signingContext || room ID || 0 || manifest)
//
// The server hands the public key to every receiver in joined, and the
// sender repeats it inside its PAKE-sealed answer, where the receiver
// compares the two. A seed can forge neither; only the signalling server
// and a password holder together could substitute a key, and even then a
// receiver talking to the real sender notices. The signature binds the
// room ID so a manifest cannot be replayed into another room.

const (
	signatureSize  = ed25519.SignatureSize
	signingContext = "p2pxfer signed manifest v1\x00"
)

// NewManifestKey returns a fresh manifest-signing key pair for one room.
func NewManifestKey() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("peer manifest key: %w", err)
	}
	return pub, priv, nil
}

func signedMessage(roomID string, manifest []byte) []byte {
	msg := make([]byte, 0, len(signingContext)+len(roomID)+1+len(manifest))
	msg = append(msg, signingContext...)
	msg = append(msg, roomID...)
	msg = append(msg, 0)
	return append(msg, manifest...)
}

// SignManifest returns the signed form of manifest (an encoded
// chunker.Manifest) for room roomID, as sources send it.
func SignManifest(key ed25519.PrivateKey, roomID string, manifest []byte) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("peer sign manifest: %w: no signing key", ErrForged)
	}
	sig := ed25519.Sign(key, signedMessage(roomID, manifest))
	return append(sig, manifest...), nil
}

// openManifest checks a signed manifest from a peer against the room's key
// and decodes it. A bad signature is ErrForged; a well-signed manifest that
// does not decode is chunker's error (the sender itself is broken).
func openManifest(key ed25519.PublicKey, roomID string, signed []byte) (*chunker.Manifest, error) {
	if len(key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: the room has no manifest key", ErrForged)
	}
	if len(signed) < signatureSize {
		return nil, fmt.Errorf("%w: manifest without signature", ErrForged)
	}
	sig, body := signed[:signatureSize], signed[signatureSize:]
	if !ed25519.Verify(key, signedMessage(roomID, body), sig) {
		return nil, fmt.Errorf("%w: manifest signature does not match the sender's key", ErrForged)
	}
	return chunker.DecodeManifest(body)
}
