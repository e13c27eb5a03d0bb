package pake

import (
	"crypto/cipher"
	"errors"
	"fmt"
	"math"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
)

// MaxPlaintext bounds one sealed message. Signalling messages (SDP, ICE
// candidates) are a few KiB at most; the bound keeps a Sealed frame well
// inside the signalling server's relay limit and caps what a hostile peer
// can make us allocate.
const MaxPlaintext = 16 << 10

// tagLen is the Poly1305 tag size.
const tagLen = chacha20poly1305.Overhead

var errSeqExhausted = errors.New("sequence numbers exhausted")

// Session seals and opens signalling messages after a successful handshake.
// Each direction has its own key and sequence number; the sequence number
// is the nonce, so a nonce never repeats under a key, and received numbers
// must strictly increase, so the relay can drop frames but not replay or
// reorder them. Seal and Open may be called concurrently.
type Session struct {
	initiator bool

	sendMu  sync.Mutex
	send    cipher.AEAD
	sendSeq uint64

	recvMu   sync.Mutex
	recv     cipher.AEAD
	recvNext uint64 // lowest acceptable sequence number
}

// newSession keys a Session. The AEADs copy the keys, so callers may wipe
// theirs afterwards.
func newSession(initiator bool, sendKey, recvKey []byte) (*Session, error) {
	send, err := chacha20poly1305.New(sendKey)
	if err != nil {
		return nil, err
	}
	recv, err := chacha20poly1305.New(recvKey)
	if err != nil {
		return nil, err
	}
	return &Session{initiator: initiator, send: send, recv: recv}, nil
}

// Initiator reports whether this is the initiator's (receiver's) end.
func (s *Session) Initiator() bool { return s.initiator }

// nonce is the 96-bit ChaCha20-Poly1305 nonce for seq: 4 zero bytes, then
// the sequence number big-endian.
func nonce(h *[sealedHdr]byte) []byte {
	n := make([]byte, chacha20poly1305.NonceSize)
	copy(n[4:], h[1:])
	return n
}

// Seal encrypts plaintext into a Sealed frame for the peer. It fails with
// ErrTooLarge if plaintext exceeds MaxPlaintext.
func (s *Session) Seal(plaintext []byte) ([]byte, error) {
	if len(plaintext) > MaxPlaintext {
		return nil, fmt.Errorf("pake seal: %w", ErrTooLarge)
	}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	// MaxUint64 is never used, so the receiver's "next" never overflows.
	if s.sendSeq == math.MaxUint64 {
		return nil, fmt.Errorf("pake seal: %w", errSeqExhausted)
	}
	h := sealedHeader(s.sendSeq)
	out := make([]byte, sealedHdr, sealedHdr+len(plaintext)+tagLen)
	copy(out, h[:])
	out = s.send.Seal(out, nonce(&h), plaintext, h[:])
	s.sendSeq++
	return out, nil
}

// Open authenticates and decrypts a Sealed frame from the peer. It fails
// with ErrBadFrame if frame is not a well-formed Sealed frame, ErrReplay if
// its sequence number is not above the last accepted one, ErrDecrypt if it
// does not authenticate, and with the peer's abort error if frame is an
// Abort frame. A failed Open changes no state, so forged frames cannot
// desynchronise the session.
func (s *Session) Open(frame []byte) ([]byte, error) {
	pt, err := s.open(frame)
	if err != nil {
		return nil, fmt.Errorf("pake open: %w", err)
	}
	return pt, nil
}

func (s *Session) open(frame []byte) ([]byte, error) {
	if err := abortIfAbort(frame); err != nil {
		return nil, err
	}
	seq, ct, err := parseSealed(frame)
	if err != nil {
		return nil, err
	}
	if seq == math.MaxUint64 { // never sent by Seal
		return nil, ErrBadFrame
	}
	s.recvMu.Lock()
	defer s.recvMu.Unlock()
	if seq < s.recvNext {
		return nil, ErrReplay
	}
	h := sealedHeader(seq)
	pt, err := s.recv.Open(nil, nonce(&h), ct, h[:])
	if err != nil {
		return nil, ErrDecrypt
	}
	s.recvNext = seq + 1
	if pt == nil {
		pt = []byte{}
	}
	return pt, nil
}
