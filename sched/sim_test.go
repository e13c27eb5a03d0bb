package sched

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// flight is a request the simulated network has not delivered yet.
type flight struct {
	peer      string
	piece     int
	cancelled bool // the scheduler told us to cancel it; it may still arrive
}

// sim is an independent model of the transfer, checked against what the
// Scheduler does.
type sim struct {
	t       *testing.T
	s       *Scheduler
	rng     *rand.Rand
	l       Layout
	stripe  []int // stripe of each piece
	need    []int
	done    []int // verified pieces per stripe while incomplete
	ver     []bool
	had     []bool // verified before New
	has     map[string][]bool
	live    []string // connected peers
	flights []flight
	window  int
	endgame bool
	dups    int // endgame requests made
}

func TestSimulation(t *testing.T) {
	seeds := 24
	if testing.Short() {
		seeds = 4
	}
	for seed := range uint64(seeds) {
		for _, fec := range []bool{false, true} {
			t.Run(fmt.Sprintf("seed%d/fec=%v", seed, fec), func(t *testing.T) {
				simulate(t, seed, fec)
			})
		}
	}
}

func simulate(t *testing.T, seed uint64, fec bool) {
	rng := seeded(seed)
	const chunk = 1000
	nData := 200 + rng.IntN(800)
	var l Layout
	if fec {
		l = fecLayout(nData, 2+rng.IntN(9), 1+rng.IntN(4), chunk)
	} else {
		l = plain(nData, chunk)
	}
	last := 1 + rng.IntN(chunk)
	l.Size = func(p int) int {
		if p == nData-1 {
			return last // a file's short last chunk
		}
		return chunk
	}
	m := &sim{t: t, rng: rng, l: l, has: map[string][]bool{}}
	n := l.NumPieces
	m.stripe = make([]int, n)
	if l.Stripes == nil {
		for p := range n {
			m.stripe[p] = p
			m.need = append(m.need, 1)
		}
	} else {
		for i, st := range l.Stripes {
			for _, p := range st.Pieces {
				m.stripe[p] = i
			}
			m.need = append(m.need, st.Need)
		}
	}
	m.done = make([]int, len(m.need))
	m.ver = make([]bool, n)
	m.had = make([]bool, n)
	for p := range n {
		if rng.IntN(20) == 0 {
			m.had[p] = true
			m.ver[p] = true
			m.done[m.stripe[p]]++
		}
	}
	m.window = chunk * (1 + rng.IntN(6))
	if rng.IntN(3) == 0 {
		m.window = chunk / 2 // smaller than a piece: one at a time
	}
	m.endgame = rng.IntN(4) != 0
	s, err := New(l, func(p int) bool { return m.had[p] }, Options{
		Window: m.window, NoEndgame: !m.endgame, EndgameCopies: 2 + rng.IntN(2), Rand: seeded(seed + 1000),
	})
	if err != nil {
		t.Fatal(err)
	}
	m.s = s

	// A and B stay to the end and together have every piece; C and D have
	// random subsets, D leaves midway; E has a random subset and sends bad
	// data on its fourth delivery; F joins midway with nothing and
	// announces pieces as it goes.
	a, b := make([]bool, n), make([]bool, n)
	for p := range n {
		switch rng.IntN(3) {
		case 0:
			a[p] = true
		case 1:
			b[p] = true
		default:
			a[p], b[p] = true, true
		}
	}
	m.add("A", a)
	m.add("B", b)
	for _, id := range []string{"C", "D", "E"} {
		h := make([]bool, n)
		frac := rng.Float64()
		for p := range h {
			h[p] = rng.Float64() < frac
		}
		m.add(id, h)
	}
	total := 0
	for p := range n {
		if !m.had[p] {
			total++
		}
	}
	eDeliveries, banned, dLeft, fJoined := 0, false, false, false
	for step := 0; !s.Complete(); step++ {
		if step > 20*n+1000 {
			t.Fatalf("no progress after %d steps: %+v", step, s.Stats())
		}
		verified := s.Stats().Verified
		if !dLeft && verified > n/3 {
			dLeft = true
			m.remove("D", s.RemovePeer("D"))
		}
		if !fJoined && verified > n/2 {
			fJoined = true
			m.add("F", make([]bool, n))
		}
		if fJoined && rng.IntN(2) == 0 {
			p := rng.IntN(n)
			m.has["F"][p] = true
			s.PeerHas("F", p)
		}

		// Every connected peer asks for work until it gets none.
		order := slices.Clone(m.live)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, id := range order {
			for m.next(id) {
			}
		}
		if len(m.flights) == 0 {
			t.Fatalf("step %d: nothing requested and nothing in flight: %+v", step, s.Stats())
		}

		// One request, chosen at random, completes: it fails, it is bad
		// data, or it arrives.
		i := rng.IntN(len(m.flights))
		f := m.flights[i]
		m.flights = slices.Delete(m.flights, i, i+1)
		switch {
		case f.cancelled:
			if rng.IntN(2) == 0 {
				m.receive(f) // arrives despite the cancel
			}
		case rng.IntN(20) == 0:
			s.Cancelled(f.peer, f.piece)
		case f.peer == "E" && !banned && eDeliveries == 3:
			banned = true
			m.flights = append(m.flights, f)
			m.remove("E", s.Ban("E"))
			if err := s.AddPeer("E", nil); err == nil {
				t.Fatal("banned peer re-added")
			}
		default:
			if f.peer == "E" {
				eDeliveries++
			}
			m.receive(f)
		}
		if step%97 == 0 {
			s.check(t)
		}
	}
	s.check(t)
	for st, d := range m.done {
		if d < m.need[st] {
			t.Fatalf("stripe %d has %d of %d pieces", st, d, m.need[st])
		}
	}
	if len(m.flights) != 0 && slices.ContainsFunc(m.flights, func(f flight) bool { return !f.cancelled }) {
		t.Fatalf("complete with live requests: %v", m.flights)
	}
	if _, ok := s.Next("A"); ok {
		t.Fatal("work after completion")
	}
	st := s.Stats()
	t.Logf("%d pieces, %d stripes, window %d, endgame %v: %d endgame requests, %d redundant, banned E %v",
		n, len(m.need), m.window, m.endgame, m.dups, st.Redundant, banned)
}

