package lane

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// TestResolveICE: names become addresses, one URL per family; literals and
// TLS URLs stay; a name that fails or hangs is left out within the
// deadline, and said.
func TestResolveICE(t *testing.T) {
	lookup := func(ctx context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "relay.example.org":
			return []netip.Addr{netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("2001:db8::1")}, nil
		case "gone.example.org":
			return nil, errors.New("no such host")
		}
		<-ctx.Done() // black-holed
		return nil, ctx.Err()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	got, errs := resolveICE(ctx, []webrtc.ICEServer{
		{URLs: []string{"stun:relay.example.org:3478", "stun:gone.example.org", "stun:blackhole.example.org"}},
		{URLs: []string{"turn:relay.example.org:3478?transport=tcp", "turns:relay.example.org:5349"}, Username: "u", Credential: "c"},
		{URLs: []string{"stun:192.0.2.7:3478", "stun:[2001:db8::7]:3478"}},
		{URLs: []string{"stun:blackhole.example.org"}},
		{URLs: []string{"stun:bad:port"}}, // left for pion to refuse
	}, lookup)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v", d)
	}
	want := [][]string{
		{"stun:198.51.100.1:3478", "stun:[2001:db8::1]:3478"},
		{"turn:198.51.100.1:3478?transport=tcp", "turn:[2001:db8::1]:3478?transport=tcp", "turns:relay.example.org:5349"},
		{"stun:192.0.2.7:3478", "stun:[2001:db8::7]:3478"},
		{"stun:bad:port"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if !slices.Equal(got[i].URLs, want[i]) {
			t.Errorf("server %d: %v, want %v", i, got[i].URLs, want[i])
		}
	}
	if got[1].Username != "u" || got[1].Credential != "c" {
		t.Errorf("credentials lost: %+v", got[1])
	}
	if len(errs) != 3 {
		t.Errorf("errors %v, want one for each URL left out", errs)
	}
}
