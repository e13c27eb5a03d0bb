package sigserver

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/p2pxfer/p2pxfer/room"
)

// roomState is one open room. All fields are guarded by Server.mu.
type roomState struct {
	id         string
	host       *conn            // nil once the host left a room kept by Config.KeepRoomWithoutHost
	hostID     string           // the host's peer ID, still announced in joined after it left
	members    map[string]*conn // by peer ID; receivers only
	lastActive time.Time        // last create, join, relay, seed or want, for idle expiry
	key        string           // rate-limit bucket of the creator, whose room count it holds

	signKey     []byte  // manifest-signing public key from create, handed out in joined; never logged
	maxFailures int     // failed handshakes that close the room; 0: no limit here
	failures    int     // failed handshakes reported by sources
	queue       []*conn // members waiting for a free slot, first come first served
	nextSeq     uint64  // numbers arrivals, for poolState.seq
}

// peerError carries the peer a refused relay or leave was addressed to, so
// the error message can name it (Message.Peer) and the client can tell
// which handshake failed.
type peerError struct {
	peer string
	err  error
}

func (e *peerError) Error() string { return e.err.Error() }
func (e *peerError) Unwrap() error { return e.err }

func errPeerGone(peer string) error {
	return &peerError{peer: peer, err: fmt.Errorf("%w: %s", room.ErrPeerGone, peer)}
}

func errNotAllowed(peer, why string) error {
	return &peerError{peer: peer, err: fmt.Errorf("%w: %s", room.ErrNotAllowed, why)}
}

// Reasons a room closes, as its members are told.
var (
	errShuttingDown = fmt.Errorf("%w: signalling server shutting down", room.ErrRoomClosed)
	errHostLeft     = fmt.Errorf("%w: host left", room.ErrRoomClosed)
	errHostClosed   = fmt.Errorf("%w: closed by host", room.ErrRoomClosed)
)

func errRoomExpired(idle time.Duration) error {
	return fmt.Errorf("%w: no activity for %v", room.ErrRoomClosed, idle)
}

// handle applies one decoded message from c. A returned error is answered
// to c by readLoop (and closes c if its code is fatal).
func (s *Server) handle(c *conn, m *room.Message) error {
	switch m.Type {
	case room.TypeCreate:
		return s.create(c, m)
	case room.TypeJoin:
		return s.join(c, m)
	case room.TypeRelay:
		return s.relay(c, m)
	case room.TypeLeave:
		return s.leave(c, m)
	case room.TypeClose:
		return s.closeByHost(c, m)
	case room.TypeSeed:
		return s.seed(c, m)
	case room.TypeWant:
		return s.want(c, m)
	case room.TypeRelease:
		return s.release(c, m)
	case room.TypeFail:
		return s.fail(c)
	default:
		return fmt.Errorf("%w: %s is a server-to-client message", room.ErrNotAllowed, m.Type)
	}
}

func checkVersion(m *room.Message) error {
	if m.Version != room.ProtocolVersion {
		return fmt.Errorf("%w: this server speaks signalling protocol version %d, the client version %d; use matching p2pxfer versions",
			room.ErrVersion, room.ProtocolVersion, m.Version)
	}
	return nil
}

