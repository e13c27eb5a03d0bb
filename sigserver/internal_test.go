package sigserver

import (
	"io"
	"log/slog"
	"net/http"
	"testing"
)

func TestClientIP(t *testing.T) {
	for _, tc := range []struct {
		remote, xff string
		trust       bool
		ip, key     string
	}{
		{"127.0.0.1:5000", "", false, "127.0.0.1", "127.0.0.1"},
		{"127.0.0.1:5000", "192.0.2.7", false, "127.0.0.1", "127.0.0.1"},
		{"127.0.0.1:5000", "198.51.100.1, 192.0.2.7", true, "192.0.2.7", "192.0.2.7"},
		{"127.0.0.1:5000", "garbage", true, "127.0.0.1", "127.0.0.1"},
		{"[::ffff:192.0.2.1]:80", "", false, "192.0.2.1", "192.0.2.1"},
		{"[2001:db8:1:2:3:4:5:6]:443", "", false, "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:443", "", false, "fe80::1%eth0", "fe80::/64"},
		{"not an address", "", false, "unknown", "unknown"},
	} {
		r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		a := clientIP(r, tc.trust)
		if addrString(a) != tc.ip || ipKey(a) != tc.key {
			t.Errorf("%s xff=%q trust=%v: ip %s key %s, want %s %s", tc.remote, tc.xff, tc.trust, addrString(a), ipKey(a), tc.ip, tc.key)
		}
	}
}

// A peer whose queue fills is dropped, not waited for.
func TestSlowPeerDropped(t *testing.T) {
	c := &conn{
		out:  make(chan outFrame, 2),
		quit: make(chan struct{}),
		log:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for i := range 2 {
		if !c.enqueue(outFrame{data: []byte("x")}) {
			t.Fatalf("frame %d refused", i)
		}
	}
	if c.enqueue(outFrame{data: []byte("x")}) {
		t.Fatal("frame over the queue accepted")
	}
	select {
	case <-c.quit:
	default:
		t.Fatal("slow peer not dropped")
	}
	if c.enqueue(outFrame{data: []byte("x")}) {
		t.Fatal("dropped peer still takes frames")
	}
}

func TestRequestHost(t *testing.T) {
	for in, want := range map[string]string{
		"signal.example.org:8080": "signal.example.org",
		"Signal.Example.org":      "signal.example.org",
		"198.51.100.1:8080":       "198.51.100.1",
		"[2001:db8::1]:8080":      "2001:db8::1",
		"[::ffff:10.0.0.1]:80":    "10.0.0.1",
		"":                        "",
		"evil.org/x?y":            "",
		"a b":                     "",
	} {
		if got := requestHost(&http.Request{Host: in}); got != want {
			t.Errorf("requestHost(%q) = %q, want %q", in, got, want)
		}
	}
}
