package sched

import "errors"

// Sentinel errors. Functions wrap them with details; test with errors.Is.
var (
	// ErrBadLayout: the Layout given to New is inconsistent (a piece in no
	// stripe or in two, a Need out of range, a data piece outside its
	// stripe, a size not positive, ...).
	ErrBadLayout = errors.New("invalid piece layout")

	// ErrBadOptions: an Options field is out of range.
	ErrBadOptions = errors.New("invalid scheduler options")

	// ErrBadBitmap: a peer's bitmap has the wrong length for the layout or
	// bits set past the last piece.
	ErrBadBitmap = errors.New("invalid have bitmap")

	// ErrPeerExists: AddPeer was called with an id already connected.
	ErrPeerExists = errors.New("peer already added")

	// ErrBanned: the peer id was banned for sending bad data and is never
	// given work again.
	ErrBanned = errors.New("peer is banned")
)
