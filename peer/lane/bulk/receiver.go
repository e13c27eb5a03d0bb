package bulk

import (
	"encoding/binary"
	"fmt"
	"time"
)

// receiver is the receiving end's state: stream bytes held ahead of the
// reader, and what to acknowledge. Guarded by the Endpoint's mu.
type receiver struct {
	// ring holds stream offset x at ring[x & (len-1)]. It starts small
	// and doubles as far as window when the source has that much in
	// flight: a LAN's round trip needs little of it, and a receiver has
	// a lane to each of its sources.
	ring    []byte
	window  int
	readOff uint64 // the reader has taken everything below
	held    spans  // received ranges at or above readOff

	// need is where the stream must be held up to for the waiting
	// reader's message to be whole (0: no reader waits): only then is it
	// woken, not at each of the dozens of packets a message takes.
	need uint64

	unacked      int // packets not yet acknowledged
	firstUnacked time.Time
	largestAt    time.Time
	ackNow       bool
	advertised   uint64 // the limit the last ack said
}

func newReceiver(window int) *receiver {
	return &receiver{ring: make([]byte, min(window, initialRing)), window: window}
}

// initialRing: a 64 KiB message and its neighbours.
const initialRing = 256 << 10

// grow makes the ring hold bytes up to end, moving what it holds.
func (r *receiver) grow(end uint64) {
	n := len(r.ring)
	for uint64(n) < end-r.readOff {
		n *= 2
	}
	ring := make([]byte, n)
	newMask, oldMask := uint64(n-1), uint64(len(r.ring)-1)
	for _, h := range r.held {
		for o := h.lo; o < h.hi; {
			k := copy(ring[o&newMask:], r.ring[o&oldMask:][:min(uint64(len(r.ring))-o&oldMask, h.hi-o)])
			o += uint64(k)
		}
	}
	r.ring = ring
}

// data takes stream bytes [off, off+len(b)).
func (r *receiver) data(off uint64, b []byte) error {
	end := off + uint64(len(b))
	if end > r.readOff+uint64(r.window) {
		return fmt.Errorf("%w: data beyond the window", ErrProtocol)
	}
	if end <= r.readOff {
		return nil // again, after an ack was lost
	}
	if off < r.readOff {
		b, off = b[r.readOff-off:], r.readOff
	}
	if end-r.readOff > uint64(len(r.ring)) {
		r.grow(end)
	}
	mask := uint64(len(r.ring) - 1)
	for o := off; len(b) > 0; {
		n := copy(r.ring[o&mask:], b)
		b, o = b[n:], o+uint64(n)
	}
	r.held.add(off, end)
	return nil
}

// next returns the length of the message at readOff once all of it is
// held; ok false while it is not.
func (r *receiver) next() (n int, ok bool, err error) {
	avail := r.held.firstGap(r.readOff) - r.readOff
	if avail < 4 {
		r.need = r.readOff + 4
		return 0, false, nil
	}
	var hdr [4]byte
	r.copyOut(hdr[:], r.readOff)
	l := binary.BigEndian.Uint32(hdr[:])
	if l > MaxMessage {
		return 0, false, fmt.Errorf("%w: message of %d bytes", ErrProtocol, l)
	}
	if avail < 4+uint64(l) {
		r.need = r.readOff + 4 + uint64(l)
		return int(l), false, nil
	}
	r.need = 0
	return int(l), true, nil
}

// whole reports whether the waiting reader's message is now whole.
func (r *receiver) whole() bool {
	return r.need != 0 && r.held.firstGap(r.readOff) >= r.need
}

func (r *receiver) copyOut(dst []byte, off uint64) {
	mask := uint64(len(r.ring) - 1)
	for len(dst) > 0 {
		n := copy(dst, r.ring[off&mask:])
		dst, off = dst[n:], off+uint64(n)
	}
}

// take copies the message of length n at readOff into p and moves past
// it; it says whether the window opened enough to tell the source.
func (r *receiver) take(p []byte, n int) bool {
	r.copyOut(p[:n], r.readOff+4)
	r.readOff += 4 + uint64(n)
	r.held.trimBelow(r.readOff)
	return r.readOff+uint64(r.window)-r.advertised >= uint64(r.window/4)
}
