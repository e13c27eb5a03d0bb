package sigserver

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/p2pxfer/p2pxfer/room"
)

// The seed pool (see room/protocol.go and docs/swarm.md): every connection
// of a room may offer upload slots; a member's want reserves a slot on up
// to Count sources, or puts it in the room's FIFO queue until a slot frees.
//
// Invariant, restored before Server.mu is released: no queued member can use
// a free slot. So a new want can simply take whatever is free (nobody
// waiting could have used it), and only the events that free or add slots
// need to serve the queue (serveQueueLocked).
//
// Assignments are kept on both ends (poolState.serving and .sources), so
// ending one, and ending all of a departing connection's, is a map lookup.
// The receiver's end also records which ends have relayed on the
// assignment; Server.Sweep ends those that have not both done so in time
// (expireLocked).

// DefaultHostSlots is the host's upload slots when create carries none.
const DefaultHostSlots = 4

// poolState is one connection's part in its room's seed pool. Guarded by
// Server.mu, like the other room fields of conn.
type poolState struct {
	seq      uint64               // order of arrival in the room; breaks ties so assignment is deterministic
	slots    int                  // upload slots offered; 0: not a source
	complete bool                 // holds every piece (seed{complete})
	serving  map[*conn]struct{}   // receivers holding one of our slots
	sources  map[*conn]assignment // sources we hold a slot on
	want     int                  // while queued: sources still wanted
	queued   bool                 // in the room's queue
	position int                  // position last sent in queued{}; 0 forces a resend
	told     int                  // sources last sent in queued{}
}

// assignment is the receiver's record of one source assigned to it.
type assignment struct {
	since    time.Time // when assigned
	rcv, src bool      // each end has relayed on it
}

// used: the PAKE's first round trip went through, so the assignment
// never expires.
func (a assignment) used() bool { return a.rcv && a.src }

// free is how many more receivers the source may be given. Negative after
// seed lowered slots below those in use; then it simply gets no new ones.
func (p *poolState) free() int { return p.slots - len(p.serving) }

// linked reports whether a and b are the two ends of an assignment, in
// either direction.
func linked(a, b *conn) bool {
	if _, ok := a.pool.serving[b]; ok {
		return true
	}
	_, ok := a.pool.sources[b]
	return ok
}

// rank orders sources for a receiver: complete seeds first, since they can
// serve anything; then the host, so the original sender's uplink is spared
// once seeds exist; then partial seeds.
func (r *roomState) rank(src *conn) int {
	switch {
	case src == r.host:
		return 1
	case src.pool.complete:
		return 0
	default:
		return 2
	}
}

// conns returns every connection in r, the host first if present.
func (r *roomState) conns() []*conn {
	all := make([]*conn, 0, len(r.members)+1)
	if r.host != nil {
		all = append(all, r.host)
	}
	for _, m := range r.members {
		all = append(all, m)
	}
	return all
}

