package cmd

import (
	"bytes"
	"context"
	"fmt"
	"net"
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

// labSignal runs p2pxfer signal (with flags) on port of the server host
// and returns its URL.
func labSignal(ctx context.Context, t *testing.T, srv *netlab.Host, port string, flags ...string) string {
	t.Helper()
	sig := inLab(ctx, t, srv, nil, append([]string{"signal", "--addr", srv.IPv4.String(), "--port", port}, flags...)...)
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

// wantPath checks that both ends said they took the path want.
func wantPath(t *testing.T, sendErr, recvErr, want string) {
	t.Helper()
	if !strings.Contains(recvErr, "connected to the sender: "+want) {
		t.Errorf("recv did not say %q:\n%s", want, recvErr)
	}
	if !strings.Contains(sendErr, "connected: "+want) {
		t.Errorf("send did not say %q:\n%s", want, sendErr)
	}
}

// TestLabLAN: two hosts on a LAN, and two on an IPv6-only LAN, with the
// sender's embedded signalling server and no STUN: a direct connection,
// and both ends say so, whether recv is given the URL send printed (on
// the IPv6-only LAN it must name an IPv6 address: there is no IPv4) or
// finds the server by itself on the LAN (mDNS). A room nobody announces
// is not found within seconds, and recv says how to go on (exit 4); a
// wrong password to a room found so may have gone to an impostor (exit 3,
// and recv says so).
func TestLabLAN(t *testing.T) {
	t.Parallel() // a lab of its own, processes of their own
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
		for _, how := range []string{"", discover} {
			se, re := labTransfer(ctx, t, a, b, how, "--stun", "none")
			wantPath(t, se, re, "direct (LAN)")
		}
		if i > 0 {
			continue
		}
		began := time.Now()
		r := inLab(ctx, t, b, map[string]string{"P2PXFER_PASSWORD": "pw"}, "recv", "--no-seed", "--stun", "none", "--out", t.TempDir(), "abcdefgh")
		if c := r.waitUpTo(t, 30*time.Second, "recv of a room nobody announces"); c != ExitNoRoom {
			t.Fatalf("exit %d, want %d:\n%s", c, ExitNoRoom, r.stderr.String())
		}
		if d := time.Since(began); d > discoverWait+5*time.Second {
			t.Errorf("not found after %v", d)
		}
		if !strings.Contains(r.stderr.String(), "--signal") {
			t.Errorf("no word of --signal:\n%s", r.stderr.String())
		}

		// A wrong password to a room found on the LAN may be the right
		// one given to another device that answered: the hint says so.
		src := t.TempDir()
		randomFile(t, src, "lab.bin", 1000)
		s := inLab(ctx, t, a, nil, "send", "--stun", "none", filepath.Join(src, "lab.bin"))
		roomID, password, _ := s.offer(t)
		r = inLab(ctx, t, b, map[string]string{"P2PXFER_PASSWORD": password + "x"}, "recv", "--no-seed", "--stun", "none", "--out", t.TempDir(), roomID)
		if c := r.waitUpTo(t, 30*time.Second, "recv with a wrong password"); c != ExitWrongPassword || !strings.Contains(r.stderr.String(), "another device") {
			t.Errorf("exit %d, want %d and a word of another device:\n%s", c, ExitWrongPassword, r.stderr.String())
		}
	}
}

// TestLabPaths: hosts on LANs behind routers that NAT, with a signalling
// server run with --turn on the internet, and one without.
//   - Port-preserving NATs at both ends: a direct path through the NATs,
//     not the relay.
//   - Symmetric NATs at both ends, which no direct path crosses: the
//     relay.
//   - A symmetric NAT and a network that lets no UDP out at all: the
//     relay, reached over TCP.
//   - Bare-MASQUERADE routers that take unsolicited packets in, behind
//     their providers as on the internet: the first check to reach a
//     router would be recorded there as for the router itself, which
//     takes the tuple its host's own check needs (MASQUERADE would remap
//     the host, at both ends). Punches whose TTL ends between the NATs
//     open each NAT first (lane's punch.go): a direct path through NAT.
//   - The same routers on one segment, adjacent, with nothing between
//     them for a punch to die at: they connect through the relay.
//   - Two IPv6-only networks that drop each other's packets: the relay,
//     over IPv6 end to end.
//   - Symmetric NATs and no relay: recv gives up once the connect timeout
//     is over (15 s by default; 2 s here, to keep the suite short), with
//     exit 5 and a message that says what was tried and what would help,
//     not to run the same command again.
func TestLabPaths(t *testing.T) {
	t.Parallel() // a lab of its own, processes of their own
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel) // after the parallel subtests, not when this returns
	lab := newLab(t)
	srv, err := lab.Server("srv")
	if err != nil {
		t.Fatal(err)
	}
	relayed := labSignal(ctx, t, srv, "8080", "--turn")
	plain := labSignal(ctx, t, srv, "8081")
	v6 := inLab(ctx, t, srv, nil, "signal", "--addr", "::", "--port", "8082", "--turn", "--turn-port", "3479")
	v6.listening(t)
	relayed6 := "ws://" + net.JoinHostPort(srv.IPv6.String(), "8082") + "/ws"
	for _, c := range []struct {
		name   string
		a, b   netlab.LANOptions
		blockB bool // b's network lets no UDP out
		apart  bool // a and b drop each other's packets
		url    string
		want   string // the path; "" for no path
	}{
		{"NAT", netlab.LANOptions{NAT: netlab.PortPreserving}, netlab.LANOptions{NAT: netlab.PortPreserving}, false, false, relayed, "direct through NAT"},
		{"symmetric", netlab.LANOptions{NAT: netlab.Symmetric}, netlab.LANOptions{NAT: netlab.Symmetric}, false, false, relayed, "via relay " + srv.IPv4.String()},
		{"no UDP", netlab.LANOptions{NAT: netlab.Symmetric}, netlab.LANOptions{NAT: netlab.PortPreserving}, true, false, relayed, "via relay " + srv.IPv4.String()},
		{"no firewall", netlab.LANOptions{NAT: netlab.PortPreserving, NoFirewall: true, Provider: true}, netlab.LANOptions{NAT: netlab.PortPreserving, NoFirewall: true, Provider: true}, false, false, relayed, "direct through NAT"},
		{"no firewall, adjacent", netlab.LANOptions{NAT: netlab.PortPreserving, NoFirewall: true}, netlab.LANOptions{NAT: netlab.PortPreserving, NoFirewall: true}, false, false, relayed, "via relay " + srv.IPv4.String()},
		{"IPv6", netlab.LANOptions{IPv6Only: true}, netlab.LANOptions{IPv6Only: true}, false, true, relayed6, "via relay " + srv.IPv6.String()},
		{"no path", netlab.LANOptions{NAT: netlab.Symmetric}, netlab.LANOptions{NAT: netlab.Symmetric}, false, false, plain, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			name := strings.NewReplacer(" ", "", ",", "").Replace(c.name)
			a := labHost(t, lab, name+"a", c.a)
			bnet, err := lab.LAN(name+"bnet", c.b)
			if err != nil {
				t.Fatal(err)
			}
			b, err := bnet.Host(name + "b")
			if err != nil {
				t.Fatal(err)
			}
			if c.blockB {
				if out, err := exec.Command("ip", "netns", "exec", bnet.NS, "iptables", "-w", "-A", "FORWARD", "-p", "udp", "-j", "DROP").CombinedOutput(); err != nil {
					t.Fatalf("blocking UDP: %v: %s", err, out)
				}
			}
			if c.apart {
				for _, h := range [][2]*netlab.Host{{a, b}, {b, a}} {
					if out, err := exec.Command("ip", "netns", "exec", h[0].NS, "ip6tables", "-w", "-A", "INPUT", "-s", h[1].IPv6.String(), "-j", "DROP").CombinedOutput(); err != nil {
						t.Fatalf("ip6tables: %v: %s", err, out)
					}
				}
			}
			if c.want != "" {
				se, re := labTransfer(ctx, t, a, b, c.url, "--stun", "none")
				wantPath(t, se, re, c.want)
				return
			}
			noPath(ctx, t, a, b, c.url)
		})
	}
}

