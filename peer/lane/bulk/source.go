package bulk

import (
	"encoding/binary"
	"fmt"
	"time"
)

// source is the sending end's state: the stream bytes not yet
// acknowledged, the packets in flight, loss recovery (RFC 9002) and the
// pacer. All of it is guarded by the Endpoint's mu.
type source struct {
	mtu int
	cc  *bbr

	// The stream: bytes [acked, written) sit in ring at offset & mask.
	ring           []byte
	written, acked uint64
	ackedAbove     spans  // acknowledged ranges above acked
	sentOff        uint64 // the next byte never sent
	rtx            spans  // ranges to send again
	limit          uint64 // the receiver takes bytes below it
	maxPayload     int
	bufs           [][]byte // packet buffers, reused each fill
	closing        bool

	// Packets sent and not yet acknowledged or lost: pkts[i] is number
	// base+i.
	pkts       []sentPacket
	base       uint64
	ackedUpTo  uint64 // one above the largest number acknowledged
	gaps       spans  // numbers below ackedUpTo not acknowledged
	inflight   int
	lossTime   time.Time
	lastSent   time.Time // of the last packet that asks for an ack
	ptoCount   int
	probes     int // packets a PTO lets out whatever the window and pacer
	pingDue    bool
	srtt, rttv time.Duration
	reorder    time.Duration // how late the path was seen to deliver (RFC 8985)

	// Delivery-rate sampling (draft-cheng-iccrg-delivery-rate-estimation).
	delivered       uint64
	deliveredAt     time.Time
	firstSentAt     time.Time
	appLimitedUntil uint64

	tokens   float64
	tokensAt time.Time
}

type sentPacket struct {
	off         uint64
	n           int // stream bytes carried
	size        int // bytes on the wire
	sent        time.Time
	delivered   uint64
	deliveredAt time.Time
	firstSentAt time.Time
	appLimited  bool
	state       pktState
}

type pktState uint8

const (
	inFlight pktState = iota
	acked
	lost
)

func newSource(cfg Config) *source {
	s := &source{mtu: cfg.MTU, cc: newBBR(cfg.MTU, cfg.RTT), limit: uint64(minWindow),
		maxPayload: cfg.MTU - Overhead - dataHeader}
	s.ring = make([]byte, 1<<16)
	now := time.Now()
	s.deliveredAt, s.firstSentAt, s.tokensAt = now, now, now
	return s
}

// minWindow is what a source may send before the receiver's first ack
// says its window: the smallest a receiver can have.
const minWindow = 2 * MaxMessage

func (s *source) buffered() uint64 { return s.written - s.acked }

// write appends one message to the stream; false while it does not fit.
func (s *source) write(msg []byte) bool {
	need := s.buffered() + 4 + uint64(len(msg))
	if need > maxBuffered && s.buffered() > 0 {
		return false
	}
	if need > uint64(len(s.ring)) {
		n := len(s.ring)
		for uint64(n) < need {
			n *= 2
		}
		// The new ring is indexed by offset too, so what it holds moves.
		held := make([]byte, s.buffered())
		s.copyOut(held, s.acked)
		s.ring = make([]byte, n)
		s.copyIn(s.acked, held)
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(msg)))
	s.copyIn(s.written, hdr[:])
	s.copyIn(s.written+4, msg)
	s.written += 4 + uint64(len(msg))
	return true
}

func (s *source) copyIn(off uint64, b []byte) {
	mask := uint64(len(s.ring) - 1)
	for len(b) > 0 {
		i := off & mask
		n := copy(s.ring[i:], b)
		b, off = b[n:], off+uint64(n)
	}
}

func (s *source) copyOut(dst []byte, off uint64) {
	mask := uint64(len(s.ring) - 1)
	for len(dst) > 0 {
		i := off & mask
		n := copy(dst, s.ring[i:])
		dst, off = dst[n:], off+uint64(n)
	}
}

