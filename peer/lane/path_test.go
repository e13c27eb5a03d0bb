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
