package room

// Signalling protocol, version 2.
//
// Peers talk to the server over a WebSocket; every frame is one JSON Message.
// The server only routes: Data is opaque to it (end-to-end PAKE frames, see
// package pake), and it forwards a frame only between the two ends of a
// handshake, never to the whole room.
//
//	sender (host)              server                     receiver
//	  |-- create{v} ------------->|                            |
//	  |<- created{room,peer} -----|                            |
//	  |                           |<------------ join{v,room} -|
//	  |                           |-- joined{room,peer,host} ->|   (lazy: the
//	  |                           |<-- relay{to:host,data} ----|    receiver
//	  |<- relay{from:rcv,data} ---|                            |    speaks first)
//	  |-- relay{to:rcv,data} ---->|                            |
//	  |                           |-- relay{from:host,data} -->|
//	  |            ... PAKE, then sealed offer/answer/candidates ...
//	  |<- left{peer} -------------|<------------------- (close)|
//	  |-- close ----------------->|-- error{room_closed} ----->|
//
// For a while after a room closed (bounded in time and count), a join of
// its ID is answered with why it closed (room_closed, too_many_failures)
// rather than room_not_found, even over the join rate limit.
//
// A receiver may relay only to the host. The host may relay only to a
// receiver that has relayed to it first, so the host never holds state for
// receivers that never ask. Every frame is at most MaxMessageSize bytes.
//
// Seed pool (for the swarm; see docs/swarm.md, and sigserver/pool.go for
// the server's side). Any connection in a room may offer upload slots; a
// receiver asks the server for sources and waits in a FIFO queue when
// every slot is taken:
//
//	source (host or seed)       server                     receiver
//	  |-- seed{slots,complete} ->|                            |
//	  |                          |<----------------- want{n} -|
//	  |                          |-- peers{[source]} -------->|  (a slot of
//	  |<- relay{from:rcv} -------|<- relay{to:source} --------|   source is
//	  |              ... the same handshake as above ...      |   reserved)
//	  |                          |<------- release{source} ---|  (slot freed,
//	  |                          |-- peers{[source]} --> next in the queue
//	  |                          |-- queued{position,sources} --> everyone still waiting
//
// An assignment allows relays both ways between its two ends; release or
// leave (from either end) or a disconnect ends it, and the other end gets
// left: left always means nothing remains between the two. Unless both
// ends have relayed on it (the PAKE's first round trip) within a server
// timeout (5 s), both ends get left; a server may refuse the wants of an
// address whose receivers keep leaving their assignments unused.
//
// queued carries sources: how many other connections of the room offer
// upload slots and are not assigned to the receiver already, busy or not.
// 0 means nobody in the room can serve it beyond its current sources
// (the sender left, say) until a new source arrives; the server sends
// queued again whenever that number or the position changes.
//
// Version 2 added sources to queued (omitted when 0, like every field).
// A receiver gives up on sources 0, so an older server, which never sends
// it, must not be taken for one that says nobody is left: hence the
// version.
// A source reports each failed password handshake with fail; the server
// closes the room with too_many_failures after the room's max_failures.
// The host registers its manifest-signing key at create; joined hands it
// to every receiver, so a seed cannot substitute its own.
//
// A server with a relay (p2pxfer signal --turn) adds to created and joined
// the STUN and TURN servers the member may use, with TURN credentials made
// for it alone (ice: [{urls, username, credential}]); a server without one
// leaves ice out, and clients that predate it ignore it.

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// ProtocolVersion is the signalling protocol version carried in create and
// join. The server refuses any other with CodeVersion.
const ProtocolVersion = 2

// MaxMessageSize bounds one signalling frame on the wire, in bytes. A sealed
// SDP offer with a few dozen candidates fits several times over.
const MaxMessageSize = 64 << 10

// MaxDataSize bounds Message.Data (before base64).
const MaxDataSize = 32 << 10

// Type names a signalling message.
type Type string

