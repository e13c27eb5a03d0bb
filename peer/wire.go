package peer

// Data channel protocol, version 3: the swarm's. It runs on the channels
// of a lane.Conn, whose label (DataChannelLabel) carries the version, so
// an end refuses a channel of another version outright. The downloader
// dials (lane.Transport.Dial) a source: the sender, a seed, or a receiver
// still downloading. Every message is one frame: a type byte, then
// big-endian fields.
//
//	downloader                                source
//	  |<------------------- 'M' signed manifest part ...| (until total bytes)
//	  |<------------------- 'H' have-bitmap part ...    | (pieces it can serve)
//	  |-- 'S' serves (only if we serve others) -------->|
//	  |-- 'H' have-bitmap part ... -------------------->| (pieces we hold)
//	  |-- 'W' want piece indices ---------------------->| (only pieces it has)
//	  |<------------------- 'D' piece data ...          | (in order within a piece)
//	  |<------------------- 'A' have piece indices      | (as it verifies more)
//	  |<------------------- 'C' source changed {file}   | (it no longer offers that file)
//	  |-- 'A' have piece indices ---------------------->| (as we verify more)
//	  |-- 'X' cancel piece indices -------------------->| (arrived elsewhere)
//	  |-- 'F' finished {seeding} ---------------------->| (all verified)
//	  |<------------------- 'E' error (either way, ends the channel)
//
// The frames, at most maxFrame bytes each:
//
//	'M' manifest part  ['M'][total:4][offset:4][bytes]   total ≤ maxSignedManifest
//	'H' bitmap part    ['H'][total:4][offset:4][bytes]   total ≤ maxBitmap; piece i
//	                                                     is bit i%8 (LSB 0) of byte i/8
//	'W' want           ['W'][n:2][piece:4 × n]           1 ≤ n ≤ maxList
//	'X' cancel         ['X'][n:2][piece:4 × n]           1 ≤ n ≤ maxList
//	'A' have           ['A'][n:2][piece:4 × n]           1 ≤ n ≤ maxList
//	'D' data           ['D'][piece:4][offset:4][bytes]   at least one byte
//	'F' finished       ['F'][flags:1]                    bit 0: it stays as a seed
//	'S' serves         ['S'][flags:1]                    bit 0: it serves others
//	'C' changed        ['C'][file:4]                     index in the manifest's files
//	'E' error          ['E'][reason]                     at most maxWhy bytes of UTF-8
//
// A whole ('M', 'H') goes in parts, in order, each with the whole's
// total and its own offset; an empty whole is one part with total 0.
// A piece goes in 'D' frames in order of offset, one piece at a time per
// channel. Only 'D' and 'E' frames come on lanes (the connections beyond
// the first); everything else, and all requests, use the first.
//
// Pieces are chunker's: data chunks, then Reed-Solomon parity pieces. The
// manifest is signed by the sender (see trust.go); a source forwards the
// signed bytes exactly as it got them. Haves flow both ways so the sender
// learns what the swarm holds and can say when it may leave; it counts
// only downloaders that said (with 'S') they pass pieces on.
//
// 'C' says that a file changed on the source's disk since it was hashed:
// the source no longer offers its pieces (nor parity that covers them),
// and will not, so a downloader that finds no one else holding them
// gives up on them with that reason rather than take it for corruption.
// Version 3 added it.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/p2pxfer/p2pxfer/chunker"
	"github.com/p2pxfer/p2pxfer/peer/lane"
)

// DataChannelLabel names the transfer channels; the version is in the
// label so a source refuses a channel of another protocol version outright.
const DataChannelLabel = "p2pxfer/3"

// maxWhy bounds an error frame's reason.
const maxWhy = 256

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
	frameChanged  = 'C'
)

// Flags of the finished frame.
const finishedSeeding = 1 // the downloader stays in the room as a seed

const (
	// maxFrame bounds one data channel message.
	maxFrame = lane.MaxMessage
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
	File   uint32   // 'C': index of the file in the manifest
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
	case frameChanged:
		if len(b) != 5 {
			return f, fmt.Errorf("%w: %q frame length", ErrProtocol, f.Type)
		}
		f.File = binary.BigEndian.Uint32(b[1:])
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
	_ = writeParts(typ, whole, func(f []byte) error {
		out = append(out, bytes.Clone(f))
		return nil
	})
	return out
}

// writeParts is partFrames frame by frame through write, in one frame
// buffer: a source sends the manifest to every peer that connects, and a
// tree of many files makes it megabytes, which should not be copied whole
// each time. write must not keep the frame.
func writeParts(typ byte, whole []byte, write func([]byte) error) error {
	b := make([]byte, 0, min(maxFrame, partHeader+len(whole)))
	for off := 0; off < len(whole) || off == 0; off += maxFrame - partHeader {
		end := min(off+maxFrame-partHeader, len(whole))
		b = appendPartHeader(b[:0], typ, uint32(len(whole)), uint32(off))
		if err := write(append(b, whole[off:end]...)); err != nil {
			return err
		}
		if len(whole) == 0 {
			break
		}
	}
	return nil
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

// changedFrame tells the peer that file fi changed at its source.
func changedFrame(fi int) []byte {
	return binary.BigEndian.AppendUint32([]byte{frameChanged}, uint32(fi))
}

// errorFrame tells the peer why we stop. Callers give a fixed reason, never
// a local error's text, which would show the peer our paths.
func errorFrame(msg string) []byte {
	if len(msg) > maxWhy {
		msg = strings.ToValidUTF8(msg[:maxWhy], "") // a cut may split a rune
	}
	return append([]byte{frameError}, msg...)
}
