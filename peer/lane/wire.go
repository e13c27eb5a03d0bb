package lane

// Sealed signalling, version 6.
//
// Each message travels through the caller's Signal, sealed end to end
// (package peer seals them with the PAKE session's key), so the
// signalling server can neither read addresses nor swap DTLS
// fingerprints. A message is one JSON object:
//
//	field  JSON type     in                  meaning
//	v      number        every message       Version; any other ends the
//	                                         connection with ErrVersion
//	t      string        every message       offer, answer, cand, punched,
//	                                         bye, lanes, direct or ride
//	sdp    string        offer, answer       the session description
//	cand   object        cand                an ICE candidate:
//	                                         {candidate, sdpMid, sdpMLineIndex}
//	why    string        bye (optional)      why the sender gives up:
//	                                         at most maxWhy bytes of UTF-8
//	info   base64        answer (optional)   the accepting end's
//	                                         Options.Info: at most maxInfo bytes
//	lanes  number 1..4   offer, answer,      connections in all: in the
//	                     lanes               first offer what the dialer
//	                                         would use, in the answer what
//	                                         both will (the smaller count),
//	                                         in {lanes} what the dialer opens
//	direct object        lanes, direct       one end's direct lanes:
//	                                         {port, fp, more}, see wireDirect
//	ride   base64        lanes               a ride lane's keys (ride.go):
//	                                         bulk.KeyLen bytes
//	rides  bool          offer, answer       this end can take a ride lane
//	                     (optional)          (the answer: both can)
//	to     string        punched             the address punched towards
//
// Flow, with the dialing end (the downloader) on the left:
//
//	dialer                                     accepter
//	  |-- {offer, sdp, lanes, rides} ------------>|
//	  |-- {cand} ... (trickle) ------------------>|
//	  |<----------- {answer, sdp, info, lanes, rides}
//	  |<------------------------------ {cand} ... |
//	  |-- {punched} ... <------------ {punched} ...|  (after a punch towards
//	  |                                           |    a public candidate of
//	  |                                           |    the other, punch.go)
//	  |-- {bye} or <---------------------- {bye} -|   (either side gives up)
//	  |   ... once the dialer's first channel is open (the accepter may
//	  |   still be negotiating the first connection: it keeps these):
//	  |-- {offer} / {cand} ... <-- {answer} ... --|   (lane 2, 3, ... up to
//	  |                                           |    lanes, one at a time)
//	  |-- or {lanes, lanes:1} ------------------->|   (a short path: none)
//	  |-- or {lanes, lanes:1+k, direct} --------->|   (k direct lanes)
//	  |<------------------------- {direct, direct} |   (or {lanes, lanes:1}:
//	  |                                           |    it opens none)
//	  |-- or {lanes, lanes:2, ride} ------------->|   (a ride lane, where
//	  |<------------------------------------ {ride}|    both said rides; or
//	  |                                           |    {lanes, lanes:1})
//	  |   ... if none opens: lanes as above, or {lanes, lanes:1}
//
// Where both ends said lanes:1 but also rides, the dialer still sends one
// of the last two: {lanes, lanes:2, ride} on a pair that can take a ride
// lane, else {lanes, lanes:1}; the accepter waits for it.
//
// Lanes are extra peer connections, each its own SCTP association, that
// carry messages from the accepter to the dialer only. A loss burst that
// stalls one association (pion waits out a retransmission timeout) leaves
// the others sending.
//
// A direct lane is one without ICE, where the first connection's ICE pair
// shows none is needed: two peers on one host (each end binds 127.0.0.1),
// or two host candidates (each end binds its address of that pair). It is
// DTLS over a UDP socket at each end, which authenticates the other end
// and keys a bulk stream (package bulk, its protocol version 1) on the
// same socket; {direct} holds each lane's port and the SHA-256 of the
// ends' DTLS certificate. The dialer is the DTLS client and the stream's
// receiving end. Its packets are up to directMTU plus a record's overhead
// on one host, where a peer connection's SCTP sends sctpBaseMTU; between
// hosts the accepter first probes what the path carries (pmtu.go). A dialer asks for one direct
// lane, or for as many as it would open lanes where the path is long; the
// accepter opens as many as both allow, the first ones asked for. Once one
// opens, the accepter sends only on direct lanes.
//
// A ride lane is one where the first connection's ICE pair goes through
// NAT (and not a relay): a bulk stream on that pair's own sockets, keyed
// by what the dialer's {lanes, ride} carries, which the accepter accepts
// with {ride}. The accepter sends only on it, as on a direct lane. It
// rides the one connection rather than adding one, so it needs no lane
// count, only that both ends can take it: rides:true in the first
// connection's offer and answer (a browser cannot, and says nothing).

import (
	"crypto/sha256"

	"encoding/json"
	"fmt"
	"github.com/p2pxfer/p2pxfer/peer/lane/bulk"
	"net/netip"
	"slices"
	"unicode/utf8"
)

// Version is the sealed signalling protocol's. Bump it on any change to
// the messages or the flow above: peers of different versions then stop
// at their first message with ErrVersion instead of misreading each other.
// Version 4: direct lanes carry package bulk's stream instead of SCTP;
// ride lanes. Version 5: rides in offer and answer, and ride lanes
// between ends that said lanes:1. Version 6: the dialer asks for its
// lanes as soon as its first channel opens, not after the accepter's
// first message on it, a round trip sooner.
const Version = 6

