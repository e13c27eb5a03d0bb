package room

import (
	"crypto/rand"
	"fmt"
	"strings"
)

// Alphabet is what room IDs and generated passwords are made of: lowercase
// letters and digits without the look-alikes 0/o, 1/l/i, so an ID read aloud
// or copied from a screen is typed right the first time.
const Alphabet = "23456789abcdefghjkmnpqrstuvwxyz"

// RoomIDLen is the length of a room ID: 31^8, about 39.6 bits. The room ID
// only names a room; the password is what keeps others out.
const RoomIDLen = 8

// PeerIDLen is the length of the server-assigned peer IDs.
const PeerIDLen = 12

// Generated passwords are two groups of PasswordGroup characters joined by
// '-': 31^10, about 49.5 bits, which CPace makes an online-only guess.
const PasswordGroup = 5

// NewRoomID returns a fresh random room ID. It is never derived from the
// password.
func NewRoomID() (string, error) { return randomString(RoomIDLen) }

// NewPeerID returns a fresh random peer ID.
func NewPeerID() (string, error) { return randomString(PeerIDLen) }

// NewPassword returns a fresh password that is easy to read aloud and type,
// e.g. "k7m2x-pq9fd".
func NewPassword() (string, error) {
	a, err := randomString(PasswordGroup)
	if err != nil {
		return "", err
	}
	b, err := randomString(PasswordGroup)
	if err != nil {
		return "", err
	}
	return a + "-" + b, nil
}

// ValidRoomID reports whether s has the form of a room ID.
func ValidRoomID(s string) bool { return len(s) == RoomIDLen && inAlphabet(s) }

// ValidPeerID reports whether s has the form of a peer ID.
func ValidPeerID(s string) bool { return len(s) == PeerIDLen && inAlphabet(s) }

// NormalizeRoomID forgives what people do when typing an ID: surrounding
// spaces and capitals.
func NormalizeRoomID(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func inAlphabet(s string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(Alphabet, s[i]) < 0 {
			return false
		}
	}
	return true
}

// randomString draws n characters uniformly from Alphabet by rejection
// sampling, so no character is more likely than another.
func randomString(n int) (string, error) {
	const limit = 256 - 256%len(Alphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("random ID: %w", err)
		}
		for _, c := range buf {
			if int(c) < limit && len(out) < n {
				out = append(out, Alphabet[int(c)%len(Alphabet)])
			}
		}
	}
	return string(out), nil
}
