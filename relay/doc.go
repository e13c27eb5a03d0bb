// Package relay is p2pxfer's TURN relay (RFC 8656, with pion/turn), run
// beside the signalling server by `p2pxfer signal --turn`, for peers that
// no direct path joins: symmetric NATs, carrier-grade NAT, firewalls that
// let nothing in.
//
// It takes the sockets it serves on (UDP, and TCP for networks that block
// UDP) and answers STUN binding requests on them too. Credentials are TURN
// REST style: the user name is "expiry:id", the password the base64
// HMAC-SHA1 of it under a secret only the relay and the signalling server
// hold (Credentials). The signalling server hands them to members of a
// room; Config.Valid says whether an id still counts, so they die with
// the room whatever their expiry.
//
// Peers' data crosses the relay inside their own DTLS: it sees only
// ciphertext. What it will relay to is restricted (Config.Deny and
// Allowed): never to loopback, link-local, multicast or unspecified
// addresses, nor to the relay host's own addresses, so that a credential
// is no way into the server's host. Each credential has its own bounds on
// allocations and bandwidth.
//
// relay never prints: diagnostics go to the Config's logger.
package relay
