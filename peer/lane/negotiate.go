package lane

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// iceEvents collects what pion's callbacks report, so that the callbacks
// never block: each hands its event to a buffered channel and returns.
type iceEvents struct {
	cands chan *webrtc.ICECandidate
	// failed is closed once the connection failed or was closed.
	failed   chan struct{}
	failOnce sync.Once
	dc       chan *webrtc.DataChannel
	open     chan struct{}
}

func watch(pc *webrtc.PeerConnection) *iceEvents {
	ev := &iceEvents{
		cands:  make(chan *webrtc.ICECandidate, 64),
		failed: make(chan struct{}),
		dc:     make(chan *webrtc.DataChannel, 1),
		open:   make(chan struct{}, 1),
	}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		select {
		case ev.cands <- c:
		default: // more candidates than we will ever use
		}
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateClosed {
			ev.failOnce.Do(func() { close(ev.failed) })
		}
	})
	return ev
}

// watchOfferer watches pc for the side that offers, and creates the
// channel the offer will carry.
func watchOfferer(pc *webrtc.PeerConnection, label string) (*iceEvents, *webrtc.DataChannel, error) {
	ev := watch(pc)
	ordered := true
	dc, err := pc.CreateDataChannel(label, &webrtc.DataChannelInit{Ordered: &ordered})
	if err != nil {
		return nil, nil, fmt.Errorf("lane: data channel: %w", err)
	}
	ev.onOpen(dc)
	return ev, dc, nil
}

// watchAnswerer watches pc for the side that answers, including for the
// channel the offerer opens.
func watchAnswerer(pc *webrtc.PeerConnection) *iceEvents {
	ev := watch(pc)
	pc.OnDataChannel(func(d *webrtc.DataChannel) {
		ev.onOpen(d)
		select {
		case ev.dc <- d:
		default:
		}
	})
	return ev
}

func (ev *iceEvents) onOpen(dc *webrtc.DataChannel) {
	dc.OnOpen(func() {
		select {
		case ev.open <- struct{}{}:
		default:
		}
	})
}

// errNoMoreLanes ends an answerer's wait for a lane the other end will not
// open.
var errNoMoreLanes = errors.New("no more lanes")

