package room

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Sentinel errors of the signalling protocol. Each that can cross the wire
// has a Code; ErrorFromCode and CodeOf map between the two, so a caller can
// test with errors.Is whichever side produced the error.
var (
	// ErrBadMessage: a frame is not valid JSON or lacks what its type needs.
	ErrBadMessage = errors.New("malformed signalling message")
	// ErrTooLarge: a frame or its data exceeds the protocol's limits.
	ErrTooLarge = errors.New("signalling message too large")
	// ErrVersion: the peer speaks another protocol version.
	ErrVersion = errors.New("signalling protocol version mismatch")
	// ErrRoomNotFound: no room with that ID exists (mistyped, or expired).
	ErrRoomNotFound = errors.New("room not found")
	// ErrRoomClosed: the room's host closed it or went away.
	ErrRoomClosed = errors.New("room closed")
	// ErrRateLimited: too many joins or rooms from this address; retry later.
	ErrRateLimited = errors.New("rate limited by signalling server")
	// ErrServerFull: the server is at its connection or room limit.
	ErrServerFull = errors.New("signalling server full")
	// ErrNotAllowed: the message is not allowed in this state (for example a
	// relay to a peer that is not the other end of a handshake).
	ErrNotAllowed = errors.New("not allowed by signalling server")
	// ErrPeerGone: the peer a relay was addressed to has left.
	ErrPeerGone = errors.New("peer gone")
	// ErrTooManyFailures: the host closed the room after too many wrong
	// passwords.
	ErrTooManyFailures = errors.New("room closed after too many wrong passwords")
	// ErrInternal: the server failed; nothing the client did.
	ErrInternal = errors.New("signalling server error")
)

// Code is the wire form of an error.
type Code string

// Wire error codes.
const (
	CodeBadMessage      Code = "bad_message"
	CodeTooLarge        Code = "too_large"
	CodeVersion         Code = "version"
	CodeRoomNotFound    Code = "room_not_found"
	CodeRoomClosed      Code = "room_closed"
	CodeRateLimited     Code = "rate_limited"
	CodeServerFull      Code = "server_full"
	CodeNotAllowed      Code = "not_allowed"
	CodePeerGone        Code = "peer_gone"
	CodeTooManyFailures Code = "too_many_failures"
	CodeInternal        Code = "internal"
)

var codeErrs = map[Code]error{
	CodeBadMessage:      ErrBadMessage,
	CodeTooLarge:        ErrTooLarge,
	CodeVersion:         ErrVersion,
	CodeRoomNotFound:    ErrRoomNotFound,
	CodeRoomClosed:      ErrRoomClosed,
	CodeRateLimited:     ErrRateLimited,
	CodeServerFull:      ErrServerFull,
	CodeNotAllowed:      ErrNotAllowed,
	CodePeerGone:        ErrPeerGone,
	CodeTooManyFailures: ErrTooManyFailures,
	CodeInternal:        ErrInternal,
}

func (c Code) known() bool { _, ok := codeErrs[c]; return ok }

// Fatal reports whether an error with this code ends the connection. The
// others answer one message (a relay to a peer that just left, say).
func (c Code) Fatal() bool {
	return c != CodePeerGone && c != CodeNotAllowed
}

// CodeOf returns the wire code for err, CodeInternal for errors that have
// none.
func CodeOf(err error) Code {
	for c, e := range codeErrs {
		if errors.Is(err, e) {
			return c
		}
	}
	return CodeInternal
}

// ErrorFromCode turns a received error message into an error that wraps the
// matching sentinel; text is the server's explanation, shown to the user.
func ErrorFromCode(c Code, text string) error {
	e, ok := codeErrs[c]
	if !ok {
		e = ErrInternal
	}
	// ErrorMessage sends err.Error(), which for a wrapped sentinel starts
	// with the sentinel's own text; drop it so it is not shown twice.
	text = strings.TrimPrefix(text, e.Error()+": ")
	if text == "" || text == e.Error() {
		return e
	}
	return fmt.Errorf("%w: %s", e, text)
}

// ErrorMessage builds the wire message for err.
func ErrorMessage(err error) *Message {
	c := CodeOf(err)
	// Invalid UTF-8 would go on the wire as U+FFFD, three bytes for one,
	// and a rune cut in half likewise: either can push the decoded text
	// past the 512 bytes Validate allows, and the receiver would refuse the
	// whole message. So replace first, then cut at a rune boundary.
	text := strings.ToValidUTF8(err.Error(), "\uFFFD")
	if len(text) > 512 {
		i := 512
		for i > 0 && !utf8.RuneStart(text[i]) {
			i--
		}
		text = text[:i]
	}
	return &Message{Type: TypeError, Code: c, Text: text}
}
