package peer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/webrtc/v4"

	"github.com/p2pxfer/p2pxfer/pake"
	"github.com/p2pxfer/p2pxfer/room"
)

// inboxSize bounds the relay frames queued for one handshake; a peer that
// floods more than this before we read them is dropped.
const inboxSize = 64

// link is one end-to-end signalling session with one other peer, carried
// over the shared signalling connection. The dispatcher that reads the
// connection feeds inbox; gone is closed when the other end leaves.
type link struct {
	sig   Signaller
	peer  string
	inbox chan []byte
	sess  *pake.Session

	// myKey goes into our sealed answer (the sender's manifest key);
	// theirKey is what the other end's sealed answer carried.
	myKey, theirKey []byte
	// myLanes is how many connections we would use (see wire.go);
	// theirLanes what the other end's offer or answer said.
	myLanes, theirLanes int
	// theirDirect is the downloader's end of a direct lane, from its
	// {t:lanes, lanes:2, direct}.
	theirDirect *wireDirect
	// next is what an answerer's negotiation received for the one after
	// it (see negotiate).
	next []*signalMsg

	gone     chan struct{}
	goneOnce sync.Once
	goneErr  error
}

func newLink(sig Signaller, peer string) *link {
	return &link{sig: sig, peer: peer, inbox: make(chan []byte, inboxSize), gone: make(chan struct{})}
}

// leave records that the other end is unreachable (it left, or signalling
// failed with err) and wakes everyone waiting on it.
func (l *link) leave(err error) {
	l.goneOnce.Do(func() {
		if err == nil {
			err = ErrPeerLeft
		}
		l.goneErr = err
		close(l.gone)
	})
}

// deliver queues a relay frame from the other end; a peer that floods us
// faster than we read is cut off rather than buffered without bound.
func (l *link) deliver(b []byte) {
	select {
	case l.inbox <- b:
	default:
		l.leave(fmt.Errorf("%w: signalling flood", ErrProtocol))
	}
}

func (l *link) sendRaw(ctx context.Context, data []byte) error {
	return l.sig.Send(ctx, &room.Message{Type: room.TypeRelay, Peer: l.peer, Data: data})
}

func (l *link) sendSealed(ctx context.Context, m *signalMsg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	frame, err := l.sess.Seal(b)
	if err != nil {
		return err
	}
	return l.sendRaw(ctx, frame)
}

// abort tells the other end why we give up, best effort: the frame is
// unauthenticated and only saves the other side a timeout.
func (l *link) abort(ctx context.Context, reason byte) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_ = l.sendRaw(ctx, pake.AbortFrame(reason))
}

// recv waits for the next relay frame, turning an abort frame into its
// error.
func (l *link) recv(ctx context.Context, timeout time.Duration) ([]byte, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	frame := func(b []byte) ([]byte, error) {
		if err := abortError(b); err != nil {
			return nil, err
		}
		return b, nil
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-l.gone:
		// A frame sent just before the peer left (its abort, saying why)
		// still counts; select alone would pick at random.
		select {
		case b := <-l.inbox:
			return frame(b)
		default:
		}
		return nil, l.goneErr
	case <-t.C:
		return nil, ErrTimeout
	case b := <-l.inbox:
		return frame(b)
	}
}

// open authenticates and decodes one sealed frame. Anything that is not a
// valid sealed frame under our key is tampering: after the PAKE only the
// other password holder can produce one.
func (l *link) open(b []byte) (*signalMsg, error) {
	if err := abortError(b); err != nil {
		return nil, err
	}
	plain, err := l.sess.Open(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTampered, err)
	}
	return decodeSignal(plain)
}

// abortError is the error an abort frame from the other end stands for, or
// nil when b is not an abort frame.
func abortError(b []byte) error {
	if k, err := pake.FrameKind(b); err != nil || k != pake.KindAbort {
		return nil
	}
	reason, err := pake.ParseAbort(b)
	if err != nil {
		return err
	}
	return pake.AbortError(reason)
}