// negotiate runs the sealed offer/answer and candidate exchange for pc
// until its channel is open, and returns the channel. The offerer (the
// dialer) created dc before its offer; the answerer passes nil and gets
// the channel the offerer opened.
//
// The offerer's channel opens a moment before the answerer hears of its
// own (pion acknowledges the channel before it calls us), so the next
// lane's offer, and its candidates, can reach an answerer still waiting
// here: they are kept in c.next for the next negotiation.
func (c *Conn) negotiate(ctx context.Context, pc *webrtc.PeerConnection, pn *iceNet, ev *iceEvents, dc *webrtc.DataChannel) (*webrtc.DataChannel, error) {
	offerer := dc != nil
	timeout := c.t.cfg.ConnectTimeout
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var pending []webrtc.ICECandidateInit
	var ours, theirs []string // candidate types, for a ConnectError
	noted := func(types []string, typ string) []string {
		if typ != "" && !slices.Contains(types, typ) {
			types = append(types, typ)
		}
		return types
	}
	haveRemote := false
	var pp punchPlan // punch.go
	punch := func(to netip.AddrPort) error {
		if pn == nil || !pn.punch(to) {
			return nil
		}
		c.t.log.Debug("punched", "to", to)
		return c.send(ctx, &signalMsg{T: sigPunched, To: to.String()})
	}
	punchT := time.NewTimer(punchWait)
	punchT.Stop()
	defer punchT.Stop()
	var punchTimer <-chan time.Time // punchT's, while it runs
	// add gives pion a candidate of theirs: pending until it has their
	// description.
	add := func(ci webrtc.ICECandidateInit) error {
		if !haveRemote {
			if len(pending) >= maxKept {
				return fmt.Errorf("%w: too many candidates", ErrProtocol)
			}
			pending = append(pending, ci)
			return nil
		}
		if err := pc.AddICECandidate(ci); err != nil {
			return fmt.Errorf("%w: candidate: %v", ErrProtocol, err)
		}
		return nil
	}
	release := func(held []webrtc.ICECandidateInit) error {
		punchTimer = nil
		for _, ci := range held {
			if err := add(ci); err != nil {
				return err
			}
		}
		return nil
	}
	opened := false
	replay := c.next // what the last negotiation kept for this one
	c.next = nil
	keeping := false // the next lane's offer came: keep the rest for it
	// lateOpen fires when an accepting end with Config.lateOpen takes
	// its first channel for open.
	var lateOpen <-chan time.Time
	// handle takes one message from the other end; done reports that the
	// caller should return (nil, err).
	handle := func(m *signalMsg) (done bool, err error) {
		if keeping {
			if len(c.next) >= maxKept {
				return true, fmt.Errorf("%w: signalling flood", ErrProtocol)
			}
			c.next = append(c.next, m)
			return false, nil
		}
		switch m.T {
		case sigBye:
			if m.Why == whyNoPath {
				return true, &ConnectError{Why: "the peer found no path in time", Ours: ours, Theirs: theirs}
			}
			return true, fmt.Errorf("%w: %s", ErrRemote, m.Why)
		case sigLanes:
			if !offerer && pc == c.pc {
				// The dialer's word on its lanes, sent as soon as its
				// first channel opened, which may be before ours: the
				// lanes' negotiation takes it, and what follows.
				keeping = true
				c.next = append(c.next, m)
				return false, nil
			}
			// Sent after the first connection's offer, so an answerer
			// still waiting for one was waiting for a lane.
			c.theirLanes = min(c.theirLanes, m.Lanes)
			c.theirDirect = m.Direct
			c.theirRide = m.Ride
			if !offerer && !haveRemote {
				return true, errNoMoreLanes
			}
			return false, nil
		case sigCand:
			typ := candidateType(m.Cand.Candidate)
			theirs = noted(theirs, typ)
			if typ == "srflx" && portChanged(m.Cand.Candidate) {
				c.portsRandom = true
			}
			ci := webrtc.ICECandidateInit{Candidate: m.Cand.Candidate, SDPMid: m.Cand.SDPMid, SDPMLineIndex: m.Cand.SDPMLineIndex}
			if typ == "srflx" {
				to, ok := candidateAddr(m.Cand.Candidate)
				hold, fresh, err := pp.theirCandidate(ci, to, ok)
				if err != nil {
					return true, err
				}
				if fresh {
					if err := punch(to); err != nil {
						return true, err
					}
				}
				if hold {
					if punchTimer == nil {
						punchT.Reset(punchWait)
						punchTimer = punchT.C
					}
					return false, nil
				}
			}
			if err := add(ci); err != nil {
				return true, err
			}
		case sigPunched:
			to, _ := netip.ParseAddrPort(m.To) // checked by decodeSignal
			if held := pp.theyPunched(to); held != nil {
				c.t.log.Debug("they punched", "to", pp.punchedTo)
				if err := release(held); err != nil {
					return true, err
				}
			}
		case sigOffer:
			if !offerer && haveRemote {
				// The next lane's: the offerer sends it once the channel
				// of this one is open, which we are about to hear.
				keeping = true
				c.next = append(c.next, m)
				return false, nil
			}
			if offerer || haveRemote {
				return true, fmt.Errorf("%w: unexpected offer", ErrProtocol)
			}
			if m.Lanes != 0 {
				c.theirLanes = m.Lanes
			}
			if pc == c.pc {
				c.theirRides = m.Rides
			}
			if err := c.answer(ctx, pc, m.SDP); err != nil {
				return true, err
			}
			haveRemote = true
		case sigAnswer:
			if !offerer || haveRemote {
				return true, fmt.Errorf("%w: unexpected answer", ErrProtocol)
			}
			c.theirInfo = m.Info
			if m.Lanes != 0 {
				c.theirLanes = m.Lanes
			}
			if pc == c.pc {
				c.theirRides = m.Rides
			}
			if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP}); err != nil {
				return true, fmt.Errorf("%w: answer: %v", ErrProtocol, err)
			}
			haveRemote = true
		case sigDirect, sigRide: // an accepter's, late: its dialer stopped waiting
			return false, nil
		}
		if haveRemote {
			for _, ci := range pending {
				if err := pc.AddICECandidate(ci); err != nil {
					return true, fmt.Errorf("%w: candidate: %v", ErrProtocol, err)
				}
			}
			pending = nil
		}
		return false, nil
	}
	for {
		if opened && dc != nil {
			c.t.log.Debug("candidates", "ours", strings.Join(ours, ","), "theirs", strings.Join(theirs, ","))
			return dc, nil
		}
		if len(replay) > 0 {
			m := replay[0]
			replay = replay[1:]
			if done, err := handle(m); done {
				return nil, err
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return nil, &ConnectError{Why: fmt.Sprintf("no connection within %v", timeout), Ours: ours, Theirs: theirs}
		case <-ev.failed:
			return nil, &ConnectError{Why: "ICE failed", Ours: ours, Theirs: theirs}
		case <-punchTimer:
			if err := release(pp.release()); err != nil {
				return nil, err
			}
		case <-c.in.done:
			return nil, c.in.err
		case ci := <-ev.cands:
			ours = noted(ours, ci.Typ.String())
			if ci.Typ == webrtc.ICECandidateTypeSrflx && ci.RelatedPort != 0 && ci.Port != ci.RelatedPort {
				c.portsRandom = true
			}
			if a, err := netip.ParseAddr(ci.Address); err == nil && ci.Typ == webrtc.ICECandidateTypeSrflx &&
				pp.ourCandidate(netip.AddrPortFrom(a.Unmap(), ci.Port)) {
				// Before they hear of it: from this socket too.
				for _, to := range pp.theirs {
					if err := punch(to); err != nil {
						return nil, err
					}
				}
			}
			init := ci.ToJSON()
			if err := c.send(ctx, &signalMsg{T: sigCand, Cand: &wireCand{Candidate: init.Candidate, SDPMid: init.SDPMid, SDPMLineIndex: init.SDPMLineIndex}}); err != nil {
				return nil, err
			}
		case d := <-ev.dc:
			if offerer || d.Label() != c.opts.Label {
				return nil, fmt.Errorf("%w: unexpected data channel %q", ErrProtocol, d.Label())
			}
			dc = d
		case <-ev.open:
			if d := c.t.cfg.lateOpen; d > 0 && !offerer && pc == c.pc {
				lateOpen = time.After(d)
				break
			}
			opened = true
		case <-lateOpen:
			opened = true
		case m := <-c.in.msgs:
			if done, err := handle(m); done {
				return nil, err
			}
		}
	}
}

