package browser_test

import (
	"runtime"
	"strings"
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

// lingering waits up to grace for goroutines of pion's or of this
// module's (the tests' own aside) to end, as those that have signalled
// their end return at once, and returns the stacks of those left. 200 ms
// is ample for that, and short of a close going on in the background
// (SCTP's abort alone waits 2 x 200 ms).
func lingering(grace time.Duration) []string {
	deadline := time.Now().Add(grace)
	left := ours()
	for len(left) > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		left = ours()
	}
	return left
}

func ours() []string {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "testing.tRunner(") || strings.Contains(g, "testing.(*M).Run(") || strings.Contains(g, "runtime.Stack(") {
			continue
		}
		if strings.Contains(g, "github.com/pion/") || strings.Contains(g, "github.com/p2pxfer/p2pxfer/") {
			out = append(out, g)
		}
	}
	return out
}
