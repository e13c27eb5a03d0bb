package peer_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/p2pxfer/p2pxfer/chunker"
	"github.com/p2pxfer/p2pxfer/peer"
	"github.com/p2pxfer/p2pxfer/room"
)

// seeding makes a receiver serve others while it downloads and after.
func seeding(_ string, o *peer.ReceiveOptions) { o.Slots = 4 }

func waitComplete(ctx context.Context, t *testing.T, rcs ...*receiver) {
	t.Helper()
	for i, rc := range rcs {
		select {
		case <-rc.complete:
		case err := <-rc.err:
			t.Fatalf("receiver %d ended before completing: %v", i, err)
		case <-ctx.Done():
			t.Fatalf("receiver %d: %v", i, ctx.Err())
		}
	}
}

// stopAll ends seeding receivers and checks they end cleanly.
func stopAll(t *testing.T, cancel context.CancelFunc, rcs ...*receiver) {
	t.Helper()
	cancel()
	for i, rc := range rcs {
		if err := <-rc.err; err != nil {
			t.Errorf("receiver %d: %v", i, err)
		}
	}
}

// TestSwarmSenderLeaves: a sender and six receivers joining one after
// another, each once the one before has a source. The sender leaves as
// soon as the swarm holds a full copy; the receivers that join after that
// get everything from the others.
func TestSwarmSenderLeaves(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	r := newRig(t)
	srcDir, paths := writeFiles(t, map[string]int{"a.bin": 3<<20 + 4321, "b.bin": 777})
	src := openSource(ctx, t, paths, 64<<10, chunker.FEC{K: 4, M: 2})
	s := startSenderFrom(ctx, t, r, src, peer.ServeOptions{Password: "pw"}, nil)

	rctx, stop := context.WithCancel(ctx)
	defer stop()
	var rcs []*receiver
	join := func() {
		rc := startReceiver(rctx, t, r, s.room, "pw", seeding)
		rcs = append(rcs, rc)
		eventually(t, "a receiver connected to a source", func() bool { evs, _ := rc.events(); return len(evs) > 0 })
	}
	for range 3 {
		join()
	}
	select {
	case <-s.swarm:
	case <-ctx.Done():
		t.Fatal("the sender never saw the swarm hold a full copy")
	}
	s.cancel()
	if err := <-s.done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve: %v", err)
	}
	// The server forgets the sender once it has read the close; a
	// receiver joining before that would still be given the sender.
	eventually(t, "the server forgot the sender", func() bool { return r.srv.Stats().Conns == len(rcs) })
	for range 3 {
		join()
	}
	waitComplete(ctx, t, rcs...)
	for i, rc := range rcs {
		sameFiles(t, srcDir, rc.out, "a.bin", "b.bin")
		if i >= 3 {
			evs, _ := rc.events()
			for _, e := range evs {
				if e.Host {
					t.Errorf("receiver %d, joined after the sender left, got the sender as a source", i)
				}
			}
		}
	}
	stopAll(t, stop, rcs...)
}

