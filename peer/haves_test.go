package peer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/p2pxfer/p2pxfer/peer"
)

// TestHavesBatched: a receiver of many one-piece files tells its source
// what it verified in batches (at most every HaveEvery, or HaveBatch
// pieces at a time), not in a frame per piece. The sender turns each have
// frame into one progress event, so those are counted.
func TestHavesBatched(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := newRig(t)
	const files = 1000
	sizes := map[string]int{}
	for i := range files {
		sizes[fmt.Sprintf("f%04d", i)] = 100
	}
	srcDir, paths := writeFiles(t, sizes)
	s := startSender(ctx, t, r, paths, 64<<10, peer.ServeOptions{Password: "correct-horse", MaxReceivers: 1}, nil)
	out := t.TempDir()
	start := time.Now()
	if err := receive(ctx, t, r, s, "correct-horse", out); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if err := <-s.done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	sameFiles(t, srcDir, out, "f0000", "f0777", "f0999")
	// One for the bitmap, one per batch, one per interval the transfer
	// lasted, and the last before finished.
	most := 2 + files/peer.HaveBatch + int(took/peer.HaveEvery)
	if got := s.kinds()[peer.EventProgress]; got > most || got > files/4 {
		t.Fatalf("%d progress events at the sender for %d pieces in %v: want at most %d (have frames not batched)", got, files, took.Round(time.Millisecond), min(most, files/4))
	}
}

// TestManyTinyPiecesFromSeed: a source that offers every piece at once (a
// seed; here a sender with a filter, which has no spreader) is never asked
// for more pieces than it queues, however small they are: 5,000 files of
// one byte fit a request window of bytes many times over.
func TestManyTinyPiecesFromSeed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := newRig(t)
	const files = 5000
	sizes := map[string]int{}
	for i := range files {
		sizes[fmt.Sprintf("f%04d", i)] = 1
	}
	srcDir, paths := writeFiles(t, sizes)
	opts := peer.ServeOptions{Password: "correct-horse", MaxReceivers: 1}
	peer.SetServeFilter(&opts, func(string, int) bool { return true })
	s := startSender(ctx, t, r, paths, 64<<10, opts, nil)
	out := t.TempDir()
	if err := receive(ctx, t, r, s, "correct-horse", out); err != nil {
		t.Fatal(err)
	}
	if err := <-s.done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	sameFiles(t, srcDir, out, "f0000", "f2500", "f4999")
}