// Message types.
const (
	sigOffer  = "offer"
	sigAnswer = "answer"
	sigCand   = "cand"
	sigBye    = "bye"
	// sigLanes: the dialer opens only this many connections in all.
	sigLanes = "lanes"
	// sigDirect: the accepter's end of the direct lanes.
	sigDirect = "direct"
	// sigPunched: the sender punched towards a public candidate of ours
	// (punch.go).
	sigPunched = "punched"
	// sigRide: the accepter opened the ride lane asked for.
	sigRide = "ride"
)

// MaxLanes bounds the connections one dialer opens to one accepter.
const MaxLanes = 4

const (
	maxWhy  = 256
	maxInfo = 64
)

// signalMsg is the wire form of one sealed signalling message.
type signalMsg struct {
	V      int         `json:"v"`
	T      string      `json:"t"`
	SDP    string      `json:"sdp,omitempty"`
	Cand   *wireCand   `json:"cand,omitempty"`
	Why    string      `json:"why,omitempty"`
	Info   []byte      `json:"info,omitempty"`
	Lanes  int         `json:"lanes,omitempty"`
	Direct *wireDirect `json:"direct,omitempty"`
	// Ride, in {lanes}: a ride lane's keys.
	Ride []byte `json:"ride,omitempty"`
	// Rides, in the first connection's offer and answer: this end can
	// take a ride lane. An answer says it only to an offer that did.
	Rides bool `json:"rides,omitempty"`
	// To, in {punched}: the address punched towards ("ip:port").
	To string `json:"to,omitempty"`
}

// wireDirect is one end of direct lanes: the first lane's UDP port
// (port), the SHA-256 of the DTLS certificate of all of them (fp), which
// the other end requires, and the other lanes' ports (more).
type wireDirect struct {
	Port        uint16   `json:"port"`
	Fingerprint []byte   `json:"fp"`
	More        []uint16 `json:"more,omitempty"`
}

// ports lists the lanes' ports in order.
func (w *wireDirect) ports() []uint16 { return append([]uint16{w.Port}, w.More...) }

// wireCand is an ICE candidate on the wire (RTCIceCandidateInit).
type wireCand struct {
	Candidate     string  `json:"candidate"`
	SDPMid        *string `json:"sdpMid,omitempty"`
	SDPMLineIndex *uint16 `json:"sdpMLineIndex,omitempty"`
}

// whyNoPath is the reason a bye gives when ICE found no path in time: the
// other end then reports a ConnectError too, not a mere refusal.
const whyNoPath = "no path"

// versionMismatch is the reason a bye gives when the other end's version
// differs: an older peer, which cannot know ErrVersion, prints it.
const versionMismatch = "the peers run different p2pxfer versions: both sides need the same p2pxfer version"

func encodeSignal(m *signalMsg) ([]byte, error) {
	m.V = Version
	return json.Marshal(m)
}

// decodeSignal checks one message; it comes from the other password
// holder, who may still be hostile.
func decodeSignal(b []byte) (*signalMsg, error) {
	var m signalMsg
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: sealed signalling: %v", ErrProtocol, err)
	}
	if m.V != Version {
		return nil, fmt.Errorf("%w: sealed signalling version %d, this end speaks %d", ErrVersion, m.V, Version)
	}
	switch m.T {
	case sigOffer, sigAnswer:
		if m.SDP == "" {
			return nil, fmt.Errorf("%w: %s without sdp", ErrProtocol, m.T)
		}
	case sigCand:
		if m.Cand == nil {
			return nil, fmt.Errorf("%w: candidate message without candidate", ErrProtocol)
		}
	case sigBye:
	case sigPunched:
		if to, err := netip.ParseAddrPort(m.To); err != nil || to.Port() == 0 {
			return nil, fmt.Errorf("%w: punched without its address", ErrProtocol)
		}
	case sigLanes:
		if m.Lanes == 0 {
			return nil, fmt.Errorf("%w: lanes message without a count", ErrProtocol)
		}
	case sigDirect:
		if m.Direct == nil {
			return nil, fmt.Errorf("%w: direct message without its end", ErrProtocol)
		}
	case sigRide:
	default:
		return nil, fmt.Errorf("%w: unknown sealed signalling type %q", ErrProtocol, m.T)
	}
	if m.Info != nil && (m.T != sigAnswer || len(m.Info) > maxInfo) {
		return nil, fmt.Errorf("%w: malformed info", ErrProtocol)
	}
	if m.Lanes != 0 && (m.T != sigOffer && m.T != sigAnswer && m.T != sigLanes || m.Lanes < 1 || m.Lanes > MaxLanes) {
		return nil, fmt.Errorf("%w: malformed lane count", ErrProtocol)
	}
	if m.Direct != nil && (m.T != sigDirect && (m.T != sigLanes || m.Lanes != 2+len(m.Direct.More)) ||
		len(m.Direct.More) > MaxLanes-2 || slices.Contains(m.Direct.ports(), 0) || len(m.Direct.Fingerprint) != sha256.Size) {
		return nil, fmt.Errorf("%w: malformed direct lane", ErrProtocol)
	}
	if m.Ride != nil && (m.T != sigLanes || m.Lanes != 2 || m.Direct != nil || len(m.Ride) != bulk.KeyLen) {
		return nil, fmt.Errorf("%w: malformed ride lane", ErrProtocol)
	}
	if m.Rides && m.T != sigOffer && m.T != sigAnswer {
		return nil, fmt.Errorf("%w: malformed rides", ErrProtocol)
	}
	if m.To != "" && m.T != sigPunched {
		return nil, fmt.Errorf("%w: malformed to", ErrProtocol)
	}
	if len(m.Why) > maxWhy || !utf8.ValidString(m.Why) {
		return nil, fmt.Errorf("%w: malformed reason", ErrProtocol)
	}
	return &m, nil
}
