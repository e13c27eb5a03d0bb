package peer

import (
	"time"

	"github.com/p2pxfer/p2pxfer/peer/lane"
)

// Test hooks for package peer_test: they let a test play a sender that
// offers each receiver only some pieces, a receiver that may only use some
// sources, a seed that corrupts what it serves, and a sender that reports
// the lane each piece goes on.

func SetServeFilter(o *ServeOptions, f func(peer string, piece int) bool) { o.filter = f }
func SetAllowSource(o *ReceiveOptions, f func(peer string) bool)          { o.allowSource = f }
func SetCorrupt(o *ReceiveOptions, f func(piece int, data []byte))        { o.corrupt = f }
func SetSentOn(o *ServeOptions, f func(peer string, lane int))            { o.sentOn = f }
func SetMute(o *ServeOptions, f func(peer string) bool)                   { o.mute = f }

// ProbeSupported: direct lanes between hosts (path MTU probing) work here.
const ProbeSupported = lane.ProbeSupported

// SetSlowWants keeps a receiver from asking the server for sources again
// within the minute: one that holds a source idle on purpose would ask
// every wantEvery, and be queued again.
func SetSlowWants(o *ReceiveOptions) {
	p := defaultPacing
	p.wantEvery = time.Minute
	o.pace = &p
}

// SetQuickPacing makes a receiver look after its sources ten times as
// often as the CLI's does, so that tests wait less for its timers.
func SetQuickPacing(o *ReceiveOptions) {
	o.pace = &pacing{tick: defaultPacing.tick / 10, wantEvery: defaultPacing.wantEvery / 10, wantAfterDrop: defaultPacing.wantAfterDrop / 10,
		greetWait: defaultPacing.greetWait / 10}
}

// HaveEvery and HaveBatch pace a receiver's have frames (tellHaves).
const (
	HaveEvery = haveEvery
	HaveBatch = haveBatch
)