// iceEvents collects what pion's callbacks report, so that the callbacks
// never block: each hands its event to a buffered channel and returns.
type iceEvents struct {
	cands  chan *webrtc.ICECandidate
	failed chan struct{}
	dc     chan *webrtc.DataChannel
	open   chan struct{}
}

func watch(pc *webrtc.PeerConnection) *iceEvents {
	ev := &iceEvents{
		cands:  make(chan *webrtc.ICECandidate, 64),
		failed: make(chan struct{}, 1),
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
			select {
			case ev.failed <- struct{}{}:
			default:
			}
		}
	})
	return ev
}

// watchOfferer watches pc for the side that offers, and creates the
// transfer channel the offer will carry.
func watchOfferer(pc *webrtc.PeerConnection) (*iceEvents, *webrtc.DataChannel, error) {
	ev := watch(pc)
	ordered := true
	dc, err := pc.CreateDataChannel(DataChannelLabel, &webrtc.DataChannelInit{Ordered: &ordered})
	if err != nil {
		return nil, nil, fmt.Errorf("data channel: %w", err)
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

// negotiate runs the sealed offer/answer and candidate exchange until the
// data channel is open, and returns it. The offerer (receiver) created dc
// before the offer; the answerer passes nil and gets the channel the
// offerer opened.
//
// The offerer's channel opens a moment before the answerer hears of its
// own (pion acknowledges the channel before it calls us), so the next
// lane's offer, and its candidates, can reach an answerer still waiting
// here: they are kept in l.next for the next negotiation.
func (l *link) negotiate(ctx context.Context, pc *webrtc.PeerConnection, ev *iceEvents, dc *webrtc.DataChannel, timeout time.Duration) (*webrtc.DataChannel, error) {
	offerer := dc != nil
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var pending []webrtc.ICECandidateInit
	haveRemote := false
	opened := false
	replay := l.next // what the last negotiation kept for this one
	l.next = nil
	keeping := false // the next lane's offer came: keep the rest for it
	// handle takes one message from the other end; done reports that the
	// caller should return (dc, err).
	handle := func(m *signalMsg) (done bool, err error) {
		if keeping {
			if len(l.next) >= inboxSize {
				return true, fmt.Errorf("%w: signalling flood", ErrProtocol)
			}
			l.next = append(l.next, m)
			return false, nil
		}
		switch m.T {
		case sigBye:
			return true, fmt.Errorf("%w: %s", ErrRemote, m.Why)
		case sigLanes:
			// Sent after the first connection's offer, so an answerer
			// still waiting for one was waiting for a lane.
			l.theirLanes = min(l.theirLanes, m.Lanes)
			l.theirDirect = m.Direct
			if !offerer && !haveRemote {
				return true, errNoMoreLanes
			}
			return false, nil
		case sigCand:
			c := webrtc.ICECandidateInit{Candidate: m.Cand.Candidate, SDPMid: m.Cand.SDPMid, SDPMLineIndex: m.Cand.SDPMLineIndex}
			if !haveRemote {
				if len(pending) >= inboxSize {
					return true, fmt.Errorf("%w: too many candidates", ErrProtocol)
				}
				pending = append(pending, c)
				return false, nil
			}
			if err := pc.AddICECandidate(c); err != nil {
				return true, fmt.Errorf("%w: candidate: %v", ErrProtocol, err)
			}
		case sigOffer:
			if !offerer && haveRemote {
				// The next lane's: the offerer sends it once the channel
				// of this one is open, which we are about to hear.
				keeping = true
				l.next = append(l.next, m)
				return false, nil
			}
			if offerer || haveRemote {
				return true, fmt.Errorf("%w: unexpected offer", ErrProtocol)
			}
			if m.Lanes != 0 {
				l.theirLanes = m.Lanes
			}
			if err := l.answer(ctx, pc, m.SDP); err != nil {
				return true, err
			}
			haveRemote = true
		case sigAnswer:
			if !offerer || haveRemote {
				return true, fmt.Errorf("%w: unexpected answer", ErrProtocol)
			}
			l.theirKey = m.Key
			if m.Lanes != 0 {
				l.theirLanes = m.Lanes
			}
			if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP}); err != nil {
				return true, fmt.Errorf("%w: answer: %v", ErrProtocol, err)
			}
			haveRemote = true
		case sigDirect: // a source's, late: its downloader stopped waiting
			return false, nil
		}
		if haveRemote {
			for _, c := range pending {
				if err := pc.AddICECandidate(c); err != nil {
					return true, fmt.Errorf("%w: candidate: %v", ErrProtocol, err)
				}
			}
			pending = nil
		}
		return false, nil
	}
	for {
		if opened && dc != nil {
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
			return nil, fmt.Errorf("%w: no connection within %v", ErrConnect, timeout)
		case <-ev.failed:
			return nil, fmt.Errorf("%w: ICE failed", ErrConnect)
		case <-l.gone:
			return nil, l.goneErr
		case c := <-ev.cands:
			init := c.ToJSON()
			if err := l.sendSealed(ctx, &signalMsg{T: sigCand, Cand: &wireCand{Candidate: init.Candidate, SDPMid: init.SDPMid, SDPMLineIndex: init.SDPMLineIndex}}); err != nil {
				return nil, err
			}
		case d := <-ev.dc:
			if offerer || d.Label() != DataChannelLabel {
				return nil, fmt.Errorf("%w: unexpected data channel %q", ErrProtocol, d.Label())
			}
			dc = d
		case <-ev.open:
			opened = true
		case b := <-l.inbox:
			m, err := l.open(b)
			if err != nil {
				return nil, err
			}
			if done, err := handle(m); done {
				return nil, err
			}
		}
	}
}

