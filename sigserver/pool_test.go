package sigserver_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/p2pxfer/p2pxfer/room"
	"github.com/p2pxfer/p2pxfer/signalclient"
	"github.com/p2pxfer/p2pxfer/sigserver"
)

// nobody is a well-formed peer ID that no connection has.
const nobody = "abcdefghjkmn"

func (e *env) hostWith(o signalclient.CreateOptions) (c *signalclient.Conn, roomID, hostID string) {
	e.t.Helper()
	c = e.dial()
	roomID, hostID, err := c.CreateWith(ctxT(e.t), o)
	if err != nil {
		e.t.Fatalf("CreateWith: %v", err)
	}
	return c, roomID, hostID
}

func want(t *testing.T, c *signalclient.Conn, n int) {
	t.Helper()
	if err := c.Want(ctxT(t), n); err != nil {
		t.Fatalf("Want: %v", err)
	}
}

// seed announces slots and waits until the server has handled it: frames
// of different connections are not ordered, so a want sent next by someone
// else could otherwise arrive first. c must have nothing else pending.
func seed(t *testing.T, c *signalclient.Conn, slots int, complete bool) {
	t.Helper()
	if err := c.Seed(ctxT(t), slots, complete); err != nil {
		t.Fatalf("Seed: %v", err)
	}
	quiet(t, c)
}

