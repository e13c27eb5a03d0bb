package relay

import (
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/turn/v5"
	"go.uber.org/goleak"
	"golang.org/x/time/rate"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// startRelay runs a relay with cfg on loopback, over UDP and TCP, and
// returns the address of each.
func startRelay(t *testing.T, cfg Config) (udp, tcp string) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Secret == nil {
		cfg.Secret = testSecret
	}
	s, err := New(cfg, []net.PacketConn{pc}, []net.Listener{ln})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return pc.LocalAddr().String(), ln.Addr().String()
}

// client connects a TURN client to the relay at addr, over TCP if tcp.
func client(t *testing.T, addr string, tcp bool, user, pass string) *turn.Client {
	t.Helper()
	var conn net.PacketConn
	if tcp {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn = turn.NewSTUNConn(c)
	} else {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		conn = c
	}
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: addr, TURNServerAddr: addr, Conn: conn,
		Username: user, Password: pass, Realm: DefaultRealm, RTO: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		_ = conn.Close()
	})
	return c
}

// TestAllocate: with its credentials a room member gets an allocation
// over UDP or TCP, relayed from the relay's address; the relay answers
// STUN binding requests with the client's address.
func TestAllocate(t *testing.T) {
	udp, tcp := startRelay(t, Config{Valid: func(id string) bool { return id == "room.peer" }})
	user, pass := Credentials(testSecret, "room.peer", time.Now().Add(time.Hour))
	for _, over := range []struct {
		name string
		tcp  bool
		addr string
	}{{"udp", false, udp}, {"tcp", true, tcp}} {
		t.Run(over.name, func(t *testing.T) {
			c := client(t, over.addr, over.tcp, user, pass)
			if !over.tcp {
				mapped, err := c.SendBindingRequest()
				if err != nil {
					t.Fatalf("binding: %v", err)
				}
				if got := mapped.(*net.UDPAddr).IP.String(); got != "127.0.0.1" {
					t.Fatalf("binding answered %v", mapped)
				}
			}
			relayed, err := c.Allocate()
			if err != nil {
				t.Fatalf("allocate: %v", err)
			}
			defer relayed.Close()
			if ip := relayed.LocalAddr().(*net.UDPAddr).IP.String(); ip != "127.0.0.1" {
				t.Fatalf("relayed from %v, want the relay's address", relayed.LocalAddr())
			}
		})
	}
}

// TestRefused: credentials that expired, that belong to a room that is
// gone, that another secret made, or that are not credentials at all get
// no allocation.
func TestRefused(t *testing.T) {
	udp, _ := startRelay(t, Config{Valid: func(id string) bool { return id != "closed.room" }})
	future := time.Now().Add(time.Hour)
	expiredU, expiredP := Credentials(testSecret, "room.peer", time.Now().Add(-time.Second))
	closedU, closedP := Credentials(testSecret, "closed.room", future)
	forgedU, forgedP := Credentials([]byte("another secret, 32 bytes long..."), "room.peer", future)
	goodU, _ := Credentials(testSecret, "room.peer", future)
	for _, c := range []struct{ name, user, pass string }{
		{"expired", expiredU, expiredP},
		{"room closed", closedU, closedP},
		{"another secret", forgedU, forgedP},
		{"wrong password", goodU, "password"},
		{"not credentials", "alice", "password"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if relayed, err := client(t, udp, false, c.user, c.pass).Allocate(); err == nil {
				relayed.Close()
				t.Fatal("allocated")
			}
		})
	}
}

// TestQuota: a credential holds at most MaxAllocations at once, and gets
// another once one ends.
func TestQuota(t *testing.T) {
	udp, _ := startRelay(t, Config{MaxAllocations: 1})
	user, pass := Credentials(testSecret, "room.peer", time.Now().Add(time.Hour))
	first := client(t, udp, false, user, pass)
	relayed, err := first.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	if r, err := client(t, udp, false, user, pass).Allocate(); err == nil {
		r.Close()
		t.Fatal("a second allocation beyond the quota")
	}
	other, otherPass := Credentials(testSecret, "room.other", time.Now().Add(time.Hour))
	if r, err := client(t, udp, false, other, otherPass).Allocate(); err != nil {
		t.Fatalf("another credential's allocation: %v", err)
	} else {
		r.Close()
	}
	relayed.Close() // deletes the allocation (a refresh of lifetime 0)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := client(t, udp, false, user, pass).Allocate()
		if err == nil {
			r.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no allocation after the first ended: %v", err)
		}
	}
}

