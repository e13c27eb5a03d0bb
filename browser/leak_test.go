package browser_test

import (
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// noneOutlive fails t if, once its cleanups have run (senders and
// receivers returned, engines closed), a goroutine of pion's or of ours
// is still there: one left by a test runs under the next, and
// TestJSAgainstGo swaps crypto/rand's reader, which a pion agent still
// pinging reads (the race detector says so, whatever the order of the
// tests). newSite calls it, first, so that it runs last.
func noneOutlive(t *testing.T) {
	t.Cleanup(func() {
		if left := lingering(200 * time.Millisecond); len(left) > 0 {
			t.Errorf("%d goroutines outlive the test:\n\n%s", len(left), strings.Join(left, "\n\n"))
		}
	})
}

// checked holds the tests whose first engine is made: peersOutlive
// checks once, after the Close of the test's first engine, which runs
// last.
var checked sync.Map // *testing.T -> struct{}

// peersOutlive fails t if, once the test's engines have closed, a
// goroutine of pion's or of package peer's is still there; engine calls
// it before it makes the test's first engine. Stricter than noneOutlive,
// which runs after the browser and the server have closed too, giving a
// close in the background the time to end unseen.
func peersOutlive(t *testing.T) {
	if _, seen := checked.LoadOrStore(t, struct{}{}); seen {
		return
	}
	t.Cleanup(func() {
		checked.Delete(t)
		if left := lingering(200*time.Millisecond, "github.com/pion/", "github.com/p2pxfer/p2pxfer/peer"); len(left) > 0 {
			t.Errorf("%d goroutines outlive the test's engines:\n\n%s", len(left), strings.Join(left, "\n\n"))
		}
	})
}

// lingering waits up to grace for goroutines of pion's or of this
// module's (the tests' own aside; with marks, those whose stacks hold
// one of them) to end, as those that have signalled their end return at
// once, and returns the stacks of those left. 200 ms is ample for that,
// and short of a close going on in the background (SCTP's abort alone
// waits 2 x 200 ms).
func lingering(grace time.Duration, marks ...string) []string {
	deadline := time.Now().Add(grace)
	left := ours(marks)
	for len(left) > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		left = ours(marks)
	}
	return left
}

func ours(marks []string) []string {
	if len(marks) == 0 {
		marks = []string{"github.com/pion/", "github.com/p2pxfer/p2pxfer/"}
	}
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "testing.tRunner(") || strings.Contains(g, "testing.(*M).Run(") || strings.Contains(g, "runtime.Stack(") {
			continue
		}
		for _, m := range marks {
			if strings.Contains(g, m) {
				out = append(out, g)
				break
			}
		}
	}
	return out
}
