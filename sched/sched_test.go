package sched

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

// none marks a step where Next must return ok=false.
var none = []int{-1}

func rep(set []int, k int) [][]int {
	r := make([][]int, k)
	for i := range r {
		r[i] = set
	}
	return r
}

func steps(parts ...[][]int) [][]int { return slices.Concat(parts...) }

type peerSpec struct {
	id     string
	pieces []int // nil: a seed (has everything)
}

// TestNextOrder checks which pieces Next hands out, and in what order:
// each step lists the acceptable answers (none: ok=false).
func TestNextOrder(t *testing.T) {
	fec1 := Layout{NumPieces: 4, Size: func(int) int { return 1 },
		Stripes: []Stripe{{Pieces: []int{0, 1, 2, 3}, Need: 2, DataPieces: []int{0, 1}}}}
	twoStripes := Layout{NumPieces: 4, Size: func(int) int { return 1 },
		Stripes: []Stripe{{Pieces: []int{0, 1}, Need: 2}, {Pieces: []int{2, 3}, Need: 2}}}
	tests := []struct {
		name   string
		layout Layout
		have   []int
		peers  []peerSpec
		from   string
		steps  [][]int
	}{
		{
			name:   "rarest first",
			layout: plain(10, 1),
			peers:  []peerSpec{{"A", nil}, {"B", span(0, 5)}, {"C", span(0, 3)}},
			from:   "A",
			steps:  steps(rep(span(5, 10), 5), rep([]int{3, 4}, 2), rep(span(0, 3), 3), rep(none, 1)),
		},
		{
			name:   "only pieces the peer has",
			layout: plain(10, 1),
			peers:  []peerSpec{{"A", nil}, {"B", []int{2, 7}}},
			from:   "B",
			steps:  steps(rep([]int{2, 7}, 2), rep(none, 1)),
		},
		{
			name:   "pieces already had are never requested",
			layout: plain(4, 1),
			have:   []int{1, 3},
			peers:  []peerSpec{{"A", nil}},
			from:   "A",
			steps:  steps(rep([]int{0, 2}, 2), rep(none, 1)),
		},
		{
			name:   "nothing useful",
			layout: plain(4, 1),
			have:   []int{1},
			peers:  []peerSpec{{"A", []int{1}}, {"B", nil}},
			from:   "A",
			steps:  rep(none, 1),
		},
		{
			name:   "data before rarer parity, stripe capped at Need",
			layout: fec1,
			peers:  []peerSpec{{"A", nil}, {"B", []int{0, 1}}},
			from:   "A",
			steps:  steps(rep([]int{0, 1}, 2), rep(none, 1)),
		},
		{
			name:   "parity when the peer has no data piece wanted",
			layout: fec1,
			peers:  []peerSpec{{"A", []int{0, 2, 3}}},
			from:   "A",
			steps:  steps(rep([]int{0}, 1), rep([]int{2, 3}, 1), rep(none, 1)),
		},
		{
			name:   "stripe complete from have needs nothing",
			layout: fec1,
			have:   []int{1, 3},
			peers:  []peerSpec{{"A", nil}},
			from:   "A",
			steps:  rep(none, 1),
		},
		{
			name:   "started stripe first",
			layout: twoStripes,
			have:   []int{2},
			peers:  []peerSpec{{"A", nil}},
			from:   "A",
			steps:  steps(rep([]int{3}, 1), rep([]int{0, 1}, 2), rep(none, 1)),
		},
		{
			name:   "rarity before started",
			layout: twoStripes,
			have:   []int{2},
			peers:  []peerSpec{{"A", nil}, {"B", []int{3}}},
			from:   "A",
			steps:  steps(rep([]int{0, 1}, 2), rep([]int{3}, 1), rep(none, 1)),
		},
		{
			name:   "empty layout",
			layout: plain(0, 1),
			peers:  []peerSpec{{"A", nil}},
			from:   "A",
			steps:  rep(none, 1),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustNew(t, tt.layout, haveSet(tt.have...), Options{NoEndgame: true})
			for _, p := range tt.peers {
				var bm []byte
				if p.pieces != nil {
					bm = bitmap(tt.layout.NumPieces, p.pieces...)
				}
				mustAdd(t, s, p.id, bm)
			}
			s.check(t)
			for i, want := range tt.steps {
				got, ok := s.Next(tt.from)
				if !ok {
					got = -1
				}
				if !slices.Contains(want, got) {
					t.Fatalf("step %d: Next = %d, want one of %v", i, got, want)
				}
				s.check(t)
			}
		})
	}
}