// onAck takes an ack frame: what it acknowledges, what it shows lost, and
// what it says of the path.
func (s *source) onAck(a *ack, now time.Time, sentPN uint64, st *Stats) error {
	nextPN := s.base + uint64(len(s.pkts))
	if a.largest >= sentPN {
		return fmt.Errorf("%w: ack of packet %d, never sent", ErrProtocol, a.largest)
	}
	if a.cum > s.sentOff {
		return fmt.Errorf("%w: ack of stream bytes never sent", ErrProtocol)
	}
	s.limit = max(s.limit, a.limit)
	var (
		priorDeliv    uint64
		priorTime     time.Time
		sendElapsed   time.Duration
		appLimited    bool
		sampled       bool
		largestNewly  *sentPacket
		newly         bool
		prevAckedUpTo = s.ackedUpTo
		ackedBytes    int
	)
	take := func(pn uint64) {
		if pn < s.base || pn >= nextPN {
			return
		}
		p := &s.pkts[pn-s.base]
		if p.state == acked {
			return
		}
		if p.state == inFlight {
			s.inflight -= p.size
		}
		if p.state == lost {
			// Not lost, only late: the path reorders. Wait that much
			// longer before calling a packet lost (RFC 8985's reordering
			// window), and by time alone from now on.
			st.Spurious++
			late := now.Sub(p.sent) - s.srtt
			s.reorder = min(max(s.reorder, late*5/4), maxReorder)
			s.cc.onSpurious(p.size)
		}
		p.state = acked
		newly = true
		if p.n > 0 {
			s.ackedAbove.add(p.off, p.off+uint64(p.n))
		}
		s.delivered += uint64(p.size)
		ackedBytes += p.size
		s.deliveredAt = now
		if !sampled || p.delivered > priorDeliv {
			sampled = true
			priorDeliv, priorTime = p.delivered, p.deliveredAt
			sendElapsed = p.sent.Sub(p.firstSentAt)
			appLimited = p.appLimited
			s.firstSentAt = p.sent
		}
		if pn == a.largest {
			largestNewly = p
		}
	}
	for _, r := range a.ranges {
		// Above what was acknowledged before, every number is new; below
		// it only the gaps can be.
		for pn := max(r.lo, prevAckedUpTo); pn < r.hi; pn++ {
			take(pn)
		}
		if r.lo < prevAckedUpTo {
			for _, g := range s.gaps {
				for pn := max(g.lo, r.lo); pn < min(g.hi, r.hi, prevAckedUpTo); pn++ {
					take(pn)
				}
			}
		}
	}
	if a.largest+1 > s.ackedUpTo {
		// Numbers passed over on the way up are gaps until acknowledged.
		lo := s.ackedUpTo
		s.ackedUpTo = a.largest + 1
		for pn := lo; pn < s.ackedUpTo; pn++ {
			if pn >= s.base && s.pkts[pn-s.base].state != acked {
				s.gaps.add(pn, pn+1)
			}
		}
	}
	// Drop from gaps what is acknowledged now.
	if newly && len(s.gaps) > 0 {
		var keep spans
		for _, g := range s.gaps {
			for pn := max(g.lo, s.base); pn < g.hi; pn++ {
				if s.pkts[pn-s.base].state != acked {
					keep.add(pn, pn+1)
				}
			}
		}
		s.gaps = keep
	}
	// The receiver holds [0, cum): acknowledged whatever packets carried it.
	s.ackedAbove.add(s.acked, a.cum)
	s.acked = max(s.acked, s.ackedAbove.firstGap(s.acked))
	s.ackedAbove.trimBelow(s.acked)
	if !newly {
		return nil
	}
	st.Acks++
	s.ptoCount = 0
	var rtt time.Duration
	if largestNewly != nil {
		latest := now.Sub(largestNewly.sent)
		delay := time.Duration(a.delay) * time.Microsecond
		adj := latest
		if m := s.cc.minRTT; latest-delay >= m || m == 0 {
			adj = latest - min(delay, latest)
		}
		if s.srtt == 0 {
			s.srtt, s.rttv = adj, adj/2
		} else {
			d := s.srtt - adj
			if d < 0 {
				d = -d
			}
			s.rttv = (3*s.rttv + d) / 4
			s.srtt = (7*s.srtt + adj) / 8
		}
		rtt = max(adj, time.Microsecond)
	}
	if s.appLimitedUntil > 0 && s.delivered > s.appLimitedUntil {
		s.appLimitedUntil = 0
	}
	s.detectLoss(now, st)
	rs := rateSample{rtt: rtt, inflight: s.inflight, acked: ackedBytes, totalDeliv: s.delivered, priorDeliv: priorDeliv, appLimited: appLimited}
	if sampled {
		rs.delivered = s.delivered - priorDeliv
		rs.interval = max(sendElapsed, now.Sub(priorTime))
		if rs.interval < s.cc.minRTT {
			rs.interval = 0 // acks bunched up: no rate to read
		}
	}
	s.cc.onAck(now, rs)
	s.pop(now)
	return nil
}

