package peer_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/p2pxfer/p2pxfer/chunker"
	"github.com/p2pxfer/p2pxfer/peer"
	"github.com/p2pxfer/p2pxfer/peer/lane"
)

// TestLanes: files cross intact over every kind of lane, each piece once,
// on the lanes the path calls for (package lane tests the lanes
// themselves): a ride lane through NATs, one direct lane on one host or
// between hosts, and a ride lane where no direct lane connects.
func TestLanes(t *testing.T) {
	for _, c := range []struct {
		name        string
		path        lane.LoopbackPath
		unreachable bool  // the sender's direct lanes do not connect
		want        []int // the lanes that carry pieces
	}{
		{"through NATs", lane.LoopbackNAT, false, []int{1}},
		{"one host", lane.LoopbackOneHost, false, []int{1}},
		{"hosts", lane.LoopbackHosts, false, []int{1}},
		{"hosts, unreachable", lane.LoopbackHosts, true, []int{1}}, // a ride lane
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.path == lane.LoopbackHosts && !peer.ProbeSupported {
				t.Skip("no direct lanes between hosts on this system")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			r := newRig(t)
			srcDir, paths := writeFiles(t, map[string]int{"big.bin": 4<<20 + 777})
			var mu sync.Mutex
			perLane := map[int]int{}
			opts := peer.ServeOptions{Password: "pw", MaxReceivers: 1}
			peer.SetSentOn(&opts, func(_ string, lane int) {
				mu.Lock()
				perLane[lane]++
				mu.Unlock()
			})
			tc := lane.Config{LoopbackAs: c.path, SettleFirst: true, DirectUnreachable: c.unreachable}
			if c.unreachable {
				// Nothing connects, however long either end waits.
				tc.DirectTimeout = 500 * time.Millisecond
			}
			s := startSenderWith(ctx, t, r, openSource(ctx, t, paths, 64<<10, chunker.FEC{}), opts, senderOpts{transport: &tc}, nil)
			rc := startReceiverOn(ctx, t, r, engineWith(t, lane.Config{LoopbackAs: c.path, DirectTimeout: tc.DirectTimeout}), s.room, "pw", nil, nil)
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
			if want := (4<<20 + 777 + 64<<10 - 1) / (64 << 10); sent != want {
				t.Fatalf("pieces per lane %v: %d in all, want %d", perLane, sent, want)
			}
			for lane := range perLane {
				if !slices.Contains(c.want, lane) {
					t.Fatalf("pieces per lane %v: want lanes %v only", perLane, c.want)
				}
			}
			if last := c.want[len(c.want)-1]; perLane[last] == 0 {
				t.Fatalf("pieces per lane %v: lane %d unused", perLane, last)
			}
			t.Logf("pieces per lane: %v", perLane)
		})
	}
}
