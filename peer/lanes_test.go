package peer_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/p2pxfer/p2pxfer/chunker"
	"github.com/p2pxfer/p2pxfer/peer"
)

// TestLanes: a downloader opens as many connections to the sender as both
// ends allow, the sender spreads pieces over them, and peers that allow
// one connection (as before lanes) still transfer over one. On one host
// (loopback seen as it is) the downloader opens one direct lane instead,
// and every piece goes on it. Between two hosts on a long path it opens as
// many direct lanes as it would lanes, and pieces go only on those.
func TestLanes(t *testing.T) {
	for _, c := range []struct {
		name                 string
		sendLanes, recvLanes int
		path                 pathMode
		noDirect             bool  // the sender cannot open a direct lane
		unreachable          bool  // the sender's direct lanes do not connect
		want                 []int // the lanes that carry pieces
	}{
		{"both two", 2, 2, pathLanes, false, false, []int{0, 1}},
		{"sender one", 1, 2, pathLanes, false, false, []int{0}},
		{"receiver one", 2, 1, pathLanes, false, false, []int{0}},
		{"three of four", 4, 3, pathLanes, false, false, []int{0, 1, 2}},
		// The sender, which would take three peer connections, is asked
		// for one direct lane instead.
		{"one host", 3, 3, pathOneHost, false, false, []int{1}},
		{"one host, sender one", 1, 3, pathOneHost, false, false, []int{0}},
		// It says it opens none, and all goes on the first connection.
		{"one host, no direct lane", 3, 3, pathOneHost, true, false, []int{0}},
		// Asked for three direct lanes, the sender opens the two it allows.
		{"hosts", 2, 3, pathHosts, false, false, []int{1, 2}},
		{"hosts, three", 3, 3, pathHosts, false, false, []int{1, 2, 3}},
		// It cannot, or none connects (a firewall): peer lanes instead.
		{"hosts, no direct lane", 3, 3, pathHosts, true, false, []int{0, 1, 2}},
		{"hosts, unreachable", 3, 3, pathHosts, false, true, []int{0, 1, 2}},
		{"one host, unreachable", 3, 3, pathOneHost, false, true, []int{0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.path == pathHosts && !peer.ProbeSupported {
				t.Skip("no direct lanes between hosts on this system")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			r := newRig(t)
			srcDir, paths := writeFiles(t, map[string]int{"big.bin": 16<<20 + 777})
			var mu sync.Mutex
			perLane := map[int]int{}
			opts := peer.ServeOptions{Password: "pw", MaxReceivers: 1}
			peer.SetLanesFirst(&opts)
			if c.noDirect {
				peer.SetNoDirect(&opts)
			}
			if c.unreachable {
				peer.SetDirectUnreachable(&opts)
			}
			peer.SetSentOn(&opts, func(_ string, lane int) {
				mu.Lock()
				perLane[lane]++
				mu.Unlock()
			})
			s := startSenderWith(ctx, t, r, openSource(ctx, t, paths, 256<<10, chunker.FEC{}), opts, senderOpts{lanes: c.sendLanes, path: c.path}, nil)
			rc := startReceiverLanes(ctx, t, r, s.room, "pw", c.recvLanes, c.path, nil)
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
				if !slices.Contains(c.want, lane) {
					t.Fatalf("pieces per lane %v: want lanes %v only", perLane, c.want)
				}
			}
			// Every lane carries pieces: none is sent before all are open,
			// each goes to the lane with the least waiting, and lanes that
			// tie (all drained, on a busy machine) take turns.
			if last := c.want[len(c.want)-1]; perLane[last] == 0 {
				t.Fatalf("pieces per lane %v: lane %d unused", perLane, last)
			}
			t.Logf("pieces per lane: %v", perLane)
		})
	}
}
