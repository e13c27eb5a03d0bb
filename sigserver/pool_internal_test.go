package sigserver

import (
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/p2pxfer/p2pxfer/room"
)

// fakeConn is a conn with no socket, for driving the handlers directly. Its
// queue is drained by the test; nothing here may close it (no socket).
func fakeConn(s *Server) *conn {
	return &conn{
		s: s, out: make(chan outFrame, outQueueLen), quit: make(chan struct{}),
		log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// checkPool verifies the pool's invariants for r: assignments recorded on
// both ends and only between connections of r; queue entries consistent;
// and no queued member able to use a free slot (pool.go's invariant).
func checkPool(t *testing.T, r *roomState) {
	t.Helper()
	in := map[*conn]bool{}
	for _, c := range r.conns() {
		in[c] = true
	}
	for _, c := range r.conns() {
		for o := range c.pool.serving {
			if _, ok := o.pool.sources[c]; !ok || !in[o] || o == c {
				t.Fatalf("%s serves %s: not mirrored or not in the room", c.id, o.id)
			}
		}
		for o := range c.pool.sources {
			if _, ok := o.pool.serving[c]; !ok || !in[o] {
				t.Fatalf("%s holds %s: not mirrored or not in the room", c.id, o.id)
			}
		}
		if c.pool.queued != (c.pool.position > 0) {
			t.Fatalf("%s: queued %v at position %d", c.id, c.pool.queued, c.pool.position)
		}
	}
	for i, w := range r.queue {
		if !in[w] || !w.pool.queued || w.pool.want <= 0 || w.pool.position != i+1 || w == r.host {
			t.Fatalf("queue[%d] = %s: in room %v, queued %v, want %d, position %d", i, w.id, in[w], w.pool.queued, w.pool.want, w.pool.position)
		}
		others := 0
		for _, src := range r.conns() {
			if src != w && src.pool.free() > 0 && !linked(src, w) {
				t.Fatalf("queued %s could use free source %s", w.id, src.id)
			}
			if src != w && src.pool.slots > 0 && !linked(src, w) {
				others++
			}
		}
		if w.pool.told != others {
			t.Fatalf("queued %s was last told of %d sources, and there are %d", w.id, w.pool.told, others)
		}
	}
}

// silenceLocked lists r's assignments (receiver->source) that have gone
// AssignTimeout or longer without both ends relaying on them, and those on
// which both have.
func silenceLocked(s *Server, r *roomState) (due, used []string) {
	now := s.cfg.Now()
	for _, c := range r.members {
		for src, a := range c.pool.sources {
			switch {
			case a.used():
				used = append(used, c.id+"->"+src.id)
			case now.Sub(a.since) >= s.cfg.AssignTimeout:
				due = append(due, c.id+"->"+src.id)
			}
		}
	}
	return due, used
}

// Random seeds, wants, relays, releases, departures and sweeps keep the
// invariants; a sweep ends every silent assignment that is due and no
// assignment the receiver has relayed on.
func TestPoolInvariants(t *testing.T) {
	var clock atomic.Int64 // nanoseconds; atomic as the janitor may sweep too
	s := New(Config{
		JoinRate: 1e6, JoinBurst: 1e6, SilentBurst: 1e6, KeepRoomWithoutHost: true,
		Now: func() time.Time { return time.Unix(0, clock.Load()) }, RoomIdle: 1000 * time.Hour,
	})
	defer s.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	host := fakeConn(s)
	if err := s.create(host, &room.Message{Type: room.TypeCreate, Version: room.ProtocolVersion, Slots: 2}); err != nil {
		t.Fatal(err)
	}
	r := host.room
	live := []*conn{host}
	sent := map[room.Type]int{}
	expired, kept := 0, 0 // assignments ended by sweeps, and relayed on when swept
	drain := func() {
		for _, c := range live {
			for len(c.out) > 0 {
				m, err := room.Decode((<-c.out).data)
				if err != nil {
					t.Fatalf("server sent a bad frame: %v", err)
				}
				sent[m.Type]++
			}
		}
	}
	for range 3000 {
		c := live[rng.IntN(len(live))]
		var err error
		swept, usedBefore := false, []string(nil)
		switch op := rng.IntN(13); {
		case op < 2 && len(live) < 12:
			n := fakeConn(s)
			if err = s.join(n, &room.Message{Type: room.TypeJoin, Version: room.ProtocolVersion, Room: r.id}); err == nil {
				live = append(live, n)
			}
		case op < 4:
			err = s.seed(c, &room.Message{Type: room.TypeSeed, Slots: 1 + rng.IntN(3), Complete: rng.IntN(2) == 0})
		case op < 7:
			err = s.want(c, &room.Message{Type: room.TypeWant, Count: 1 + rng.IntN(3)})
		case op < 9:
			// release and, between assigned peers, leave end an assignment.
			o := live[rng.IntN(len(live))]
			if rng.IntN(2) == 0 {
				err = s.release(c, &room.Message{Type: room.TypeRelease, Peer: o.id})
			} else if err = s.leave(c, &room.Message{Type: room.TypeLeave, Peer: o.id}); room.CodeOf(err) == room.CodePeerGone {
				err = nil // leave to the departed host
			}
		case op < 11:
			// Relays, half of them to the other end of one of c's
			// assignments, most of those answered: relays from both
			// ends keep an assignment from expiring.
			o := live[rng.IntN(len(live))]
			s.mu.Lock()
			ends := slices.DeleteFunc(slices.Clone(live), func(x *conn) bool { return !linked(c, x) })
			s.mu.Unlock()
			roundTrip := len(ends) > 0 && rng.IntN(2) == 0
			if roundTrip {
				o = ends[rng.IntN(len(ends))]
			}
			if err = s.relay(c, &room.Message{Type: room.TypeRelay, Peer: o.id, Data: []byte("x")}); room.CodeOf(err) == room.CodePeerGone {
				err = nil // relay to the departed host
			}
			if err == nil && roundTrip && rng.IntN(3) != 0 {
				err = s.relay(o, &room.Message{Type: room.TypeRelay, Peer: c.id, Data: []byte("y")})
			}
		case op < 12:
			clock.Add(rng.Int64N(int64(DefaultAssignTimeout)))
			s.mu.Lock()
			due, used := silenceLocked(s, r)
			s.mu.Unlock()
			expired, kept, usedBefore = expired+len(due), kept+len(used), used
			s.Sweep()
			swept = true
		case len(live) > 2:
			s.disconnect(c)
			for i, l := range live {
				if l == c {
					live = append(live[:i], live[i+1:]...)
					break
				}
			}
		}
		if err != nil && room.CodeOf(err) != room.CodeNotAllowed {
			t.Fatalf("unexpected error: %v", err)
		}
		drain()
		func() {
			s.mu.Lock()
			defer s.mu.Unlock() // checkPool may Fatal; the deferred s.Close needs mu
			checkPool(t, r)     // the walk keeps two connections, so r stays open
			if !swept {
				return
			}
			due, used := silenceLocked(s, r)
			if len(due) > 0 {
				t.Fatalf("silent assignments left by a sweep: %v", due)
			}
			for _, a := range usedBefore {
				if !slices.Contains(used, a) {
					t.Fatalf("sweep ended %s, on which the receiver relayed", a)
				}
			}
		}()
	}
	// A walk that never queued or never served proves little. (A
	// sources count that changes sends queued again too.)
	if sent[room.TypePeers] < 100 || sent[room.TypeQueued] < 100 || sent[room.TypeLeft] < 100 ||
		sent[room.TypeRelay] < 100 || expired < 100 || kept < 100 {
		t.Fatalf("walk too tame: %v; assignments expired %d, kept %d", sent, expired, kept)
	}
	t.Logf("messages sent: %v; assignments expired %d, kept %d", sent, expired, kept)
}