func (l *link) answer(ctx context.Context, pc *webrtc.PeerConnection, sdp string) error {
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return fmt.Errorf("%w: offer: %v", ErrProtocol, err)
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("peer: create answer: %w", err)
	}
	if err := pc.SetLocalDescription(ans); err != nil {
		return fmt.Errorf("peer: set answer: %w", err)
	}
	return l.sendSealed(ctx, &signalMsg{T: sigAnswer, SDP: ans.SDP, Key: l.myKey, Lanes: l.lanes()})
}

// offer creates the offer for dc's connection and sends it sealed.
func (l *link) offer(ctx context.Context, pc *webrtc.PeerConnection) error {
	off, err := pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("peer: create offer: %w", err)
	}
	if err := pc.SetLocalDescription(off); err != nil {
		return fmt.Errorf("peer: set offer: %w", err)
	}
	return l.sendSealed(ctx, &signalMsg{T: sigOffer, SDP: off.SDP, Lanes: l.myLanes})
}

// errNoMoreLanes ends an answerer's wait for a lane the other end will not
// open.
var errNoMoreLanes = errors.New("no more lanes")

// lanes is how many connections both ends agreed on (see wire.go).
func (l *link) lanes() int { return max(1, min(l.myLanes, l.theirLanes)) }

// isWrongPassword reports whether err means the PAKE failed on the password.
func isWrongPassword(err error) bool { return errors.Is(err, pake.ErrWrongPassword) }

// watchFailed stops reading raw once its connection fails: a failed
// connection does not always end a blocked Read. The goroutine ends with
// the connection, which reports closed (as failed) when it is closed.
func watchFailed(ev *iceEvents, raw datachannel.ReadWriteCloserDeadliner) {
	go func() {
		<-ev.failed
		stopReading(raw)
	}()
}

// stopReading ends a blocked Read on a detached channel. Close alone does
// not: pion only sends a stream reset, and Read waits for the answer, which
// a peer that died never gives.
func stopReading(raw datachannel.ReadWriteCloserDeadliner) {
	_ = raw.SetReadDeadline(time.Now())
	_ = raw.Close()
}