func (s *Server) create(c *conn, m *room.Message) error {
	if c.ready.Load() {
		return fmt.Errorf("%w: this connection already created or joined a room", room.ErrNotAllowed)
	}
	if err := checkVersion(m); err != nil {
		return err
	}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ips := s.ipLocked(c.key)
	if ips.rooms >= s.cfg.MaxRoomsPerIP {
		return fmt.Errorf("%w: %d rooms already open from this address", room.ErrRateLimited, ips.rooms)
	}
	id, err := s.newRoomIDLocked()
	if err != nil {
		s.log.Error("create room", "err", err)
		return fmt.Errorf("%w: cannot create a room ID", room.ErrInternal)
	}
	peer, err := room.NewPeerID()
	if err != nil {
		s.log.Error("create room", "err", err)
		return fmt.Errorf("%w: cannot create a peer ID", room.ErrInternal)
	}
	r := &roomState{
		id: id, host: c, hostID: peer, members: make(map[string]*conn), lastActive: now, key: c.key,
		signKey: slices.Clone(m.Key), maxFailures: m.MaxFailures,
	}
	s.rooms[id] = r
	ips.rooms++
	c.id, c.roomID, c.room = peer, id, r
	// The host is a full source from the start: it has every piece.
	c.pool = poolState{seq: r.nextSeq, slots: cmp.Or(m.Slots, DefaultHostSlots), complete: true}
	r.nextSeq++
	c.ready.Store(true)
	c.send(&room.Message{Type: room.TypeCreated, Room: id, Peer: peer, ICE: s.ice(id, peer, c.host)})
	c.log.Info("room created", "room", id, "peer", peer, "rooms_from_ip", ips.rooms,
		"slots", c.pool.slots, "max_failures", m.MaxFailures, "signing_key", m.Key != nil)
	return nil
}

// ice is what Config.ICE gives a member, if anything.
func (s *Server) ice(roomID, peer, host string) []room.ICEServer {
	if s.cfg.ICE == nil {
		return nil
	}
	return s.cfg.ICE(roomID, peer, host)
}

// RoomOpen reports whether the room id exists: a relay's credentials for
// its members are good while it does.
func (s *Server) RoomOpen(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rooms[id] != nil
}

// newRoomIDLocked draws room IDs until one is free. With 31^8 IDs a
// collision is rare; the bound only guards against a broken random source.
func (s *Server) newRoomIDLocked() (string, error) {
	for range 16 {
		id, err := room.NewRoomID()
		if err != nil {
			return "", err
		}
		if _, taken := s.rooms[id]; !taken {
			return id, nil
		}
	}
	return "", fmt.Errorf("no free room ID after 16 tries")
}

func (s *Server) join(c *conn, m *room.Message) error {
	if c.ready.Load() {
		return fmt.Errorf("%w: this connection already created or joined a room", room.ErrNotAllowed)
	}
	if err := checkVersion(m); err != nil {
		return err
	}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	// Every attempt counts, found or not: the limit exists to make
	// guessing room IDs slow. A room that closed lately is answered with
	// why, even over the limit: the receivers of a room closed after too
	// many wrong passwords come from one address as often as not, and
	// "rate limited" would send them waiting for nothing. That tells a
	// guesser only of rooms that are gone.
	allowed := s.ipLocked(c.key).lim.AllowN(now, 1)
	if why := s.gone.why(m.Room); why != nil && s.rooms[m.Room] == nil {
		c.log.Info("join of a closed room", "room", m.Room, "err", why)
		return why
	}
	if !allowed {
		c.log.Info("join rate limited", "room", m.Room)
		return fmt.Errorf("%w: too many joins from this address; wait a few seconds", room.ErrRateLimited)
	}
	r := s.rooms[m.Room]
	if r == nil {
		c.log.Info("join of unknown room", "room", m.Room)
		return fmt.Errorf("%w: %s", room.ErrRoomNotFound, m.Room)
	}
	var peer string
	for {
		id, err := room.NewPeerID()
		if err != nil {
			s.log.Error("join room", "err", err)
			return fmt.Errorf("%w: cannot create a peer ID", room.ErrInternal)
		}
		if _, taken := r.members[id]; !taken && id != r.hostID {
			peer = id
			break
		}
	}
	r.members[peer] = c
	r.lastActive = now
	c.id, c.roomID, c.room = peer, r.id, r
	c.pool = poolState{seq: r.nextSeq}
	r.nextSeq++
	c.ready.Store(true)
	c.send(&room.Message{Type: room.TypeJoined, Room: r.id, Peer: peer, Host: r.hostID, Key: r.signKey, ICE: s.ice(r.id, peer, c.host)})
	c.log.Info("peer joined", "room", r.id, "peer", peer, "members", len(r.members))
	return nil
}