// TestPermissions: a client may have the relay send to public and
// private addresses, but not to loopback, nor to the relay's own address,
// nor into Config.Deny.
func TestPermissions(t *testing.T) {
	udp, _ := startRelay(t, Config{Deny: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}})
	user, pass := Credentials(testSecret, "room.peer", time.Now().Add(time.Hour))
	c := client(t, udp, false, user, pass)
	relayed, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relayed.Close()
	for _, c2 := range []struct {
		peer string
		ok   bool
	}{
		{"192.0.2.1:9", true},
		{"10.1.2.3:9", true},
		{"127.0.0.1:9", false},
		{udp, false}, // the relay itself
		{"198.51.100.7:9", false},
	} {
		addr, _ := net.ResolveUDPAddr("udp4", c2.peer)
		if err := c.CreatePermission(addr); (err == nil) != c2.ok {
			t.Errorf("permission to %s: %v, want allowed %v", c2.peer, err, c2.ok)
		}
	}
}

func TestAllowed(t *testing.T) {
	s := &Server{relayIP: map[bool]netip.Addr{false: netip.MustParseAddr("203.0.113.9")},
		cfg: Config{Deny: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}}}
	for ip, want := range map[string]bool{
		"192.0.2.1": true, "10.1.2.3": true, "2001:db8::1": true, "100.64.0.1": true,
		"127.0.0.1": false, "127.9.9.9": false, "::1": false, "::ffff:127.0.0.1": false,
		"169.254.169.254": false, "fe80::1": false, "224.0.0.1": false, "ff02::1": false,
		"0.0.0.0": false, "::": false, "255.255.255.255": false,
		"203.0.113.9": false, // the relay address
		"10.9.1.1":    false, // denied
	} {
		if got := s.Allowed(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Allowed(%s) = %v, want %v", ip, got, want)
		}
	}
}

func TestParseUser(t *testing.T) {
	exp := time.Unix(1900000000, 0)
	user, pass := Credentials(testSecret, "abc.def", exp)
	if user != "1900000000:abc.def" || pass != password(testSecret, user) {
		t.Fatalf("credentials %q %q", user, pass)
	}
	if id, e, err := parseUser(user); err != nil || id != "abc.def" || !e.Equal(exp) {
		t.Fatalf("parseUser = %q %v %v", id, e, err)
	}
	for _, bad := range []string{"", "abc", ":abc", "123:", "-5:abc", "x:abc", "1900000000:" + string(make([]byte, maxUser))} {
		if _, _, err := parseUser(bad); !errors.Is(err, errBadUser) {
			t.Errorf("parseUser(%q) = %v", bad, err)
		}
	}
}

// countingConn is a relayed socket that takes every datagram at once.
type countingConn struct {
	net.PacketConn
	bytes atomic.Int64
}

func (c *countingConn) WriteTo(p []byte, _ net.Addr) (int, error) {
	c.bytes.Add(int64(len(p)))
	return len(p), nil
}

func (c *countingConn) Close() error { return nil }

// TestRate: a credential's relayed traffic keeps to its rate after a
// burst of a tenth of a second's worth. On synctest's clock the waits are
// exact.
func TestRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &Server{cfg: Config{Rate: 1 << 20, MaxAllocations: 1}, users: map[string]*user{}}
		lim, ok := s.take("room.peer")
		if !ok || lim == nil {
			t.Fatal("no limiter")
		}
		conn := &countingConn{}
		rc := &relayedConn{PacketConn: conn, lim: lim, release: func() { s.drop("room.peer") }}
		rc.ctx, rc.cancel = t.Context(), func() {}
		start := time.Now()
		for range 64 {
			if _, err := rc.WriteTo(make([]byte, 32<<10), nil); err != nil {
				t.Fatal(err)
			}
		}
		// 2 MiB at 1 MiB/s, less the 64 KiB burst.
		want := time.Duration(float64(2<<20-lim.Burst()) / (1 << 20) * float64(time.Second))
		if got := time.Since(start); got < want-time.Millisecond || got > want+time.Millisecond {
			t.Fatalf("2 MiB took %v, want %v", got, want)
		}
		if rate.Limit(1<<20) != lim.Limit() {
			t.Fatalf("limit %v", lim.Limit())
		}
		_ = rc.Close()
		if s.allocations("room.peer") != 0 {
			t.Fatal("allocation still counted after Close")
		}
	})
}