// TestStripesInOrder: with one seed, FEC stripes are fetched one at a time,
// data only, and never beyond Need.
func TestStripesInOrder(t *testing.T) {
	const nData, k, m = 40, 4, 2
	l := fecLayout(nData, k, m, 1)
	for _, endgame := range []bool{false, true} {
		s := mustNew(t, l, nil, Options{NoEndgame: !endgame})
		mustAdd(t, s, "A", nil)
		var got []int
		for {
			p, ok := s.Next("A")
			if !ok {
				break
			}
			got = append(got, p)
		}
		if len(got) != nData {
			t.Fatalf("endgame %v: got %d pieces, want %d: %v", endgame, len(got), nData, got)
		}
		for i, p := range got {
			if p >= nData {
				t.Fatalf("parity piece %d requested from a seed", p)
			}
			if p/k != got[i/k*k]/k {
				t.Fatalf("stripes interleaved: %v", got)
			}
		}
		s.check(t)
	}
}

// TestTieBreak: ties are broken by the injected source, reproducibly.
func TestTieBreak(t *testing.T) {
	order := func(seed uint64) []int {
		s := mustNew(t, plain(50, 1), nil, Options{Rand: seeded(seed)})
		mustAdd(t, s, "A", nil)
		var r []int
		for {
			p, ok := s.Next("A")
			if !ok {
				return r
			}
			r = append(r, p)
		}
	}
	a, b := order(7), order(7)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different plans:\n%v\n%v", a, b)
	}
	if slices.IsSorted(a) {
		t.Fatalf("ties not broken at random: %v", a)
	}
	distinct := 0
	for seed := range uint64(5) {
		if !slices.Equal(order(seed+100), a) {
			distinct++
		}
	}
	if distinct == 0 {
		t.Fatal("every seed gives the same plan")
	}
}

func TestWindow(t *testing.T) {
	tests := []struct {
		name         string
		size, window int
		want         int // requests before Next says no
	}{
		{"default 16 MiB", 4 << 20, 0, 4},
		{"partial fit", 5, 12, 2},
		{"exact fit", 4, 12, 3},
		{"piece larger than window goes alone", 100, 10, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustNew(t, plain(20, tt.size), nil, Options{Window: tt.window})
			mustAdd(t, s, "A", nil)
			mustAdd(t, s, "B", nil)
			var got []int
			for {
				p, ok := s.Next("A")
				if !ok {
					break
				}
				got = append(got, p)
			}
			if len(got) != tt.want {
				t.Fatalf("%d requests, want %d", len(got), tt.want)
			}
			if st := s.Stats(); st.Peers[0].Bytes != int64(tt.want*tt.size) {
				t.Fatalf("stats bytes %d", st.Peers[0].Bytes)
			}
			if _, ok := s.Next("B"); !ok {
				t.Fatal("A's full window blocked B")
			}
			s.Received("A", got[0])
			p, ok := s.Next("A")
			if !ok {
				t.Fatal("Received did not free the window")
			}
			if _, ok := s.Next("A"); ok {
				t.Fatal("window not full again")
			}
			s.Cancelled("A", p)
			if _, ok := s.Next("A"); !ok {
				t.Fatal("Cancelled did not free the window")
			}
			s.check(t)
		})
	}
}