// lossDelay is RFC 9002's time threshold: 9/8 of the round trip, plus
// as much as the path was seen to reorder.
func (s *source) lossDelay() time.Duration {
	return max(s.srtt*9/8, time.Millisecond) + s.reorder
}

// maxReorder bounds the reordering window: a path that delivers a packet
// this late has lost it as far as the stream is concerned.
const maxReorder = 250 * time.Millisecond

// keepLost is how long a packet declared lost is remembered, so that a
// late acknowledgement of it shows the path reorders.
func (s *source) keepLost() time.Duration { return 2*s.lossDelay() + 20*time.Millisecond }

// detectLoss declares lost the packets RFC 9002 says are: three numbers
// or lossDelay behind one acknowledged.
func (s *source) detectLoss(now time.Time, st *Stats) {
	s.lossTime = time.Time{}
	if len(s.gaps) == 0 {
		return
	}
	delay := s.lossDelay()
	for _, g := range s.gaps {
		for pn := max(g.lo, s.base); pn < g.hi; pn++ {
			p := &s.pkts[pn-s.base]
			if p.state != inFlight {
				continue
			}
			if s.reorder == 0 && s.ackedUpTo >= pn+4 || !now.Before(p.sent.Add(delay)) {
				p.state = lost
				s.inflight -= p.size
				s.cc.onLost(p.size)
				st.Lost++
				if p.n > 0 {
					s.rtx.add(p.off, p.off+uint64(p.n))
				} else {
					s.pingDue = true
				}
				continue
			}
			if t := p.sent.Add(delay); s.lossTime.IsZero() || t.Before(s.lossTime) {
				s.lossTime = t
			}
		}
	}
}

// pop forgets the packets at the front that were acknowledged, or lost
// long enough ago (keepLost).
func (s *source) pop(now time.Time) {
	i := 0
	keep := s.keepLost()
	for i < len(s.pkts) && (s.pkts[i].state == acked || s.pkts[i].state == lost && now.Sub(s.pkts[i].sent) > keep) {
		i++
	}
	if i == 0 {
		return
	}
	s.base += uint64(i)
	s.pkts = append(s.pkts[:0], s.pkts[i:]...)
	s.gaps.trimBelow(s.base)
}

// pto is the probe timeout: how long without an ack before the source
// sends a probe (RFC 9002).
func (s *source) pto() time.Duration {
	srtt, v := s.srtt, s.rttv
	if srtt == 0 {
		srtt, v = s.cc.rtt(), s.cc.rtt()/2
	}
	return (srtt + max(4*v, time.Millisecond) + ackDelay) << min(s.ptoCount, 6)
}

// nextRtx is the next range to send again, at most n bytes, skipping
// what was acknowledged since it was lost.
func (s *source) nextRtx(n int) (uint64, int, bool) {
	for len(s.rtx) > 0 {
		r := &s.rtx[0]
		lo := max(r.lo, s.acked)
		if s.ackedAbove.contains(lo) {
			lo = s.ackedAbove.firstGap(lo)
		}
		if lo >= r.hi {
			s.rtx = append(s.rtx[:0], s.rtx[1:]...)
			continue
		}
		hi := min(r.hi, lo+uint64(n), s.ackedAbove.nextStart(lo))
		r.lo = hi
		if r.lo >= r.hi {
			s.rtx = append(s.rtx[:0], s.rtx[1:]...)
		}
		return lo, int(hi - lo), true
	}
	return 0, 0, false
}

