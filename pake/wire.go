// Handshake wire protocol, version 1.
//
// All frames are binary and relayed verbatim by the signalling server; the
// first byte is the Kind. Multi-byte integers are big-endian.
//
//	initiator (receiver)                              responder (sender)
//	Hello   [1][ver=1][sid:16][Ya:32]       ------->
//	                                        <-------  Reply   [2][Yb:32][MAC_b:32]
//	verify MAC_b
//	Confirm [3][MAC_a:32]                   ------->  verify MAC_a
//	Sealed  [4][seq:8][ChaCha20-Poly1305]   <------>  Sealed  [4][seq:8][...]
//	Abort   [5][reason]                     <------>  Abort   [5][reason]
//
// Abort may be sent by either side at any step; it is unauthenticated, so
// it can only ever make the receiving side fail (which a relay can cause
// anyway by dropping frames). Every length is fixed except Sealed, which is
// bounded by MaxPlaintext; any other length is ErrBadFrame.

package pake

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is the handshake protocol version carried in Hello. Bump it on
// any change to frames, key schedule or transcript: it is also bound into
// the CPace channel identifier, so versions can never interoperate by
// accident.
const Version = 1

// Kind is the first byte of every frame.
type Kind byte

// Frame kinds.
const (
	// KindHello opens the handshake (initiator -> responder).
	KindHello Kind = 1
	// KindReply answers Hello with the responder's share and MAC.
	KindReply Kind = 2
	// KindConfirm carries the initiator's MAC, completing the handshake.
	KindConfirm Kind = 3
	// KindSealed carries an encrypted signalling message, either way.
	KindSealed Kind = 4
	// KindAbort tells the peer the handshake or session failed, either way.
	KindAbort Kind = 5
)

