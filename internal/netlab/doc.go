// Package netlab builds small emulated networks on one Linux machine for
// tests and benchmarks: hosts in network namespaces, joined by veth pairs
// and bridges, behind iptables NAT routers when asked. Programs run in a
// host unchanged (Host.Command), or a test opens sockets there itself
// (Host.Do), so peers meet real NAT behaviour without a second machine.
//
// # Topology
//
// A Lab has one "internet" segment: a bridge in a namespace of its own
// that holds the gateway 198.51.100.1 and 2001:db8:100::1 (nothing lies
// beyond it: traffic to any other address dies there). Servers
// (Lab.Server) sit directly on it with public IPv4 and IPv6 addresses.
// A LAN (Lab.LAN) is a bridge of its own in its own namespace, with one
// of:
//
//   - NAT None: the bridge is linked to the internet segment, so its hosts
//     have public addresses there (IPv4 and IPv6, or IPv6 only).
//   - NAT PortPreserving or Symmetric: the namespace is a router, with a
//     private IPv4 subnet on the bridge, a public IPv4 address on its
//     "wan" veth, forwarding and MASQUERADE. Like a home router it drops
//     unsolicited packets from outside (which keeps hole punching
//     working, see natLAN) and does no hairpinning: hosts of one NATed
//     LAN reach each other by their private addresses only. NATed LANs
//     are IPv4 only (link-local IPv6 aside): there is no NAT66.
//
// Each router is a namespace of its own, so its conntrack table (its NAT
// mappings) is its own too: labs, and LANs within a lab, never share one.
//
// # Names and cleanup
//
// Every namespace a lab makes is named netlab<pid>-<n>-<lab>-<node>
// (pid of the process, n counting its labs): concurrent labs in one or
// several processes never collide, and Cleanup can tell leftovers of a
// dead process (a test binary killed at its timeout) from those of a live
// one. Interfaces are created inside the namespaces (never in the root
// one), so their short names (eth0, wan, br0, p<n>) need only be unique
// there. Close deletes everything, killing what still runs inside.
//
// Everything is ready when New, LAN, Server and Host return: links up,
// bridge ports forwarding, IPv6 addresses usable (DAD is off).
package netlab