// relay forwards m.Data between the two ends of one handshake, with Peer
// rewritten to the sender so nobody can speak under another's ID. Two
// rules allow it: the legacy one, where a member may reach the host and the
// host only a member that contacted it, so a member learns nothing about
// the others and the host holds no state for members that never asked; and
// the seed pool's, where the two ends of an assignment may reach each other
// both ways.
func (s *Server) relay(c *conn, m *room.Message) error {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r := c.room
	if r == nil {
		return errNotAllowed(m.Peer, "relay before create or join")
	}
	var to *conn
	switch {
	case m.Peer == c.id:
		return errNotAllowed(m.Peer, "relay to self")
	case c == r.host:
		to = r.members[m.Peer]
		switch {
		case to == nil:
			return errPeerGone(m.Peer)
		case !to.contacted && !linked(c, to):
			return errNotAllowed(m.Peer, "that receiver has not contacted the host")
		}
	case m.Peer == r.hostID:
		if r.host == nil { // left a room that outlives it
			return errPeerGone(m.Peer)
		}
		to = r.host
		c.contacted = true
	default:
		to = r.members[m.Peer]
		if to == nil || !linked(c, to) {
			// Also for IDs of no one, so members cannot probe for each other.
			return errNotAllowed(m.Peer, "receivers may relay only to the host or to an assigned peer")
		}
	}
	r.lastActive = now
	// Each end's relay counts towards the first round trip that keeps
	// the assignment (expireLocked).
	if a, ok := c.pool.sources[to]; ok {
		a.rcv = true
		c.pool.sources[to] = a
	} else if a, ok := to.pool.sources[c]; ok {
		a.src = true
		to.pool.sources[c] = a
	}
	// A fresh message: nothing the sender set besides Data is forwarded.
	if !to.send(&room.Message{Type: room.TypeRelay, Peer: c.id, Data: m.Data}) {
		return errPeerGone(m.Peer)
	}
	return nil
}

// leave ends one handshake: the other end gets left{peer: sender}. A member
// stays in the room and may start a new handshake by relaying again. Between
// the two ends of an assignment it is release: left must mean the same
// whatever caused it, and a receiver could not otherwise tell whether its
// slot is still reserved.
func (s *Server) leave(c *conn, m *room.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := c.room
	if r == nil {
		return errNotAllowed(m.Peer, "leave before create or join")
	}
	if other := r.peer(m.Peer); other != nil && linked(c, other) {
		s.endLinkLocked(r, c, other)
		return nil
	}
	if c == r.host {
		to := r.members[m.Peer]
		switch {
		case to == nil:
			return errPeerGone(m.Peer)
		case !to.contacted:
			return errNotAllowed(m.Peer, "that receiver has not contacted the host")
		}
		to.contacted = false
		to.send(&room.Message{Type: room.TypeLeft, Peer: c.id})
		return nil
	}
	if m.Peer != r.hostID {
		return errNotAllowed(m.Peer, "receivers may leave only the host or an assigned peer")
	}
	if r.host == nil {
		return errPeerGone(m.Peer)
	}
	if c.contacted { // nothing to end otherwise
		c.contacted = false
		r.host.send(&room.Message{Type: room.TypeLeft, Peer: c.id})
	}
	return nil
}

// closeByHost closes the host's room. Members are told why: too many wrong
// passwords if the host says so, else just closed. The host's connection,
// now in no room, is closed too.
func (s *Server) closeByHost(c *conn, m *room.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := c.room
	if r == nil || r.host != c {
		return fmt.Errorf("%w: only a room's host can close it", room.ErrNotAllowed)
	}
	why := errHostClosed
	if m.Code == room.CodeTooManyFailures {
		why = fmt.Errorf("%w: host closed the room", room.ErrTooManyFailures)
	}
	s.closeRoomLocked(r, why, "closed by host")
	c.closeWith(nil, statusNormal, "room closed")
	return nil
}

