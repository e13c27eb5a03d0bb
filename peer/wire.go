package peer

// Peer-to-peer protocols, version 1. Two live here because both run between
// the same two peers and share their limits.
//
// 1. Sealed signalling. After the PAKE (package pake), each relay frame is a
// pake sealed frame whose plaintext is one JSON signalMsg:
//
//	receiver                                  sender
//	  |-- hello / reply / confirm (pake) ------->|
//	  |-- {t:offer, sdp} ----------------------->|
//	  |-- {t:cand, cand} ... (trickle) --------->|
//	  |<----------------------- {t:answer, sdp} -|
//	  |<----------------------- {t:cand} ...    -|
//	  |-- {t:bye} or <--------------- {t:bye} ---|   (either side gives up)
//
// 2. Data channel. The receiver opens one ordered, reliable channel labelled
// DataChannelLabel. Every message is one frame: a type byte, then big-endian
// fields.
//
//	receiver                                  sender
//	  |<------------------- 'M' manifest part ...| (until total bytes)
//	  |-- 'W' want chunk indices --------------->| (keeps a window open)
//	  |<------------------- 'D' chunk data ...   | (in order within a chunk)
//	  |-- 'F' finished, all verified ----------->|
//	  |<------------------- 'E' error (either way, ends the transfer)

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/p2pxfer/p2pxfer/chunker"
)

// DataChannelLabel names the transfer channel; the version is in the label
// so a sender refuses a channel of another protocol version outright.
const DataChannelLabel = "p2pxfer/1"

// Sealed signalling message types.
const (
	sigOffer  = "offer"
	sigAnswer = "answer"
	sigCand   = "cand"
	sigBye    = "bye"
)

// signalMsg is the wire form of one sealed signalling message.
type signalMsg struct {
	T    string    `json:"t"`
	SDP  string    `json:"sdp,omitempty"`
	Cand *wireCand `json:"cand,omitempty"`
	Why  string    `json:"why,omitempty"`
}

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
	default:
		return nil, fmt.Errorf("%w: unknown sealed signalling type %q", ErrProtocol, m.T)
	}
	if len(m.Why) > maxWhy || !utf8.ValidString(m.Why) {
		return nil, fmt.Errorf("%w: malformed reason", ErrProtocol)
	}
	return &m, nil
}

// Data channel frame types.
const (
	frameManifest = 'M'
	frameWant     = 'W'
	frameData     = 'D'
	frameFinished = 'F'
	frameError    = 'E'
)

const (
	// maxFrame bounds one data channel message: pion's default SCTP
	// max-message-size is 64 KiB.
	maxFrame = 64 << 10
	// dataHeader is 'D', chunk index, offset within the chunk.
	dataHeader = 1 + 4 + 4
	// maxDataPayload is the chunk bytes one 'D' frame carries.
	maxDataPayload = maxFrame - dataHeader
	// manifestHeader is 'M', total length, offset.
	manifestHeader = 1 + 4 + 4
	// maxWant bounds the indices in one 'W' frame.
	maxWant = (maxFrame - 3) / 4
)

// frame is one decoded data channel message. Data aliases the read buffer.
type frame struct {
	Type   byte
	Index  uint32   // 'D': chunk index
	Offset uint32   // 'D': offset in the chunk; 'M': offset in the manifest
	Total  uint32   // 'M': manifest length
	Want   []uint32 // 'W'
	Data   []byte   // 'D', 'M': payload; 'E': message
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
	case frameManifest:
		if len(b) <= manifestHeader {
			return f, fmt.Errorf("%w: short manifest frame", ErrProtocol)
		}
		f.Total = binary.BigEndian.Uint32(b[1:])
		f.Offset = binary.BigEndian.Uint32(b[5:])
		f.Data = b[manifestHeader:]
		if f.Total > chunker.MaxManifestSize || uint64(f.Offset)+uint64(len(f.Data)) > uint64(f.Total) {
			return f, fmt.Errorf("%w: manifest frame out of bounds", ErrProtocol)
		}
	case frameWant:
		if len(b) < 3 {
			return f, fmt.Errorf("%w: short want frame", ErrProtocol)
		}
		n := int(binary.BigEndian.Uint16(b[1:]))
		if n == 0 || len(b) != 3+4*n {
			return f, fmt.Errorf("%w: want frame length", ErrProtocol)
		}
		f.Want = make([]uint32, n)
		for i := range f.Want {
			f.Want[i] = binary.BigEndian.Uint32(b[3+4*i:])
		}
	case frameData:
		if len(b) <= dataHeader {
			return f, fmt.Errorf("%w: short data frame", ErrProtocol)
		}
		f.Index = binary.BigEndian.Uint32(b[1:])
		f.Offset = binary.BigEndian.Uint32(b[5:])
		f.Data = b[dataHeader:]
	case frameFinished:
		if len(b) != 1 {
			return f, fmt.Errorf("%w: finished frame length", ErrProtocol)
		}
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

func appendManifestHeader(dst []byte, total, offset uint32) []byte {
	dst = append(dst, frameManifest)
	dst = binary.BigEndian.AppendUint32(dst, total)
	return binary.BigEndian.AppendUint32(dst, offset)
}

func wantFrame(indices []uint32) []byte {
	b := make([]byte, 3, 3+4*len(indices))
	b[0] = frameWant
	binary.BigEndian.PutUint16(b[1:], uint16(len(indices)))
	for _, i := range indices {
		b = binary.BigEndian.AppendUint32(b, i)
	}
	return b
}

// errorFrame tells the peer why we stop. Callers give a fixed reason, never
// a local error's text, which would show the peer our paths.
func errorFrame(msg string) []byte {
	if len(msg) > maxWhy {
		msg = strings.ToValidUTF8(msg[:maxWhy], "") // a cut may split a rune
	}
	return append([]byte{frameError}, msg...)
}
