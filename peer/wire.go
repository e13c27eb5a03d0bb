package peer

// Peer-to-peer protocols, version 1. Two live here because both run between
// the same two peers and share their limits. (Direct lanes between hosts
// added ports to {direct} that an older peer refuses; the manifest's
// version already keeps peers of different releases apart.)
//
// 1. Sealed signalling. After the PAKE (package pake), each relay frame is a
// pake sealed frame whose plaintext is one JSON signalMsg:
//
//	receiver                                  sender
//	  |-- hello / reply / confirm (pake) ------->|
//	  |-- {t:offer, sdp, lanes} ---------------->|
//	  |-- {t:cand, cand} ... (trickle) --------->|
//	  |<------------ {t:answer, sdp, key, lanes} -|   (key: the sender's
//	  |                                          |    manifest key; lanes:
//	  |                                          |    connections it takes)
//	  |<----------------------- {t:cand} ...    -|
//	  |-- {t:bye} or <--------------- {t:bye} ---|   (either side gives up)
//	  |   ... once the source's first frame has come on the first connection:
//	  |-- {t:offer} / {t:cand} ... <-- {t:answer} |   (lane 2, 3, ... up to
//	  |                                          |    lanes, one at a time)
//	  |-- or {t:lanes, lanes:1} ---------------->|   (a short path: none)
//	  |-- or {t:lanes, lanes:1+k, direct} ------>|   (k direct lanes, see
//	  |<--------------------- {t:direct, direct} |    below; the sender says
//	  |                                          |    {t:lanes, lanes:1} if
//	  |                                          |    it cannot)
//	  |   ... if none opens: lanes as above, or {t:lanes, lanes:1}
//
// Lanes are extra peer connections, each its own SCTP association, that
// carry only piece data ('D' and 'E' frames) from the source to the
// downloader. A loss burst that stalls one association (pion waits out a
// retransmission timeout) leaves the others sending. Every other frame,
// and all requests, use the first connection.
//
// A direct lane is one without ICE, where the first connection's ICE pair
// shows none is needed: two peers on one host (each end binds 127.0.0.1),
// or two host candidates (each end binds its address of that pair). It is
// DTLS, SCTP and a data channel (DCEP, as a peer connection opens one)
// over a UDP socket at each end; the sealed {direct} object holds each
// lane's port and the SHA-256 of the ends' DTLS certificate. The
// downloader is the DTLS and SCTP client. SCTP packets on it are up to
// directMTU bytes on one host, where a peer connection sends 1191; between
// hosts the source first probes what the path carries (pmtu.go). A
// downloader asks for one direct lane, or for as many as it would open
// lanes where the path is long; the source opens as many as both allow,
// the first ones asked for. Once one opens, the source sends pieces only on
// direct lanes.
//
// 2. Data channel, version 2 (the swarm). The downloader (PAKE initiator,
// offerer) opens one ordered, reliable channel labelled DataChannelLabel to
// a source: the sender, a seed, or a receiver still downloading. Every
// message is one frame: a type byte, then big-endian fields.
//
//	downloader                                source
//	  |<------------------- 'M' signed manifest part ...| (until total bytes)
//	  |<------------------- 'H' have-bitmap part ...    | (pieces it can serve)
//	  |-- 'S' serves (only if we serve others) -------->|
//	  |-- 'H' have-bitmap part ... -------------------->| (pieces we hold)
//	  |-- 'W' want piece indices ---------------------->| (only pieces it has)
//	  |<------------------- 'D' piece data ...          | (in order within a piece)
//	  |<------------------- 'A' have piece indices      | (as it verifies more)
//	  |-- 'A' have piece indices ---------------------->| (as we verify more)
//	  |-- 'X' cancel piece indices -------------------->| (arrived elsewhere)
//	  |-- 'F' finished {seeding} ---------------------->| (all verified)
//	  |<------------------- 'E' error (either way, ends the channel)
//
// Pieces are chunker's: data chunks, then Reed-Solomon parity pieces. The
// manifest is signed by the sender (see trust.go); a source forwards the
// signed bytes exactly as it got them. Haves flow both ways so the sender
// learns what the swarm holds and can say when it may leave; it counts
// only downloaders that said (with 'S') they pass pieces on.

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/p2pxfer/p2pxfer/chunker"
)

