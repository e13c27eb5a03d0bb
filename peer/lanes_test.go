package peer_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/p2pxfer/p2pxfer/chunker"
	"github.com/p2pxfer/p2pxfer/peer"
)

// TestLanes: a downloader opens as many connections to the sender as both
// ends allow, the sender spreads pieces over them, and peers that allow
// one connection (as before lanes) still transfer over one.
func TestLanes(t *testing.T) {
	for _, c := range []struct {
		name                 string
		sendLanes, recvLanes int
		shortPath            bool // the receiver sees loopback as it is
		wantLanes            int
	}{
		{"both two", 2, 2, false, 2},
		{"sender one", 1, 2, false, 1},
		{"receiver one", 2, 1, false, 1},
		{"three of four", 4, 3, false, 3},
		// Too short a round trip for lanes: the receiver says so, and the
		// sender, which would take three, is told not to wait for them.
		{"short path", 3, 3, true, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			r := newRig(t)
			srcDir, paths := writeFiles(t, map[string]int{"big.bin": 16<<20 + 777})
			var mu sync.Mutex
			perLane := map[int]int{}
			opts := peer.ServeOptions{Password: "pw", MaxReceivers: 1}
			peer.SetLanesFirst(&opts)
			peer.SetSentOn(&opts, func(_ string, lane int) {
				mu.Lock()
				perLane[lane]++
				mu.Unlock()
			})
			s := startSenderWith(ctx, t, r, openSource(ctx, t, paths, 256<<10, chunker.FEC{}), opts, senderOpts{lanes: c.sendLanes}, nil)
			rc := startReceiverLanes(ctx, t, r, s.room, "pw", c.recvLanes, !c.shortPath, nil)
			if err := <-rc.err; err != nil {
				t.Fatal(err)
			}
			if err := <-s.done; err != nil {
				t.Fatalf("Serve: %v", err)
			}
			sameFiles(t, srcDir, rc.out, "big.bin")
			mu.Lock()
			defer mu.Unlock()
			sent := 0
			for _, n := range perLane {
				sent += n
			}
			// Each piece once: no lane lost, no source reconnected.
			if want := (16<<20 + 777 + 256<<10 - 1) / (256 << 10); sent != want {
				t.Fatalf("pieces per lane %v: %d in all, want %d", perLane, sent, want)
			}
			for lane := range perLane {
				if lane < 0 || lane >= c.wantLanes {
					t.Fatalf("pieces per lane %v: want lanes 0 to %d only", perLane, c.wantLanes-1)
				}
			}
			// Every lane carries pieces: none is sent before all are open,
			// each goes to the lane with the least waiting, and lanes that
			// tie (all drained, on a busy machine) take turns.
			if c.wantLanes > 1 && perLane[c.wantLanes-1] == 0 {
				t.Fatalf("pieces per lane %v: lane %d unused", perLane, c.wantLanes-1)
			}
			t.Logf("pieces per lane: %v", perLane)
		})
	}
}