// TestLabRide: one end behind a NAT that gives every new socket a new
// port, the other with a public address. ICE's pair works, a direct
// lane's socket would not: the lane that carries the file is a ride lane
// on ICE's pair. It opens at once: the NATed end's srflx candidate shows
// the random ports, so the receiver does not wait out a direct lane's
// 5 s, which the transfer, slowed to about two seconds, would not
// outlast. (Behind the receiver's NAT, the pair is host to host as the
// receiver sees it: only the candidate tells, and its private address
// reaching a public one names the path.) A receiver with --lanes 1 gets
// one too: it rides the one connection rather than adding one.
func TestLabRide(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	lab := newLab(t)
	srv, err := lab.Server("srv")
	if err != nil {
		t.Fatal(err)
	}
	// Its STUN shows an end its NAT; its relay is there, as usual, but
	// ICE prefers the direct pair.
	url := labSignal(ctx, t, srv, "8080", "--turn")
	sym, public := netlab.LANOptions{NAT: netlab.Symmetric}, netlab.LANOptions{}
	for _, c := range []struct {
		name  string
		a, b  netlab.LANOptions
		lanes string // recv's --lanes: a ride lane adds no connection
	}{
		{"sender behind it", sym, public, "3"},
		{"receiver behind it", public, sym, "1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			name := strings.Fields(c.name)[0]
			a := labHost(t, lab, "ride"+name+"a", c.a)
			b := labHost(t, lab, "ride"+name+"b", c.b)
			src, out := t.TempDir(), t.TempDir()
			want := randomFile(t, src, "lab.bin", 2<<20)
			s := inLab(ctx, t, a, nil, "send", "-v", "--stun", "none", "--max-receivers", "1", "--max-rate", "1M", "--signal", url, filepath.Join(src, "lab.bin"))
			roomID, password, _ := s.offer(t)
			r := inLab(ctx, t, b, map[string]string{"P2PXFER_PASSWORD": password}, "recv", "-v", "--stun", "none", "--no-seed", "--lanes", c.lanes, "--signal", url, "--out", out, roomID)
			if c := r.waitUpTo(t, 60*time.Second, "recv"); c != ExitOK {
				t.Fatalf("recv exit %d:\n%s\nsend:\n%s", c, r.stderr.String(), s.stderr.String())
			}
			if c := s.waitUpTo(t, 10*time.Second, "send"); c != ExitOK {
				t.Fatalf("send exit %d:\n%s", c, s.stderr.String())
			}
			if got, err := os.ReadFile(filepath.Join(out, "lab.bin")); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("received file differs (%v)", err)
			}
			for _, end := range []*run{s.run, r.run} {
				if !strings.Contains(end.stderr.String(), "ride lane open") {
					t.Errorf("no ride lane opened:\n%s", end.stderr.String())
				}
			}
			// The NATed end knows its path goes through NAT, whatever
			// kind of pair it sees.
			natted := s.run
			if c.b.NAT != netlab.None {
				natted = r.run
			}
			if !strings.Contains(natted.stderr.String(), "direct through NAT") {
				t.Errorf("the end behind the NAT did not say so:\n%s", natted.stderr.String())
			}
		})
	}
}