// DataChannelLabel names the transfer channel; the version is in the label
// so a sender refuses a channel of another protocol version outright.
const DataChannelLabel = "p2pxfer/2"

// Sealed signalling message types.
const (
	sigOffer  = "offer"
	sigAnswer = "answer"
	sigCand   = "cand"
	sigBye    = "bye"
	// sigLanes: the downloader opens only this many connections in all
	// (it found the path too short for lanes).
	sigLanes = "lanes"
	// sigDirect: the source's end of a direct lane.
	sigDirect = "direct"
)

// signalMsg is the wire form of one sealed signalling message.
type signalMsg struct {
	T    string    `json:"t"`
	SDP  string    `json:"sdp,omitempty"`
	Cand *wireCand `json:"cand,omitempty"`
	Why  string    `json:"why,omitempty"`
	// Key, in the sender's answer: its manifest-signing public key, which
	// the receiver compares with the one the signalling server gave it.
	Key []byte `json:"key,omitempty"`
	// Lanes, in the first offer: how many connections in all the
	// downloader would use; in the answer, how many it will (the smaller
	// count). 0 from a peer that predates lanes: one.
	Lanes int `json:"lanes,omitempty"`
	// Direct, in {t:lanes} from the downloader and in {t:direct} from the
	// source: that end of the direct lanes.
	Direct *wireDirect `json:"direct,omitempty"`
}

// wireDirect is one end of direct lanes: the first lane's UDP port, the
// SHA-256 of the DTLS certificate of all of them, which the other end
// requires, and the other lanes' ports.
type wireDirect struct {
	Port        uint16   `json:"port"`
	Fingerprint []byte   `json:"fp"`
	More        []uint16 `json:"more,omitempty"`
}

// ports lists the lanes' ports in order.
func (w *wireDirect) ports() []uint16 { return append([]uint16{w.Port}, w.More...) }

// MaxLanes bounds the connections one downloader opens to one source.
const MaxLanes = 4

// wireCand is an ICE candidate on the wire (RTCIceCandidateInit).
type wireCand struct {
	Candidate     string  `json:"candidate"`
	SDPMid        *string `json:"sdpMid,omitempty"`
	SDPMLineIndex *uint16 `json:"sdpMLineIndex,omitempty"`
}

const maxWhy = 256

func decodeSignal(b []byte) (*signalMsg, error) {
	var m signalMsg
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: sealed signalling: %v", ErrProtocol, err)
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
	case sigLanes:
		if m.Lanes == 0 {
			return nil, fmt.Errorf("%w: lanes message without a count", ErrProtocol)
		}
	case sigDirect:
		if m.Direct == nil {
			return nil, fmt.Errorf("%w: direct message without its end", ErrProtocol)
		}
	default:
		return nil, fmt.Errorf("%w: unknown sealed signalling type %q", ErrProtocol, m.T)
	}
	if m.Key != nil && (m.T != sigAnswer || len(m.Key) != ed25519.PublicKeySize) {
		return nil, fmt.Errorf("%w: malformed key", ErrProtocol)
	}
	if m.Lanes != 0 && (m.T != sigOffer && m.T != sigAnswer && m.T != sigLanes || m.Lanes < 1 || m.Lanes > MaxLanes) {
		return nil, fmt.Errorf("%w: malformed lane count", ErrProtocol)
	}
	if m.Direct != nil && (m.T != sigDirect && (m.T != sigLanes || m.Lanes != 2+len(m.Direct.More)) ||
		len(m.Direct.More) > MaxLanes-2 || slices.Contains(m.Direct.ports(), 0) || len(m.Direct.Fingerprint) != sha256.Size) {
		return nil, fmt.Errorf("%w: malformed direct lane", ErrProtocol)
	}
	if len(m.Why) > maxWhy || !utf8.ValidString(m.Why) {
		return nil, fmt.Errorf("%w: malformed reason", ErrProtocol)
	}
	return &m, nil
}

