package bulk

// Bulk stream protocol, version 1. It runs on a direct lane's UDP
// socket once DTLS has authenticated the other end (lane pins its
// certificate to the fingerprint in the sealed signalling); the lane's
// signalling version implies this one. The source (DTLS server) sends the
// stream; the downloader (DTLS client) acknowledges:
//
//	source                                        downloader
//	  |== DTLS handshake (keys exported: KeyLen) ====|
//	  |-- [D data] ... paced at the delivery rate -->|
//	  |<------------ [A ack: pn ranges, cum, limit] --|  (every ackEvery
//	  |-- [D] (lost ones again, new packet numbers) ->|   packets, after a
//	  |-- [P ping] when idle ------------------------>|   gap, or ackDelay)
//	  |<-- [C close] or [C close] ------------------->|  (either, once)
//
// Every packet is one datagram:
//
//	[0xC1][pn:8][frames sealed with AES-128-GCM][tag:16]
//
// The first byte says "bulk, version 1": no DTLS record (20-63), STUN
// message (0-3) or MTU probe ('P', 'K') starts with it, so one socket
// carries all. pn is the packet number, 0, 1, 2, ... in each direction,
// never reused: a retransmission is a new packet that carries old
// stream bytes, so an acknowledgement is never ambiguous (RFC 9002). The
// nonce is the direction's IV XOR pn; the header is the associated data.
// A packet that does not open is dropped, as is one whose number was
// already received: replay gains nothing.
//
// Frames, big-endian, any number per packet:
//
//	'D' data   ['D'][off:8][n:2][n bytes]      stream bytes [off, off+n)
//	'A' ack    ['A'][largest:8][delay:4][cum:8][limit:8][k:1]
//	           then k × [lo:8][hi:8]           packet numbers [lo, hi]
//	                                           received, highest first;
//	                                           delay: µs held before sent;
//	                                           cum: stream bytes held
//	                                           contiguously from 0; limit:
//	                                           the stream offset the
//	                                           receiver takes data up to
//	'P' ping   ['P']                           asks for an ack
//	'C' close  ['C'][n:1][n bytes of UTF-8]    the end: why (empty: done)
//
// The stream is a sequence of messages, each [len:4][len bytes] with len
// at most MaxMessage.

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"sync"
)

const (
	// Version is this protocol's; the packet's first byte carries it.
	Version    = 1
	packetType = 0xC0 | Version
	headerLen  = 1 + 8
	tagLen     = 16
	// Overhead is what a packet adds to its frames.
	Overhead = headerLen + tagLen
	// KeyLen is the keying material New takes: a key and an IV for each
	// direction, source's first.
	KeyLen  = 2 * (keySize + ivSize)
	keySize = 16
	ivSize  = 12

	// MaxMessage bounds one message.
	MaxMessage = 1 << 20

	dataHeader = 1 + 8 + 2
	ackHeader  = 1 + 8 + 4 + 8 + 8 + 1
	rangeLen   = 16
	// maxAckRanges bounds an ack frame; older gaps fall out of it and
	// their packets are declared lost by time instead.
	maxAckRanges = 32
	maxWhy       = 200
)

// Frame types.
const (
	frameData  = 'D'
	frameAck   = 'A'
	framePing  = 'P'
	frameClose = 'C'
)

// IsPacket reports whether a datagram is (claims to be) this protocol's,
// for a caller that shares the socket with DTLS.
func IsPacket(b []byte) bool { return len(b) >= Overhead && b[0] == packetType }

// sealer seals and opens the packets of one direction.
type sealer struct {
	aead cipher.AEAD
	iv   [ivSize]byte
	// mu guards n, the nonce's room: passed to the AEAD interface, a
	// nonce on the stack escapes, and cost an allocation per packet (7 %
	// of a LAN transfer's CPU in both ends' profiles).
	mu sync.Mutex
	n  [ivSize]byte
}

func newSealer(key, iv []byte) (*sealer, error) {
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, err
	}
	s := &sealer{aead: aead}
	copy(s.iv[:], iv)
	return s, nil
}

// nonceLocked sets n to pn's nonce.
func (s *sealer) nonceLocked(pn uint64) []byte {
	s.n = s.iv
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], pn)
	for i := range b {
		s.n[ivSize-8+i] ^= b[i]
	}
	return s.n[:]
}

// seal turns pkt, a header followed by plaintext frames, into a packet in
// place (it must have room for the tag) and returns it.
func (s *sealer) seal(pkt []byte, pn uint64) []byte {
	pkt[0] = packetType
	binary.BigEndian.PutUint64(pkt[1:], pn)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.aead.Seal(pkt[:headerLen], s.nonceLocked(pn), pkt[headerLen:], pkt[:headerLen])
}