// noPath checks that recv on b, with no path to the sender on a, gives up
// at the connect timeout with the message TestLabPaths expects.
func noPath(ctx context.Context, t *testing.T, a, b *netlab.Host, url string) {
	t.Helper()
	const timeout = 2 * time.Second
	src, out := t.TempDir(), t.TempDir()
	randomFile(t, src, "lab.bin", 1000)
	s := inLab(ctx, t, a, nil, "send", "--signal", url, "--stun", "none", "--connect-timeout", timeout.String(), filepath.Join(src, "lab.bin"))
	roomID, password, _ := s.offer(t)
	began := time.Now()
	r := inLab(ctx, t, b, map[string]string{"P2PXFER_PASSWORD": password},
		"recv", "--no-seed", "--stun", "none", "--connect-timeout", timeout.String(), "--signal", url, "--out", out, roomID)
	c := r.waitUpTo(t, 60*time.Second, "recv with no path")
	took := time.Since(began)
	if c != ExitConnect {
		t.Fatalf("exit %d, want %d:\n%s", c, ExitConnect, r.stderr.String())
	}
	// Well below the default connect timeout: it was this one that
	// ended the wait, whatever the load on the machine.
	if took > timeout+10*time.Second {
		t.Errorf("gave up after %v, want soon after the %v connect timeout", took, timeout)
	}
	msg := r.stderr.String()
	if strings.Contains(msg, "run the same command again") {
		t.Errorf("recv suggests running the same command again, which cannot help:\n%s", msg)
	}
	if !strings.Contains(msg, "--turn") || !strings.Contains(msg, "no relay") {
		t.Errorf("recv does not say there was no relay, and that one would help:\n%s", msg)
	}
}