// Data channel frame types.
const (
	frameManifest = 'M'
	frameBitmap   = 'H'
	frameHave     = 'A'
	frameWant     = 'W'
	frameCancel   = 'X'
	frameData     = 'D'
	frameFinished = 'F'
	frameServes   = 'S'
	frameError    = 'E'
)

// Flags of the finished frame.
const finishedSeeding = 1 // the downloader stays in the room as a seed

const (
	// maxFrame bounds one data channel message: pion's default SCTP
	// max-message-size is 64 KiB.
	maxFrame = 64 << 10
	// dataHeader is 'D', piece index, offset within the piece.
	dataHeader = 1 + 4 + 4
	// maxDataPayload is the piece bytes one 'D' frame carries.
	maxDataPayload = maxFrame - dataHeader
	// partHeader is 'M' or 'H', total length, offset.
	partHeader = 1 + 4 + 4
	// maxList bounds the indices in one 'W', 'X' or 'A' frame.
	maxList = (maxFrame - 3) / 4
	// maxSignedManifest bounds an 'M' total: a manifest and its signature.
	maxSignedManifest = chunker.MaxManifestSize + signatureSize
	// maxBitmap bounds an 'H' total: one bit per piece.
	maxBitmap = (chunker.MaxChunks + chunker.MaxChunks) / 8
)

// frame is one decoded data channel message. Data aliases the read buffer.
type frame struct {
	Type   byte
	Index  uint32   // 'D': piece index
	Offset uint32   // 'D': offset in the piece; 'M', 'H': offset in the whole
	Total  uint32   // 'M', 'H': length of the whole
	List   []uint32 // 'W', 'X', 'A'
	Flags  byte     // 'F', 'S'
	Data   []byte   // 'D', 'M', 'H': payload; 'E': message
}

// parseFrame checks one message's structure; the caller checks that indices
// and offsets fit its state.
func parseFrame(b []byte) (frame, error) {
	if len(b) == 0 {
		return frame{}, fmt.Errorf("%w: empty frame", ErrProtocol)
	}
	if len(b) > maxFrame {
		return frame{}, fmt.Errorf("%w: frame of %d bytes", ErrProtocol, len(b))
	}
	f := frame{Type: b[0]}
	switch f.Type {
	case frameManifest, frameBitmap:
		if len(b) < partHeader || (len(b) == partHeader && binary.BigEndian.Uint32(b[1:]) != 0) {
			return f, fmt.Errorf("%w: short %q frame", ErrProtocol, f.Type)
		}
		f.Total = binary.BigEndian.Uint32(b[1:])
		f.Offset = binary.BigEndian.Uint32(b[5:])
		f.Data = b[partHeader:]
		limit := uint32(maxSignedManifest)
		if f.Type == frameBitmap {
			limit = maxBitmap
		}
		if f.Total > limit || uint64(f.Offset)+uint64(len(f.Data)) > uint64(f.Total) {
			return f, fmt.Errorf("%w: %q frame out of bounds", ErrProtocol, f.Type)
		}
	case frameWant, frameCancel, frameHave:
		if len(b) < 3 {
			return f, fmt.Errorf("%w: short %q frame", ErrProtocol, f.Type)
		}
		n := int(binary.BigEndian.Uint16(b[1:]))
		if n == 0 || len(b) != 3+4*n {
			return f, fmt.Errorf("%w: %q frame length", ErrProtocol, f.Type)
		}
		f.List = make([]uint32, n)
		for i := range f.List {
			f.List[i] = binary.BigEndian.Uint32(b[3+4*i:])
		}
	case frameData:
		if len(b) <= dataHeader {
			return f, fmt.Errorf("%w: short data frame", ErrProtocol)
		}
		f.Index = binary.BigEndian.Uint32(b[1:])
		f.Offset = binary.BigEndian.Uint32(b[5:])
		f.Data = b[dataHeader:]
	case frameFinished, frameServes:
		if len(b) != 2 || b[1]&^finishedSeeding != 0 {
			return f, fmt.Errorf("%w: %q frame", ErrProtocol, f.Type)
		}
		f.Flags = b[1]
	case frameError:
		f.Data = b[1:]
		if len(f.Data) > maxWhy || !utf8.Valid(f.Data) {
			return f, fmt.Errorf("%w: malformed error frame", ErrProtocol)
		}
	default:
		return f, fmt.Errorf("%w: unknown frame type %#x", ErrProtocol, f.Type)
	}
	return f, nil
}