// TestQueueFIFO: with one upload slot, receivers are served strictly in
// the order they asked, and each sees its place in the queue.
func TestQueueFIFO(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	r := newRig(t)
	srcDir, paths := writeFiles(t, map[string]int{"f": 2<<20 + 5})
	s := startSenderWith(ctx, t, r, openSource(ctx, t, paths, 64<<10, chunker.FEC{}), peer.ServeOptions{Password: "pw"}, senderOpts{slots: 1}, nil)

	var mu sync.Mutex
	var order []int
	// The first receiver holds the slot until the others are queued.
	var gate atomic.Bool
	rcs := make([]*receiver, 3)
	for i := range rcs {
		rcs[i] = startReceiver(ctx, t, r, s.room, "pw", func(_ string, o *peer.ReceiveOptions) {
			if i == 0 {
				peer.SetAllowSource(o, func(string) bool { return gate.Load() })
				// Holding its source idle, it would ask again for
				// sources every few seconds and be queued too, between
				// the others, when the machine is slow to start them.
				o.MaxSources = 1
				peer.SetSlowWants(o)
			}
			o.OnComplete = func() {
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
			}
		})
		eventually(t, fmt.Sprintf("receiver %d connected (the first) or queued", i), func() bool {
			evs, q := rcs[i].events()
			return (i == 0 && len(evs) > 0) || (i > 0 && len(q) > 0)
		})
	}
	gate.Store(true)
	for i, rc := range rcs {
		if err := <-rc.err; err != nil {
			t.Fatalf("receiver %d: %v", i, err)
		}
		sameFiles(t, srcDir, rc.out, "f")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(order) != 3 || order[0] != 0 || order[1] != 1 || order[2] != 2 {
		t.Fatalf("finished in order %v, want [0 1 2]", order)
	}
	if _, q := rcs[1].events(); q[0] != 1 {
		t.Fatalf("second receiver's queue positions %v, want to start at 1", q)
	}
	// The second stays first in line, for more sources, while the sender
	// serves it; the third is told its place until the sender is its
	// source, but not after (queued for yet more sources is no news).
	if _, q := rcs[2].events(); len(q) == 0 || slices.ContainsFunc(q, func(p int) bool { return p != 2 }) {
		t.Fatalf("third receiver's queue positions %v, want 2 until it is served", q)
	}
	s.cancel()
	<-s.done
}

// TestMaliciousSeedBanned: a seed that flips bits in what it serves is
// banned at its first bad piece; the file still arrives byte-exact from
// the sender.
func TestMaliciousSeedBanned(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	r := newRig(t)
	srcDir, paths := writeFiles(t, map[string]int{"f": 1<<20 + 99})
	s := startSender(ctx, t, r, paths, 64<<10, peer.ServeOptions{Password: "pw"}, nil)
	rctx, stop := context.WithCancel(ctx)
	defer stop()

	var served atomic.Int32
	evil := startReceiver(rctx, t, r, s.room, "pw", func(_ string, o *peer.ReceiveOptions) {
		o.Slots = 4
		peer.SetCorrupt(o, func(_ int, b []byte) {
			served.Add(1)
			b[len(b)/3] ^= 0x08
		})
	})
	waitComplete(ctx, t, evil)

	// The honest receiver prefers the seed until it has banned it.
	var banned atomic.Bool
	honest := startReceiver(ctx, t, r, s.room, "pw", func(_ string, o *peer.ReceiveOptions) {
		host := o.Host
		peer.SetAllowSource(o, func(id string) bool { return id != host || banned.Load() })
		record := o.OnSource
		o.OnSource = func(e peer.SourceEvent) {
			record(e)
			if e.Kind == peer.SourceBanned {
				if !errors.Is(e.Err, peer.ErrCorrupt) || e.Peer != evil.self {
					t.Errorf("banned %s for %v", e.Peer, e.Err)
				}
				banned.Store(true)
			}
		}
	})
	if err := <-honest.err; err != nil {
		t.Fatalf("honest receiver: %v", err)
	}
	if !banned.Load() || served.Load() == 0 {
		t.Fatalf("the malicious seed was not used and banned (served %d)", served.Load())
	}
	// Dropped for the rest of the transfer: connected once, banned once.
	evs, _ := honest.events()
	conns, bans := 0, 0
	for _, e := range evs {
		if e.Peer == evil.self && e.Kind == peer.SourceConnected {
			conns++
		}
		if e.Kind == peer.SourceBanned {
			bans++
		}
	}
	if conns != 1 || bans != 1 {
		t.Fatalf("malicious seed connected %d times, %d bans", conns, bans)
	}
	sameFiles(t, srcDir, honest.out, "f")
	stopAll(t, stop, evil)
	s.cancel()
	<-s.done
}

// TestForgedManifestRefused: a manifest signed with another key than the
// one the room registered, or a sender whose sealed key differs from the
// server's, is refused with ErrForged and nothing is written.
func TestForgedManifestRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		// forge returns the sender's options and the room's key.
		forge func(t *testing.T, src *chunker.Source, o *peer.ServeOptions, so *senderOpts)
	}{
		{"signed with another key", func(t *testing.T, src *chunker.Source, o *peer.ServeOptions, so *senderOpts) {
			_, other, _ := peer.NewManifestKey()
			enc, _ := chunker.EncodeManifest(src.Manifest())
			pub, priv, _ := peer.NewManifestKey()
			o.Signer, so.registerKey = priv, pub
			o.Manifest = mustSign(t, other, enc)
		}},
		{"server hands out another key", func(t *testing.T, _ *chunker.Source, _ *peer.ServeOptions, so *senderOpts) {
			pub, _, _ := peer.NewManifestKey()
			so.registerKey = pub
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			r := newRig(t)
			_, paths := writeFiles(t, map[string]int{"f": 100 << 10})
			src := openSource(ctx, t, paths, 64<<10, chunker.FEC{})
			opts, so := peer.ServeOptions{Password: "pw"}, senderOpts{}
			tc.forge(t, src, &opts, &so)
			s := startSenderWith(ctx, t, r, src, opts, so, nil)
			rc := startReceiver(ctx, t, r, s.room, "pw", nil)
			if err := <-rc.err; !errors.Is(err, peer.ErrForged) {
				t.Fatalf("receive = %v, want ErrForged", err)
			}
			if files, _ := readDir(rc.out); len(files) != 0 {
				t.Fatalf("files written from a forged manifest: %v", files)
			}
			s.cancel()
			<-s.done
		})
	}
}

