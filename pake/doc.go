// Package pake authenticates the two ends of a p2pxfer transfer with the
// room password and then protects their signalling messages, without the
// password or any key ever reaching the signalling server.
//
// The receiver (initiator) and sender (responder) run CPace
// (draft-irtf-cfrg-cpace) over ristretto255 with SHA-512 through the
// server, which only relays opaque frames. Both sides prove knowledge of
// the derived keys (explicit key confirmation) before either accepts a
// sealed message; afterwards every SDP offer/answer and ICE candidate
// travels as a Session-sealed frame (ChaCha20-Poly1305, one key and one
// strictly increasing sequence number per direction). A server that
// guesses gets one online password guess per handshake and learns nothing
// it can test offline.
//
// This is its own package because it is pure cryptography with a tiny
// binary wire format: it depends on nothing of pion or the peer package,
// so it can be checked in isolation against the CFRG CPace test vectors,
// and every function that parses peer bytes is fuzzed as a decoder of
// hostile network input. Keeping it separate also keeps the security
// argument reviewable in one place.
//
// Typical use (see wire.go for the frame layout):
//
//	receiver (initiator)                      sender (responder)
//	ini, hello, _ := NewInitiator(pw, p)  --> resp, reply, err := Respond(pw, p, hello)
//	s, confirm, err := ini.Finish(reply)  <--
//	                                      --> s, err := resp.Finish(confirm)
//	s.Seal / s.Open                       <-> s.Seal / s.Open
//
// On a local failure a side should send AbortFrame(AbortReason(err)) so the
// other learns quickly; abort frames are unauthenticated and only ever make
// the receiving side fail.
package pake