func TestEndgame(t *testing.T) {
	t.Run("duplicates and cancels", func(t *testing.T) {
		for _, copies := range []int{0, 2, 3} {
			s := mustNew(t, plain(1, 1), nil, Options{EndgameCopies: copies})
			for _, id := range []string{"A", "B", "C"} {
				mustAdd(t, s, id, nil)
			}
			if p, ok := s.Next("A"); !ok || p != 0 {
				t.Fatalf("Next(A) = %d, %v", p, ok)
			}
			if !s.Endgame() {
				t.Fatal("not in endgame with everything requested")
			}
			if _, ok := s.Next("A"); ok {
				t.Fatal("duplicate on the same peer")
			}
			if p, ok := s.Next("B"); !ok || p != 0 {
				t.Fatalf("Next(B) = %d, %v, want the duplicate", p, ok)
			}
			_, ok := s.Next("C")
			if wantC := copies == 3; ok != wantC {
				t.Fatalf("copies %d: third copy %v", copies, ok)
			}
			s.check(t)
			done, cancel := s.Received("B", 0)
			want := []Request{{"A", 0}}
			if ok {
				want = append(want, Request{"C", 0})
			}
			if !done || !slices.Equal(cancel, want) {
				t.Fatalf("Received = %v, %v, want true, %v", done, cancel, want)
			}
			if !s.Complete() || s.Endgame() {
				t.Fatal("not complete")
			}
			if done, cancel := s.Received("A", 0); done || cancel != nil {
				t.Fatalf("late duplicate: %v, %v", done, cancel)
			}
			if st := s.Stats(); st.Redundant != 1 || st.Requests != 0 {
				t.Fatalf("stats %+v", st)
			}
			s.check(t)
		}
	})
	t.Run("off", func(t *testing.T) {
		s := mustNew(t, plain(1, 1), nil, Options{NoEndgame: true})
		mustAdd(t, s, "A", nil)
		mustAdd(t, s, "B", nil)
		s.Next("A")
		if _, ok := s.Next("B"); ok || s.Endgame() {
			t.Fatal("duplicate with endgame off")
		}
	})
	t.Run("not while another peer has work", func(t *testing.T) {
		s := mustNew(t, plain(2, 1), nil, Options{})
		mustAdd(t, s, "A", bitmap(2, 0))
		mustAdd(t, s, "B", bitmap(2, 1))
		if p, ok := s.Next("A"); !ok || p != 0 {
			t.Fatalf("Next(A) = %d, %v", p, ok)
		}
		if s.Endgame() {
			t.Fatal("endgame while piece 1 is unrequested")
		}
		if p, ok := s.Next("B"); !ok || p != 1 {
			t.Fatalf("Next(B) = %d, %v", p, ok)
		}
		mustAdd(t, s, "C", nil)
		if p, ok := s.Next("C"); !ok || p != 0 {
			t.Fatalf("Next(C) = %d, %v, want the oldest request", p, ok)
		}
		if p, ok := s.Next("C"); !ok || p != 1 {
			t.Fatalf("Next(C) = %d, %v", p, ok)
		}
		s.check(t)
	})
	t.Run("another piece of a stripe", func(t *testing.T) {
		l := fecLayout(2, 2, 1, 1) // data 0, 1; parity 2
		s := mustNew(t, l, nil, Options{})
		mustAdd(t, s, "A", bitmap(3, 0, 1))
		mustAdd(t, s, "B", bitmap(3, 2))
		a1, _ := s.Next("A")
		a2, _ := s.Next("A")
		if a1+a2 != 1 {
			t.Fatalf("A got %d, %d", a1, a2)
		}
		if p, ok := s.Next("B"); !ok || p != 2 {
			t.Fatalf("Next(B) = %d, %v, want parity in endgame", p, ok)
		}
		if _, ok := s.Next("B"); ok {
			t.Fatal("B given more")
		}
		if done, cancel := s.Received("A", 0); done || cancel != nil {
			t.Fatalf("Received(A, 0) = %v, %v", done, cancel)
		}
		done, cancel := s.Received("B", 2)
		if !done || !slices.Equal(cancel, []Request{{"A", 1}}) {
			t.Fatalf("Received(B, 2) = %v, %v", done, cancel)
		}
		if !s.Complete() {
			t.Fatal("not complete")
		}
		s.check(t)
	})
}

