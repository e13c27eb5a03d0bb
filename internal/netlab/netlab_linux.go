//go:build linux

package netlab

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// The internet segment's gateway, on its bridge: hosts route everything
// there that is not on their link, and it forwards nothing.
var (
	gateway4 = PublicIPv4.Addr().Next()
	gateway6 = PublicIPv6.Addr().Next()
)

// labs numbers this process's labs, for their names (0 is Check's).
var labs atomic.Int64

// Lab is one emulated network: an internet segment and what New's caller
// adds to it. Its methods are safe for concurrent use.
type Lab struct {
	prefix string
	inet   string // the internet segment's namespace

	mu     sync.Mutex
	closed bool
	ns     []string        // namespaces made, in order
	names  map[string]bool // servers', LANs' and hosts' names
	public int             // last number of the next public address
	ports  int             // veth ports made, to name the next one
	lans   int
}

// New creates a lab with an empty internet segment. name (a test's name,
// say) goes into the lab's namespace names to tell whose they are. It
// first removes what labs of dead processes left (see Cleanup).
// Close it, e.g. with t.Cleanup.
func New(name string) (*Lab, error) {
	if err := Check(); err != nil {
		return nil, fmt.Errorf("netlab new: %w", err)
	}
	_, _ = Cleanup() // best effort: leftovers only cost memory
	l := &Lab{
		prefix: fmt.Sprintf("%s%d-%d-%s-", nsPrefix, os.Getpid(), labs.Add(1), label(name)),
		names:  map[string]bool{},
		public: 2, // after the gateway
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.internet(); err != nil {
		_ = l.closeLocked()
		return nil, fmt.Errorf("netlab new: %w", err)
	}
	return l, nil
}

func (l *Lab) internet() error {
	ns, err := l.addNetns("inet", false)
	if err != nil {
		return err
	}
	l.inet = ns
	return bridge(ns, netip.PrefixFrom(gateway4, PublicIPv4.Bits()), netip.PrefixFrom(gateway6, PublicIPv6.Bits()))
}

// Prefix starts the name of every namespace the lab makes.
func (l *Lab) Prefix() string { return l.prefix }

// Close deletes every namespace of the lab, with their devices, and kills
// what still runs in them (commands started with Host.Command still need
// their Wait). Later calls do nothing.
func (l *Lab) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closeLocked()
}

func (l *Lab) closeLocked() error {
	if l.closed {
		return nil
	}
	l.closed = true
	var errs []error
	for i := len(l.ns) - 1; i >= 0; i-- {
		if err := deleteNetns(l.ns[i]); err != nil {
			errs = append(errs, err)
		}
	}
	l.ns = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("netlab close: %w", err)
	}
	return nil
}

// Server adds a host directly on the internet segment, with public IPv4
// and IPv6 addresses: a signalling or TURN server, or any peer with a
// public address.
func (l *Lab) Server(name string) (*Host, error) {
	h := &Host{Name: name}
	err := l.build("server", name, func() error {
		v4, v6, err := l.publicAddr()
		if err != nil {
			return err
		}
		h.IPv4, h.IPv6, h.Public = v4, v6, v4
		if h.NS, err = l.addNetns(name, false); err != nil {
			return err
		}
		return l.attach(h.NS, "eth0", l.inet,
			[]netip.Prefix{netip.PrefixFrom(v4, PublicIPv4.Bits()), netip.PrefixFrom(v6, PublicIPv6.Bits())},
			[]netip.Addr{gateway4, gateway6})
	})
	if err != nil {
		return nil, err
	}
	return h, nil
}

// LAN adds a LAN: a bridge of its own, linked to the internet segment
// directly or through a NAT router as opts say. Add hosts with
// Network.Host.
func (l *Lab) LAN(name string, opts LANOptions) (*Network, error) {
	n := &Network{Name: name, NAT: opts.NAT, ipv6Only: opts.IPv6Only, noFirewall: opts.NoFirewall, provider: opts.Provider, lab: l}
	err := l.build("lan", name, func() error {
		switch {
		case opts.NAT != None && opts.NAT != PortPreserving && opts.NAT != Symmetric:
			return fmt.Errorf("unknown NAT kind %d", opts.NAT)
		case opts.IPv6Only && opts.NAT != None:
			return errors.New("an IPv6-only LAN has no NAT (there is no NAT66)")
		case opts.Subnet.IsValid() && opts.NAT == None:
			return errors.New("a LAN without NAT has public addresses, not a Subnet")
		case opts.Provider && opts.NAT == None:
			return errors.New("only a NATed LAN's router has a provider")
		}
		l.lans++
		if opts.NAT == None {
			return l.switchLAN(n)
		}
		subnet := opts.Subnet
		if !subnet.IsValid() {
			if l.lans > 255 {
				return errors.New("no default subnet left: give one")
			}
			subnet = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(l.lans), 0, 0}), 24)
		}
		if !subnet.Addr().Is4() || subnet.Bits() < 8 || subnet.Bits() > 30 || subnet != subnet.Masked() {
			return fmt.Errorf("subnet %v: want an IPv4 network address, /8 to /30", subnet)
		}
		return l.natLAN(n, subnet)
	})
	if err != nil {
		return nil, err
	}
	return n, nil
}

