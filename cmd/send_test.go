package cmd

import (
	"net/netip"
	"testing"
)

// TestBestLANAddress: the embedded server's URL names a private IPv4
// address first, and an IPv6 one on a LAN without IPv4.
func TestBestLANAddress(t *testing.T) {
	a := func(s ...string) []netip.Addr {
		var out []netip.Addr
		for _, x := range s {
			out = append(out, netip.MustParseAddr(x))
		}
		return out
	}
	for _, c := range []struct {
		addrs []netip.Addr
		want  string
	}{
		{a("2001:db8::5", "203.0.113.5", "192.168.1.20"), "192.168.1.20"},
		{a("2001:db8::5", "203.0.113.5"), "203.0.113.5"},
		{a("fe80::1", "2001:db8::5", "fd00::5"), "fd00::5"},
		{a("fe80::1", "2001:db8::5"), "2001:db8::5"},
		{a("fe80::1", "169.254.3.3"), "127.0.0.1"},
		{nil, "127.0.0.1"},
	} {
		if got := bestLANAddress(c.addrs); got != c.want {
			t.Errorf("bestLANAddress(%v) = %s, want %s", c.addrs, got, c.want)
		}
	}
}
