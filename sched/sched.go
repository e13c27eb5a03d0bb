package sched

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// Defaults for Options.
const (
	// DefaultWindow is the default Options.Window: enough to keep a long
	// fat path busy, small enough to bound memory per peer.
	DefaultWindow = 16 << 20
	// DefaultEndgameCopies is the default Options.EndgameCopies.
	DefaultEndgameCopies = 2
	// maxEndgameCopies bounds Options.EndgameCopies; more copies only
	// waste bandwidth.
	maxEndgameCopies = 8
)

// Options tune a Scheduler. The zero value is ready to use.
type Options struct {
	// Window is the most bytes (by Layout.Size) outstanding on one peer;
	// 0 means DefaultWindow. A piece larger than the window is still
	// requested when nothing else is outstanding on the peer.
	Window int
	// NoEndgame turns the endgame off: no piece or stripe is ever requested
	// beyond what it needs. The endgame is on by default.
	NoEndgame bool
	// EndgameCopies is how many peers at most may have the same piece
	// outstanding in endgame; 0 means DefaultEndgameCopies. Otherwise it
	// must be between 2 and 8.
	EndgameCopies int
	// Rand breaks ties between equally good pieces; nil means a randomly
	// seeded source. Tests pass a seeded one for reproducible plans.
	Rand *rand.Rand
}

// Request is one piece outstanding on one peer.
type Request struct {
	Peer  string
	Piece int
}

// Scheduler plans which piece to request from which peer. Build one with
// New; it is not safe for concurrent use.
type Scheduler struct {
	n int
	// Per piece.
	size   []int32
	stripe []int32
	flags  []uint8
	avail  []int32  // connected peers that have the piece
	cls    []uint32 // class when fInPool: avail<<2 | parity<<1 | notStarted

	// Per stripe; the members of stripe i are members[start[i]:start[i+1]].
	members []int32
	start   []int32
	need    []int32
	done    []int32 // verified members
	busy    []int32 // members with at least one request
	nreq    []int32 // requests on members, duplicates included
	openPos []int32 // index in open, or -1
	open    []int32 // stripes with at least one request

	incomplete int // stripes with done < need
	verified   int // verified pieces
	poolAvail  int // pool pieces some connected peer has
	nrequests  int // outstanding requests, duplicates included
	redundant  int // arrivals of pieces no longer needed

	reqs map[int32]*request
	free []*request
	seq  uint64

	peers  map[string]*peer
	order  []*peer // connected peers, for deterministic iteration
	banned map[string]struct{}

	window  int64
	endgame bool
	copies  int
	rng     *rand.Rand
	scratch []*peer
}

// request records the peers a piece is outstanding on, oldest first.
type request struct {
	peers []*peer
	seq   uint64 // order of the first request, for endgame
}

