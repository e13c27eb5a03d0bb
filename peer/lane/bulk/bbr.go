package bulk

import "time"

// bbr is the congestion controller: BBR's model (a bottleneck bandwidth
// and a minimum round trip), as TCP's BBR and QUIC stacks run it, without
// the ProbeRTT phase. Random loss does not lower the rate: on a path with
// it (Wi-Fi, long paths) a controller that halves at every loss lives at
// the Mathis bound, one or two MB/s at 50 ms and 1 %, however fast the
// path; the delivery rate is what the path gives. Pacing at that rate is
// also what keeps a shallow bottleneck queue from overflowing, where a
// window's worth sent at once does.
//
// Loss that is more than random does bound it, as BBRv2 does: a round
// trip that lost more than lossThresh of what it sent (and at least
// lossMinPackets, so that one unlucky packet on a LAN does not count)
// says the data in flight overflowed a queue shallower than BBR's two
// bandwidth-delay products, so inflightHi caps the window below what was
// in flight, ends startup, and grows back slowly while rounds stay clean.
//
// Its inputs are rate samples (rateSample) and round trips; its outputs
// pacingRate and cwnd. It reads no clock: callers pass now.
type bbr struct {
	mode bbrMode
	mtu  int

	// The bottleneck bandwidth, bytes per second: the largest delivery
	// rate of the last bwRounds rounds.
	bwRound [bwRounds]float64
	bwAt    [bwRounds]uint64 // the round of each
	btlBw   float64

	minRTT   time.Duration
	minRTTAt time.Time
	rttHint  time.Duration // until a sample: the path's round trip as ICE saw it

	// Rounds: one ends when a packet sent after the last round ended is
	// acknowledged.
	round          uint64
	nextRoundStart uint64 // delivered bytes that end the current round

	// Startup ends when the bandwidth stops growing by a quarter per round.
	fullBw      float64
	fullBwCount int

	cycle      int
	cycleStart time.Time

	// The loss bound: this round's losses and deliveries, the most that
	// was in flight in it, and the cap (0: none).
	roundLost, roundLostPkts, roundAcked int
	roundMaxInflight                     int
	inflightHi                           int

	pacingGain, cwndGain float64
}

type bbrMode uint8

const (
	bbrStartup bbrMode = iota
	bbrDrain
	bbrProbeBW
)

const (
	bwRounds    = 10
	startupGain = 2.885 // 2/ln 2: doubles the rate each round trip
	// minRTTWindow: without ProbeRTT a stale minimum would let the window
	// grow with a longer path, so it expires and the next sample stands.
	minRTTWindow = 10 * time.Second
	// cwndSlack is room beyond the bandwidth-delay product for the
	// receiver's delayed acknowledgements and the pacer's bursts, both
	// a millisecond or so: on a LAN the round trip itself is less.
	cwndSlack = 3 * time.Millisecond
	// minPhase: on a path of a few hundred µs a phase as long as the
	// round trip would be shorter than the pacer's granularity.
	minPhase   = 2 * time.Millisecond
	initWindow = 32 // packets, before the first sample

	lossThresh     = 0.02
	lossMinPackets = 8
	lossBeta       = 0.7
)

var probeGains = [...]float64{1.25, 0.75, 1, 1, 1, 1, 1, 1}

func newBBR(mtu int, rttHint time.Duration) *bbr {
	return &bbr{mtu: mtu, rttHint: rttHint, pacingGain: startupGain, cwndGain: startupGain}
}

// rateSample is what one acknowledgement says of the path.
type rateSample struct {
	delivered  uint64 // bytes delivered in the sample's interval
	interval   time.Duration
	appLimited bool // the sender had nothing to send for part of it
	priorDeliv uint64
	rtt        time.Duration // 0: none this time
	inflight   int           // bytes in flight after the ack
	totalDeliv uint64        // all bytes delivered so far
	acked      int           // bytes this ack acknowledged
}

// onLost counts a lost packet of size bytes against this round.
func (b *bbr) onLost(size int) {
	b.roundLost += size
	b.roundLostPkts++
}

// onSpurious takes back a loss that turned out to be a late packet.
func (b *bbr) onSpurious(size int) {
	b.roundLost = max(b.roundLost-size, 0)
	b.roundLostPkts = max(b.roundLostPkts-1, 0)
}

// endRound weighs the round that just ended: too much loss caps the
// window; a clean round that the cap held back raises it.
func (b *bbr) endRound() {
	lost, lostPkts, acked, most := b.roundLost, b.roundLostPkts, b.roundAcked, b.roundMaxInflight
	b.roundLost, b.roundLostPkts, b.roundAcked, b.roundMaxInflight = 0, 0, 0, 0
	switch {
	case lostPkts >= lossMinPackets && float64(lost) > lossThresh*float64(lost+acked):
		hi := int(lossBeta * float64(most))
		if b.inflightHi > 0 {
			hi = min(hi, int(lossBeta*float64(b.inflightHi)))
		}
		b.inflightHi = max(hi, 4*b.mtu)
		if b.mode == bbrStartup {
			b.mode = bbrDrain
			b.pacingGain, b.cwndGain = 1/startupGain, startupGain
		}
	case b.inflightHi > 0 && most >= b.inflightHi-2*b.mtu:
		b.inflightHi += max(b.mtu, b.inflightHi/16)
		if b.inflightHi > 2*b.modelCwnd() {
			b.inflightHi = 0 // the model bounds it again
		}
	}
}

