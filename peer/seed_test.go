package peer_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/p2pxfer/p2pxfer/peer"
)

// TestSeedEnds: a receiver that seeds ends by itself once nobody has
// fetched from it for SeedIdle, and once its room is gone, and says why.
func TestSeedEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r := newRig(t)
	srcDir, paths := writeFiles(t, map[string]int{"a.bin": 200 << 10})
	// The sender closes the room once its second receiver has finished.
	s := startSender(ctx, t, r, paths, 64<<10, peer.ServeOptions{Password: "pw", MaxReceivers: 2}, nil)
	defer func() { s.cancel(); <-s.done }()

	run := func(idle time.Duration) (*receiver, func() []peer.Event) {
		var mu sync.Mutex
		var ended []peer.Event
		rc := startReceiver(ctx, t, r, s.room, "pw", func(_ string, o *peer.ReceiveOptions) {
			o.Slots, o.SeedIdle = 4, idle
			o.OnEvent = func(e peer.Event) {
				if e.Kind == peer.EventSeedEnded {
					mu.Lock()
					ended = append(ended, e)
					mu.Unlock()
				}
			}
		})
		return rc, func() []peer.Event { mu.Lock(); defer mu.Unlock(); return ended }
	}

	rc, ended := run(300 * time.Millisecond)
	waitComplete(ctx, t, rc)
	select {
	case err := <-rc.err:
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the seed did not end by itself")
	}
	if e := ended(); len(e) != 1 || e[0].Reason != peer.SeedEndIdle {
		t.Fatalf("seed ended with %+v, want once for idleness", e)
	}
	sameFiles(t, srcDir, rc.out, "a.bin")

	// No idleness limit: it seeds until the room is gone.
	rc, ended = run(0)
	waitComplete(ctx, t, rc)
	select {
	case err := <-rc.err:
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the seed outlived its room")
	}
	if e := ended(); len(e) != 1 || e[0].Reason != peer.SeedEndRoomGone || e[0].Err == nil {
		t.Fatalf("seed ended with %+v, want once for the room, with why", e)
	}
}
