package netlab

import (
	"context"
	"net/netip"
	"os/exec"
)

// The internet segment's prefixes. Servers, routers' public sides and
// hosts of non-NATed LANs take addresses from them, the same last number
// in both (198.51.100.23 and 2001:db8:100::23); .1 and ::1 are the
// segment's gateway.
var (
	PublicIPv4 = netip.MustParsePrefix("198.51.100.0/24")
	PublicIPv6 = netip.MustParsePrefix("2001:db8:100::/64")
)

// NATKind says how a LAN reaches the internet segment.
type NATKind int

const (
	// None: no router; the LAN's bridge is linked to the internet
	// segment and its hosts have public addresses.
	None NATKind = iota
	// PortPreserving is plain Linux MASQUERADE: a host's source port is
	// kept when it is free on the router (endpoint-independent mapping),
	// and only the exact address and port a mapping was opened to may
	// answer through it (address- and port-dependent filtering).
	PortPreserving
	// Symmetric is MASQUERADE --random-fully: every new destination gets
	// a new, random public port, with the same filtering.
	Symmetric
)

func (k NATKind) String() string {
	switch k {
	case None:
		return "none"
	case PortPreserving:
		return "port-preserving"
	case Symmetric:
		return "symmetric"
	}
	return "NATKind(?)"
}

// LANOptions describe a LAN. The zero value is a dual-stack LAN on the
// public segment.
type LANOptions struct {
	NAT NATKind
	// IPv6Only: hosts get only a public IPv6 address, and no IPv4
	// address or route at all (loopback aside). Needs NAT None.
	IPv6Only bool
	// NoFirewall: a NATed LAN's router accepts unsolicited packets from
	// outside addressed to itself, as a bare Linux box with MASQUERADE
	// does, where home routers drop them. Its conntrack then records a
	// peer's first hole-punching packet, which takes the very tuple its
	// host's own packet to that peer needs: MASQUERADE gives the host
	// another port, and plain hole punching fails.
	NoFirewall bool
	// Provider: a NATed LAN's router reaches the internet segment
	// through a router of its provider, one hop more, as on the internet,
	// where routers stand between any two homes: a packet whose TTL ends
	// there has left its own NAT (which recorded the mapping) without
	// reaching anyone else's.
	Provider bool
	// Subnet is a NATed LAN's private IPv4 prefix (default 10.<n>.0.0/24,
	// n counting the lab's LANs). Two LANs may share one, as two homes
	// do. The router takes the first address, hosts the next ones.
	Subnet netip.Prefix
}

// Network is a LAN made by Lab.LAN.
type Network struct {
	Name string
	// NS is the namespace that holds the LAN's bridge (br0) and, for a
	// NATed LAN, is the router (its conntrack table, its iptables).
	NS  string
	NAT NATKind
	// Subnet is the hosts' IPv4 prefix: the private one behind NAT,
	// PublicIPv4 otherwise, invalid on an IPv6-only LAN.
	Subnet netip.Prefix
	// Gateway is the hosts' IPv4 default gateway: the router, or the
	// internet segment's gateway; invalid on an IPv6-only LAN.
	Gateway netip.Addr
	// Public is a NATed LAN's public IPv4 address (the router's), which
	// its hosts' traffic leaves from; invalid without NAT.
	Public netip.Addr

	ipv6Only   bool
	noFirewall bool
	provider   bool
	lab        *Lab
	hosts      int // hosts made so far, for their private addresses
}

// Host is a network namespace with one interface, eth0, on a LAN or on
// the internet segment (a server).
type Host struct {
	Name string
	NS   string // the namespace, for ip -n / ip netns exec
	// IPv4 is the host's own IPv4 address: private behind NAT, invalid
	// on an IPv6-only LAN.
	IPv4 netip.Addr
	// IPv6 is the host's global IPv6 address; invalid behind NAT.
	IPv6 netip.Addr
	// Public is the IPv4 address the internet sees the host's traffic
	// come from: its own, or its router's; invalid when IPv6-only.
	Public netip.Addr
}

// Command returns a command that runs name inside the host's namespace
// (through ip netns exec, which then execs name in the same process, so
// cancelling ctx or killing the process ends name itself). The command
// sees only the host's interfaces; the file system is the machine's.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}
