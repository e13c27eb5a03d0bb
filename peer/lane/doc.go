// Package lane is p2pxfer's transport: a secure, flow-controlled pipe of
// messages to one peer. It knows nothing of files, pieces or passwords.
//
// The end that dials (Transport.Dial) offers a WebRTC peer connection over
// a Signal, which the caller implements over its own end-to-end secure
// session with the peer (package peer: the PAKE); the end that accepts
// (Transport.Accept) answers. Both then hold a Conn whose first data
// channel carries messages both ways. Beyond it, where the path calls for
// them, the dialer opens lanes (Conn.More): further peer connections, or
// direct lanes (DTLS, then package bulk's paced stream, over a UDP socket
// of their own, with larger packets) where no NAT or relay lies between
// the peers, or a ride lane (the same stream on the first connection's
// own ICE pair) through NAT. Lanes carry
// messages from the accepting end to the dialing end only; the accepting
// end writes through its Set, which picks the lane each message goes on
// and holds writers back while a lane's buffer is full.
//
// The sealed signalling messages are defined in wire.go, the path MTU
// probes of direct lanes in pmtu.go, the stream in package bulk.
//
// lane never prints: diagnostics go to the Config's logger.
package lane
