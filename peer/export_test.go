package peer

// Test hooks for package peer_test: they let a test play a sender that
// offers each receiver only some pieces, a receiver that may only use some
// sources, a seed that corrupts what it serves, and a sender that reports
// the lane each piece goes on.

func SetServeFilter(o *ServeOptions, f func(peer string, piece int) bool) { o.filter = f }
func SetAllowSource(o *ReceiveOptions, f func(peer string) bool)          { o.allowSource = f }
func SetCorrupt(o *ReceiveOptions, f func(piece int, data []byte))        { o.corrupt = f }
func SetSentOn(o *ServeOptions, f func(peer string, lane int))            { o.sentOn = f }
func SetLanesFirst(o *ServeOptions)                                       { o.lanesFirst = true }
func SetNoDirect(o *ServeOptions)                                         { o.noDirect = true }
func SetDirectUnreachable(o *ServeOptions)                                { o.directUnreachable = true }
func SetLanesAlways(c *Config)                                            { c.lanesAlways = true }
func SetDirectProbe(c *Config)                                            { c.directProbe = true }

// ProbeSupported: direct lanes between hosts (path MTU probing) work here.
const ProbeSupported = probeSupported