func (m *sim) add(id string, h []bool) {
	m.t.Helper()
	var ps []int
	for p, ok := range h {
		if ok {
			ps = append(ps, p)
		}
	}
	if err := m.s.AddPeer(id, bitmap(len(h), ps...)); err != nil {
		m.t.Fatal(err)
	}
	m.has[id] = h
	m.live = append(m.live, id)
}

// remove checks what RemovePeer or Ban returned and drops the peer's
// flights (a departed peer's data is never used).
func (m *sim) remove(id string, got []int) {
	m.t.Helper()
	var want []int
	m.flights = slices.DeleteFunc(m.flights, func(f flight) bool {
		if f.peer != id {
			return false
		}
		if !f.cancelled {
			want = append(want, f.piece)
		}
		return true
	})
	slices.Sort(want)
	if !slices.Equal(got, want) {
		m.t.Fatalf("removing %s returned %v, want %v", id, got, want)
	}
	m.live = slices.DeleteFunc(m.live, func(s string) bool { return s == id })
	if _, ok := m.s.Next(id); ok {
		m.t.Fatalf("removed peer %s given work", id)
	}
}

// next asks for one piece for id and checks it against the model.
func (m *sim) next(id string) bool {
	t := m.t
	t.Helper()
	endgame := m.s.Endgame()
	p, ok := m.s.Next(id)
	if !ok {
		return false
	}
	if p < 0 || p >= m.l.NumPieces || !m.has[id][p] {
		t.Fatalf("%s asked for piece %d it lacks", id, p)
	}
	st := m.stripe[p]
	if m.ver[p] || m.done[st] >= m.need[st] {
		t.Fatalf("%s asked for piece %d: verified %v, stripe %d complete", id, p, m.ver[p], st)
	}
	dup, busy := false, map[int]bool{}
	var bytes, count int
	for _, f := range m.flights {
		if f.cancelled {
			continue
		}
		if f.piece == p {
			if f.peer == id {
				t.Fatalf("piece %d asked of %s twice", p, id)
			}
			dup = true
		}
		if m.stripe[f.piece] == st {
			busy[f.piece] = true
		}
		if f.peer == id {
			bytes += m.l.Size(f.piece)
			count++
		}
	}
	if dup || m.done[st]+len(busy) >= m.need[st] {
		if !endgame {
			t.Fatalf("piece %d (stripe %d: %d done, %d busy, need %d; dup %v) asked of %s outside endgame",
				p, st, m.done[st], len(busy), m.need[st], dup, id)
		}
		m.dups++
	}
	if bytes += m.l.Size(p); bytes > m.window && count > 0 {
		t.Fatalf("%s window %d exceeded: %d bytes", id, m.window, bytes)
	}
	m.flights = append(m.flights, flight{peer: id, piece: p})
	return true
}

// receive delivers f and checks the answer against the model.
func (m *sim) receive(f flight) {
	t := m.t
	t.Helper()
	p, st := f.piece, m.stripe[f.piece]
	done, cancel := m.s.Received(f.peer, p)
	if m.ver[p] || m.done[st] >= m.need[st] {
		if done || cancel != nil {
			t.Fatalf("redundant piece %d: %v, %v", p, done, cancel)
		}
		m.ver[p] = true
		return
	}
	if f.cancelled {
		t.Fatalf("cancelled request %v for a piece still wanted", f)
	}
	m.ver[p] = true
	m.done[st]++
	if want := m.done[st] == m.need[st]; done != want {
		t.Fatalf("piece %d: stripe complete %v, want %v", p, done, want)
	}
	for _, c := range cancel {
		i := slices.IndexFunc(m.flights, func(g flight) bool { return g.peer == c.Peer && g.piece == c.Piece && !g.cancelled })
		if i < 0 || c.Piece != p && (!done || m.stripe[c.Piece] != st) {
			t.Fatalf("bad cancel %v after piece %d", c, p)
		}
		m.flights[i].cancelled = true
	}
	for _, g := range m.flights {
		if !g.cancelled && (g.piece == p || done && m.stripe[g.piece] == st) {
			t.Fatalf("request %v not cancelled after piece %d (stripe done %v)", g, p, done)
		}
	}
}
