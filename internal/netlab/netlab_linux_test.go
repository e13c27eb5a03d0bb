//go:build linux

package netlab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// The test binary doubles as a helper run inside a host: with
// NETLAB_HELPER=echo it serves echo (below) on NETLAB_ADDR, says "ready"
// and runs until its stdin closes; with NETLAB_HELPER=exit it just exits.
func TestMain(m *testing.M) {
	switch os.Getenv("NETLAB_HELPER") {
	case "":
		os.Exit(m.Run())
	case "echo":
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(os.Getenv("NETLAB_ADDR"))))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go echo(c)
		fmt.Println("ready")
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	case "exit":
	}
	os.Exit(0)
}

// echo answers each datagram with the address it came from, as the
// server sees it: a tiny STUN.
func echo(c *net.UDPConn) {
	buf := make([]byte, 1500)
	for {
		_, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		_, _ = c.WriteToUDPAddrPort([]byte(from.String()), from)
	}
}

func newLab(t *testing.T) *Lab {
	t.Helper()
	if err := Check(); err != nil {
		t.Skipf("no network lab here: %v", err)
	}
	l, err := New(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return l
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// listen opens a UDP socket on h at addr.
func listen(t *testing.T, h *Host, addr netip.AddrPort) *net.UDPConn {
	t.Helper()
	network := "udp6"
	if addr.Addr().Is4() {
		network = "udp4"
	}
	var c *net.UDPConn
	if err := h.Do(func() (err error) {
		c, err = net.ListenUDP(network, net.UDPAddrFromAddrPort(addr))
		return err
	}); err != nil {
		t.Fatalf("listen on %s at %v: %v", h.Name, addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// serve runs echo on h at addr.
func serve(t *testing.T, h *Host, addr netip.AddrPort) {
	t.Helper()
	go echo(listen(t, h, addr))
}

// ask sends to an echo server at dst and returns where it saw the
// datagram come from. No retries: the lab says it is ready when built.
func ask(t *testing.T, c *net.UDPConn, dst netip.AddrPort) netip.AddrPort {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort([]byte("?"), dst); err != nil {
		t.Fatalf("send to %v: %v", dst, err)
	}
	buf := make([]byte, 1500)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no answer from %v: %v", dst, err)
	}
	if from != dst {
		t.Fatalf("asked %v, answer from %v", dst, from)
	}
	seen, err := netip.ParseAddrPort(string(buf[:n]))
	if err != nil {
		t.Fatal(err)
	}
	return netip.AddrPortFrom(seen.Addr().Unmap(), seen.Port())
}

// silent checks that nothing arrives on c within d.
func silent(t *testing.T, c *net.UDPConn, d time.Duration, what string) {
	t.Helper()
	buf := make([]byte, 1500)
	_ = c.SetReadDeadline(time.Now().Add(d))
	if n, from, err := c.ReadFromUDPAddrPort(buf); err == nil {
		t.Errorf("%s: %q from %v was delivered", what, buf[:n], from)
	} else if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Error(err)
	}
}

// arrives sends from from to dst, and checks that it arrives on to, from
// src.
func arrives(t *testing.T, from, to *net.UDPConn, dst, src netip.AddrPort, what string) {
	t.Helper()
	if _, err := from.WriteToUDPAddrPort([]byte(what), dst); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	_ = to.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, got, err := to.ReadFromUDPAddrPort(buf); err != nil || got != src {
		t.Fatalf("%s, sent to %v from %v: got from %v, %v", what, dst, src, got, err)
	}
}

func local(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

// TestLANDirect: hosts of a LAN without NAT reach each other directly
// over IPv4 and IPv6 with their public addresses, and a server reaches
// them.
func TestLANDirect(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	srv := must[*Host](t)(l.Server("srv"))
	lan := must[*Network](t)(l.LAN("office", LANOptions{}))
	a := must[*Host](t)(lan.Host("a"))
	b := must[*Host](t)(lan.Host("b"))
	for _, h := range []*Host{srv, a, b} {
		if !PublicIPv4.Contains(h.IPv4) || !PublicIPv6.Contains(h.IPv6) || h.Public != h.IPv4 {
			t.Errorf("%s: IPv4 %v, IPv6 %v, public %v: want public addresses", h.Name, h.IPv4, h.IPv6, h.Public)
		}
	}
	for _, addr := range []netip.Addr{a.IPv4, a.IPv6} {
		serve(t, a, netip.AddrPortFrom(addr, 7000))
	}
	for _, from := range []*Host{b, srv} {
		for _, pair := range [][2]netip.Addr{{from.IPv4, a.IPv4}, {from.IPv6, a.IPv6}} {
			c := listen(t, from, netip.AddrPortFrom(pair[0], 0))
			if seen := ask(t, c, netip.AddrPortFrom(pair[1], 7000)); seen != local(c) {
				t.Errorf("%s -> a: a saw %v, want %v (no NAT)", from.Name, seen, local(c))
			}
		}
	}
}

// TestPortPreservingNAT: behind plain MASQUERADE the server sees the
// router's address with the host's own port, the same for every
// destination, and only a contacted address and port gets through.
func TestPortPreservingNAT(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	srv := must[*Host](t)(l.Server("srv"))
	home := must[*Network](t)(l.LAN("home", LANOptions{NAT: PortPreserving}))
	h := must[*Host](t)(home.Host("h"))
	if !home.Subnet.Contains(h.IPv4) || h.IPv6.IsValid() || h.Public != home.Public || !PublicIPv4.Contains(home.Public) {
		t.Errorf("host behind NAT: IPv4 %v (subnet %v), IPv6 %v, public %v (router %v)", h.IPv4, home.Subnet, h.IPv6, h.Public, home.Public)
	}
	s1 := listen(t, srv, netip.AddrPortFrom(srv.IPv4, 3478))
	go echo(s1)
	serve(t, srv, netip.AddrPortFrom(srv.IPv4, 3479))
	c := listen(t, h, netip.AddrPortFrom(netip.IPv4Unspecified(), 0))
	mapped := netip.AddrPortFrom(home.Public, local(c).Port())
	for _, port := range []uint16{3478, 3479} {
		if seen := ask(t, c, netip.AddrPortFrom(srv.IPv4, port)); seen != mapped {
			t.Errorf("server at port %d saw %v, want %v (router's address, host's port)", port, seen, mapped)
		}
	}

	// A port the host never contacted sends to the mapping first, then a
	// contacted one: only the latter arrives.
	stranger := listen(t, srv, netip.AddrPortFrom(srv.IPv4, 3480))
	if _, err := stranger.WriteToUDPAddrPort([]byte("stranger"), mapped); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.WriteToUDPAddrPort([]byte("known"), mapped); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "known" {
		t.Fatalf("got %q from %v (%v), want \"known\" from the contacted port", buf[:n], from, err)
	}
	silent(t, c, 200*time.Millisecond, "from a port never contacted")
}

// TestHolePunch: hosts behind two port-preserving NATs (with the same
// private subnet, as two homes often have) reach each other at the
// addresses a server saw, even when one's first packet arrives before
// the other has sent anything.
func TestHolePunch(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	srv := must[*Host](t)(l.Server("srv"))
	stun := netip.AddrPortFrom(srv.IPv4, 3478)
	serve(t, srv, stun)
	subnet := netip.MustParsePrefix("192.168.1.0/24")
	a := must[*Host](t)(must[*Network](t)(l.LAN("home-a", LANOptions{NAT: PortPreserving, Subnet: subnet})).Host("a"))
	b := must[*Host](t)(must[*Network](t)(l.LAN("home-b", LANOptions{NAT: PortPreserving, Subnet: subnet})).Host("b"))
	if a.IPv4 != b.IPv4 || !subnet.Contains(a.IPv4) {
		t.Errorf("a at %v, b at %v: want the same address in %v", a.IPv4, b.IPv4, subnet)
	}
	ca := listen(t, a, netip.AddrPortFrom(netip.IPv4Unspecified(), 0))
	cb := listen(t, b, netip.AddrPortFrom(netip.IPv4Unspecified(), 0))
	ma, mb := ask(t, ca, stun), ask(t, cb, stun)

	if _, err := ca.WriteToUDPAddrPort([]byte("a"), mb); err != nil {
		t.Fatal(err)
	}
	silent(t, cb, 100*time.Millisecond, "a's first packet, before b sent to a")
	arrives(t, cb, ca, ma, mb, "b's punch")
	arrives(t, ca, cb, mb, ma, "a's packet after b's punch")
}

// TestNoFirewallTTL: between two bare-MASQUERADE routers, each behind a
// provider, a host's first packet to the other's mapping, arriving before
// the other has sent anything, is taken in by the other's router, which
// then remaps its host: plain hole punching fails. A first packet whose
// TTL ends at the provider opens the host's own NAT without reaching the
// other's, and then both ways work.
func TestNoFirewallTTL(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	srv := must[*Host](t)(l.Server("srv"))
	stun := netip.AddrPortFrom(srv.IPv4, 3478)
	serve(t, srv, stun)
	opts := LANOptions{NAT: PortPreserving, NoFirewall: true, Provider: true}
	a := must[*Host](t)(must[*Network](t)(l.LAN("home-a", opts)).Host("a"))
	b := must[*Host](t)(must[*Network](t)(l.LAN("home-b", opts)).Host("b"))

	// Plain: a first, then b, then a again; nothing gets through.
	ca := listen(t, a, netip.AddrPortFrom(netip.IPv4Unspecified(), 0))
	cb := listen(t, b, netip.AddrPortFrom(netip.IPv4Unspecified(), 0))
	ma, mb := ask(t, ca, stun), ask(t, cb, stun)
	for _, p := range []struct {
		from *net.UDPConn
		to   netip.AddrPort
	}{{ca, mb}, {cb, ma}, {ca, mb}} {
		if _, err := p.from.WriteToUDPAddrPort([]byte("plain"), p.to); err != nil {
			t.Fatal(err)
		}
	}
	silent(t, cb, 100*time.Millisecond, "a's packets, plain")
	silent(t, ca, 100*time.Millisecond, "b's packet, plain")

	// With a punch of TTL 2 from each end first, both ways work.
	ca = listen(t, a, netip.AddrPortFrom(netip.IPv4Unspecified(), 0))
	cb = listen(t, b, netip.AddrPortFrom(netip.IPv4Unspecified(), 0))
	ma, mb = ask(t, ca, stun), ask(t, cb, stun)
	for _, p := range []struct {
		from *net.UDPConn
		to   netip.AddrPort
	}{{ca, mb}, {cb, ma}} {
		pc := ipv4.NewConn(p.from)
		if err := pc.SetTTL(2); err != nil {
			t.Fatal(err)
		}
		if _, err := p.from.WriteToUDPAddrPort([]byte("punch"), p.to); err != nil {
			t.Fatal(err)
		}
		if err := pc.SetTTL(64); err != nil {
			t.Fatal(err)
		}
	}
	silent(t, cb, 100*time.Millisecond, "a's punch, which should die at a's provider")
	arrives(t, ca, cb, mb, ma, "a's packet after the punches")
	arrives(t, cb, ca, ma, mb, "b's packet after the punches")
}

// TestSymmetricNAT: behind MASQUERADE --random-fully one socket is seen
// from a new port per destination, the same one again for a destination
// already used.
func TestSymmetricNAT(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	srv := must[*Host](t)(l.Server("srv"))
	lan := must[*Network](t)(l.LAN("corp", LANOptions{NAT: Symmetric}))
	h := must[*Host](t)(lan.Host("h"))
	c := listen(t, h, netip.AddrPortFrom(netip.IPv4Unspecified(), 0))
	var ports []uint16
	for _, port := range []uint16{3478, 3479, 3480} {
		dst := netip.AddrPortFrom(srv.IPv4, port)
		serve(t, srv, dst)
		seen := ask(t, c, dst)
		if seen.Addr() != lan.Public {
			t.Errorf("server saw %v, want the router's %v", seen, lan.Public)
		}
		if again := ask(t, c, dst); again != seen {
			t.Errorf("to %v: seen from %v, then from %v", dst, seen, again)
		}
		ports = append(ports, seen.Port())
	}
	// Random ports may coincide for two destinations (odds 1 in ~64k),
	// for three hardly ever.
	if distinct := slices.Compact(slices.Sorted(slices.Values(ports))); len(distinct) < 2 {
		t.Errorf("three destinations saw one port %v", ports)
	}
	t.Logf("host port %d, seen from %v", local(c).Port(), ports)
}

// TestIPv6Only: hosts of an IPv6-only LAN have no IPv4 address or route,
// and talk to each other and to a server over IPv6; one serves from a
// helper process started with Host.Command.
func TestIPv6Only(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	srv := must[*Host](t)(l.Server("srv"))
	lan := must[*Network](t)(l.LAN("v6", LANOptions{IPv6Only: true}))
	a := must[*Host](t)(lan.Host("a"))
	b := must[*Host](t)(lan.Host("b"))
	if a.IPv4.IsValid() || a.Public.IsValid() || !PublicIPv6.Contains(a.IPv6) || lan.Gateway.IsValid() {
		t.Errorf("a: IPv4 %v, public %v, IPv6 %v; LAN gateway %v", a.IPv4, a.Public, a.IPv6, lan.Gateway)
	}
	var addrs []string
	var routes string
	if err := b.Do(func() error {
		ifaddrs, err := net.InterfaceAddrs()
		for _, a := range ifaddrs {
			addrs = append(addrs, a.String())
		}
		r, rerr := os.ReadFile("/proc/thread-self/net/route") // IPv4's main table
		routes = string(r)
		return errors.Join(err, rerr)
	}); err != nil {
		t.Fatal(err)
	}
	for _, s := range addrs {
		if p := netip.MustParsePrefix(s); p.Addr().Is4() && !p.Addr().IsLoopback() {
			t.Errorf("b has IPv4 address %s", s)
		}
	}
	if lines := strings.Count(strings.TrimSpace(routes), "\n"); lines != 0 {
		t.Errorf("b has IPv4 routes:\n%s", routes)
	}
	if err := b.Do(func() error {
		c, err := net.Dial("udp4", netip.AddrPortFrom(srv.IPv4, 3478).String())
		if err == nil {
			c.Close()
		}
		return err
	}); !errors.Is(err, syscall.ENETUNREACH) {
		t.Errorf("b dialling the server's IPv4: %v, want %v", err, syscall.ENETUNREACH)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	echoAt := netip.AddrPortFrom(a.IPv6, 7000)
	cmd := a.Command(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "NETLAB_HELPER=echo", "NETLAB_ADDR="+echoAt.String())
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); _ = cmd.Wait() }()
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		t.Fatalf("helper in a: %q, %v", line, err)
	}
	for _, h := range []*Host{b, srv} {
		c := listen(t, h, netip.AddrPortFrom(h.IPv6, 0))
		if seen := ask(t, c, echoAt); seen != local(c) {
			t.Errorf("%s -> a: a saw %v, want %v", h.Name, seen, local(c))
		}
	}
}

// TestClose: Close removes every namespace of the lab, kills what runs
// there, and may be called again; the lab then refuses to grow.
func TestClose(t *testing.T) {
	t.Parallel()
	if err := Check(); err != nil {
		t.Skipf("no network lab here: %v", err)
	}
	l := must[*Lab](t)(New(t.Name()))
	defer l.Close()
	must[*Host](t)(l.Server("srv"))
	must[*Host](t)(must[*Network](t)(l.LAN("nat", LANOptions{NAT: Symmetric})).Host("a"))
	must[*Host](t)(must[*Network](t)(l.LAN("pub", LANOptions{})).Host("b"))
	h := must[*Host](t)(must[*Network](t)(l.LAN("v6", LANOptions{IPv6Only: true})).Host("c"))
	if n := len(labNetns(t, l)); n != 8 {
		t.Errorf("%d namespaces, want 8 (internet, server, 3 LANs, 3 hosts)", n)
	}

	cmd := h.Command(context.Background(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "NETLAB_HELPER=echo", "NETLAB_ADDR="+netip.AddrPortFrom(h.IPv6, 7000).String())
	in, _ := cmd.StdinPipe() // kept open: the helper would run on
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		t.Fatalf("helper: %q, %v", line, err)
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if left := labNetns(t, l); len(left) > 0 {
		t.Errorf("left after Close: %v", left)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("the helper exited cleanly: want it killed")
		}
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		t.Error("the helper still runs after Close")
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := l.Server("late"); err == nil {
		t.Error("Server after Close: no error")
	}
}

func labNetns(t *testing.T, l *Lab) []string {
	names, err := listNetns()
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(names, func(n string) bool { return !strings.HasPrefix(n, l.Prefix()) })
}

// TestCleanup: Cleanup removes namespaces of a dead process and keeps
// those of a live one (this one's).
func TestCleanup(t *testing.T) {
	l := newLab(t)
	dead := exec.Command(os.Args[0], "-test.run=^$")
	dead.Env = append(os.Environ(), "NETLAB_HELPER=exit")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	if alive(dead.Process.Pid) {
		t.Skip("the helper's pid was reused at once")
	}
	leftover := fmt.Sprintf("%s%d-1-dead-h", nsPrefix, dead.Process.Pid)
	if err := ip("netns", "add", leftover); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = deleteNetns(leftover) })
	removed, err := Cleanup()
	if err != nil {
		t.Fatal(err)
	}
	names, _ := listNetns()
	if slices.Contains(names, leftover) {
		t.Errorf("%s is still there", leftover)
	} else if !slices.Contains(removed, leftover) {
		t.Logf("%s removed by someone else (another test process)", leftover)
	}
	if len(labNetns(t, l)) == 0 {
		t.Errorf("Cleanup removed this process's lab %s", l.Prefix())
	}
}
