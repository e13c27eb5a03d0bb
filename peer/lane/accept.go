package lane

import (
	"context"
	"errors"
	"sync"

	"github.com/pion/webrtc/v4"
)

// acceptLanes answers up to n lanes the dialer opens beyond the first
// connection, one after another, and adds each to the Set as it opens. It
// gives up quietly (the transfer goes on with the lanes it has) when one
// fails to connect, and keeps the lanes open until the Conn closes.
func (c *Conn) acceptLanes(n int) {
	ctx := c.ctx
	var pcs []*webrtc.PeerConnection
	var direct []*directLane
	var ride *rideLane
	defer func() {
		<-ctx.Done()
		for _, pc := range pcs {
			c.t.closePC(pc)
		}
		for _, dl := range direct {
			dl.close()
		}
		if ride != nil {
			ride.close()
		}
	}()
	defer c.set.settle() // first: Pick need not wait for the Conn to close
	// peerLanes answers peer connections until the dialer has opened all
	// it said, asks for a direct or ride lane, or one fails; it says how
	// many opened, and false: stop altogether.
	peerLanes := func() (int, bool) {
		opened := 0
		for i := range n {
			if c.lanes() < i+2 || c.theirDirect != nil || c.theirRide != nil { // the dialer said it opens fewer
				break
			}
			pc, pn, err := c.t.newPeerConnection()
			if err != nil {
				return opened, false
			}
			pcs = append(pcs, pc)
			ev := watchAnswerer(pc)
			dc, err := c.negotiate(ctx, pc, pn, ev, nil)
			if err != nil {
				break
			}
			raw, err := dc.DetachWithDeadline()
			if err != nil {
				return opened, false
			}
			c.set.add(&Lane{ch: dc, raw: raw, failed: ev.failed})
			opened++
		}
		return opened, true
	}
	if n == 0 && !c.awaitDialer(ctx) { // both said rides, not lanes
		return
	}
	// The dialer asks for direct lanes, then (should none open) a ride
	// lane, then (should it not open either) peer lanes; or for one of
	// them straight away.
	for ctx.Err() == nil {
		opened, ok := peerLanes()
		if !ok || opened > 0 {
			return
		}
		var fallback bool
		switch {
		case c.theirDirect != nil:
			var dls []*directLane
			dls, fallback = c.acceptDirect(ctx)
			direct = append(direct, dls...)
			c.theirDirect = nil
		case c.theirRide != nil && ride == nil:
			ride, fallback = c.acceptRide(ctx)
			c.theirRide = nil
		}
		if !fallback {
			// A lane opened, the dialer opens none, or (fallback false
			// with none) signalling failed: nothing more comes.
			return
		}
	}
}

// acceptDirect answers the dialer's direct lanes (wire.go), as many as
// both ends allow, and adds each to the Set as it opens; or says it opens
// none. fallback says none opened, so the dialer may ask for peer lanes
// instead.
func (c *Conn) acceptDirect(ctx context.Context) (lanes []*directLane, fallback bool) {
	var ends []*directEnd
	err := errors.New("no direct path")
	if (c.portsRandom || ourPortsRandom(c.pc)) && offLink(c.pc) {
		// Our NAT, or theirs, would give a new socket a new port: no
		// direct lane would connect, and the dialer would wait for one.
		err = errors.New("a NAT on the path gives new sockets new ports")
	} else if path, ok := c.t.directPathOf(c.pc); ok {
		ends, err = c.t.newDirectEnds(path, min(len(c.theirDirect.ports()), c.lanes()), c.opts.Label)
	}
	if err != nil {
		c.t.log.Debug("no direct lane", "err", err)
		_ = c.send(ctx, &signalMsg{T: sigLanes, Lanes: 1})
		return nil, true
	}
	w := wireDirects(ends)
	if c.t.cfg.DirectUnreachable {
		w.Port, w.More = 9, make([]uint16, len(w.More)) // discard: nothing answers there
		for i := range w.More {
			w.More[i] = 9
		}
	}
	if err := c.send(ctx, &signalMsg{T: sigDirect, Direct: w}); err != nil {
		closeEnds(ends)
		return nil, false
	}
	var mu sync.Mutex
	connectAll(ctx, ends, false, c.theirDirect, func(dl *directLane) { // ends are no more than their lanes
		mu.Lock()
		lanes = append(lanes, dl)
		mu.Unlock()
		c.set.add(&Lane{ch: dl.ep, raw: dl.ep, direct: true})
	})
	return lanes, len(lanes) == 0
}

// awaitDialer waits for the word of a dialer that said lanes:1 and rides
// (wire.go): whether it asks for a ride lane. False when it does not, or
// says nothing within DirectTimeout; the first connection then carries
// everything.
func (c *Conn) awaitDialer(ctx context.Context) bool {
	m, err := c.awaitWord(ctx, sigLanes)
	if m == nil {
		c.t.log.Debug("no ride lane asked for", "err", err)
		return false
	}
	c.theirRide = m.Ride
	return m.Ride != nil
}