// switchLAN makes n a bridge linked to the internet segment's: one
// broadcast domain, so its hosts live on the public segment.
func (l *Lab) switchLAN(n *Network) error {
	var err error
	if n.NS, err = l.addNetns(n.Name, false); err != nil {
		return err
	}
	if err := bridge(n.NS); err != nil {
		return err
	}
	port, err := l.plug(n.NS, "uplink", l.inet)
	if err != nil {
		return err
	}
	if err := ip("-n", n.NS, "link", "set", "uplink", "master", "br0", "up"); err != nil {
		return err
	}
	if err := waitReady(n.NS, "uplink", "br0"); err != nil {
		return err
	}
	if err := waitReady(l.inet, port, "br0"); err != nil {
		return err
	}
	if !n.ipv6Only {
		n.Subnet, n.Gateway = PublicIPv4, gateway4
	}
	return nil
}

// natLAN makes n a router: the LAN's bridge with the first address of
// subnet, and a public address on its wan veth, with MASQUERADE there.
func (l *Lab) natLAN(n *Network, subnet netip.Prefix) error {
	pub, _, err := l.publicAddr()
	if err != nil {
		return err
	}
	if n.NS, err = l.addNetns(n.Name, true); err != nil {
		return err
	}
	n.Subnet, n.Gateway, n.Public = subnet, subnet.Addr().Next(), pub
	masq := []string{"-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"}
	if n.NAT == Symmetric {
		masq = append(masq, "--random-fully")
	}
	rules := [][]string{masq}
	if !n.noFirewall {
		// Unsolicited packets from outside die before conntrack records
		// them (it confirms an entry only after INPUT). Otherwise a peer's
		// hole-punching packet that arrives first leaves an entry that
		// takes the very tuple our host's own packet to that peer needs,
		// and MASQUERADE gives it another port (see NoFirewall). Home
		// routers drop these as well.
		rules = append(rules, []string{"-A", "INPUT", "-i", "wan", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP"})
	}
	for _, rule := range rules {
		if err := run("ip", append([]string{"netns", "exec", n.NS, "iptables", "-w"}, rule...)...); err != nil {
			return err
		}
	}
	if err := bridge(n.NS, netip.PrefixFrom(n.Gateway, subnet.Bits())); err != nil {
		return err
	}
	if n.provider {
		return l.viaProvider(n, pub)
	}
	return l.attach(n.NS, "wan", l.inet, []netip.Prefix{netip.PrefixFrom(pub, PublicIPv4.Bits())}, []netip.Addr{gateway4})
}

// viaProvider links router n, whose public address is pub, to the
// internet segment through a provider router of its own: the router's wan
// holds pub alone, on a point-to-point link to the provider, which routes
// pub to it and answers for pub on the segment (proxy ARP), as for every
// address on the link (so the router needs no gateway address).
func (l *Lab) viaProvider(n *Network, pub netip.Addr) error {
	prov, _, err := l.publicAddr()
	if err != nil {
		return err
	}
	isp, err := l.addNetns(n.Name+"-isp", true)
	if err != nil {
		return err
	}
	if err := l.attach(isp, "up0", l.inet, []netip.Prefix{netip.PrefixFrom(prov, PublicIPv4.Bits())}, []netip.Addr{gateway4}); err != nil {
		return err
	}
	if err := ip("-n", isp, "link", "add", "tr0", "type", "veth", "peer", "name", "wan", "netns", n.NS); err != nil {
		return err
	}
	// Linux delays a proxy ARP answer by up to proxy_delay (0.8 s): the
	// first packets to a new neighbour would wait, or be dropped, for it.
	if err := sysctls(isp, "net/ipv4/conf/up0/proxy_arp", "1", "net/ipv4/conf/tr0/proxy_arp", "1",
		"net/ipv4/neigh/up0/proxy_delay", "0", "net/ipv4/neigh/tr0/proxy_delay", "0"); err != nil {
		return err
	}
	if err := addAddrs(n.NS, "wan", []netip.Prefix{netip.PrefixFrom(pub, 32)}); err != nil {
		return err
	}
	for _, cmd := range [][]string{
		{"-n", isp, "link", "set", "tr0", "up"},
		{"-n", n.NS, "link", "set", "wan", "up"},
		{"-n", isp, "route", "add", netip.PrefixFrom(pub, 32).String(), "dev", "tr0"},
		{"-n", n.NS, "route", "add", "default", "dev", "wan"},
	} {
		if err := ip(cmd...); err != nil {
			return err
		}
	}
	if err := waitReady(isp, "tr0"); err != nil {
		return err
	}
	return waitReady(n.NS, "wan")
}

// Host adds a host on the LAN: public addresses without NAT (IPv6 only
// on an IPv6-only LAN), the next private address behind NAT, and a
// default route to the router or the internet segment's gateway.
func (n *Network) Host(name string) (*Host, error) {
	l := n.lab
	if l == nil {
		return nil, fmt.Errorf("netlab host %q: the Network was not made by Lab.LAN", name)
	}
	h := &Host{Name: name}
	err := l.build("host", name, func() error {
		var addrs []netip.Prefix
		var gws []netip.Addr
		if n.NAT == None {
			v4, v6, err := l.publicAddr()
			if err != nil {
				return err
			}
			if !n.ipv6Only {
				h.IPv4, h.Public = v4, v4
				addrs, gws = append(addrs, netip.PrefixFrom(v4, PublicIPv4.Bits())), append(gws, gateway4)
			}
			h.IPv6 = v6
			addrs, gws = append(addrs, netip.PrefixFrom(v6, PublicIPv6.Bits())), append(gws, gateway6)
		} else {
			a := n.Gateway
			for range n.hosts + 1 {
				a = a.Next()
			}
			if !n.Subnet.Contains(a.Next()) { // the last address is the broadcast
				return fmt.Errorf("subnet %v is full", n.Subnet)
			}
			n.hosts++
			h.IPv4, h.Public = a, n.Public
			addrs, gws = []netip.Prefix{netip.PrefixFrom(a, n.Subnet.Bits())}, []netip.Addr{n.Gateway}
		}
		var err error
		if h.NS, err = l.addNetns(name, false); err != nil {
			return err
		}
		return l.attach(h.NS, "eth0", n.NS, addrs, gws)
	})
	if err != nil {
		return nil, err
	}
	return h, nil
}

// Do runs fn on an OS thread switched into the host's namespace, and
// returns fn's error. Sockets fn opens (net.ListenUDP, net.Dial, ...)
// stay in the namespace for their whole life, whatever goroutine uses
// them later; goroutines fn starts do not run in it.
func (h *Host) Do(fn func() error) error { return InNetns(h.NS, fn) }

// build makes node name with fn under the lab's lock. If fn fails it
// deletes the namespaces fn made (their veths' peers elsewhere go with
// them), so the lab is as before and the name free again.
func (l *Lab) build(what, name string, fn func() error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := validName(name); err != nil {
		return fmt.Errorf("netlab %s %q: %w", what, name, err)
	}
	if l.closed {
		return fmt.Errorf("netlab %s %q: the lab is closed", what, name)
	}
	if l.names[name] {
		return fmt.Errorf("netlab %s %q: name already used in this lab", what, name)
	}
	made := len(l.ns)
	if err := fn(); err != nil {
		for i := len(l.ns) - 1; i >= made; i-- {
			_ = deleteNetns(l.ns[i])
		}
		l.ns = l.ns[:made]
		return fmt.Errorf("netlab %s %q: %w", what, name, err)
	}
	l.names[name] = true
	return nil
}

// addNetns creates the namespace of node, with loopback up and DAD off
// (addresses usable at once), forwarding if it is a router.
func (l *Lab) addNetns(node string, router bool) (string, error) {
	ns := l.prefix + node
	if err := ip("netns", "add", ns); err != nil {
		return "", err
	}
	l.ns = append(l.ns, ns)
	forward := "0" // set either way: IPv4 settings start as the machine's
	if router {
		forward = "1"
	}
	// Before any device exists: new devices take the defaults.
	if err := sysctls(ns,
		"net/ipv6/conf/all/accept_dad", "0",
		"net/ipv6/conf/default/accept_dad", "0",
		"net/ipv4/ip_forward", forward); err != nil {
		return "", err
	}
	return ns, ip("-n", ns, "link", "set", "lo", "up")
}

// publicAddr takes the next address of the internet segment, the same
// last number in IPv4 and IPv6 (written in decimal digits: ::23 for .23).
func (l *Lab) publicAddr() (v4, v6 netip.Addr, err error) {
	if l.public > 254 {
		return v4, v6, errors.New("the internet segment is full")
	}
	n := l.public
	l.public++
	b4 := PublicIPv4.Addr().As4()
	b4[3] = byte(n)
	g, _ := strconv.ParseUint(strconv.Itoa(n), 16, 16)
	b6 := PublicIPv6.Addr().As16()
	b6[14], b6[15] = byte(g>>8), byte(g)
	return netip.AddrFrom4(b4), netip.AddrFrom16(b6), nil
}

// bridge creates br0 in ns with addrs, up. Its MAC is fixed: a bridge
// otherwise takes its ports' lowest, which changes as ports come, and
// hosts that cached the old one lose their gateway.
func bridge(ns string, addrs ...netip.Prefix) error {
	if err := ip("-n", ns, "link", "add", "br0", "address", randomMAC(), "type", "bridge", "forward_delay", "0"); err != nil {
		return err
	}
	if err := addAddrs(ns, "br0", addrs); err != nil {
		return err
	}
	return ip("-n", ns, "link", "set", "br0", "up")
}

// plug creates a veth pair: dev in ns, and its peer, a port p<n> (named
// by the lab, so unique where it goes), in the bridge of brNS, up there.
// Both are created in place: no name ever lives in the root namespace.
func (l *Lab) plug(ns, dev, brNS string) (port string, err error) {
	l.ports++
	port = "p" + strconv.Itoa(l.ports)
	if err := ip("-n", brNS, "link", "add", port, "type", "veth", "peer", "name", dev, "netns", ns); err != nil {
		return "", err
	}
	return port, ip("-n", brNS, "link", "set", port, "master", "br0", "up")
}

// attach plugs dev of ns into the bridge of brNS with addrs and default
// routes via gws, and waits until both ends are ready.
func (l *Lab) attach(ns, dev, brNS string, addrs []netip.Prefix, gws []netip.Addr) error {
	port, err := l.plug(ns, dev, brNS)
	if err != nil {
		return err
	}
	if err := addAddrs(ns, dev, addrs); err != nil {
		return err
	}
	if err := ip("-n", ns, "link", "set", dev, "up"); err != nil {
		return err
	}
	for _, gw := range gws {
		family := "-4"
		if gw.Is6() {
			family = "-6"
		}
		if err := ip("-n", ns, family, "route", "add", "default", "via", gw.String(), "dev", dev); err != nil {
			return err
		}
	}
	if err := waitReady(ns, dev); err != nil {
		return err
	}
	return waitReady(brNS, port, "br0")
}

func addAddrs(ns, dev string, addrs []netip.Prefix) error {
	for _, a := range addrs {
		args := []string{"-n", ns, "addr", "add", a.String(), "dev", dev}
		if a.Addr().Is6() {
			args = append(args, "nodad")
		}
		if err := ip(args...); err != nil {
			return err
		}
	}
	return nil
}

// randomMAC returns a random locally administered unicast address.
func randomMAC() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	b[0] = b[0]&^1 | 2
	return net.HardwareAddr(b[:]).String()
}

// validName keeps names short and safe in a namespace's name.
func validName(name string) error {
	if name == "inet" {
		return errors.New(`"inet" is the internet segment's namespace`)
	}
	if name == "" || len(name) > 32 || strings.Trim(name, nameChars) != "" {
		return errors.New("a name is 1 to 32 letters, digits, '.', '_' or '-'")
	}
	return nil
}

const nameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"

// label turns a lab's name (a test's, with slashes) into a short part of
// a namespace's name.
func label(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !strings.ContainsRune(nameChars, rune(c)) {
			b[i] = '_'
		}
	}
	if len(b) > 40 {
		b = b[:40]
	}
	if len(b) == 0 {
		return "lab"
	}
	return string(b)
}