// String names the kind, for logs.
func (k Kind) String() string {
	switch k {
	case KindHello:
		return "hello"
	case KindReply:
		return "reply"
	case KindConfirm:
		return "confirm"
	case KindSealed:
		return "sealed"
	case KindAbort:
		return "abort"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

// Abort reasons, the single payload byte of an Abort frame.
const (
	// AbortWrongPassword: key confirmation failed on the sender's side.
	AbortWrongPassword byte = 1
	// AbortVersion: the sender does not speak the peer's version.
	AbortVersion byte = 2
	// AbortBusy: the sender already has a transfer in progress.
	AbortBusy byte = 3
	// AbortOther: any other failure.
	AbortOther byte = 4
)

const (
	sidLen = 16 // CPace session id, chosen by the initiator
	macLen = 32 // HMAC-SHA256

	helloLen   = 1 + 1 + sidLen + pointLen
	replyLen   = 1 + pointLen + macLen
	confirmLen = 1 + macLen
	abortLen   = 1 + 1
	sealedHdr  = 1 + 8 // kind, sequence number
	// Sealed frames carry at least the Poly1305 tag and at most
	// MaxPlaintext plus the tag.
	sealedMin = sealedHdr + tagLen
	sealedMax = sealedHdr + MaxPlaintext + tagLen
)

// FrameKind returns the kind of frame b after checking that its length is
// valid for that kind, so callers can dispatch without parsing further. A
// Hello of another version is returned as KindHello whatever its length:
// Respond reports it as ErrVersion.
func FrameKind(b []byte) (Kind, error) {
	k, err := frameKind(b)
	if err != nil {
		return 0, fmt.Errorf("pake frame kind: %w", err)
	}
	return k, nil
}

func frameKind(b []byte) (Kind, error) {
	if len(b) == 0 {
		return 0, ErrBadFrame
	}
	k := Kind(b[0])
	ok := false
	switch k {
	case KindHello:
		ok = len(b) == helloLen || (len(b) >= 2 && b[1] != Version)
	case KindReply:
		ok = len(b) == replyLen
	case KindConfirm:
		ok = len(b) == confirmLen
	case KindSealed:
		ok = len(b) >= sealedMin && len(b) <= sealedMax
	case KindAbort:
		ok = len(b) == abortLen
	}
	if !ok {
		return 0, ErrBadFrame
	}
	return k, nil
}

// AbortFrame returns an Abort frame with the given reason (one of the
// Abort* constants; see AbortReason).
func AbortFrame(reason byte) []byte {
	return []byte{byte(KindAbort), reason}
}

// ParseAbort returns the reason of an Abort frame. Unknown reasons are
// returned as they are (a newer peer may add some); AbortError treats them
// as AbortOther.
func ParseAbort(b []byte) (reason byte, err error) {
	if len(b) != abortLen || Kind(b[0]) != KindAbort {
		return 0, fmt.Errorf("pake parse abort: %w", ErrBadFrame)
	}
	return b[1], nil
}

// AbortError maps an abort reason received from the peer to an error that
// wraps ErrPeerAborted and, where there is one, the matching sentinel
// (ErrWrongPassword, ErrVersion, ErrBusy).
func AbortError(reason byte) error {
	var specific error
	switch reason {
	case AbortWrongPassword:
		specific = ErrWrongPassword
	case AbortVersion:
		specific = ErrVersion
	case AbortBusy:
		specific = ErrBusy
	default:
		return ErrPeerAborted
	}
	return fmt.Errorf("%w: %w", ErrPeerAborted, specific)
}

// AbortReason picks the abort reason to send to the peer after err, so the
// peer's AbortError matches what went wrong here.
func AbortReason(err error) byte {
	switch {
	case err == nil:
		return AbortOther
	case errors.Is(err, ErrPeerAborted):
		// Never echo a peer's abort back: it would just bounce.
		return AbortOther
	case errors.Is(err, ErrWrongPassword):
		return AbortWrongPassword
	case errors.Is(err, ErrVersion):
		return AbortVersion
	case errors.Is(err, ErrBusy):
		return AbortBusy
	}
	return AbortOther
}

// abortIfAbort returns the peer's abort error if b is an Abort frame, so
// each handshake step reports why the peer gave up rather than a bare
// "unexpected frame".
func abortIfAbort(b []byte) error {
	if reason, err := ParseAbort(b); err == nil {
		return AbortError(reason)
	}
	return nil
}

// helloFrame encodes Hello.
func helloFrame(sid, ya []byte) []byte {
	b := make([]byte, 0, helloLen)
	b = append(b, byte(KindHello), Version)
	b = append(b, sid...)
	return append(b, ya...)
}

// parseHello returns the sid and initiator share of a Hello frame.
func parseHello(b []byte) (sid, ya []byte, err error) {
	if len(b) < 2 || Kind(b[0]) != KindHello {
		return nil, nil, ErrBadFrame
	}
	if b[1] != Version {
		return nil, nil, ErrVersion
	}
	if len(b) != helloLen {
		return nil, nil, ErrBadFrame
	}
	return b[2 : 2+sidLen], b[2+sidLen:], nil
}

// replyFrame encodes Reply.
func replyFrame(yb, mac []byte) []byte {
	b := make([]byte, 0, replyLen)
	b = append(b, byte(KindReply))
	b = append(b, yb...)
	return append(b, mac...)
}

// parseReply returns the responder share and MAC of a Reply frame.
func parseReply(b []byte) (yb, mac []byte, err error) {
	if len(b) != replyLen || Kind(b[0]) != KindReply {
		return nil, nil, ErrBadFrame
	}
	return b[1 : 1+pointLen], b[1+pointLen:], nil
}

// confirmFrame encodes Confirm.
func confirmFrame(mac []byte) []byte {
	return append([]byte{byte(KindConfirm)}, mac...)
}

// parseConfirm returns the MAC of a Confirm frame.
func parseConfirm(b []byte) (mac []byte, err error) {
	if len(b) != confirmLen || Kind(b[0]) != KindConfirm {
		return nil, ErrBadFrame
	}
	return b[1:], nil
}

// sealedHeader encodes the kind and sequence number, which are both the
// frame prefix and the AEAD additional data.
func sealedHeader(seq uint64) [sealedHdr]byte {
	var h [sealedHdr]byte
	h[0] = byte(KindSealed)
	binary.BigEndian.PutUint64(h[1:], seq)
	return h
}

// parseSealed returns the sequence number and ciphertext of a Sealed frame.
func parseSealed(b []byte) (seq uint64, ct []byte, err error) {
	if len(b) < sealedMin || len(b) > sealedMax || Kind(b[0]) != KindSealed {
		return 0, nil, ErrBadFrame
	}
	return binary.BigEndian.Uint64(b[1:sealedHdr]), b[sealedHdr:], nil
}
