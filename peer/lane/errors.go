package lane

import "errors"

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