// TestWorkStealing: the pieces of a peer that goes away, is banned or
// whose requests fail are at once available to others.
func TestWorkStealing(t *testing.T) {
	tests := []struct {
		name string
		op   func(s *Scheduler) []int
		want []int // returned by op
		back []int // given to B afterwards
	}{
		{"remove", func(s *Scheduler) []int { return s.RemovePeer("A") }, []int{0, 1, 2}, []int{0, 1, 2}},
		{"ban", func(s *Scheduler) []int { return s.Ban("A") }, []int{0, 1, 2}, []int{0, 1, 2}},
		{"cancel", func(s *Scheduler) []int { s.Cancelled("A", 1); return nil }, nil, []int{1}},
		{"cancel unknown", func(s *Scheduler) []int { s.Cancelled("A", 3); s.Cancelled("Z", 1); s.Cancelled("B", 0); return nil }, nil, nil},
		{"remove unknown", func(s *Scheduler) []int { return s.RemovePeer("Z") }, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustNew(t, plain(3, 1), nil, Options{NoEndgame: true})
			mustAdd(t, s, "A", nil)
			for range 3 {
				s.Next("A")
			}
			mustAdd(t, s, "B", nil)
			if got := tt.op(s); !slices.Equal(got, tt.want) {
				t.Fatalf("op returned %v, want %v", got, tt.want)
			}
			s.check(t)
			var got []int
			for {
				p, ok := s.Next("B")
				if !ok {
					break
				}
				got = append(got, p)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.back) {
				t.Fatalf("B got %v, want %v", got, tt.back)
			}
			s.check(t)
		})
	}
}

func TestBan(t *testing.T) {
	s := mustNew(t, plain(4, 1), nil, Options{})
	mustAdd(t, s, "A", nil)
	mustAdd(t, s, "B", bitmap(4, 0))
	s.Next("A")
	s.Ban("A")
	if !s.Banned("A") || s.Banned("B") {
		t.Fatal("Banned wrong")
	}
	if err := s.AddPeer("A", nil); !errors.Is(err, ErrBanned) {
		t.Fatalf("re-add: %v", err)
	}
	if err := s.AddSeed("A"); !errors.Is(err, ErrBanned) {
		t.Fatalf("re-add seed: %v", err)
	}
	if _, ok := s.Next("A"); ok {
		t.Fatal("banned peer given work")
	}
	s.PeerHas("A", 1)
	if s.avail[1] != 0 {
		t.Fatal("banned peer's have counted")
	}
	if done, _ := s.Received("A", 0); !done {
		t.Fatal("a verified piece from a banned peer is still verified data")
	}
	s.Ban("never-seen")
	if err := s.AddPeer("never-seen", nil); !errors.Is(err, ErrBanned) {
		t.Fatalf("pre-banned: %v", err)
	}
	if st := s.Stats(); st.Banned != 2 || len(st.Peers) != 1 {
		t.Fatalf("stats %+v", st)
	}
	s.check(t)
}

func TestPeerHas(t *testing.T) {
	s := mustNew(t, plain(5, 1), haveSet(4), Options{})
	mustAdd(t, s, "A", nil)
	mustAdd(t, s, "B", bitmap(5))
	if _, ok := s.Next("B"); ok {
		t.Fatal("B has nothing")
	}
	s.PeerHas("B", 3)
	s.PeerHas("B", 3)
	s.PeerHas("B", 4) // already ours
	s.PeerHas("B", -1)
	s.PeerHas("B", 5)
	s.PeerHas("Z", 1)
	if p, ok := s.Next("B"); !ok || p != 3 {
		t.Fatalf("Next(B) = %d, %v", p, ok)
	}
	if st := s.Stats(); st.Peers[1].Has != 2 {
		t.Fatalf("stats %+v", st.Peers)
	}
	s.check(t)
}