// Client-to-server types.
const (
	TypeCreate Type = "create" // host opens a room
	TypeJoin   Type = "join"   // receiver enters a room
	TypeRelay  Type = "relay"  // forward Data to To (client->server) / from From (server->client)
	TypeClose  Type = "close"  // host closes its room; Code says why
	TypeLeave  Type = "leave"  // either side ends one handshake with Peer

	TypeSeed    Type = "seed"    // offer Slots upload slots; Complete when holding every piece
	TypeWant    Type = "want"    // ask for up to Count more sources
	TypeRelease Type = "release" // end the assignment with Peer, freeing its slot
	TypeFail    Type = "fail"    // a handshake failed on the password
)

// Server-to-client types.
const (
	TypeCreated Type = "created" // Room and Peer (the host's own ID)
	TypeJoined  Type = "joined"  // Room, Peer (own ID) and Host
	TypeLeft    Type = "left"    // Peer is gone (disconnected or sent leave)
	TypeError   Type = "error"   // Code and Text; fatal unless Code is per-message
	TypePeers   Type = "peers"   // Peers: sources assigned to us, a slot reserved on each
	TypeQueued  Type = "queued"  // Position in the room's FIFO queue for a free slot
)

// Limits of the seed pool fields.
const (
	MaxSlots    = 64 // upload slots one source may offer
	MaxWant     = 16 // sources one want may ask for
	KeySize     = 32 // Ed25519 public key
	MaxFailures = 1000
	// MaxSources bounds queued's sources: more than any server's
	// connection cap.
	MaxSources = 1 << 20
)

// Message is the one wire struct of the signalling protocol. Unused fields
// are omitted; which fields a type uses is listed beside the type constants.
type Message struct {
	Type    Type   `json:"type"`
	Version int    `json:"v,omitempty"`
	Room    string `json:"room,omitempty"`
	Peer    string `json:"peer,omitempty"` // own ID (created/joined), or the other end (relay, left, leave)
	Host    string `json:"host,omitempty"` // joined: the host's peer ID
	Data    []byte `json:"data,omitempty"` // relay: opaque end-to-end payload
	Code    Code   `json:"code,omitempty"`
	Text    string `json:"text,omitempty"`

	Slots       int      `json:"slots,omitempty"`        // create, seed
	Complete    bool     `json:"complete,omitempty"`     // seed
	Count       int      `json:"count,omitempty"`        // want
	Peers       []string `json:"peers,omitempty"`        // peers
	Position    int      `json:"position,omitempty"`     // queued
	Sources     int      `json:"sources,omitempty"`      // queued: others that could serve (see above)
	Key         []byte   `json:"key,omitempty"`          // create, joined: manifest-signing public key
	MaxFailures int      `json:"max_failures,omitempty"` // create

	ICE []ICEServer `json:"ice,omitempty"` // created, joined: STUN and TURN servers for this member
}

// ICEServer is a STUN or TURN server a member may use, as WebRTC's
// RTCIceServer has it.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Limits of the ice field.
const (
	MaxICEServers = 4
	maxICEURLs    = 4
	maxICEField   = 256
)

func (s ICEServer) valid() bool {
	if len(s.URLs) == 0 || len(s.URLs) > maxICEURLs || len(s.Username) > maxICEField || len(s.Credential) > maxICEField {
		return false
	}
	for _, u := range s.URLs {
		scheme, rest, ok := strings.Cut(u, ":")
		if !ok || rest == "" || len(u) > maxICEField || !slices.Contains([]string{"stun", "stuns", "turn", "turns"}, scheme) {
			return false
		}
	}
	return true
}

// Encode returns the wire form of m after checking it.
func Encode(m *Message) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("encode signalling message: %w", err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode signalling message: %w", err)
	}
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("encode signalling message: %w: %d bytes", ErrTooLarge, len(b))
	}
	return b, nil
}