func (b *bbr) onAck(now time.Time, rs rateSample) {
	if rs.rtt > 0 && (b.minRTT == 0 || rs.rtt <= b.minRTT || now.Sub(b.minRTTAt) > minRTTWindow) {
		b.minRTT, b.minRTTAt = rs.rtt, now
	}
	b.roundAcked += rs.acked
	b.roundMaxInflight = max(b.roundMaxInflight, rs.inflight+rs.acked)
	roundStart := false
	if rs.priorDeliv >= b.nextRoundStart {
		b.endRound()
		b.round++
		b.nextRoundStart = rs.totalDeliv
		roundStart = true
	}
	if rs.interval > 0 && rs.delivered > 0 {
		bw := float64(rs.delivered) / rs.interval.Seconds()
		if !rs.appLimited || bw >= b.btlBw {
			b.updateBw(bw)
		}
	}
	switch b.mode {
	case bbrStartup:
		if roundStart && !rs.appLimited {
			if b.btlBw >= b.fullBw*1.25 {
				b.fullBw, b.fullBwCount = b.btlBw, 0
			} else if b.fullBwCount++; b.fullBwCount >= 3 {
				b.mode = bbrDrain
				b.pacingGain, b.cwndGain = 1/startupGain, startupGain
			}
		}
	case bbrDrain:
		if rs.inflight <= b.bdp() {
			b.enterProbeBW(now)
		}
	case bbrProbeBW:
		phase := max(b.minRTT, minPhase)
		switch g := probeGains[b.cycle]; {
		case g > 1 && now.Sub(b.cycleStart) > phase && rs.inflight >= int(g*float64(b.bdp())):
			b.nextPhase(now)
		case g < 1 && (now.Sub(b.cycleStart) > phase || rs.inflight <= b.bdp()):
			b.nextPhase(now)
		case g == 1 && now.Sub(b.cycleStart) > phase:
			b.nextPhase(now)
		case g > 1 && now.Sub(b.cycleStart) > 4*phase:
			// The window, not the pacer, limits what is in flight.
			b.nextPhase(now)
		}
	}
}

func (b *bbr) updateBw(bw float64) {
	i := b.round % bwRounds
	if b.bwAt[i] != b.round {
		b.bwAt[i], b.bwRound[i] = b.round, 0
	}
	b.bwRound[i] = max(b.bwRound[i], bw)
	b.btlBw = 0
	for j := range b.bwRound {
		if b.round-b.bwAt[j] < bwRounds {
			b.btlBw = max(b.btlBw, b.bwRound[j])
		}
	}
}

func (b *bbr) enterProbeBW(now time.Time) {
	b.mode = bbrProbeBW
	b.cwndGain = 2
	// Start anywhere but in the draining phase, as BBR does, so that
	// lanes started together do not probe together.
	b.cycle = int(uint64(now.UnixNano())/1000) % len(probeGains)
	if b.cycle == 1 {
		b.cycle = 2
	}
	b.cycleStart = now
	b.pacingGain = probeGains[b.cycle]
}

func (b *bbr) nextPhase(now time.Time) {
	b.cycle = (b.cycle + 1) % len(probeGains)
	b.cycleStart = now
	b.pacingGain = probeGains[b.cycle]
}

func (b *bbr) rtt() time.Duration {
	if b.minRTT > 0 {
		return b.minRTT
	}
	return max(b.rttHint, 200*time.Microsecond)
}

// bdp is the bandwidth-delay product in bytes.
func (b *bbr) bdp() int {
	return int(b.btlBw * b.rtt().Seconds())
}

// pacingRate is the rate to send at, bytes per second.
func (b *bbr) pacingRate() float64 {
	if b.btlBw == 0 {
		return startupGain * float64(initWindow*b.mtu) / b.rtt().Seconds()
	}
	return b.pacingGain * b.btlBw
}

// cwnd bounds the bytes in flight.
func (b *bbr) cwnd() int {
	w := b.modelCwnd()
	if b.inflightHi > 0 {
		w = min(w, b.inflightHi)
	}
	return w
}

// modelCwnd is the window the model alone allows.
func (b *bbr) modelCwnd() int {
	if b.btlBw == 0 {
		return initWindow * b.mtu
	}
	w := int(b.cwndGain*b.btlBw*b.rtt().Seconds() + b.btlBw*cwndSlack.Seconds())
	return max(w, 4*b.mtu)
}