// open checks and decrypts a packet in place, returning its number and
// frames.
func (s *sealer) open(pkt []byte) (uint64, []byte, error) {
	if !IsPacket(pkt) {
		return 0, nil, fmt.Errorf("%w: not a packet", ErrProtocol)
	}
	pn := binary.BigEndian.Uint64(pkt[1:])
	s.mu.Lock()
	frames, err := s.aead.Open(pkt[headerLen:headerLen], s.nonceLocked(pn), pkt[headerLen:], pkt[:headerLen])
	s.mu.Unlock()
	if err != nil {
		return 0, nil, fmt.Errorf("%w: packet does not open", ErrProtocol)
	}
	return pn, frames, nil
}

// ack is an ack frame in memory.
type ack struct {
	largest uint64
	delay   uint32 // µs
	cum     uint64
	limit   uint64
	ranges  []span // inclusive lo..hi as [lo, hi+1), highest first
}

// frame is one decoded frame; data aliases the packet.
type frame struct {
	typ  byte
	off  uint64
	data []byte
	ack  ack
	why  string
}

// nextFrame decodes the first frame of b and returns the rest. Every
// field is checked here against the frame itself; the caller checks them
// against its state.
func nextFrame(b []byte, f *frame) ([]byte, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty frame", ErrProtocol)
	}
	f.typ = b[0]
	switch f.typ {
	case frameData:
		if len(b) < dataHeader {
			return nil, fmt.Errorf("%w: short data frame", ErrProtocol)
		}
		f.off = binary.BigEndian.Uint64(b[1:])
		n := int(binary.BigEndian.Uint16(b[9:]))
		if n == 0 || len(b) < dataHeader+n || f.off > 1<<62 {
			return nil, fmt.Errorf("%w: bad data frame", ErrProtocol)
		}
		f.data = b[dataHeader : dataHeader+n]
		return b[dataHeader+n:], nil
	case frameAck:
		if len(b) < ackHeader {
			return nil, fmt.Errorf("%w: short ack frame", ErrProtocol)
		}
		a := &f.ack
		a.largest = binary.BigEndian.Uint64(b[1:])
		a.delay = binary.BigEndian.Uint32(b[9:])
		a.cum = binary.BigEndian.Uint64(b[13:])
		a.limit = binary.BigEndian.Uint64(b[21:])
		k := int(b[29])
		if k == 0 || k > maxAckRanges || len(b) < ackHeader+k*rangeLen || a.cum > a.limit || a.limit > 1<<62 {
			return nil, fmt.Errorf("%w: bad ack frame", ErrProtocol)
		}
		a.ranges = a.ranges[:0]
		next := a.largest // the highest a range may reach
		for i := range k {
			p := b[ackHeader+i*rangeLen:]
			lo, hi := binary.BigEndian.Uint64(p), binary.BigEndian.Uint64(p[8:])
			if lo > hi || hi > next || (i == 0 && hi != a.largest) {
				return nil, fmt.Errorf("%w: bad ack range", ErrProtocol)
			}
			a.ranges = append(a.ranges, span{lo, hi + 1})
			if lo < 2 {
				if i < k-1 {
					return nil, fmt.Errorf("%w: bad ack range", ErrProtocol)
				}
				break
			}
			next = lo - 2 // a gap of at least one
		}
		return b[ackHeader+k*rangeLen:], nil
	case framePing:
		return b[1:], nil
	case frameClose:
		if len(b) < 2 || len(b) < 2+int(b[1]) {
			return nil, fmt.Errorf("%w: short close frame", ErrProtocol)
		}
		f.why = string(b[2 : 2+int(b[1])])
		return b[2+int(b[1]):], nil
	}
	return nil, fmt.Errorf("%w: unknown frame %#x", ErrProtocol, f.typ)
}

func appendData(b []byte, off uint64, n int) []byte {
	b = append(b, frameData)
	b = binary.BigEndian.AppendUint64(b, off)
	return binary.BigEndian.AppendUint16(b, uint16(n))
}

// appendAck appends an ack of the packet numbers in got (ascending spans),
// its highest ranges first, at most maxAckRanges.
func appendAck(b []byte, got spans, delay uint32, cum, limit uint64) []byte {
	k := min(len(got), maxAckRanges)
	b = append(b, frameAck)
	b = binary.BigEndian.AppendUint64(b, got[len(got)-1].hi-1)
	b = binary.BigEndian.AppendUint32(b, delay)
	b = binary.BigEndian.AppendUint64(b, cum)
	b = binary.BigEndian.AppendUint64(b, limit)
	b = append(b, byte(k))
	for i := len(got) - 1; i >= len(got)-k; i-- {
		b = binary.BigEndian.AppendUint64(b, got[i].lo)
		b = binary.BigEndian.AppendUint64(b, got[i].hi-1)
	}
	return b
}

func appendClose(b []byte, why string) []byte {
	if len(why) > maxWhy {
		why = why[:maxWhy]
	}
	b = append(b, frameClose, byte(len(why)))
	return append(b, why...)
}