// Decode parses and checks one wire frame. Everything in it came from the
// network: the result is valid per Validate or an error wrapping
// ErrBadMessage or ErrTooLarge.
func Decode(b []byte) (*Message, error) {
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("decode signalling message: %w: %d bytes", ErrTooLarge, len(b))
	}
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode signalling message: %w: %v", ErrBadMessage, err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("decode signalling message: %w", err)
	}
	return &m, nil
}

// Validate checks that m carries what its type needs and nothing malformed.
func (m *Message) Validate() error {
	if len(m.Data) > MaxDataSize {
		return fmt.Errorf("%w: data of %d bytes", ErrTooLarge, len(m.Data))
	}
	if len(m.Text) > 512 {
		return fmt.Errorf("%w: text of %d bytes", ErrBadMessage, len(m.Text))
	}
	if m.Room != "" && !ValidRoomID(m.Room) {
		return fmt.Errorf("%w: malformed room ID", ErrBadMessage)
	}
	for _, p := range []string{m.Peer, m.Host} {
		if p != "" && !ValidPeerID(p) {
			return fmt.Errorf("%w: malformed peer ID", ErrBadMessage)
		}
	}
	if len(m.Peers) > MaxWant {
		return fmt.Errorf("%w: %d peers", ErrBadMessage, len(m.Peers))
	}
	for _, p := range m.Peers {
		if !ValidPeerID(p) {
			return fmt.Errorf("%w: malformed peer ID", ErrBadMessage)
		}
	}
	if m.Key != nil && len(m.Key) != KeySize {
		return fmt.Errorf("%w: key of %d bytes", ErrBadMessage, len(m.Key))
	}
	if m.Slots < 0 || m.Slots > MaxSlots || m.Count < 0 || m.Count > MaxWant || m.Position < 0 ||
		m.Sources < 0 || m.Sources > MaxSources || m.Sources > 0 && m.Type != TypeQueued ||
		m.MaxFailures < 0 || m.MaxFailures > MaxFailures {
		return fmt.Errorf("%w: field out of range", ErrBadMessage)
	}
	if len(m.ICE) > MaxICEServers || len(m.ICE) > 0 && m.Type != TypeCreated && m.Type != TypeJoined {
		return fmt.Errorf("%w: ice servers out of place or too many", ErrBadMessage)
	}
	for _, s := range m.ICE {
		if !s.valid() {
			return fmt.Errorf("%w: malformed ice server", ErrBadMessage)
		}
	}
	if m.Code != "" && !m.Code.known() {
		return fmt.Errorf("%w: unknown code %q", ErrBadMessage, string(m.Code))
	}
	need := func(ok bool, what string) error {
		if !ok {
			return fmt.Errorf("%w: %s without %s", ErrBadMessage, m.Type, what)
		}
		return nil
	}
	switch m.Type {
	case TypeCreate:
		return need(m.Version != 0, "version")
	case TypeJoin:
		if err := need(m.Version != 0, "version"); err != nil {
			return err
		}
		return need(m.Room != "", "room")
	case TypeRelay:
		if err := need(m.Peer != "", "peer"); err != nil {
			return err
		}
		return need(len(m.Data) > 0, "data")
	case TypeClose, TypeFail:
		return nil
	case TypeSeed:
		return need(m.Slots > 0, "slots")
	case TypeWant:
		return need(m.Count > 0, "count")
	case TypeRelease:
		return need(m.Peer != "", "peer")
	case TypePeers:
		return need(len(m.Peers) > 0, "peers")
	case TypeQueued:
		return need(m.Position > 0, "position")
	case TypeLeave, TypeLeft:
		return need(m.Peer != "", "peer")
	case TypeCreated:
		if err := need(m.Room != "", "room"); err != nil {
			return err
		}
		return need(m.Peer != "", "peer")
	case TypeJoined:
		if err := need(m.Room != "" && m.Peer != "", "room and peer"); err != nil {
			return err
		}
		return need(m.Host != "", "host")
	case TypeError:
		return need(m.Code != "", "code")
	default:
		return fmt.Errorf("%w: unknown type %q", ErrBadMessage, string(m.Type))
	}
}