// TestFECSenderLeavesEarly: FEC 2+1. The sender offers each of three
// receivers a different third of the stripes' first data piece and parity
// (and nobody the second data piece), then leaves once the receivers
// together hold k pieces of every stripe, before any of them has every data
// chunk. They rebuild the rest from each other's pieces.
func TestFECSenderLeavesEarly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	r := newRig(t)
	const chunk = 16 << 10
	srcDir, paths := writeFiles(t, map[string]int{"x": 40*chunk + 333, "y": 5*chunk + 1})
	src := openSource(ctx, t, paths, chunk, chunker.FEC{K: 2, M: 1})
	m := src.Manifest()

	var mu sync.Mutex
	index := map[string]int{} // receiver peer ID -> 0, 1, 2
	offer := func(id string, p int) bool {
		mu.Lock()
		i, ok := index[id]
		mu.Unlock()
		if !ok {
			return false
		}
		st := m.StripeOf(p)
		ref := m.Stripe(st)
		switch {
		case p == ref.FirstChunk && ref.NData == 2:
			return st%3 == i
		case p >= m.NumChunks():
			return (st+1)%3 == i
		case ref.NData < 2: // a short last stripe of one chunk: its data piece
			return st%3 == i
		}
		return false // the second data piece: nobody
	}
	opts := peer.ServeOptions{Password: "pw"}
	peer.SetServeFilter(&opts, offer)
	s := startSenderFrom(ctx, t, r, src, opts, nil)

	var gone atomic.Bool
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	var rcs []*receiver
	for i := range 3 {
		rcs = append(rcs, startReceiver(rctx, t, r, s.room, "pw", func(self string, o *peer.ReceiveOptions) {
			mu.Lock()
			index[self] = i
			mu.Unlock()
			o.Slots = 4
			host := o.Host
			peer.SetAllowSource(o, func(id string) bool { return id == host || gone.Load() })
		}))
	}
	select {
	case <-s.swarm:
	case <-ctx.Done():
		t.Fatal("the swarm never covered every stripe")
	}
	for i, rc := range rcs {
		select {
		case <-rc.complete:
			t.Fatalf("receiver %d completed from the sender alone", i)
		default:
		}
	}
	s.cancel()
	<-s.done
	gone.Store(true)
	waitComplete(ctx, t, rcs...)
	for _, rc := range rcs {
		sameFiles(t, srcDir, rc.out, "x", "y")
	}
	stopAll(t, stop, rcs...)
}

// queueWatch records the queued messages the server sends a receiver.
type queueWatch struct {
	peer.Signaller
	n atomic.Int32
}

func (q *queueWatch) Recv(ctx context.Context) (*room.Message, error) {
	m, err := q.Signaller.Recv(ctx)
	if err == nil && m.Type == room.TypeQueued {
		q.n.Add(1)
	}
	return m, err
}

// TestNotQueuedWhileServed: a receiver the sender serves goes on asking
// the server for more sources, and is queued for them; that is no news to
// its user, who hears of the queue only while no source is assigned.
func TestNotQueuedWhileServed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := newRig(t)
	_, paths := writeFiles(t, map[string]int{"f": 1 << 20})
	s := startSenderWith(ctx, t, r, openSource(ctx, t, paths, 64<<10, chunker.FEC{}), peer.ServeOptions{Password: "pw"}, senderOpts{slots: 1}, nil)
	var gate atomic.Bool // holds the transfer until the receiver was queued
	watch := &queueWatch{}
	rc := startReceiverOn(ctx, t, r, engine(t), s.room, "pw", func(_ string, o *peer.ReceiveOptions) {
		peer.SetAllowSource(o, func(string) bool { return gate.Load() })
	}, func(sig peer.Signaller) peer.Signaller { watch.Signaller = sig; return watch })
	eventually(t, "the served receiver queued for more sources", func() bool { return watch.n.Load() >= 2 })
	gate.Store(true)
	if err := <-rc.err; err != nil {
		t.Fatal(err)
	}
	if evs, q := rc.events(); len(q) != 0 || len(evs) == 0 {
		t.Fatalf("queue positions %v told while served (sources %v)", q, evs)
	}
	s.cancel()
	<-s.done
}