func appendDataHeader(dst []byte, index, offset uint32) []byte {
	dst = append(dst, frameData)
	dst = binary.BigEndian.AppendUint32(dst, index)
	return binary.BigEndian.AppendUint32(dst, offset)
}

func appendPartHeader(dst []byte, typ byte, total, offset uint32) []byte {
	dst = append(dst, typ)
	dst = binary.BigEndian.AppendUint32(dst, total)
	return binary.BigEndian.AppendUint32(dst, offset)
}

// listFrames encodes indices as frames of type typ ('W', 'X' or 'A'), at
// most maxList indices each.
func listFrames(typ byte, indices []uint32) [][]byte {
	var out [][]byte
	for len(indices) > 0 {
		n := min(len(indices), maxList)
		b := make([]byte, 3, 3+4*n)
		b[0] = typ
		binary.BigEndian.PutUint16(b[1:], uint16(n))
		for _, i := range indices[:n] {
			b = binary.BigEndian.AppendUint32(b, i)
		}
		out = append(out, b)
		indices = indices[n:]
	}
	return out
}

// partFrames splits whole (a signed manifest or a bitmap) into 'M' or 'H'
// frames; an empty whole still takes one frame so the peer hears of it.
func partFrames(typ byte, whole []byte) [][]byte {
	var out [][]byte
	for off := 0; off < len(whole) || off == 0; off += maxFrame - partHeader {
		end := min(off+maxFrame-partHeader, len(whole))
		b := appendPartHeader(make([]byte, 0, partHeader+end-off), typ, uint32(len(whole)), uint32(off))
		out = append(out, append(b, whole[off:end]...))
		if len(whole) == 0 {
			break
		}
	}
	return out
}

// assembler reassembles one 'M' or 'H' whole from its parts, in order.
type assembler struct {
	buf   []byte
	total uint32
	done  bool
}

// add takes one part and reports whether the whole is complete.
func (a *assembler) add(f frame) (bool, error) {
	if a.done {
		return false, fmt.Errorf("%w: second %q", ErrProtocol, f.Type)
	}
	if a.buf == nil {
		a.total = f.Total
		a.buf = make([]byte, 0, min(int(f.Total), 1<<20))
	}
	if int(f.Offset) != len(a.buf) || f.Total != a.total {
		return false, fmt.Errorf("%w: %q part out of order", ErrProtocol, f.Type)
	}
	a.buf = append(a.buf, f.Data...)
	a.done = len(a.buf) == int(a.total)
	return a.done, nil
}

// errorFrame tells the peer why we stop. Callers give a fixed reason, never
// a local error's text, which would show the peer our paths.
func errorFrame(msg string) []byte {
	if len(msg) > maxWhy {
		msg = strings.ToValidUTF8(msg[:maxWhy], "") // a cut may split a rune
	}
	return append([]byte{frameError}, msg...)
}