func TestReceivedUnsolicited(t *testing.T) {
	l := fecLayout(4, 2, 1, 1) // stripes {0,1,4}, {2,3,5}
	s := mustNew(t, l, nil, Options{})
	mustAdd(t, s, "A", nil)
	if done, _ := s.Received("", 0); done {
		t.Fatal("stripe done after one piece")
	}
	if done, _ := s.Received("nobody", 4); !done {
		t.Fatal("stripe not done after two pieces")
	}
	for {
		p, ok := s.Next("A")
		if !ok {
			break
		}
		if p < 2 || p > 3 {
			t.Fatalf("requested %d of a complete stripe", p)
		}
	}
	if done, cancel := s.Received("A", -1); done || cancel != nil {
		t.Fatal("out of range accepted")
	}
	if done, cancel := s.Received("A", 6); done || cancel != nil {
		t.Fatal("out of range accepted")
	}
	s.Received("", 1) // piece of a complete stripe: redundant
	if st := s.Stats(); st.Redundant != 1 || st.Verified != 3 || st.StripesComplete != 1 {
		t.Fatalf("stats %+v", st)
	}
	s.check(t)
}

func TestBadLayout(t *testing.T) {
	size := func(int) int { return 1 }
	tests := []struct {
		name string
		l    Layout
	}{
		{"negative count", Layout{NumPieces: -1, Size: size}},
		{"no size", Layout{NumPieces: 1}},
		{"zero size", Layout{NumPieces: 2, Size: func(p int) int { return p }}},
		{"more stripes than pieces", Layout{NumPieces: 1, Size: size, Stripes: []Stripe{{Pieces: []int{0}, Need: 1}, {Pieces: []int{0}, Need: 1}}}},
		{"stripe without pieces", Layout{NumPieces: 1, Size: size, Stripes: []Stripe{{Need: 1}, {Pieces: []int{0}, Need: 1}}}},
		{"need zero", Layout{NumPieces: 1, Size: size, Stripes: []Stripe{{Pieces: []int{0}}}}},
		{"need too big", Layout{NumPieces: 1, Size: size, Stripes: []Stripe{{Pieces: []int{0}, Need: 2}}}},
		{"piece out of range", Layout{NumPieces: 1, Size: size, Stripes: []Stripe{{Pieces: []int{0, 1}, Need: 1}}}},
		{"negative piece", Layout{NumPieces: 1, Size: size, Stripes: []Stripe{{Pieces: []int{-1, 0}, Need: 1}}}},
		{"piece in two stripes", Layout{NumPieces: 2, Size: size, Stripes: []Stripe{{Pieces: []int{0, 1}, Need: 1}, {Pieces: []int{1}, Need: 1}}}},
		{"piece twice in a stripe", Layout{NumPieces: 2, Size: size, Stripes: []Stripe{{Pieces: []int{0, 0, 1}, Need: 1}}}},
		{"piece in no stripe", Layout{NumPieces: 3, Size: size, Stripes: []Stripe{{Pieces: []int{0, 1}, Need: 1}}}},
		{"data piece outside stripe", Layout{NumPieces: 2, Size: size, Stripes: []Stripe{{Pieces: []int{0}, Need: 1, DataPieces: []int{1}}, {Pieces: []int{1}, Need: 1}}}},
		{"data piece out of range", Layout{NumPieces: 1, Size: size, Stripes: []Stripe{{Pieces: []int{0}, Need: 1, DataPieces: []int{7}}}}},
		{"data piece twice", Layout{NumPieces: 2, Size: size, Stripes: []Stripe{{Pieces: []int{0, 1}, Need: 1, DataPieces: []int{0, 0}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.l, nil, Options{}); !errors.Is(err, ErrBadLayout) {
				t.Fatalf("err = %v, want ErrBadLayout", err)
			}
		})
	}
}

func TestBadOptions(t *testing.T) {
	for _, o := range []Options{{Window: -1}, {EndgameCopies: 1}, {EndgameCopies: -1}, {EndgameCopies: maxEndgameCopies + 1}} {
		if _, err := New(plain(1, 1), nil, o); !errors.Is(err, ErrBadOptions) {
			t.Errorf("%+v: err = %v, want ErrBadOptions", o, err)
		}
	}
	if _, err := New(plain(1, 1), nil, Options{}); err != nil {
		t.Fatalf("zero Options: %v", err)
	}
}

func TestBadPeers(t *testing.T) {
	s := mustNew(t, plain(10, 1), nil, Options{})
	for _, bm := range [][]byte{{0}, {0, 0, 0}, {0, 0x04}} {
		if err := s.AddPeer("A", bm); !errors.Is(err, ErrBadBitmap) {
			t.Errorf("bitmap %x: err = %v, want ErrBadBitmap", bm, err)
		}
	}
	mustAdd(t, s, "A", bitmap(10, 9))
	if err := s.AddPeer("A", nil); !errors.Is(err, ErrPeerExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if err := s.AddSeed("A"); !errors.Is(err, ErrPeerExists) {
		t.Fatalf("duplicate seed: %v", err)
	}
	if _, ok := s.Next("Z"); ok {
		t.Fatal("unknown peer given work")
	}
	s.check(t)
	// Bitmaps round to whole bytes and words.
	for _, n := range []int{1, 7, 8, 9, 63, 64, 65, 130} {
		s := mustNew(t, plain(n, 1), nil, Options{})
		mustAdd(t, s, "S", nil)
		mustAdd(t, s, "P", bitmap(n, span(0, n)...))
		for _, pr := range s.order {
			if pr.nhas != n {
				t.Fatalf("n=%d: %s has %d", n, pr.id, pr.nhas)
			}
		}
		s.check(t)
	}
}

func TestStats(t *testing.T) {
	s := mustNew(t, fecLayout(6, 3, 1, 10), haveSet(0), Options{})
	mustAdd(t, s, "B", bitmap(8, 1, 2))
	mustAdd(t, s, "A", nil)
	s.Next("B")
	st := s.Stats()
	want := Stats{Pieces: 8, Stripes: 2, Verified: 1, Outstanding: 1, Requests: 1, Pool: 6,
		Peers: []PeerStats{{ID: "A", Has: 8}, {ID: "B", Has: 2, Outstanding: 1, Bytes: 10}}}
	if fmt.Sprint(st) != fmt.Sprint(want) {
		t.Fatalf("Stats\n got %+v\nwant %+v", st, want)
	}
}

// A peer that lost pieces (a file changed at that source) is given none
// of them again, and its outstanding request for one goes to another.
func TestPeerLost(t *testing.T) {
	s := mustNew(t, plain(4, 1), haveSet(), Options{})
	mustAdd(t, s, "A", bitmap(4, 0, 1, 2, 3))
	p, ok := s.Next("A")
	if !ok {
		t.Fatal("A has everything")
	}
	if !s.PeerLost("A", p) {
		t.Fatalf("PeerLost(A, %d) did not report its request", p)
	}
	if s.PeerLost("A", p) || s.PeerLost("Z", 1) || s.PeerLost("A", 9) {
		t.Fatal("PeerLost of what was not there reported a request")
	}
	s.check(t)
	var got []int
	for {
		q, ok := s.Next("A")
		if !ok {
			break
		}
		got = append(got, q)
	}
	if len(got) != 3 || slices.Contains(got, p) {
		t.Fatalf("A was given %v after losing %d", got, p)
	}
	mustAdd(t, s, "B", bitmap(4, p))
	if q, ok := s.Next("B"); !ok || q != p {
		t.Fatalf("Next(B) = %d, %v; want the piece A lost, %d", q, ok, p)
	}
	s.check(t)
}