func release(t *testing.T, c *signalclient.Conn, peer string) {
	t.Helper()
	if err := c.Release(ctxT(t), peer); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

// expectPeers checks the next message is peers with exactly ids, in order.
func expectPeers(t *testing.T, c *signalclient.Conn, ids ...string) {
	t.Helper()
	m := recv(t, c)
	if m.Type != room.TypePeers || !slices.Equal(m.Peers, ids) {
		t.Fatalf("got %+v, want peers %v", m, ids)
	}
}

func expectQueued(t *testing.T, c *signalclient.Conn, pos int) {
	t.Helper()
	m := recv(t, c)
	if m.Type != room.TypeQueued || m.Position != pos {
		t.Fatalf("got %+v, want queued{%d}", m, pos)
	}
}

// expectSources checks the next message is queued{pos} with sources
// others that could serve c.
func expectSources(t *testing.T, c *signalclient.Conn, pos, sources int) {
	t.Helper()
	m := recv(t, c)
	if m.Type != room.TypeQueued || m.Position != pos || m.Sources != sources {
		t.Fatalf("got %+v, want queued{%d, sources %d}", m, pos, sources)
	}
}

func expectLeft(t *testing.T, c *signalclient.Conn, peer string) {
	t.Helper()
	m := recv(t, c)
	if m.Type != room.TypeLeft || m.Peer != peer {
		t.Fatalf("got %+v, want left{%s}", m, peer)
	}
}

// quiet checks that c has nothing pending: the server answers a probe (a
// release nobody could hold) in order, so if that answer comes next,
// nothing else was queued for c before it.
func quiet(t *testing.T, c *signalclient.Conn) {
	t.Helper()
	release(t, c, nobody)
	expectError(t, c, room.CodeNotAllowed, nobody)
}

// The worked example of one upload slot: strict FIFO, positions updated.
func TestPoolFIFO(t *testing.T) {
	logs := &syncBuffer{}
	e := start(t, sigserver.Config{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	key := bytes.Repeat([]byte{0xA5}, room.KeySize)
	host, roomID, hostID := e.hostWith(signalclient.CreateOptions{Slots: 1, Key: key})
	m1, m1ID := e.member(roomID, hostID)
	m2, _ := e.member(roomID, hostID)
	m3, _ := e.member(roomID, hostID)

	want(t, m1, 1)
	expectPeers(t, m1, hostID)
	want(t, m2, 1)
	expectQueued(t, m2, 1)
	want(t, m3, 1)
	expectQueued(t, m3, 2)
	quiet(t, m2) // m3's arrival does not move m2

	// A second want while queued updates the count and is answered with
	// the unchanged position.
	want(t, m3, 2)
	expectQueued(t, m3, 2)
	want(t, m3, 1)
	expectQueued(t, m3, 2)

	release(t, m1, hostID)
	expectLeft(t, host, m1ID)
	expectPeers(t, m2, hostID)
	expectQueued(t, m3, 1)
	quiet(t, m1)
	quiet(t, m2)

	// Releasing again, or a peer one never had, is refused but not fatal.
	release(t, m1, hostID)
	expectError(t, m1, room.CodeNotAllowed, hostID)

	// A later arrival does not overtake m3 when the host offers a slot more.
	m4, _ := e.member(roomID, hostID)
	want(t, m4, 1)
	expectQueued(t, m4, 2)
	seed(t, host, 2, true)
	expectPeers(t, m3, hostID)
	expectQueued(t, m4, 1)
	quiet(t, m4)
	quiet(t, host) // sources hear of assignments only when contacted

	// The host has everything; it may not want.
	want(t, host, 1)
	expectError(t, host, room.CodeNotAllowed, "")

	for _, s := range []string{"source assigned", "queued for a source", "queue served"} {
		if !strings.Contains(logs.String(), s) {
			t.Errorf("logs lack %q", s)
		}
	}
	if k := base64.StdEncoding.EncodeToString(key); strings.Contains(logs.String(), k) {
		t.Fatalf("logs contain the signing key:\n%s", logs)
	}
}

// Complete seeds come before the host, the host before partial seeds, and
// among equals the most free slots first.
func TestPoolPreference(t *testing.T) {
	e := start(t, sigserver.Config{})
	_, roomID, hostID := e.hostWith(signalclient.CreateOptions{Slots: 2})
	s1, s1ID := e.member(roomID, hostID)
	s2, s2ID := e.member(roomID, hostID)
	p1, p1ID := e.member(roomID, hostID)

	seed(t, s1, 1, true)
	seed(t, s2, 3, true)
	seed(t, p1, 4, false)
	r1, r1ID := e.member(roomID, hostID)
	want(t, r1, 1)
	expectPeers(t, r1, s2ID) // the complete seed with most free slots, not the host
	r2, _ := e.member(roomID, hostID)
	want(t, r2, 4)
	// s2 (2 free) before s1 (1 free), both complete; then the host; then p1.
	expectPeers(t, r2, s2ID, s1ID, hostID, p1ID)
	// r2 is never given the same source twice, so it waits...
	want(t, r2, 1)
	expectQueued(t, r2, 1)
	// ...but what it cannot use goes to others: r1 gets only two of three.
	want(t, r1, 3)
	expectPeers(t, r1, hostID, p1ID)
	release(t, r1, p1ID)
	expectLeft(t, p1, r1ID)
	quiet(t, r2)
	r3, _ := e.member(roomID, hostID)
	want(t, r3, 1)
	expectPeers(t, r3, s2ID) // s2's last slot; r2, ahead, holds s2 already
	// A new complete seed goes to the head of the queue.
	s3, s3ID := e.member(roomID, hostID)
	seed(t, s3, 1, true)
	expectPeers(t, r2, s3ID)
	quiet(t, r2)
	quiet(t, s3)
	// The served member left the queue: a later want queues it anew.
	want(t, r2, 1)
	expectQueued(t, r2, 1)
}

// An assignment opens relays both ways between its ends and no one else.
func TestPoolRelayRules(t *testing.T) {
	e := start(t, sigserver.Config{})
	host, roomID, hostID := e.hostWith(signalclient.CreateOptions{Slots: 1})
	src, srcID := e.member(roomID, hostID)
	rcv, rcvID := e.member(roomID, hostID)
	other, otherID := e.member(roomID, hostID)

	seed(t, src, 1, true)
	want(t, rcv, 1)
	expectPeers(t, rcv, srcID)
	relay(t, rcv, srcID, "offer")
	expectRelay(t, src, rcvID, "offer")
	relay(t, src, rcvID, "answer") // the source may answer...
	expectRelay(t, rcv, srcID, "answer")
	// ...and so could it first, had the receiver not spoken yet.
	relay(t, src, rcvID, "again")
	expectRelay(t, rcv, srcID, "again")

	// Unassigned members reach each other in neither direction.
	relay(t, other, srcID, "me too")
	expectError(t, other, room.CodeNotAllowed, srcID)
	relay(t, src, otherID, "psst")
	expectError(t, src, room.CodeNotAllowed, otherID)
	relay(t, other, rcvID, "hi")
	expectError(t, other, room.CodeNotAllowed, rcvID)
	// Nothing of the pair's traffic reached the others.
	quiet(t, other)
	quiet(t, host)

	// Between assigned peers leave is release: left always means that
	// nothing remains, so the slot goes back to the pool.
	send(t, other, &room.Message{Type: room.TypeLeave, Peer: srcID})
	expectError(t, other, room.CodeNotAllowed, srcID)
	send(t, rcv, &room.Message{Type: room.TypeLeave, Peer: srcID})
	expectLeft(t, src, rcvID)
	relay(t, rcv, srcID, "restart?")
	expectError(t, rcv, room.CodeNotAllowed, srcID)
	want(t, rcv, 1)
	expectPeers(t, rcv, srcID)

	// release from the source's end ends it; the receiver hears left.
	release(t, src, rcvID)
	expectLeft(t, rcv, srcID)
	relay(t, rcv, srcID, "still?")
	expectError(t, rcv, room.CodeNotAllowed, srcID)
	relay(t, src, rcvID, "still?")
	expectError(t, src, room.CodeNotAllowed, rcvID)

	// The host, assigned to other, may speak first; after release it may
	// not, the legacy handshake ending with the assignment.
	want(t, other, 1)
	expectPeers(t, other, srcID) // the complete seed is free again
	want(t, other, 1)
	expectPeers(t, other, hostID)
	relay(t, host, otherID, "host first")
	expectRelay(t, other, hostID, "host first")
	relay(t, other, hostID, "reply")
	expectRelay(t, host, otherID, "reply")
	release(t, other, hostID)
	expectLeft(t, host, otherID)
	relay(t, host, otherID, "gone?")
	expectError(t, host, room.CodeNotAllowed, otherID)
	quiet(t, rcv)
}

// Departures end assignments, free slots for the queue and move positions.
func TestPoolDepartures(t *testing.T) {
	e := start(t, sigserver.Config{})
	host, roomID, hostID := e.hostWith(signalclient.CreateOptions{Slots: 1})
	src, srcID := e.member(roomID, hostID)
	r1, r1ID := e.member(roomID, hostID)
	r2, _ := e.member(roomID, hostID)
	r3, _ := e.member(roomID, hostID)
	r4, _ := e.member(roomID, hostID)

	seed(t, src, 1, true)
	want(t, r1, 2)
	expectPeers(t, r1, srcID, hostID)
	relay(t, r1, hostID, "legacy contact too")
	expectRelay(t, host, r1ID, "legacy contact too")
	want(t, r2, 1)
	expectSources(t, r2, 1, 2) // busy, but the host and src could serve it
	want(t, r3, 1)
	expectQueued(t, r3, 2)
	want(t, r4, 1)
	expectQueued(t, r4, 3)

	// A queued member leaving moves those behind it up.
	_ = r2.Close()
	expectQueued(t, r3, 1)
	expectQueued(t, r4, 2)

	// A source leaving: its receivers hear left; no slot is freed by it,
	// and the queue hears that one source fewer could serve it.
	_ = src.Close()
	expectLeft(t, r1, srcID)
	expectSources(t, r3, 1, 1)
	expectSources(t, r4, 2, 1)
	quiet(t, r3)

	// A receiver leaving frees the slots it held for the queue, and the
	// host hears left once though r1 was both assigned and in contact.
	_ = r1.Close()
	expectLeft(t, host, r1ID)
	expectPeers(t, r3, hostID)
	expectSources(t, r4, 1, 1)
	quiet(t, host)
	quiet(t, r4)
	if s := e.srv.Stats(); s.Rooms != 1 || s.Conns != 3 {
		t.Fatalf("Stats = %+v", s)
	}
}

// Sources' fail reports close the room at MaxFailures.
func TestPoolFailures(t *testing.T) {
	e := start(t, sigserver.Config{})
	host, roomID, hostID := e.hostWith(signalclient.CreateOptions{MaxFailures: 3})
	src, _ := e.member(roomID, hostID)
	rcv, _ := e.member(roomID, hostID)
	seed(t, src, 2, false)

	// Only sources report.
	if err := rcv.Fail(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	expectError(t, rcv, room.CodeNotAllowed, "")
	for _, c := range []*signalclient.Conn{host, src} {
		if err := c.Fail(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		quiet(t, c) // handled, and the room still open
	}
	quiet(t, rcv)
	if err := src.Fail(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*signalclient.Conn{rcv, src, host} {
		expectEnd(t, c, room.ErrTooManyFailures)
	}
	eventually(t, "room deleted", func() bool { return e.srv.Stats().Rooms == 0 })
	// Later joins hear why, even past the join rate limit (the 11th
	// wrong password is as likely from one address as the 10 before)...
	for i := range sigserver.DefaultJoinBurst + 2 {
		if _, _, err := e.dial().Join(ctxT(t), roomID); !errors.Is(err, room.ErrTooManyFailures) {
			t.Fatalf("join %d of the closed room = %v, want ErrTooManyFailures", i, err)
		}
	}
	// ...which still holds for rooms that never were.
	if _, _, err := e.dial().Join(ctxT(t), "abcdefgh"); !errors.Is(err, room.ErrRateLimited) {
		t.Fatalf("join past the limit = %v, want ErrRateLimited", err)
	}

	// Without MaxFailures the server only counts.
	e = start(t, sigserver.Config{})
	host, roomID, hostID = e.host()
	rcv, _ = e.member(roomID, hostID)
	for range 5 {
		if err := host.Fail(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	quiet(t, host)
	quiet(t, rcv)
}

func TestPoolHostLeaves(t *testing.T) {
	t.Run("room kept", func(t *testing.T) {
		e := start(t, sigserver.Config{KeepRoomWithoutHost: true})
		key := bytes.Repeat([]byte{7}, room.KeySize)
		host, roomID, hostID := e.hostWith(signalclient.CreateOptions{Slots: 1, Key: key})
		r1, r1ID := e.member(roomID, hostID)
		s1, s1ID := e.member(roomID, hostID)
		want(t, r1, 1)
		expectPeers(t, r1, hostID)
		relay(t, r1, hostID, "hi")
		expectRelay(t, host, r1ID, "hi")
		seed(t, s1, 2, true)

		_ = host.Close()
		expectLeft(t, r1, hostID) // once, though assigned and in contact
		quiet(t, r1)
		quiet(t, s1)
		if s := e.srv.Stats(); s.Rooms != 1 {
			t.Fatalf("room closed with its host: %+v", s)
		}
		relay(t, r1, hostID, "host?")
		expectError(t, r1, room.CodePeerGone, hostID)

		// The pool goes on: want, peers, relay, and newcomers.
		want(t, r1, 1)
		expectPeers(t, r1, s1ID)
		relay(t, r1, s1ID, "offer")
		expectRelay(t, s1, r1ID, "offer")
		relay(t, s1, r1ID, "answer")
		expectRelay(t, r1, s1ID, "answer")
		late := e.dial()
		j, err := late.JoinInfo(ctxT(t), roomID)
		if err != nil || j.Host != hostID || !bytes.Equal(j.Key, key) {
			t.Fatalf("JoinInfo after the host left = %+v, %v", j, err)
		}
		want(t, late, 1)
		expectPeers(t, late, s1ID)

		_ = s1.Close()
		expectLeft(t, r1, s1ID)
		expectLeft(t, late, s1ID)
		_ = r1.Close()
		quiet(t, late)
		_ = late.Close()
		eventually(t, "room deleted with its last member", func() bool { return e.srv.Stats().Rooms == 0 })
	})

	t.Run("kept room expires", func(t *testing.T) {
		clock := newClock()
		e := start(t, sigserver.Config{KeepRoomWithoutHost: true, Now: clock.Now, RoomIdle: time.Minute})
		host, roomID, hostID := e.host()
		r1, _ := e.member(roomID, hostID)
		_ = host.Close()
		eventually(t, "host gone", func() bool { return e.srv.Stats().Conns == 1 })
		clock.Advance(time.Minute)
		e.srv.Sweep()
		expectEnd(t, r1, room.ErrRoomClosed)
		if s := e.srv.Stats(); s.Rooms != 0 {
			t.Fatalf("expired room kept: %+v", s)
		}
	})

	t.Run("room closed (default)", func(t *testing.T) {
		e := start(t, sigserver.Config{})
		host, roomID, hostID := e.hostWith(signalclient.CreateOptions{Slots: 1})
		r1, _ := e.member(roomID, hostID)
		s1, s1ID := e.member(roomID, hostID)
		seed(t, s1, 2, true)
		want(t, r1, 2)
		expectPeers(t, r1, s1ID, hostID)
		_ = host.Close()
		expectEnd(t, r1, room.ErrRoomClosed)
		expectEnd(t, s1, room.ErrRoomClosed)
		eventually(t, "room deleted", func() bool { return e.srv.Stats().Rooms == 0 })
	})
}

func TestJoinedKey(t *testing.T) {
	e := start(t, sigserver.Config{})
	key := make([]byte, room.KeySize)
	for i := range key {
		key[i] = byte(i)
	}
	_, roomID, hostID := e.hostWith(signalclient.CreateOptions{Key: key})
	c := e.dial()
	j, err := c.JoinInfo(ctxT(t), roomID)
	if err != nil || j.Host != hostID || !room.ValidPeerID(j.Self) || !bytes.Equal(j.Key, key) {
		t.Fatalf("JoinInfo = %+v, %v; want key %x", j, err, key)
	}
	_, roomID, _ = e.host()
	if j, err := e.dial().JoinInfo(ctxT(t), roomID); err != nil || j.Key != nil {
		t.Fatalf("JoinInfo of a room without key = %+v, %v", j, err)
	}
	// A key of the wrong size never leaves the client.
	if _, _, err := e.dial().CreateWith(ctxT(t), signalclient.CreateOptions{Key: key[:16]}); !errors.Is(err, room.ErrBadMessage) {
		t.Fatalf("CreateWith short key = %v, want ErrBadMessage", err)
	}
}

// An assignment on which the PAKE's first round trip (a relay from the
// receiver, one back from the source) has not gone through within
// AssignTimeout ends as if the receiver had released it, and both ends
// hear left; one with that round trip is kept however long the transfer
// takes.
func TestPoolAssignTimeout(t *testing.T) {
	const timeout = sigserver.DefaultAssignTimeout
	clock := newClock()
	e := start(t, sigserver.Config{Now: clock.Now, RoomIdle: 24 * time.Hour})
	host, roomID, hostID := e.hostWith(signalclient.CreateOptions{Slots: 1})
	r1, r1ID := e.member(roomID, hostID)
	r2, r2ID := e.member(roomID, hostID)
	r3, r3ID := e.member(roomID, hostID)

	want(t, r1, 1)
	expectPeers(t, r1, hostID)
	want(t, r2, 1)
	expectQueued(t, r2, 1)
	want(t, r3, 1)
	expectQueued(t, r3, 2)
	// The source's relay alone does not keep the slot.
	relay(t, host, r1ID, "anyone there?")
	expectRelay(t, r1, hostID, "anyone there?")

	clock.Advance(timeout - time.Second)
	e.srv.Sweep()
	quiet(t, r1)
	quiet(t, host)
	quiet(t, r2)

	clock.Advance(time.Second)
	e.srv.Sweep()
	expectLeft(t, r1, hostID)
	expectLeft(t, host, r1ID)
	expectPeers(t, r2, hostID) // the head of the queue gets the slot
	expectQueued(t, r3, 1)
	quiet(t, r1)
	relay(t, host, r1ID, "still?")
	expectError(t, host, room.CodeNotAllowed, r1ID)

	// r2 and the host complete a round trip, so the assignment outlives
	// the timeout many times.
	relay(t, r2, hostID, "hello")
	expectRelay(t, host, r2ID, "hello")
	relay(t, host, r2ID, "reply")
	expectRelay(t, r2, hostID, "reply")
	for range 10 {
		clock.Advance(timeout)
		e.srv.Sweep()
	}
	quiet(t, r2)
	quiet(t, host)
	quiet(t, r3)

	// Its release still frees the slot, and the timeout starts afresh for
	// r3, whose relays alone (junk the source ignores, say) do not keep
	// it either.
	release(t, r2, hostID)
	expectLeft(t, host, r2ID)
	expectPeers(t, r3, hostID)
	relay(t, r3, hostID, "junk")
	expectRelay(t, host, r3ID, "junk")
	clock.Advance(timeout)
	e.srv.Sweep()
	expectLeft(t, r3, hostID)
	expectLeft(t, host, r3ID)
	quiet(t, r3)
	quiet(t, host)
}

// Receivers that leave assignments silent are charged to their address:
// past SilentBurst its wants are refused, other addresses' are not, and
// the charge wears off at one per SilentEvery.
func TestPoolSilentCharge(t *testing.T) {
	const timeout = sigserver.DefaultAssignTimeout
	clock := newClock()
	e := start(t, sigserver.Config{Now: clock.Now, RoomIdle: 24 * time.Hour, TrustForwardedFor: true,
		SilentBurst: 2, SilentEvery: time.Minute})
	_, roomID, hostID := e.hostWith(signalclient.CreateOptions{Slots: 1})
	hoarder := e.memberFrom("192.0.2.1", roomID)
	other := e.memberFrom("192.0.2.2", roomID)
	for range 2 {
		want(t, hoarder, 1)
		expectPeers(t, hoarder, hostID)
		clock.Advance(timeout)
		e.srv.Sweep()
		expectLeft(t, hoarder, hostID)
	}
	// The other address is served as before...
	want(t, other, 1)
	expectPeers(t, other, hostID)
	relay(t, other, hostID, "hello") // and a receiver that spoke is not charged
	clock.Advance(timeout)
	e.srv.Sweep()
	expectLeft(t, other, hostID)
	want(t, other, 1)
	expectPeers(t, other, hostID)
	release(t, other, hostID)
	// ...while the hoarder's address is refused, its connection closed.
	want(t, hoarder, 1)
	expectEnd(t, hoarder, room.ErrRateLimited)
	hoarder = e.memberFrom("192.0.2.1", roomID)
	want(t, hoarder, 1)
	expectEnd(t, hoarder, room.ErrRateLimited)
	clock.Advance(time.Minute)
	hoarder = e.memberFrom("192.0.2.1", roomID)
	want(t, hoarder, 1)
	expectPeers(t, hoarder, hostID)
}

// queued says how many others could still serve a waiting receiver; 0
// once nobody in the room can (the sender left), until a seed arrives.
func TestPoolQueueNoSources(t *testing.T) {
	e := start(t, sigserver.Config{KeepRoomWithoutHost: true})
	host, roomID, hostID := e.hostWith(signalclient.CreateOptions{Slots: 1})
	r1, _ := e.member(roomID, hostID)
	r2, _ := e.member(roomID, hostID)
	want(t, r1, 1)
	expectPeers(t, r1, hostID)
	want(t, r2, 1)
	expectSources(t, r2, 1, 1)
	_ = host.Close()
	expectLeft(t, r1, hostID)
	expectSources(t, r2, 1, 0)
	quiet(t, r2)
	s1, s1ID := e.member(roomID, hostID)
	seed(t, s1, 1, true)
	expectPeers(t, r2, s1ID)
}