// fill builds the packets the window and the pacer allow now, numbered
// but not sealed (run seals them outside the lock), and says when to look
// again if nothing else wakes the loop first.
func (s *source) fill(e *Endpoint, now time.Time, out [][]byte) ([][]byte, time.Time) {
	// Timers: loss by time, then the probe timeout.
	if !s.lossTime.IsZero() && !now.Before(s.lossTime) {
		s.detectLoss(now, &e.stats)
		s.pop(now)
	}
	if s.inflight > 0 && !s.lastSent.IsZero() && now.Sub(s.lastSent) >= s.pto() {
		e.stats.PTOs++
		s.ptoCount++
		s.probes = 2
		// Probe with the oldest data in flight, so that a lost tail is
		// resent; a ping if none is data.
		found := false
		for i := range s.pkts {
			if p := &s.pkts[i]; p.state == inFlight && p.n > 0 {
				s.rtx.add(p.off, p.off+uint64(p.n))
				found = true
				break
			}
		}
		if !found {
			s.pingDue = true
		}
	}
	if s.inflight == 0 && now.Sub(s.lastSent) >= keepalive {
		s.pingDue = true
	}

	rate := s.cc.pacingRate()
	burst := max(float64(8*s.mtu), rate*0.002)
	s.tokens = min(burst, s.tokens+rate*now.Sub(s.tokensAt).Seconds())
	s.tokensAt = now
	cwnd := s.cc.cwnd()
	for len(out) < 64 {
		probe := s.probes > 0
		if !probe && (s.tokens <= 0 || s.inflight+s.mtu > cwnd) {
			break
		}
		var off uint64
		var n int
		var ok bool
		if off, n, ok = s.nextRtx(s.maxPayload); ok {
			e.stats.BytesRetransmitted += uint64(n)
		} else if s.sentOff < s.written && s.sentOff < s.limit {
			off = s.sentOff
			n = int(min(uint64(s.maxPayload), s.written-s.sentOff, s.limit-s.sentOff))
			s.sentOff += uint64(n)
			ok = true
		}
		if !ok && !s.pingDue {
			// Nothing to send: the samples of this stretch say nothing of
			// the path's rate.
			if s.inflight < cwnd {
				s.appLimitedUntil = max(s.delivered+uint64(s.inflight), 1)
			}
			s.probes = 0
			break
		}
		b := s.buf(len(out))
		if ok {
			b = appendData(b, off, n)
			start := len(b)
			b = b[:start+n]
			s.copyOut(b[start:], off)
			e.stats.BytesSent += uint64(n)
		} else {
			b = append(b, framePing)
			s.pingDue = false
		}
		pn := e.nextPN
		e.nextPN++
		e.stats.PacketsSent++
		binary.BigEndian.PutUint64(b[1:], pn)
		size := len(b) + tagLen
		if s.inflight == 0 {
			s.firstSentAt, s.deliveredAt = now, now
		}
		s.pkts = append(s.pkts, sentPacket{off: off, n: n, size: size, sent: now, delivered: s.delivered,
			deliveredAt: s.deliveredAt, firstSentAt: s.firstSentAt, appLimited: s.appLimitedUntil > 0})
		if len(s.pkts) == 1 {
			s.base = pn
		}
		s.inflight += size
		s.lastSent = now
		s.tokens -= float64(size)
		if s.probes > 0 {
			s.probes--
		}
		out = append(out, b)
	}
	// When to look again: the pacer's next packet if it alone holds us
	// back, else the timers (an ack, a write or Close wakes us sooner).
	var at time.Time
	if s.tokens <= 0 && (len(s.rtx) > 0 || s.sentOff < min(s.written, s.limit)) && s.inflight+s.mtu <= cwnd {
		at = now.Add(time.Duration((-s.tokens + 1) / rate * float64(time.Second)))
	}
	later := func(t time.Time) {
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	later(s.lossTime)
	if s.inflight > 0 {
		later(s.lastSent.Add(s.pto()))
	} else {
		later(s.lastSent.Add(keepalive))
	}
	return out, at
}

// buf is the i-th packet buffer of this fill, with room for the header.
func (s *source) buf(i int) []byte {
	for len(s.bufs) <= i {
		s.bufs = append(s.bufs, make([]byte, 0, s.mtu))
	}
	b := s.bufs[i][:headerLen]
	b[0] = packetType
	return b
}
