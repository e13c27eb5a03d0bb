package lane

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// pionGoroutines returns the stacks of goroutines running pion's code
// that contain any of marks (all of pion's if none).
func pionGoroutines(marks ...string) []string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "github.com/pion/") {
			continue
		}
		if len(marks) == 0 {
			out = append(out, g)
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

// lingering waits up to grace for the goroutines pionGoroutines(marks...)
// finds to end, as those that signalled their end return, and returns
// those still there.
func lingering(grace time.Duration, marks ...string) []string {
	deadline := time.Now().Add(grace)
	left := pionGoroutines(marks...)
	for len(left) > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		left = pionGoroutines(marks...)
	}
	return left
}

// agentAlive marks the goroutines of a peer connection still closing or
// of its ICE agent, which pings (reading crypto/rand) until it stops.
var agentAlive = []string{"webrtc/v4.(*PeerConnection).close", "taskloop.(*Loop).runLoop"}

// TestCloseAfterPeerClosed: when the other end closes first, pion closes
// our peer connection itself, on a goroutine of its own (on the DTLS
// close_notify), and that close can take a while (SCTP's abort waits for
// a write loop that has gone). Close must still return only once that
// close is over and the ICE agent has stopped: an agent left pinging
// after its Conn and Transport had closed read crypto/rand while a test
// swapped its reader. Several times, as pion's close is slow only when
// the other end's abort came first. Once both Transports have closed, no
// goroutine of pion is left.
func TestCloseAfterPeerClosed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := Config{Lanes: 1, NoRide: true}
	for i := range 5 {
		dsig, asig := signalPair()
		d, a, derr, aerr := connect(ctx, t, cfg, cfg, nil, dsig, asig)
		if derr != nil || aerr != nil {
			t.Fatalf("Dial %v, Accept %v", derr, aerr)
		}
		a.Close()
		for d.pc.SignalingState() != webrtc.SignalingStateClosed {
			if ctx.Err() != nil {
				t.Fatal("pion never closed the dialer's connection after the other end closed")
			}
			runtime.Gosched() // not a sleep: Close must come while pion's is under way
		}
		d.Close()
		_ = a.t.Close()
		// Only the dialer's connection is left, and Close has closed it.
		if left := lingering(50*time.Millisecond, agentAlive...); len(left) > 0 {
			t.Fatalf("round %d: Close returned while pion's own close of the connection was under way:\n\n%s", i, strings.Join(left, "\n\n"))
		}
		_ = d.t.Close()
		if left := lingering(time.Second); len(left) > 0 {
			t.Fatalf("round %d: %d goroutines of pion outlive both Transports:\n\n%s", i, len(left), strings.Join(left, "\n\n"))
		}
	}
}