// candidateAddr is the address and port of an ICE candidate line
// ("candidate:FOUNDATION COMPONENT udp PRIORITY ADDRESS PORT typ ...").
func candidateAddr(line string) (netip.AddrPort, bool) {
	f := strings.Fields(line)
	if len(f) < 6 || !strings.EqualFold(f[2], "udp") {
		return netip.AddrPort{}, false
	}
	a, err := netip.ParseAddr(f[4])
	p, err2 := strconv.ParseUint(f[5], 10, 16)
	if err != nil || err2 != nil || p == 0 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(p)), true
}

// portChanged reports whether a server-reflexive candidate line's port
// differs from its base's ("... port typ srflx raddr A rport P"): the NAT
// in front of it gives a socket a port of its own choosing.
func portChanged(line string) bool {
	ap, ok := candidateAddr(line)
	if !ok {
		return false
	}
	f := strings.Fields(line)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "rport" {
			p, err := strconv.ParseUint(f[i+1], 10, 16)
			return err == nil && p != 0 && uint16(p) != ap.Port()
		}
	}
	return false
}

// candidateType is the type of an ICE candidate line ("... typ host
// ..."), "" if it has none.
func candidateType(line string) string {
	f := strings.Fields(line)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "typ" {
			return f[i+1]
		}
	}
	return ""
}

// maxKept bounds the candidates and early messages one negotiation keeps
// for later: a peer that floods more is dropped.
const maxKept = 64

// answer answers the offer sdp for pc, with our info and the lane count
// both ends agree on.
func (c *Conn) answer(ctx context.Context, pc *webrtc.PeerConnection, sdp string) error {
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return fmt.Errorf("%w: offer: %v", ErrProtocol, err)
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("lane: create answer: %w", err)
	}
	if err := pc.SetLocalDescription(ans); err != nil {
		return fmt.Errorf("lane: set answer: %w", err)
	}
	return c.send(ctx, &signalMsg{T: sigAnswer, SDP: ans.SDP, Info: c.opts.Info, Lanes: c.lanes(), Rides: pc == c.pc && c.rides()})
}

// offer creates the offer for pc's connection and sends it.
func (c *Conn) offer(ctx context.Context, pc *webrtc.PeerConnection) error {
	off, err := pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("lane: create offer: %w", err)
	}
	if err := pc.SetLocalDescription(off); err != nil {
		return fmt.Errorf("lane: set offer: %w", err)
	}
	return c.send(ctx, &signalMsg{T: sigOffer, SDP: off.SDP, Lanes: c.myLanes, Rides: pc == c.pc && !c.t.cfg.NoRide})
}

// stopReading ends a blocked Read on a detached channel. Close alone does
// not: pion only sends a stream reset, and Read waits for the answer, which
// a peer that died never gives.
func stopReading(raw rawChannel) {
	_ = raw.SetReadDeadline(time.Now())
	_ = raw.Close()
}
