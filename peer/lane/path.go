package lane

import (
	"net"
	"net/netip"
	"strconv"

	"github.com/pion/webrtc/v4"
)

// Path says how a connection's packets travel, as ICE chose: what a user
// wants to know of a connection, and what a "no connection" needs
// explaining against.
type Path struct {
	Kind PathKind
	// Relay is the TURN relay's address, for PathRelay.
	Relay string
}

// PathKind is a kind of Path.
type PathKind int

// Path kinds, from the most direct.
const (
	PathUnknown PathKind = iota
	PathOneHost          // both ends on this host
	PathLAN              // host addresses at both ends: no NAT between them
	PathNAT              // direct, through one NAT or both
	PathRelay            // through a TURN relay
)

func (p Path) String() string {
	switch p.Kind {
	case PathOneHost:
		return "direct (on this host)"
	case PathLAN:
		return "direct (LAN)"
	case PathNAT:
		return "direct through NAT"
	case PathRelay:
		return "via relay " + p.Relay
	}
	return "unknown path"
}

// Short names the path in a word or two, for a progress bar's label.
func (p Path) Short() string {
	switch p.Kind {
	case PathOneHost:
		return "this host"
	case PathLAN:
		return "LAN"
	case PathNAT:
		return "through NAT"
	case PathRelay:
		return "relayed"
	}
	return "?"
}

// pathOf reads the path of pc's connection from its selected ICE pair.
func pathOf(pc *webrtc.PeerConnection) Path {
	pair, local, remote, ok := selectedPair(pc)
	if !ok {
		return Path{}
	}
	switch {
	case pair.Local.Typ == webrtc.ICECandidateTypeRelay:
		return Path{Kind: PathRelay, Relay: relayAddr(pair.Local)}
	case pair.Remote.Typ == webrtc.ICECandidateTypeRelay:
		// The other end's relay; ours would be the local candidate.
		return Path{Kind: PathRelay, Relay: relayAddr(pair.Remote)}
	case !untranslated(pair.Local, local):
		return Path{Kind: PathNAT}
	case isLocalAddr(remote):
		return Path{Kind: PathOneHost}
	case local.IsPrivate() && !remote.IsPrivate() && !onLink(remote):
		// A private address of ours reached a public one: through our
		// NAT, however host-like the pair looks from here.
		return Path{Kind: PathNAT}
	case pair.Remote.Typ == webrtc.ICECandidateTypeHost,
		// With trickled candidates the other end's host address is often
		// first seen as peer-reflexive; on our own subnet it is that.
		onLink(remote):
		return Path{Kind: PathLAN}
	}
	return Path{Kind: PathNAT}
}

// untranslated reports whether our end of a pair, c at addr, is one of
// our own addresses: a host candidate, or a server-reflexive one on a host
// without NAT, which pion makes on a socket of its own all the same, and
// may choose.
func untranslated(c *webrtc.ICECandidate, addr netip.Addr) bool {
	return c.Typ == webrtc.ICECandidateTypeHost || c.Typ == webrtc.ICECandidateTypeSrflx && isLocalAddr(addr)
}

// onLink reports whether ip is on a subnet of one of this host's
// interfaces: reached without a router.
func onLink(ip netip.Addr) bool {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if p, err := netip.ParsePrefix(n.String()); err == nil && p.Contains(ip) {
				return true
			}
		}
	}
	return false
}

// relayAddr is the address of the relay a relay candidate's packets are
// relayed from.
func relayAddr(c *webrtc.ICECandidate) string {
	a, err := netip.ParseAddr(c.Address)
	if err != nil {
		return c.Address
	}
	return a.Unmap().String()
}

// pairString shows the selected ICE pair, for diagnostics.
func pairString(pc *webrtc.PeerConnection) string {
	pair, _, _, ok := selectedPair(pc)
	if !ok {
		return "none"
	}
	return pair.Local.Typ.String() + " " + net.JoinHostPort(pair.Local.Address, strconv.Itoa(int(pair.Local.Port))) +
		" <-> " + pair.Remote.Typ.String() + " " + net.JoinHostPort(pair.Remote.Address, strconv.Itoa(int(pair.Remote.Port)))
}
