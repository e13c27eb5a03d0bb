package lane

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Sentinel errors. Errors returned by this package wrap one of these, or
// an error of the Signal the caller gave (which may wrap ErrTampered).
var (
	// ErrConnect: no working path to the peer (ICE, DTLS or SCTP did not
	// come up in time). Usually a firewall or NAT between the peers.
	ErrConnect = errors.New("could not connect to peer")
	// ErrTampered: a sealed signalling message failed authentication, so
	// something between the peers (the signalling server, say) altered it.
	// Signal implementations wrap it; this package only passes it on.
	ErrTampered = errors.New("signalling message was tampered with")
	// ErrProtocol: the peer broke the sealed signalling protocol (a
	// message out of place, a malformed field, ...).
	ErrProtocol = errors.New("peer protocol violation")
	// ErrVersion: the peer speaks another version of the sealed
	// signalling protocol, so it runs another release of p2pxfer.
	ErrVersion = errors.New("the peer runs another p2pxfer version")
	// ErrRemote: the peer gave up and said why.
	ErrRemote = errors.New("peer ended the transfer")
	// ErrPeerLeft: a connection to the peer was lost, or writing to it
	// failed.
	ErrPeerLeft = errors.New("peer left")
)

// ConnectError says why no connection came up, from what ICE had to try:
// the kinds of candidates each end gathered, and whether a relay was
// among them. It wraps ErrConnect.
type ConnectError struct {
	// Why is what ended the attempt: "ICE failed", or a timeout.
	Why string
	// Ours and Theirs are the candidate types ("host", "srflx", "relay",
	// ...) this end and the other end offered.
	Ours, Theirs []string
}

func (e *ConnectError) Error() string {
	words := map[string]string{"host": "local", "srflx": "public (through NAT)", "prflx": "peer-reflexive", "relay": "relay"}
	tried := func(types []string) string {
		if len(types) == 0 {
			return "none"
		}
		var out []string
		for _, t := range types {
			out = append(out, cmp.Or(words[t], t))
		}
		return strings.Join(out, ", ")
	}
	msg := fmt.Sprintf("%v: %s; addresses tried: %s here, %s there", ErrConnect, e.Why, tried(e.Ours), tried(e.Theirs))
	if !e.Relayed() {
		msg += "; no relay"
	}
	return msg
}

func (e *ConnectError) Unwrap() error { return ErrConnect }

// Relayed reports whether either end offered a relay candidate, so that
// even a relay did not help.
func (e *ConnectError) Relayed() bool {
	return slices.Contains(e.Ours, "relay") || slices.Contains(e.Theirs, "relay")
}