// New validates the layout and returns a Scheduler for it. have reports the
// pieces the caller already holds verified (from a resumed transfer, say);
// they are never requested. have may be nil. The error wraps ErrBadLayout
// or ErrBadOptions.
func New(l Layout, have func(piece int) bool, opts Options) (*Scheduler, error) {
	s := &Scheduler{
		window:  int64(opts.Window),
		endgame: !opts.NoEndgame,
		copies:  opts.EndgameCopies,
		rng:     opts.Rand,
		reqs:    make(map[int32]*request),
		peers:   make(map[string]*peer),
		banned:  make(map[string]struct{}),
	}
	switch {
	case opts.Window < 0:
		return nil, fmt.Errorf("sched new: %w: window %d", ErrBadOptions, opts.Window)
	case opts.Window == 0:
		s.window = DefaultWindow
	}
	switch {
	case opts.EndgameCopies == 0:
		s.copies = DefaultEndgameCopies
	case opts.EndgameCopies < 2 || opts.EndgameCopies > maxEndgameCopies:
		return nil, fmt.Errorf("sched new: %w: endgame copies %d, want 2..%d", ErrBadOptions, opts.EndgameCopies, maxEndgameCopies)
	}
	if s.rng == nil {
		s.rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if err := s.build(l); err != nil {
		return nil, fmt.Errorf("sched new: %w", err)
	}
	if have != nil {
		for p := range s.n {
			if have(p) {
				s.flags[p] |= fVerified
				s.done[s.stripe[p]]++
				s.verified++
			}
		}
	}
	for i := range s.need {
		if s.done[i] < s.need[i] {
			s.incomplete++
		}
	}
	for p := range s.n {
		s.refresh(int32(p))
	}
	return s, nil
}

// AddPeer connects a peer with the pieces in bitmap, in the form of
// chunker.Bitmap.Bytes: bit i is bit i%8 (least significant first) of byte
// i/8, (NumPieces+7)/8 bytes, unused bits zero. A nil or empty bitmap
// means nothing yet; PeerHas adds pieces later. The error wraps
// ErrPeerExists, ErrBanned or ErrBadBitmap.
func (s *Scheduler) AddPeer(id string, bitmap []byte) error {
	if err := s.checkNew(id); err != nil {
		return err
	}
	words := make([]uint64, (s.n+63)/64)
	if len(bitmap) > 0 {
		if len(bitmap) != (s.n+7)/8 {
			return fmt.Errorf("sched add peer %q: %w: %d bytes for %d pieces, want %d", id, ErrBadBitmap, len(bitmap), s.n, (s.n+7)/8)
		}
		if r := s.n % 8; r != 0 && bitmap[len(bitmap)-1]>>r != 0 {
			return fmt.Errorf("sched add peer %q: %w: bits set past piece %d", id, ErrBadBitmap, s.n-1)
		}
		for i, b := range bitmap {
			words[i/8] |= uint64(b) << (8 * (i % 8))
		}
	}
	s.addPeer(id, words)
	return nil
}

// AddSeed connects a peer that has every piece. The error wraps
// ErrPeerExists or ErrBanned.
func (s *Scheduler) AddSeed(id string) error {
	if err := s.checkNew(id); err != nil {
		return err
	}
	words := make([]uint64, (s.n+63)/64)
	for i := range words {
		words[i] = ^uint64(0)
	}
	if r := s.n % 64; r != 0 {
		words[len(words)-1] = 1<<r - 1
	}
	s.addPeer(id, words)
	return nil
}

func (s *Scheduler) checkNew(id string) error {
	if _, ok := s.banned[id]; ok {
		return fmt.Errorf("sched add peer %q: %w", id, ErrBanned)
	}
	if _, ok := s.peers[id]; ok {
		return fmt.Errorf("sched add peer %q: %w", id, ErrPeerExists)
	}
	return nil
}

func (s *Scheduler) addPeer(id string, has []uint64) {
	pr := &peer{id: id, idx: len(s.order), has: has, pos: make([]int32, s.n), out: make(map[int32]struct{})}
	for i := range pr.pos {
		pr.pos[i] = -1
	}
	s.peers[id] = pr
	s.order = append(s.order, pr)
	forEachBit(has, func(p int32) {
		pr.nhas++
		s.avail[p]++
		s.refresh(p)
	})
}

// PeerHas records that a connected peer now has piece (a have-update).
// Unknown or banned peers and out-of-range pieces are ignored.
func (s *Scheduler) PeerHas(id string, piece int) {
	pr := s.peers[id]
	if pr == nil || piece < 0 || piece >= s.n {
		return
	}
	p := int32(piece)
	if pr.hasBit(p) {
		return
	}
	pr.has[p/64] |= 1 << (p % 64)
	pr.nhas++
	s.avail[p]++
	s.refresh(p)
}

// PeerLost records that a connected peer no longer has piece (the file
// changed at that source): a request for it there goes back to the pool
// at once, and it reports whether there was one. Unknown peers, pieces
// it did not have and out-of-range pieces are ignored.
func (s *Scheduler) PeerLost(id string, piece int) (wasOut bool) {
	pr := s.peers[id]
	if pr == nil || piece < 0 || piece >= s.n || !pr.hasBit(int32(piece)) {
		return false
	}
	p := int32(piece)
	wasOut = s.detach(pr, p)
	pr.has[p/64] &^= 1 << (p % 64)
	pr.nhas--
	s.avail[p]--
	s.refresh(p)
	s.touchStripe(s.stripe[p])
	return wasOut
}

// RemovePeer disconnects a peer. The pieces it had outstanding go back to
// the pool at once (unless outstanding elsewhere too) and are returned in
// increasing order, for logging. Unknown peers are ignored.
func (s *Scheduler) RemovePeer(id string) []int {
	pr := s.peers[id]
	if pr == nil {
		return nil
	}
	delete(s.peers, id)
	last := s.order[len(s.order)-1]
	s.order[pr.idx] = last
	last.idx = pr.idx
	s.order = s.order[:len(s.order)-1]

	out := make([]int, 0, len(pr.out))
	for p := range pr.out {
		out = append(out, int(p))
	}
	slices.Sort(out)
	for _, p := range out {
		s.detach(pr, int32(p))
	}
	forEachBit(pr.has, func(p int32) {
		s.avail[p]--
		s.refresh(p)
	})
	for _, p := range out {
		s.touchStripe(s.stripe[p])
	}
	return out
}

// Ban disconnects a peer that sent bad data, like RemovePeer, and refuses
// the id for good: AddPeer and AddSeed return ErrBanned and no method gives
// it work again. Banning an id never added is allowed.
func (s *Scheduler) Ban(id string) []int {
	s.banned[id] = struct{}{}
	return s.RemovePeer(id)
}

// Banned reports whether id was banned.
func (s *Scheduler) Banned(id string) bool {
	_, ok := s.banned[id]
	return ok
}

// Next returns the next piece to request from a connected peer and records
// the request. ok is false when the peer's window is full, when it has
// nothing still wanted that is not already requested (outside endgame), or
// when the peer is unknown or banned.
func (s *Scheduler) Next(id string) (piece int, ok bool) {
	pr := s.peers[id]
	if pr == nil || pr.bytes >= s.window {
		return -1, false
	}
	p, ok := pr.pick(s.rng)
	if !ok {
		if !s.Endgame() {
			return -1, false
		}
		if p, ok = s.endgamePick(pr); !ok {
			return -1, false
		}
	}
	if pr.bytes > 0 && pr.bytes+int64(s.size[p]) > s.window {
		return -1, false
	}
	s.attach(pr, p)
	s.touchStripe(s.stripe[p])
	return int(p), true
}

// Received records that piece arrived from peer id and was verified (id
// may be unknown: the piece counts whoever sent it). stripeComplete is true
// when this arrival completed the piece's stripe. cancel lists the other
// requests the arrival made pointless, already removed from the plan:
// duplicates of this piece and, when the stripe completed, requests for
// its other pieces. The caller should send the peers cancels; if the
// pieces arrive anyway, Received counts them as redundant. Out-of-range
// pieces are ignored.
func (s *Scheduler) Received(id string, piece int) (stripeComplete bool, cancel []Request) {
	if piece < 0 || piece >= s.n {
		return false, nil
	}
	p := int32(piece)
	st := s.stripe[p]
	if pr := s.peers[id]; pr != nil {
		pr.received++
		s.detach(pr, p)
	}
	if s.flags[p]&fVerified != 0 || s.done[st] >= s.need[st] {
		s.redundant++
		if s.flags[p]&fVerified == 0 {
			s.flags[p] |= fVerified
			s.verified++
		}
		s.touchStripe(st)
		return false, nil
	}
	s.flags[p] |= fVerified
	s.verified++
	s.done[st]++
	cancel = s.cancelAll(p, cancel)
	if s.done[st] >= s.need[st] {
		s.incomplete--
		stripeComplete = true
		for _, q := range s.members[s.start[st]:s.start[st+1]] {
			cancel = s.cancelAll(q, cancel)
		}
	}
	s.touchStripe(st)
	return stripeComplete, cancel
}

// cancelAll drops every request for piece p, appending them to cancel.
func (s *Scheduler) cancelAll(p int32, cancel []Request) []Request {
	r := s.reqs[p]
	if r == nil {
		return cancel
	}
	s.scratch = append(s.scratch[:0], r.peers...)
	for _, q := range s.scratch {
		cancel = append(cancel, Request{Peer: q.id, Piece: int(p)})
		s.detach(q, p)
	}
	clear(s.scratch)
	return cancel
}

// Cancelled records that the request for piece on peer id failed or was
// cancelled; the piece goes back to the pool at once unless it is
// outstanding elsewhere. Requests that do not exist are ignored.
func (s *Scheduler) Cancelled(id string, piece int) {
	pr := s.peers[id]
	if pr == nil || piece < 0 || piece >= s.n {
		return
	}
	if s.detach(pr, int32(piece)) {
		s.touchStripe(s.stripe[piece])
	}
}

// Complete reports whether every stripe has Need verified pieces.
func (s *Scheduler) Complete() bool { return s.incomplete == 0 }

// Endgame reports whether the scheduler is in endgame: endgame is on, some
// request is outstanding, and every piece still wanted that a connected
// peer has is already requested.
func (s *Scheduler) Endgame() bool {
	return s.endgame && s.poolAvail == 0 && s.nrequests > 0
}

// attach records a request for p on pr.
func (s *Scheduler) attach(pr *peer, p int32) {
	st := s.stripe[p]
	r := s.reqs[p]
	if r == nil {
		if k := len(s.free); k > 0 {
			r = s.free[k-1]
			s.free = s.free[:k-1]
		} else {
			r = &request{peers: make([]*peer, 0, s.copies)}
		}
		s.seq++
		r.seq = s.seq
		s.reqs[p] = r
		s.flags[p] |= fRequested
		s.busy[st]++
	}
	r.peers = append(r.peers, pr)
	pr.out[p] = struct{}{}
	pr.bytes += int64(s.size[p])
	s.nrequests++
	s.nreq[st]++
	if s.nreq[st] == 1 {
		s.openPos[st] = int32(len(s.open))
		s.open = append(s.open, st)
	}
}

// detach removes the request for p on pr, if there is one. The caller
// refreshes the stripe afterwards.
func (s *Scheduler) detach(pr *peer, p int32) bool {
	r := s.reqs[p]
	if r == nil {
		return false
	}
	i := slices.Index(r.peers, pr)
	if i < 0 {
		return false
	}
	r.peers = slices.Delete(r.peers, i, i+1)
	delete(pr.out, p)
	pr.bytes -= int64(s.size[p])
	st := s.stripe[p]
	s.nrequests--
	s.nreq[st]--
	if len(r.peers) == 0 {
		delete(s.reqs, p)
		s.free = append(s.free, r)
		s.flags[p] &^= fRequested
		s.busy[st]--
	}
	if s.nreq[st] == 0 {
		i := s.openPos[st]
		last := s.open[len(s.open)-1]
		s.open[i] = last
		s.openPos[last] = i
		s.open = s.open[:len(s.open)-1]
		s.openPos[st] = -1
	}
	return true
}

// endgamePick chooses an extra request for pr among the stripes with
// outstanding requests: fewest copies first, then data before parity, then
// the oldest request.
func (s *Scheduler) endgamePick(pr *peer) (int32, bool) {
	best, found := int32(-1), false
	var bestCopies int
	var bestParity bool
	var bestSeq uint64
	for _, st := range s.open {
		left := s.need[st] - s.done[st]
		if left <= 0 || int(s.nreq[st]) >= s.copies*int(left) {
			continue
		}
		ms := s.members[s.start[st]:s.start[st+1]]
		mine := int32(0)
		for _, q := range ms {
			if r := s.reqs[q]; r != nil && slices.Contains(r.peers, pr) {
				mine++
			}
		}
		if mine >= left {
			continue
		}
		for _, q := range ms {
			if s.flags[q]&fVerified != 0 || !pr.hasBit(q) {
				continue
			}
			copies, seq := 0, uint64(0)
			if r := s.reqs[q]; r != nil {
				if slices.Contains(r.peers, pr) {
					continue
				}
				copies, seq = len(r.peers), r.seq
			}
			if copies >= s.copies {
				continue
			}
			parity := s.flags[q]&fParity != 0
			if !found || copies < bestCopies ||
				copies == bestCopies && (!parity && bestParity ||
					parity == bestParity && seq < bestSeq) {
				best, found = q, true
				bestCopies, bestParity, bestSeq = copies, parity, seq
			}
		}
	}
	return best, found
}

// touchStripe refreshes every member of stripe st after its counts changed.
func (s *Scheduler) touchStripe(st int32) {
	for _, q := range s.members[s.start[st]:s.start[st+1]] {
		s.refresh(q)
	}
}

// refresh recomputes whether p is in the pool and its class, and moves it
// between the peers' buckets if either changed. O(1) when nothing changed,
// O(P) otherwise.
func (s *Scheduler) refresh(p int32) {
	f := s.flags[p]
	st := s.stripe[p]
	started := s.done[st] + s.busy[st]
	in := f&(fVerified|fRequested) == 0 && started < s.need[st]
	var c uint32
	if in {
		c = uint32(s.avail[p]) << 2
		if f&fParity != 0 {
			c |= 2
		}
		if started == 0 {
			c |= 1
		}
	}
	wasIn := f&fInPool != 0
	old := s.cls[p]
	if in == wasIn && c == old {
		return
	}
	if wasIn && old>>2 > 0 {
		s.poolAvail--
	}
	if in && c>>2 > 0 {
		s.poolAvail++
	}
	for _, pr := range s.order {
		if pr.pos[p] >= 0 {
			pr.remove(p, old)
		}
		if in && pr.hasBit(p) {
			pr.insert(p, c)
		}
	}
	if in {
		s.flags[p] |= fInPool
	} else {
		s.flags[p] &^= fInPool
	}
	s.cls[p] = c
}
