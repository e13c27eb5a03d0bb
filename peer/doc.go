// Package peer is the swarm: it serves a room's files (Serve) and
// downloads them (Receive) from many peers at once, the sender, seeds and
// other receivers, verifying every piece before it is kept and passing on
// what it holds.
//
// A receiver asks the signalling server for sources and joins each
// lazily: only then does it run the PAKE (package pake) with it, and only
// after that does the transport (package lane) make the WebRTC offer. The
// PAKE session seals every signalling message end to end, so the
// signalling server can neither read addresses nor swap DTLS
// fingerprints; link.go carries them for the transport, which never sees
// the password. Over each connection the data channel protocol (wire.go)
// moves the signed manifest (trust.go), have-bitmaps, requests and pieces;
// the scheduler (package sched) says what to ask of whom, and a receiver
// that finishes stays as a seed.
//
// peer never prints: callers learn what happens through callbacks and
// returned errors.
package peer
