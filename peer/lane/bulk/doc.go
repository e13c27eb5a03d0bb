// Package bulk is the transport of direct lanes: a reliable, ordered,
// one-way stream of messages over a datagram path, with its own loss
// recovery and a congestion controller that paces at the measured
// delivery rate instead of halving at every loss.
//
// It exists because SCTP as pion implements it took random loss for
// congestion (a 1 % loss path ran at a tenth of TCP's speed), waited out
// one-second retransmission timeouts after every lost retransmission,
// burst whole windows into shallow queues, and paid several allocations
// and goroutine wake-ups per packet. A direct lane is ours from socket to
// message, so it can do what TCP with BBR does: packet numbers that are
// never reused (RFC 9002's loss detection, no ambiguity after a
// retransmission), acknowledgements of ranges, a delivery-rate estimate,
// and pacing (docs/performance.md has the measurements).
//
// Package bulk never dials, reads a socket or learns a key's origin: the
// caller hands it received datagrams (Endpoint.Receive), a function that
// sends one, and keying material exported from the DTLS handshake that
// authenticated the other end (lane pins its certificate).
package bulk
