package lane

import (
	"encoding/binary"
	"net"
	"sync"
	"time"
)

// sackGap is the least time between two plain SACKs a downloader sends on
// a direct lane. pion acknowledges every second packet it reads: on one
// host that is a SACK every ~130 µs, each one sealed, sent and woken for on
// both sides; with 200 µs, about one in nine leaves (docs/performance.md).
// The sender does not run dry for it: an 8 MiB window lasts ~40 ms at
// 200 MB/s, and pion grows its congestion window by the bytes a SACK
// acknowledges, not by the number of SACKs. Where SACKs come further apart
// than this, none is held.
const sackGap = 200 * time.Microsecond

// sackPacer sits between a downloader's SCTP association and its DTLS
// connection on a direct lane and holds back plain SACKs, which only move
// the cumulative acknowledgement: at most one leaves per gap, the latest,
// which says all that the ones held back said. A SACK that reports a gap or
// a duplicate leaves at once, since the sender's fast retransmit needs it,
// and one held back leaves when the gap ends, so the sender never waits for
// a timeout. Every other packet passes through untouched.
type sackPacer struct {
	net.Conn
	gap time.Duration

	mu      sync.Mutex // held across writes, so SACKs leave in order
	last    time.Time  // when a SACK last left
	pending []byte     // the latest SACK held back; nil when none
	buf     [plainSackLen]byte
	armed   bool // timer set to send pending
	closed  bool
	timer   *time.Timer

	plain, held int // plain SACKs written by SCTP, and held back of them
}

const (
	sctpCommonHeaderLen = 12
	sctpChunkSack       = 3
	// plainSackLen is a packet of one SACK chunk without gap blocks or
	// duplicate TSNs (RFC 9260 section 3.3.4).
	plainSackLen = sctpCommonHeaderLen + 16
)

func newSackPacer(c net.Conn, gap time.Duration) *sackPacer {
	s := &sackPacer{Conn: c, gap: gap}
	s.timer = time.AfterFunc(time.Hour, s.flush)
	s.timer.Stop()
	return s
}

// isSack says whether p, an SCTP packet of our own association, leads with
// a SACK chunk, and whether it is nothing but a plain one.
func isSack(p []byte) (sack, plain bool) {
	if len(p) < sctpCommonHeaderLen+4 || p[sctpCommonHeaderLen] != sctpChunkSack {
		return false, false
	}
	n := binary.BigEndian.Uint16(p[sctpCommonHeaderLen+2:])
	return true, len(p) == plainSackLen && n == plainSackLen-sctpCommonHeaderLen
}

// Write is called by the association's write loop, one packet at a time.
func (s *sackPacer) Write(p []byte) (int, error) {
	sack, plain := isSack(p)
	if !sack {
		return s.Conn.Write(p)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if plain {
		s.plain++
	}
	if since := now.Sub(s.last); plain && since < s.gap && !s.closed {
		s.held++
		s.pending = s.buf[:copy(s.buf[:], p)]
		if !s.armed {
			s.armed = true
			s.timer.Reset(s.gap - since)
		}
		return len(p), nil
	}
	s.pending = nil // p says as much, and more
	s.last = now
	return s.Conn.Write(p)
}

func (s *sackPacer) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed = false
	if s.pending == nil || s.closed {
		return
	}
	s.last = time.Now()
	// An error means the connection is closing; the association learns
	// that from its own next write.
	_, _ = s.Conn.Write(s.pending)
	s.pending = nil
}

// counts returns how many plain SACKs SCTP wrote and how many of them
// were held back.
func (s *sackPacer) counts() (plain, held int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.plain, s.held
}

// Close drops a SACK still held: the association is going away.
func (s *sackPacer) Close() error {
	s.mu.Lock()
	s.closed = true
	s.pending = nil
	s.timer.Stop()
	s.mu.Unlock()
	return s.Conn.Close()
}