// closeRoomLocked deletes r and closes its members' connections with the
// error why. The host's connection, if it is still there, is left to the
// caller.
func (s *Server) closeRoomLocked(r *roomState, why error, reason string) {
	delete(s.rooms, r.id)
	if why != errShuttingDown { // no one can ask this server again
		s.gone.add(r.id, why, s.cfg.Now())
	}
	if ips := s.ips[r.key]; ips != nil && ips.rooms > 0 {
		ips.rooms--
	}
	msg := room.ErrorMessage(why)
	for _, m := range r.members {
		m.room, m.contacted = nil, false
		m.closeWith(msg, statusNormal, "room closed")
	}
	s.log.Info("room closed", "room", r.id, "reason", reason, "code", msg.Code, "members", len(r.members))
	r.members, r.queue = nil, nil
	if r.host != nil {
		r.host.room = nil
	}
}

// disconnect forgets c after its reader ended. Its assignments end (the
// other ends get left), it leaves the queue and its slots go, and a
// contacted host hears that the member left. A host's departure closes
// its room unless Config.KeepRoomWithoutHost; a room without its host is
// deleted with its last member. It returns c's room and peer ID for the
// log.
func (s *Server) disconnect(c *conn) (roomID, peer string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if ips := s.ips[c.key]; ips != nil && ips.conns > 0 {
		ips.conns--
	}
	roomID, peer = c.roomID, c.id
	r := c.room
	if r == nil {
		return roomID, peer
	}
	c.room = nil
	if c == r.host && !s.cfg.KeepRoomWithoutHost {
		s.closeRoomLocked(r, errHostLeft, "host left")
		return roomID, peer
	}
	told := s.leavePoolLocked(r, c)
	if c == r.host {
		r.host = nil
		for _, m := range r.members {
			if m.contacted {
				m.contacted = false
				if !told[m] {
					m.send(&room.Message{Type: room.TypeLeft, Peer: c.id})
				}
			}
		}
		c.log.Info("host left; room kept for its members", "room", r.id, "peer", c.id, "members", len(r.members))
	} else {
		delete(r.members, c.id)
		if c.contacted {
			c.contacted = false
			if r.host != nil && !told[r.host] {
				r.host.send(&room.Message{Type: room.TypeLeft, Peer: c.id})
			}
		}
		c.log.Info("peer left", "room", r.id, "peer", c.id, "members", len(r.members))
	}
	if r.host == nil && len(r.members) == 0 {
		s.closeRoomLocked(r, errHostLeft, "last peer left")
		return roomID, peer
	}
	// c's slots are gone, but those it held on others are free now.
	s.serveQueueLocked(r)
	return roomID, peer
}

// maxClosed bounds the rooms closedRooms remembers: a few hundred bytes
// each.
const maxClosed = 4096

// closedRooms remembers, for Config.ClosedMemory and for at most
// maxClosed rooms, why each recently closed room closed. Guarded by
// Server.mu.
type closedRooms struct {
	m     map[string]closedRoom
	order []string // room IDs, oldest close first; may name rooms already pruned
}

type closedRoom struct {
	why error
	at  time.Time
}

func (g *closedRooms) add(id string, why error, now time.Time) {
	if _, ok := g.m[id]; !ok {
		g.order = append(g.order, id)
	}
	g.m[id] = closedRoom{why: why, at: now}
	for len(g.m) > maxClosed {
		delete(g.m, g.order[0])
		g.order = g.order[1:]
	}
}

// why is the error a join of id gets, nil if id did not close lately.
func (g *closedRooms) why(id string) error {
	if c, ok := g.m[id]; ok {
		return c.why
	}
	return nil
}

// prune forgets the rooms closed before cutoff. (A room closed twice
// keeps its first place in order, so it may go early: harmless.)
func (g *closedRooms) prune(cutoff time.Time) {
	for len(g.order) > 0 {
		id := g.order[0]
		if c, ok := g.m[id]; ok {
			if !c.at.Before(cutoff) {
				break
			}
			delete(g.m, id)
		}
		g.order = g.order[1:]
	}
	if len(g.order) == 0 {
		g.order = nil // let the array go
	}
}
