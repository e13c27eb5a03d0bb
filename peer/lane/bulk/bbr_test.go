package bulk

import (
	"testing"
	"time"
)

// sim is a path that delivers rate bytes per second with round trip
// rtt, acknowledged packet by packet.
type sim struct {
	b         *bbr
	rate      float64
	rtt       time.Duration
	now       time.Time
	delivered uint64
}

func newSim(rate float64, rtt time.Duration) *sim {
	return &sim{b: newBBR(1400, 0), rate: rate, rtt: rtt, now: time.Unix(0, 0)}
}

// run plays rounds round trips, losing lost(round) packets in each.
func (s *sim) run(rounds int, lost func(round int) int) {
	const mtu = 1400
	perRound := int(s.rate * s.rtt.Seconds())
	n := max(perRound/mtu, 1)
	for r := range rounds {
		for range n {
			// Each packet acknowledged now was sent a round trip ago.
			prior := uint64(max(int64(s.delivered)-int64(perRound), 0))
			s.delivered += mtu
			s.now = s.now.Add(s.rtt / time.Duration(n))
			s.b.onAck(s.now, rateSample{delivered: uint64(perRound), interval: s.rtt, priorDeliv: prior, rtt: s.rtt,
				inflight: min(s.b.cwnd(), perRound*2), totalDeliv: s.delivered, acked: mtu})
		}
		for range lost(r) {
			s.b.onLost(mtu)
		}
	}
}

func none(int) int { return 0 }

// TestBBRStartup: the model finds the path's rate and round trip, and
// leaves startup once the rate stops growing.
func TestBBRStartup(t *testing.T) {
	s := newSim(25e6, 50*time.Millisecond)
	s.run(20, none)
	b := s.b
	if b.mode == bbrStartup {
		t.Fatal("still in startup after 20 round trips of a steady rate")
	}
	if b.btlBw < 24e6 || b.btlBw > 26e6 || b.minRTT != 50*time.Millisecond {
		t.Fatalf("model %v B/s, %v", b.btlBw, b.minRTT)
	}
	if b.inflightHi != 0 {
		t.Fatalf("a window cap %d without loss", b.inflightHi)
	}
}

// TestBBRRandomLoss: 1 % random loss, even a packet in a round of a few
// dozen on a LAN, leaves the window alone.
func TestBBRRandomLoss(t *testing.T) {
	s := newSim(300e6, 200*time.Microsecond)
	s.run(200, func(r int) int { return r % 2 }) // ~1 of ~43 per round
	if s.b.inflightHi != 0 {
		t.Fatalf("window capped at %d by random loss", s.b.inflightHi)
	}
	s = newSim(25e6, 50*time.Millisecond)
	s.run(30, func(int) int { return 9 }) // 1 % of ~890
	if s.b.inflightHi != 0 {
		t.Fatalf("window capped at %d by 1 %% loss on a long path", s.b.inflightHi)
	}
}

// TestBBRQueueOverflow: rounds that lose a tenth of what they carry (a
// queue too shallow for the window) cap it below what was in flight, and
// clean rounds after raise the cap until it no longer holds back.
func TestBBRQueueOverflow(t *testing.T) {
	s := newSim(25e6, 50*time.Millisecond)
	s.run(20, none)
	before := s.b.cwnd()
	s.run(3, func(int) int { return 90 })
	if s.b.inflightHi == 0 || s.b.cwnd() >= before {
		t.Fatalf("window %d after heavy loss, %d before; cap %d", s.b.cwnd(), before, s.b.inflightHi)
	}
	s.run(60, none)
	// What the path takes in flight here is two rounds' worth.
	if hi := s.b.inflightHi; hi != 0 && hi < 2*int(s.rate*s.rtt.Seconds()) {
		t.Fatalf("still capped at %d after 60 clean round trips", hi)
	}
}
