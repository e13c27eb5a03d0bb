package lane

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

func TestPunchPlan(t *testing.T) {
	ap := netip.MustParseAddrPort
	ci := func(s string) webrtc.ICECandidateInit { return webrtc.ICECandidateInit{Candidate: s} }
	var p punchPlan
	if !p.ourCandidate(ap("198.51.100.5:4000")) || !p.ourCandidate(ap("198.51.100.5:4001")) || p.ourCandidate(ap("198.51.100.5:4000")) {
		t.Fatal("ourCandidate: each new address once")
	}
	hold, punch, err := p.theirCandidate(ci("a"), ap("198.51.100.3:5000"), true)
	if !hold || !punch || err != nil {
		t.Fatalf("their first public candidate: hold %v, punch %v, %v", hold, punch, err)
	}
	if hold, punch, _ = p.theirCandidate(ci("b"), ap("198.51.100.3:5000"), true); !hold || punch {
		t.Fatalf("the same address again: hold %v, punch %v", hold, punch)
	}
	if hold, punch, _ = p.theirCandidate(ci("c"), netip.AddrPort{}, false); !hold || punch {
		t.Fatalf("an address we could not read: hold %v, punch %v", hold, punch)
	}
	// Not ours, ours once, ours twice: the hold stays.
	for _, to := range []string{"203.0.113.9:4000", "198.51.100.5:4000", "198.51.100.5:4000"} {
		if got := p.theyPunched(ap(to)); got != nil {
			t.Fatalf("released on %s: %v", to, got)
		}
	}
	got := p.theyPunched(ap("[::ffff:198.51.100.5]:4001")) // the last of ours, as a mapped address
	if want := []webrtc.ICECandidateInit{ci("a"), ci("b"), ci("c")}; !slices.Equal(got, want) {
		t.Fatalf("released %v, want %v", got, want)
	}
	if hold, punch, _ = p.theirCandidate(ci("d"), ap("198.51.100.3:5001"), true); hold || !punch {
		t.Fatalf("after the release: hold %v, punch %v", hold, punch)
	}
	if p.release() != nil || p.theyPunched(ap("198.51.100.5:4000")) != nil {
		t.Fatal("released twice")
	}

	// An end that never punches: punchWait releases what was held; the
	// peer's addresses are bounded, and so are its held candidates.
	var q punchPlan
	for i := range maxKept {
		_, punch, err := q.theirCandidate(ci("x"), netip.AddrPortFrom(netip.MustParseAddr("198.51.100.3"), uint16(5000+i)), true)
		if err != nil || punch != (i < maxPublic) {
			t.Fatalf("candidate %d: punch %v, %v", i, punch, err)
		}
	}
	if _, _, err := q.theirCandidate(ci("x"), ap("198.51.100.3:6000"), true); !errors.Is(err, ErrProtocol) {
		t.Fatalf("candidate %d held: %v", maxKept+1, err)
	}
	if len(q.release()) != maxKept {
		t.Fatal("release lost candidates")
	}
}

func TestCandidateAddr(t *testing.T) {
	for line, want := range map[string]string{
		"candidate:1 1 udp 1694498815 198.51.100.5 4000 typ srflx raddr 10.2.0.2 rport 4000": "198.51.100.5:4000",
		"candidate:1 1 UDP 1694498815 2001:db8::1 4000 typ srflx raddr :: rport 0":           "[2001:db8::1]:4000",
		"candidate:1 1 udp 1694498815 ::ffff:198.51.100.5 4000 typ srflx":                    "198.51.100.5:4000",
		"candidate:1 1 tcp 1694498815 198.51.100.5 4000 typ srflx tcptype passive":           "",
		"candidate:1 1 udp 1694498815 198.51.100.5 0 typ srflx":                              "",
		"candidate:1 1 udp 1694498815 198.51.100.5 65536 typ srflx":                          "",
		"candidate:1 1 udp 1694498815 host.local 4000 typ srflx":                             "",
		"candidate:1 1 udp": "",
	} {
		got, ok := candidateAddr(line)
		if ok != (want != "") || ok && got.String() != want {
			t.Errorf("candidateAddr(%q) = %v, %v; want %q", line, got, ok, want)
		}
	}
}

// A punch leaves with punchTTL and leaves the socket's own TTL alone:
// the socket's checks go on at full length.
func TestPunchTTL(t *testing.T) {
	if !canPunch {
		t.Skipf("no punching on %s", runtime.GOOS)
	}
	recv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	rp := ipv4.NewPacketConn(recv)
	if err := rp.SetControlMessage(ipv4.FlagTTL, true); err != nil {
		t.Fatal(err)
	}
	sys, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	pn := &iceNet{Net: sys}
	var socks []*net.UDPConn
	for range 2 {
		c, err := pn.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		socks = append(socks, c.(*batchConn).UDPConn)
	}
	to := recv.LocalAddr().(*net.UDPAddr).AddrPort()
	if pn.punch(netip.MustParseAddrPort("[2001:db8::1]:4000")) {
		t.Error("punched an IPv6 address from IPv4 sockets")
	}
	if !pn.punch(to) {
		t.Fatal("no punch went out")
	}
	if _, err := socks[0].WriteToUDPAddrPort([]byte("check"), to); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{socks[0].LocalAddr().String() + " punch": punchTTL, socks[1].LocalAddr().String() + " punch": punchTTL}
	buf := make([]byte, 100)
	_ = recv.SetReadDeadline(time.Now().Add(5 * time.Second))
	for range 3 {
		n, cm, from, err := rp.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		if n == len("check") {
			if cm.TTL != ipv4DefaultTTL(t) {
				t.Errorf("the check after a punch: TTL %d", cm.TTL)
			}
			continue
		}
		key := from.String() + " punch"
		if w, ok := want[key]; !ok || cm.TTL != w || !slices.Equal(buf[:n], punchPayload) {
			t.Errorf("%s: TTL %d, payload %x", key, cm.TTL, buf[:n])
		}
		delete(want, key)
	}
	if len(want) != 0 {
		t.Errorf("no punch from %v", want)
	}
}

// ipv4DefaultTTL is the TTL a socket sends with unless told otherwise.
func ipv4DefaultTTL(t *testing.T) int {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ttl, err := ipv4.NewConn(c).TTL()
	if err != nil {
		t.Fatal(err)
	}
	return ttl
}

// Over IPv6 the punch's hop limit is punchTTL likewise.
func TestPunchHopLimit(t *testing.T) {
	if !canPunch {
		t.Skipf("no punching on %s", runtime.GOOS)
	}
	recv, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer recv.Close()
	rp := ipv6.NewPacketConn(recv)
	if err := rp.SetControlMessage(ipv6.FlagHopLimit, true); err != nil {
		t.Fatal(err)
	}
	send, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	if err := sendTTL(send, punchPayload, recv.LocalAddr().(*net.UDPAddr).AddrPort(), punchTTL); err != nil {
		t.Fatal(err)
	}
	_ = recv.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, cm, _, err := rp.ReadFrom(make([]byte, 10)); err != nil || cm.HopLimit != punchTTL {
		t.Fatalf("hop limit %v, %v", cm, err)
	}
}
