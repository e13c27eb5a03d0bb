package lane

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"
)

// Hole punching, with punches that end between the NATs.
//
// A check that reaches the other end's NAT before that end has sent
// anything to us is, behind a bare Linux MASQUERADE (no firewall), taken
// in and recorded in the NAT's conntrack as traffic for the router
// itself; that entry takes the very tuple the other end's own packet to
// us needs, so the NAT gives it another port, and the direct path fails
// at both ends. So before ICE checks a remote server-reflexive
// candidate, each end sends it a punch from each of its own
// server-reflexive sockets, with a TTL that takes it out of the end's own
// NAT, which then holds the mapping, and no further: it dies between the
// two. Each end says so ({punched}); an end checks the other's public
// addresses once it has heard that for all of its own, or punchWait after
// it learnt them. Behind NATs with firewalls, which drop what they did
// not ask for, the punch opens our NAT before the other's checks come.
const (
	// punchTTL takes a punch out of a home router and past the provider's
	// first router (or a carrier-grade NAT there), and ends it before a
	// NAT four or more routers away. A nearer one (two homes on one
	// access router) is reached, and the pair may fail as it would
	// without punching: the relay is left.
	punchTTL = 3
	// punchWait bounds the wait for the other end's {punched}: an end
	// that cannot punch (canPunch) or has no public address of its own
	// never sends one.
	punchWait = 500 * time.Millisecond
	// maxPublic bounds the public addresses of each end that a
	// negotiation punches from and towards: an end has one per STUN or
	// TURN server, and a peer may send any number.
	maxPublic = 8
)

// punchPlan is one negotiation's book of punches; negotiate does the
// sending. Their public candidates are held until they punched towards
// all our public addresses (a check from a socket of ours they have not
// punched towards would reach their NAT first, and spoil its mapping for
// that pair of sockets), or until punchWait: an end that cannot punch
// never says it did.
type punchPlan struct {
	ours, theirs []netip.AddrPort // public addresses, at most maxPublic each
	punchedTo    []netip.AddrPort // those of ours they punched towards
	held         []webrtc.ICECandidateInit
	released     bool
}

// theirCandidate books a public candidate of theirs at addr (ok: it has
// one) and reports whether to hold it, and whether to punch towards addr,
// new.
func (p *punchPlan) theirCandidate(ci webrtc.ICECandidateInit, addr netip.AddrPort, ok bool) (hold, punch bool, err error) {
	punch = ok && len(p.theirs) < maxPublic && !slices.Contains(p.theirs, addr)
	if punch {
		p.theirs = append(p.theirs, addr)
	}
	if p.released {
		return false, punch, nil
	}
	if len(p.held) >= maxKept {
		return false, false, fmt.Errorf("%w: too many candidates", ErrProtocol)
	}
	p.held = append(p.held, ci)
	return true, punch, nil
}

// ourCandidate books a public address of ours, and reports whether it is
// new: a socket to punch from, towards all of theirs.
func (p *punchPlan) ourCandidate(addr netip.AddrPort) bool {
	if len(p.ours) >= maxPublic || slices.Contains(p.ours, addr) {
		return false
	}
	p.ours = append(p.ours, addr)
	return true
}

// theyPunched books their punch towards to, and reports their candidates
// to release, if that was the last of ours.
func (p *punchPlan) theyPunched(to netip.AddrPort) []webrtc.ICECandidateInit {
	to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
	if p.released || !slices.Contains(p.ours, to) || slices.Contains(p.punchedTo, to) {
		return nil
	}
	p.punchedTo = append(p.punchedTo, to)
	if len(p.punchedTo) < len(p.ours) {
		return nil
	}
	return p.release()
}

// release ends the hold, punched or not, and returns what it held.
func (p *punchPlan) release() []webrtc.ICECandidateInit {
	held := p.held
	p.released, p.held = true, nil
	return held
}

// iceNet is the transport.Net a peer connection's ICE agent makes its own
// sockets with: server-reflexive ones (host candidates use our UDP mux).
// A path through NAT may take one of them, so they get the mux's buffer
// size and batching; they are kept to punch from.
type iceNet struct {
	transport.Net
	bufSize int        // as the mux's sockets
	rides   *rideTable // as the mux's sockets
	mu      sync.Mutex
	conns   []*net.UDPConn
}

func (p *iceNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := p.Net.ListenUDP(network, laddr)
	u, ok := c.(*net.UDPConn)
	if err != nil || !ok {
		return c, err
	}
	if p.bufSize > 0 {
		_ = u.SetReadBuffer(p.bufSize)
		_ = u.SetWriteBuffer(p.bufSize)
	}
	p.mu.Lock()
	p.conns = append(p.conns, u)
	p.mu.Unlock()
	local, _ := u.LocalAddr().(*net.UDPAddr)
	// GRO where ride lanes may come: their runs of packets.
	bc := newBatchConn(u, local == nil || local.IP.To4() == nil, p.rides != nil)
	if p.rides != nil {
		bc.divert = p.rides.divert
		p.rides.add(bc)
	}
	return bc, nil
}

// punch sends a punch to to from every socket of its family, and reports
// whether any went out.
func (p *iceNet) punch(to netip.AddrPort) bool {
	if !canPunch {
		return false
	}
	p.mu.Lock()
	conns := append([]*net.UDPConn(nil), p.conns...)
	p.mu.Unlock()
	sent := false
	for _, c := range conns {
		local, ok := c.LocalAddr().(*net.UDPAddr)
		if !ok {
			continue
		}
		if a, ok := netip.AddrFromSlice(local.IP); ok && !a.IsUnspecified() && a.Unmap().Is4() != to.Addr().Is4() {
			continue
		}
		sent = sendTTL(c, punchPayload, to, punchTTL) == nil || sent
	}
	return sent
}

// punchPayload is what a punch carries, should it arrive after all: one
// zero byte, which no STUN, DTLS or SCTP reader takes.
var punchPayload = []byte{0}
