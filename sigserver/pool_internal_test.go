package sigserver

import (
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"

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
		for _, src := range r.conns() {
			if src != w && src.pool.free() > 0 && !linked(src, w) {
				t.Fatalf("queued %s could use free source %s", w.id, src.id)
			}
		}
	}
}

// Random seeds, wants, releases and departures keep the invariants.
func TestPoolInvariants(t *testing.T) {
	s := New(Config{JoinRate: 1e6, JoinBurst: 1e6, KeepRoomWithoutHost: true})
	defer s.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	host := fakeConn(s)
	if err := s.create(host, &room.Message{Type: room.TypeCreate, Version: room.ProtocolVersion, Slots: 2}); err != nil {
		t.Fatal(err)
	}
	r := host.room
	live := []*conn{host}
	sent := map[room.Type]int{}
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
		switch op := rng.IntN(10); {
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
		}()
	}
	// A walk that never queued or never served proves little.
	if sent[room.TypePeers] < 100 || sent[room.TypeQueued] < 100 || sent[room.TypeLeft] < 100 {
		t.Fatalf("walk too tame: %v", sent)
	}
	t.Logf("messages sent: %v", sent)
}
