// Package peer moves files between two p2pxfer peers over WebRTC data
// channels (pion). A receiver joins lazily: it runs the PAKE with the sender
// through the signalling server, then creates the offer; every SDP and ICE
// candidate travels sealed with the PAKE key, so the signalling server can
// neither read addresses nor swap DTLS fingerprints. The sender answers and
// serves chunks on request; the receiver verifies each chunk against the
// manifest before it is written.
//
// peer never prints: callers learn what happens through callbacks and
// returned errors.
package peer
