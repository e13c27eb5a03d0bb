package pake

import "errors"

// Sentinel errors. Every error the package returns wraps one of these with
// the operation's name ("pake respond: ..."), so callers test with
// errors.Is and users still see where it failed.
var (
	// ErrWrongPassword: key confirmation failed. With an honest server this
	// means the two sides typed different passwords (or different room/peer
	// IDs went into Params); it is also what a tampering server causes.
	ErrWrongPassword = errors.New("wrong password")
	// ErrVersion: the peer speaks another handshake protocol version.
	ErrVersion = errors.New("unsupported handshake version")
	// ErrBadFrame: a frame has an unknown kind, the wrong length for its
	// kind, or is not the kind expected at this step.
	ErrBadFrame = errors.New("malformed handshake frame")
	// ErrBadPoint: the peer's CPace share is not a canonical ristretto255
	// encoding, or is the identity element.
	ErrBadPoint = errors.New("invalid CPace share")
	// ErrReplay: a sealed frame's sequence number is not greater than the
	// last one accepted (a replay or reordering by the relay).
	ErrReplay = errors.New("replayed or reordered sealed frame")
	// ErrDecrypt: a sealed frame failed authentication (tampered, or sealed
	// with another key).
	ErrDecrypt = errors.New("sealed frame failed authentication")
	// ErrPeerAborted: the peer sent an abort frame. Abort errors also wrap
	// the specific sentinel for their reason (ErrWrongPassword, ErrVersion,
	// ErrBusy) when there is one.
	ErrPeerAborted = errors.New("peer aborted the handshake")
	// ErrBusy: the peer is already transferring with someone else.
	ErrBusy = errors.New("peer busy")
	// ErrTooLarge: Seal was given more than MaxPlaintext bytes.
	ErrTooLarge = errors.New("plaintext too large")
	// ErrFinished: a handshake step was called again. Each Initiator and
	// Responder is single-use, even after an error, so a peer gets exactly
	// one password guess per handshake.
	ErrFinished = errors.New("handshake already finished")
)
