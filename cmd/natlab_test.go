package cmd

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/p2pxfer/p2pxfer/internal/netlab"
)

// The NAT lab: real p2pxfer processes in network namespaces, behind
// routers that NAT as Linux's MASQUERADE does (package netlab). Only where
// the lab can run (as root on Linux); elsewhere these tests skip.

func newLab(t *testing.T) *netlab.Lab {
	t.Helper()
	if err := netlab.Check(); err != nil {
		t.Skipf("no NAT lab here: %v", err)
	}
	lab, err := netlab.New(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lab.Close() })
	return lab
}

// labHost makes a host on a new LAN of the lab.
func labHost(t *testing.T, lab *netlab.Lab, name string, opts netlab.LANOptions) *netlab.Host {
	t.Helper()
	n, err := lab.LAN(name+"net", opts)
	if err != nil {
		t.Fatal(err)
	}
	h, err := n.Host(name)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// inLab runs p2pxfer args on host h.
func inLab(ctx context.Context, t *testing.T, h *netlab.Host, vars map[string]string, args ...string) *proc {
	t.Helper()
	p := startCmd(t, h.Command(ctx, os.Args[0], args...), vars)
	t.Cleanup(func() { _ = p.cmd.Process.Kill() })
	return p
}

// labSignal runs p2pxfer signal (with flags) on the server host and
// returns its URL.
func labSignal(ctx context.Context, t *testing.T, srv *netlab.Host, flags ...string) string {
	t.Helper()
	sig := inLab(ctx, t, srv, nil, append([]string{"signal", "--addr", srv.IPv4.String(), "--port", "8080"}, flags...)...)
	url, _ := sig.listening(t)
	return url
}

// discover, as labTransfer's url, has the receiver find the sender's
// embedded signalling server on the LAN, with no --signal.
const discover = "discover"

// labTransfer sends a file from snd to rcv through the signalling
// server at url (the sender's embedded one when url is "" or discover),
// and returns what each printed on stderr. It fails the test unless both
// succeed and the file arrives intact.
func labTransfer(ctx context.Context, t *testing.T, snd, rcv *netlab.Host, url string, flags ...string) (sendErr, recvErr string) {
	t.Helper()
	src, out := t.TempDir(), t.TempDir()
	want := randomFile(t, src, "lab.bin", 1<<20+333)
	args := append([]string{"send", "--max-receivers", "1"}, flags...)
	if url != "" && url != discover {
		args = append(args, "--signal", url)
	}
	s := inLab(ctx, t, snd, nil, append(args, filepath.Join(src, "lab.bin"))...)
	roomID, password, printed := s.offer(t)
	recvArgs := []string{"recv", "--no-seed", "--out", out}
	switch url {
	case "":
		recvArgs = append(recvArgs, "--signal", printed)
	case discover:
		if !strings.Contains(s.stdout.String(), "  p2pxfer recv "+roomID+"\n") {
			t.Errorf("send did not print the short command:\n%s", s.stdout.String())
		}
	default:
		recvArgs = append(recvArgs, "--signal", url)
	}
	r := inLab(ctx, t, rcv, map[string]string{"P2PXFER_PASSWORD": password}, append(append(recvArgs, flags...), roomID)...)
	if c := r.waitUpTo(t, 60*time.Second, "recv"); c != ExitOK {
		t.Fatalf("recv exit %d:\n%s\nsend:\n%s", c, r.stderr.String(), s.stderr.String())
	}
	if c := s.waitUpTo(t, 10*time.Second, "send"); c != ExitOK {
		t.Fatalf("send exit %d:\n%s", c, s.stderr.String())
	}
	got, err := os.ReadFile(filepath.Join(out, "lab.bin"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("received file differs (%v)", err)
	}
	return s.stderr.String(), r.stderr.String()
}

// path checks that both ends said they took the path want.
func wantPath(t *testing.T, sendErr, recvErr, want string) {
	t.Helper()
	if !strings.Contains(recvErr, "connected to the sender: "+want) {
		t.Errorf("recv did not say %q:\n%s", want, recvErr)
	}
	if !strings.Contains(sendErr, "connected: "+want) {
		t.Errorf("send did not say %q:\n%s", want, sendErr)
	}
}

// TestLabLAN: two hosts on one LAN, the sender's embedded signalling
// server, no STUN: a direct connection, and both ends say so.
func TestLabLAN(t *testing.T) {
	t.Parallel() // labs of their own, processes of their own
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	lab := newLab(t)
	n, err := lab.LAN("lan", netlab.LANOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := n.Host("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.Host("b")
	if err != nil {
		t.Fatal(err)
	}
	se, re := labTransfer(ctx, t, a, b, "", "--stun", "none")
	wantPath(t, se, re, "direct (LAN)")
}

// TestLabIPv6Only: on a LAN without IPv4 the embedded server's printed
// command names its IPv6 address, and the transfer works over IPv6.
func TestLabIPv6Only(t *testing.T) {
	t.Parallel() // labs of their own, processes of their own
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	lab := newLab(t)
	n, err := lab.LAN("v6", netlab.LANOptions{IPv6Only: true})
	if err != nil {
		t.Fatal(err)
	}
	a, err := n.Host("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.Host("b")
	if err != nil {
		t.Fatal(err)
	}
	// recv uses the command send printed: there is no IPv4 to reach.
	se, re := labTransfer(ctx, t, a, b, "", "--stun", "none")
	wantPath(t, se, re, "direct (LAN)")
}

// TestLabNAT: both hosts behind port-preserving NATs, with the STUN and
// TURN of a signalling server run with --turn: they connect directly
// through the NATs, not through the relay.
func TestLabNAT(t *testing.T) {
	t.Parallel() // labs of their own, processes of their own
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	lab := newLab(t)
	srv, err := lab.Server("srv")
	if err != nil {
		t.Fatal(err)
	}
	url := labSignal(ctx, t, srv, "--turn")
	a := labHost(t, lab, "a", netlab.LANOptions{NAT: netlab.PortPreserving})
	b := labHost(t, lab, "b", netlab.LANOptions{NAT: netlab.PortPreserving})
	se, re := labTransfer(ctx, t, a, b, url, "--stun", "none")
	wantPath(t, se, re, "direct through NAT")
}

// TestLabRelay: both hosts behind symmetric NATs, which no direct path
// crosses: with a signalling server run with --turn they connect through
// its relay, and both ends say so.
func TestLabRelay(t *testing.T) {
	t.Parallel() // labs of their own, processes of their own
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	lab := newLab(t)
	srv, err := lab.Server("srv")
	if err != nil {
		t.Fatal(err)
	}
	url := labSignal(ctx, t, srv, "--turn")
	a := labHost(t, lab, "a", netlab.LANOptions{NAT: netlab.Symmetric})
	b := labHost(t, lab, "b", netlab.LANOptions{NAT: netlab.Symmetric})
	se, re := labTransfer(ctx, t, a, b, url, "--stun", "none")
	wantPath(t, se, re, "via relay "+srv.IPv4.String())
}

// TestLabNoPath: both hosts behind symmetric NATs and no relay: recv
// gives up once the connect timeout is over (15 s by default; 2 s here,
// to keep the suite short), with exit 5 and a message that says what was
// tried and what would help, not to run the same command again.
func TestLabNoPath(t *testing.T) {
	t.Parallel() // labs of their own, processes of their own
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	lab := newLab(t)
	srv, err := lab.Server("srv")
	if err != nil {
		t.Fatal(err)
	}
	url := labSignal(ctx, t, srv)
	a := labHost(t, lab, "a", netlab.LANOptions{NAT: netlab.Symmetric})
	b := labHost(t, lab, "b", netlab.LANOptions{NAT: netlab.Symmetric})
	src, out := t.TempDir(), t.TempDir()
	randomFile(t, src, "lab.bin", 1000)
	const timeout = 2 * time.Second
	s := inLab(ctx, t, a, nil, "send", "--signal", url, "--stun", "none", "--connect-timeout", timeout.String(), filepath.Join(src, "lab.bin"))
	roomID, password, _ := s.offer(t)
	began := time.Now()
	r := inLab(ctx, t, b, map[string]string{"P2PXFER_PASSWORD": password},
		"recv", "--no-seed", "--stun", "none", "--connect-timeout", timeout.String(), "--signal", url, "--out", out, roomID)
	c := r.waitUpTo(t, 60*time.Second, "recv with no path")
	took := time.Since(began)
	t.Logf("recv exit %d after %v:\n%s", c, took, r.stderr.String())
	if c != ExitConnect {
		t.Fatalf("exit %d, want %d", c, ExitConnect)
	}
	if took > timeout+3*time.Second {
		t.Errorf("gave up after %v, want soon after the %v connect timeout", took, timeout)
	}
	msg := r.stderr.String()
	if strings.Contains(msg, "run the same command again") {
		t.Errorf("recv suggests running the same command again, which cannot help:\n%s", msg)
	}
	if !strings.Contains(msg, "--turn") {
		t.Errorf("recv does not say a relay would help:\n%s", msg)
	}
}

// TestLabRelayTCP: one host behind a symmetric NAT, the other on a
// network that lets no UDP out at all: it reaches the relay over TCP, and
// the transfer goes through the relay.
func TestLabRelayTCP(t *testing.T) {
	t.Parallel() // labs of their own, processes of their own
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	lab := newLab(t)
	srv, err := lab.Server("srv")
	if err != nil {
		t.Fatal(err)
	}
	url := labSignal(ctx, t, srv, "--turn")
	a := labHost(t, lab, "a", netlab.LANOptions{NAT: netlab.Symmetric})
	bnet, err := lab.LAN("bnet", netlab.LANOptions{NAT: netlab.PortPreserving})
	if err != nil {
		t.Fatal(err)
	}
	b, err := bnet.Host("b")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "netns", "exec", bnet.NS, "iptables", "-w", "-A", "FORWARD", "-p", "udp", "-j", "DROP").CombinedOutput(); err != nil {
		t.Fatalf("blocking UDP: %v: %s", err, out)
	}
	se, re := labTransfer(ctx, t, a, b, url, "--stun", "none")
	wantPath(t, se, re, "via relay "+srv.IPv4.String())
}

// TestLabDiscovery: on a LAN, recv ROOMID with no --signal finds the
// sender's embedded server, and send prints that short command.
func TestLabDiscovery(t *testing.T) {
	t.Parallel() // labs of their own, processes of their own
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	lab := newLab(t)
	for i, opts := range []netlab.LANOptions{{}, {IPv6Only: true}} {
		n, err := lab.LAN(fmt.Sprint("lan", i), opts)
		if err != nil {
			t.Fatal(err)
		}
		a, err := n.Host(fmt.Sprint("a", i))
		if err != nil {
			t.Fatal(err)
		}
		b, err := n.Host(fmt.Sprint("b", i))
		if err != nil {
			t.Fatal(err)
		}
		se, re := labTransfer(ctx, t, a, b, discover, "--stun", "none")
		wantPath(t, se, re, "direct (LAN)")
	}
}

// TestLabDiscoveryNotFound: with no --signal and no sender of the room on
// the LAN, recv says so within a few seconds (exit 4) and how to go on.
func TestLabDiscoveryNotFound(t *testing.T) {
	t.Parallel() // labs of their own, processes of their own
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	lab := newLab(t)
	b := labHost(t, lab, "b", netlab.LANOptions{})
	began := time.Now()
	r := inLab(ctx, t, b, map[string]string{"P2PXFER_PASSWORD": "pw"}, "recv", "--no-seed", "--stun", "none", "--out", t.TempDir(), "abcdefgh")
	if c := r.waitUpTo(t, 30*time.Second, "recv of a room nobody announces"); c != ExitNoRoom {
		t.Fatalf("exit %d, want %d:\n%s", c, ExitNoRoom, r.stderr.String())
	}
	if d := time.Since(began); d > discoverWait+5*time.Second {
		t.Errorf("took %v", d)
	}
	if !strings.Contains(r.stderr.String(), "--signal") {
		t.Errorf("no word of --signal:\n%s", r.stderr.String())
	}
}

// TestLabNATNoFirewall: both hosts behind port-preserving NATs whose
// routers, bare Linux MASQUERADE, take unsolicited packets in. The first
// check to arrive at a router is recorded there as for the router itself,
// which takes the tuple its host's own check needs: MASQUERADE remaps the
// host, and the direct path fails on both sides. They connect all the
// same, through the relay. (A direct path here is still to come: a first
// packet whose TTL ends between the two NATs, where routers stand between
// them as on the internet.)
func TestLabNATNoFirewall(t *testing.T) {
	t.Parallel() // labs of their own, processes of their own
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	lab := newLab(t)
	srv, err := lab.Server("srv")
	if err != nil {
		t.Fatal(err)
	}
	url := labSignal(ctx, t, srv, "--turn")
	a := labHost(t, lab, "a", netlab.LANOptions{NAT: netlab.PortPreserving, NoFirewall: true})
	b := labHost(t, lab, "b", netlab.LANOptions{NAT: netlab.PortPreserving, NoFirewall: true})
	se, re := labTransfer(ctx, t, a, b, url, "--stun", "none")
	wantPath(t, se, re, "via relay "+srv.IPv4.String())
}
