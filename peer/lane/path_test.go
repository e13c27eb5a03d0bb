package lane

import (
	"net/netip"
	"testing"

	"github.com/pion/webrtc/v4"
)

// A server-reflexive candidate at one of our own addresses (a host
// without NAT) is as untranslated as a host candidate: a LAN, not a path
// through NAT, and direct lanes can bind it.
func TestUntranslated(t *testing.T) {
	own := netip.MustParseAddr("127.0.0.1")
	public := netip.MustParseAddr("198.51.100.7") // TEST-NET-2: not this host's
	for _, c := range []struct {
		typ  webrtc.ICECandidateType
		addr netip.Addr
		want bool
	}{
		{webrtc.ICECandidateTypeHost, own, true},
		{webrtc.ICECandidateTypeSrflx, own, true},
		{webrtc.ICECandidateTypeSrflx, public, false},
		{webrtc.ICECandidateTypePrflx, own, false},
		{webrtc.ICECandidateTypeRelay, own, false},
	} {
		if got := untranslated(&webrtc.ICECandidate{Typ: c.typ, Address: c.addr.String()}, c.addr); got != c.want {
			t.Errorf("untranslated(%v at %v) = %v", c.typ, c.addr, got)
		}
	}
}

// TestPortChanged: a srflx candidate whose port is not its base's shows a
// NAT that picks ports; one that kept it, or a line without a base, not.
func TestPortChanged(t *testing.T) {
	for line, want := range map[string]bool{
		"candidate:1 1 udp 1694498815 198.51.100.3 45603 typ srflx raddr 0.0.0.0 rport 41000": true,
		"candidate:1 1 udp 1694498815 198.51.100.3 41000 typ srflx raddr 0.0.0.0 rport 41000": false,
		"candidate:1 1 udp 1694498815 198.51.100.3 41000 typ srflx":                           false,
		"candidate:1 1 udp 1694498815 198.51.100.3 41000 typ srflx raddr 0.0.0.0 rport x":     false,
		"garbage": false,
	} {
		if got := portChanged(line); got != want {
			t.Errorf("portChanged(%q) = %v, want %v", line, got, want)
		}
	}
}