// assignLocked reserves a slot for rcv on up to n sources with a free slot,
// best first (see rank; then most free slots, to spread the load; then
// arrival), and returns their peer IDs. Sources already linked to rcv are
// skipped, so release{peer} always names exactly one assignment.
func (s *Server) assignLocked(r *roomState, rcv *conn, n int) []string {
	var cands []*conn
	for _, src := range r.conns() {
		if src != rcv && src.pool.free() > 0 && !linked(src, rcv) {
			cands = append(cands, src)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	slices.SortFunc(cands, func(a, b *conn) int {
		return cmp.Or(
			cmp.Compare(r.rank(a), r.rank(b)),
			cmp.Compare(b.pool.free(), a.pool.free()),
			cmp.Compare(a.pool.seq, b.pool.seq),
		)
	})
	cands = cands[:min(n, len(cands))]
	now := s.cfg.Now()
	ids := make([]string, len(cands))
	for i, src := range cands {
		if src.pool.serving == nil {
			src.pool.serving = make(map[*conn]struct{})
		}
		if rcv.pool.sources == nil {
			rcv.pool.sources = make(map[*conn]assignment)
		}
		src.pool.serving[rcv] = struct{}{}
		rcv.pool.sources[src] = assignment{since: now}
		ids[i] = src.id
		rcv.log.Debug("source assigned", "room", r.id, "receiver", rcv.id, "source", src.id,
			"source_free", src.pool.free(), "complete", src.pool.complete)
	}
	return ids
}

// unlinkLocked ends the assignment between a and b, whichever direction it
// runs. It reports whether there was one.
func unlinkLocked(a, b *conn) bool {
	if _, ok := a.pool.serving[b]; ok {
		delete(a.pool.serving, b)
		delete(b.pool.sources, a)
		return true
	}
	if _, ok := a.pool.sources[b]; ok {
		delete(a.pool.sources, b)
		delete(b.pool.serving, a)
		return true
	}
	return false
}

// serveQueueLocked hands free slots to the queue in order: each waiting
// member takes every usable source before the next is considered, so a
// later arrival only gets what those ahead of it cannot use (a source they
// already hold). Members that got their full count leave the queue; then
// everyone whose position changed is told.
func (s *Server) serveQueueLocked(r *roomState) {
	q := r.queue[:0]
	for _, w := range r.queue {
		if ids := s.assignLocked(r, w, w.pool.want); len(ids) > 0 {
			w.pool.want -= len(ids)
			w.send(&room.Message{Type: room.TypePeers, Peers: ids})
			w.log.Debug("queue served", "room", r.id, "peer", w.id, "sources", len(ids), "still_wanted", w.pool.want)
		}
		if w.pool.want > 0 {
			q = append(q, w)
			continue
		}
		w.pool.queued, w.pool.position = false, 0
	}
	clear(r.queue[len(q):]) // drop references to members that left the queue
	r.queue = q
	s.sendPositionsLocked(r)
}

// sendPositionsLocked sends queued{position, sources} to every queued
// member whose position or count of possible sources differs from what it
// was last told.
func (s *Server) sendPositionsLocked(r *roomState) {
	if len(r.queue) == 0 {
		return
	}
	offering := 0
	for _, c := range r.conns() {
		if c.pool.slots > 0 {
			offering++
		}
	}
	for i, w := range r.queue {
		n := othersOffering(w, offering)
		if w.pool.position != i+1 || w.pool.told != n {
			w.pool.position, w.pool.told = i+1, n
			w.send(&room.Message{Type: room.TypeQueued, Position: i + 1, Sources: n})
		}
	}
}

// othersOffering is how many of the offering connections of w's room
// could still be assigned to w: not w, not linked to it already. A pair
// is linked one way at most (assignLocked skips linked sources).
func othersOffering(w *conn, offering int) int {
	n := offering
	if w.pool.slots > 0 {
		n--
	}
	for o := range w.pool.sources {
		if o.pool.slots > 0 {
			n--
		}
	}
	for o := range w.pool.serving {
		if o.pool.slots > 0 {
			n--
		}
	}
	return max(n, 0)
}

// unqueueLocked takes c out of the queue; the caller sends the new
// positions (serveQueueLocked or sendPositionsLocked).
func unqueueLocked(r *roomState, c *conn) {
	if !c.pool.queued {
		return
	}
	c.pool.queued, c.pool.position, c.pool.want = false, 0, 0
	if i := slices.Index(r.queue, c); i >= 0 {
		r.queue = slices.Delete(r.queue, i, i+1)
	}
}

// leavePoolLocked removes a departing c from the pool: out of the queue,
// every assignment ended with left{c} to the other end, its slots gone. It
// returns the connections told, so the caller does not send a second left
// for the legacy handshake. The caller serves the queue afterwards.
func (s *Server) leavePoolLocked(r *roomState, c *conn) map[*conn]bool {
	unqueueLocked(r, c)
	told := make(map[*conn]bool)
	ends := slices.AppendSeq(slices.Collect(maps.Keys(c.pool.serving)), maps.Keys(c.pool.sources))
	for _, o := range ends {
		unlinkLocked(c, o)
		if !told[o] {
			told[o] = true
			o.send(&room.Message{Type: room.TypeLeft, Peer: c.id})
		}
	}
	c.pool.slots, c.pool.complete = 0, false
	return told
}

// seed makes c a source with m.Slots upload slots, or updates its offer.
// Fewer slots than are in use only stops new assignments. A complete seed
// needs nothing, so it leaves the queue: were it kept there, every slot it
// released would come straight back to it.
func (s *Server) seed(c *conn, m *room.Message) error {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r := c.room
	if r == nil {
		return fmt.Errorf("%w: seed before create or join", room.ErrNotAllowed)
	}
	r.lastActive = now
	c.pool.slots, c.pool.complete = m.Slots, m.Complete
	if m.Complete {
		unqueueLocked(r, c)
	}
	c.log.Debug("source announced", "room", r.id, "peer", c.id, "slots", m.Slots, "in_use", len(c.pool.serving), "complete", m.Complete)
	s.serveQueueLocked(r)
	return nil
}

// want assigns up to m.Count sources to the member c and answers peers, or
// queues c and answers queued. A want while queued replaces the count still
// wanted and is answered with the position.
func (s *Server) want(c *conn, m *room.Message) error {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r := c.room
	switch {
	case r == nil:
		return fmt.Errorf("%w: want before join", room.ErrNotAllowed)
	case c == r.host:
		return fmt.Errorf("%w: the host has every piece; only receivers want sources", room.ErrNotAllowed)
	}
	r.lastActive = now
	if s.silencedLocked(c.key, now) {
		c.log.Info("want refused: assignments left unused", "room", r.id, "peer", c.id)
		return fmt.Errorf("%w: receivers from this address left too many sources unused; wait a minute", room.ErrRateLimited)
	}
	if c.pool.queued {
		c.pool.want = m.Count
		c.pool.position = 0 // answer this want even if the position is unchanged
		s.serveQueueLocked(r)
		return nil
	}
	if ids := s.assignLocked(r, c, m.Count); len(ids) > 0 {
		c.send(&room.Message{Type: room.TypePeers, Peers: ids})
		// A queued source just assigned to c can no longer count c
		// among those that could serve it.
		s.sendPositionsLocked(r)
		return nil
	}
	c.pool.queued, c.pool.want = true, m.Count
	r.queue = append(r.queue, c)
	c.log.Debug("queued for a source", "room", r.id, "peer", c.id, "want", m.Count, "position", len(r.queue))
	s.sendPositionsLocked(r)
	return nil
}

// release ends c's assignment with m.Peer, from either end (endLinkLocked).
func (s *Server) release(c *conn, m *room.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := c.room
	if r == nil {
		return errNotAllowed(m.Peer, "release before create or join")
	}
	other := r.peer(m.Peer)
	if other == nil || !linked(c, other) {
		// The same answer for IDs of no one, so it reveals nobody.
		return errNotAllowed(m.Peer, "no assignment with that peer")
	}
	s.endLinkLocked(r, c, other)
	return nil
}

// endLinkLocked ends the assignment between c and other at c's request:
// the slot frees (and goes to the queue) and other gets left. The legacy
// handshake between a member and the host ends with it, so left always
// means that nothing remains between the two, and the host holds no state
// for that member any more.
func (s *Server) endLinkLocked(r *roomState, c, other *conn) {
	unlinkLocked(c, other)
	if c == r.host {
		other.contacted = false
	} else if other == r.host {
		c.contacted = false
	}
	other.send(&room.Message{Type: room.TypeLeft, Peer: c.id})
	c.log.Debug("assignment ended", "room", r.id, "peer", c.id, "other", other.id)
	s.serveQueueLocked(r)
}

// expireLocked ends every assignment in r whose two ends have not both
// relayed on it within AssignTimeout, as if the receiver had released it.
// Otherwise a receiver that asks and never speaks (crashed before its
// first offer, or hoarding slots: it needs the room ID, not the password)
// would hold its slots for as long as its connection lives, and the queue
// would wait as long; and relaying junk the source ignores would do as
// well as silence, were the receiver's relay enough. The receiver did not
// ask for the end, so, unlike on release, it gets left too; if it was the
// one that stayed silent, its address is charged (chargeSilentLocked). An
// assignment both ends have relayed on is left alone: a transfer may take
// hours, and it ends with release or a disconnect.
func (s *Server) expireLocked(r *roomState, now time.Time) {
	for _, rcv := range r.members { // the host never wants, so holds no slots
		// endLinkLocked deletes the entry being visited and may add fresh
		// ones, which are not yet due; both are safe while ranging.
		for src, a := range rcv.pool.sources {
			if a.used() || now.Sub(a.since) < s.cfg.AssignTimeout {
				continue
			}
			rcv.log.Info("assignment expired: no handshake on it", "room", r.id, "peer", rcv.id,
				"source", src.id, "receiver_relayed", a.rcv, "source_relayed", a.src, "timeout", s.cfg.AssignTimeout)
			if !a.rcv {
				s.chargeSilentLocked(rcv.key, now)
			}
			rcv.send(&room.Message{Type: room.TypeLeft, Peer: src.id})
			s.endLinkLocked(r, rcv, src)
		}
	}
}

// fail counts one failed password handshake reported by a source. At the
// room's MaxFailures the room closes as if its host had sent
// close{too_many_failures}. Only sources may report, and each report is a
// frame under the server's usual limits; still, a malicious member that
// seeds can close the room this way. That is accepted: the room's password
// is what it guards, and such a member could as well refuse to serve.
func (s *Server) fail(c *conn) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := c.room
	switch {
	case r == nil:
		return fmt.Errorf("%w: fail before create or join", room.ErrNotAllowed)
	case c.pool.slots == 0:
		return fmt.Errorf("%w: only sources report failed handshakes", room.ErrNotAllowed)
	}
	r.failures++
	c.log.Info("failed handshake reported", "room", r.id, "peer", c.id, "failures", r.failures, "max_failures", r.maxFailures)
	if r.maxFailures == 0 || r.failures < r.maxFailures {
		return nil
	}
	why := fmt.Errorf("%w: %d failed password attempts", room.ErrTooManyFailures, r.failures)
	host := r.host
	s.closeRoomLocked(r, why, "too many failures")
	if host != nil {
		host.closeWith(room.ErrorMessage(why), statusNormal, "room closed")
	}
	return nil
}

// peer returns the connection with peer ID id in r, host or member.
func (r *roomState) peer(id string) *conn {
	if r.host != nil && r.host.id == id {
		return r.host
	}
	return r.members[id]
}
