package peer

import "testing"

// A new source's window starts at minSourceWindow and grows by every byte
// that arrives, so it doubles each round trip until the first rate
// estimate; then it is about a second of that source's rate, within
// [minSourceWindow, maxSourceWindow].
func TestSourceWindow(t *testing.T) {
	s := &dsource{}
	if w := s.window(); w != minSourceWindow {
		t.Fatalf("new source: window %d, want %d", w, minSourceWindow)
	}
	// One round trip delivers the whole window: it doubles.
	s.got += minSourceWindow
	if w := s.window(); w != 2*minSourceWindow {
		t.Fatalf("after one window: %d, want %d", w, 2*minSourceWindow)
	}
	s.got += 2 * minSourceWindow
	if w := s.window(); w != 4*minSourceWindow {
		t.Fatalf("after two round trips: %d, want %d", w, 4*minSourceWindow)
	}
	s.got = 1 << 40
	if w := s.window(); w != maxSourceWindow {
		t.Fatalf("fast source: %d, want the cap %d", w, maxSourceWindow)
	}

	// After the first estimate: a slow source is booked about a second
	// ahead, never less than the minimum.
	s.got, s.rate = 0, 3<<20
	if w := s.window(); w != 3<<20 {
		t.Fatalf("3 MiB/s source: %d, want %d", w, 3<<20)
	}
	s.rate = 10 << 10
	if w := s.window(); w != minSourceWindow {
		t.Fatalf("10 KiB/s source: %d, want %d", w, minSourceWindow)
	}
}
