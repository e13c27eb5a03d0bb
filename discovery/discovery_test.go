package discovery

import (
	"net/netip"
	"testing"
)

// Find and Announce run between network namespaces in cmd's NAT lab
// tests (TestLabDiscovery), never on this machine's own networks.

func TestURL(t *testing.T) {
	for addr, want := range map[string]string{
		"192.168.1.20":    "ws://192.168.1.20:40123/ws",
		"2001:db8::5":     "ws://[2001:db8::5]:40123/ws",
		"::ffff:10.0.0.1": "ws://10.0.0.1:40123/ws",
	} {
		if got := URL(netip.MustParseAddr(addr), 40123); got != want {
			t.Errorf("URL(%s) = %s, want %s", addr, got, want)
		}
	}
}
