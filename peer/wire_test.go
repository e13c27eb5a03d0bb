package peer

import (
	"bytes"
	"errors"
	"testing"
)

func TestFrames(t *testing.T) {
	f, err := parseFrame(append(appendDataHeader(nil, 7, 4096), "abc"...))
	if err != nil || f.Type != frameData || f.Index != 7 || f.Offset != 4096 || string(f.Data) != "abc" {
		t.Fatalf("data frame: %+v %v", f, err)
	}
	f, err = parseFrame(append(appendManifestHeader(nil, 10, 5), "12345"...))
	if err != nil || f.Total != 10 || f.Offset != 5 {
		t.Fatalf("manifest frame: %+v %v", f, err)
	}
	f, err = parseFrame(wantFrame([]uint32{1, 2, 1 << 31}))
	if err != nil || len(f.Want) != 3 || f.Want[2] != 1<<31 {
		t.Fatalf("want frame: %+v %v", f, err)
	}
	if f, err = parseFrame(errorFrame(string(bytes.Repeat([]byte("é"), 300)))); err != nil || len(f.Data) > maxWhy {
		t.Fatalf("long error frame: %v", err)
	}
	bad := [][]byte{
		nil, {0}, {'Z'}, {frameData, 0, 0, 0, 1, 0, 0, 0, 0}, // no payload
		{frameWant, 0, 0}, {frameWant, 0, 2, 0, 0, 0, 1}, {frameFinished, 0},
		append(appendManifestHeader(nil, 3, 2), "xx"...), // past total
		append(appendManifestHeader(nil, 1<<30, 0), "x"...),
		{frameError, 0xff, 0xfe},
		make([]byte, maxFrame+1),
	}
	for _, b := range bad {
		if _, err := parseFrame(b); !errors.Is(err, ErrProtocol) {
			t.Errorf("parseFrame(%x) = %v, want ErrProtocol", b[:min(len(b), 16)], err)
		}
	}
}

func TestDecodeSignal(t *testing.T) {
	for _, s := range []string{`{"t":"offer","sdp":"v=0"}`, `{"t":"cand","cand":{"candidate":"x"}}`, `{"t":"bye","why":"x"}`} {
		if _, err := decodeSignal([]byte(s)); err != nil {
			t.Errorf("decodeSignal(%s): %v", s, err)
		}
	}
	for _, s := range []string{``, `{}`, `{"t":"offer"}`, `{"t":"cand"}`, `{"t":"hack","sdp":"x"}`, `[1]`} {
		if _, err := decodeSignal([]byte(s)); !errors.Is(err, ErrProtocol) {
			t.Errorf("decodeSignal(%s) = %v, want ErrProtocol", s, err)
		}
	}
}

// FuzzParseFrame: whatever a peer sends on the data channel, parseFrame
// returns a well-formed frame or ErrProtocol, never panics, and keeps
// offsets within the frame.
func FuzzParseFrame(f *testing.F) {
	f.Add(append(appendDataHeader(nil, 1, 0), 1, 2, 3))
	f.Add(append(appendManifestHeader(nil, 4, 0), "abcd"...))
	f.Add(wantFrame([]uint32{0, 5, 9}))
	f.Add([]byte{frameFinished})
	f.Add(errorFrame("no"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := parseFrame(b)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v does not wrap ErrProtocol", err)
			}
			return
		}
		switch fr.Type {
		case frameManifest:
			if uint64(fr.Offset)+uint64(len(fr.Data)) > uint64(fr.Total) {
				t.Fatal("manifest part past its total")
			}
		case frameWant:
			if len(fr.Want) == 0 || len(fr.Want) > maxWant {
				t.Fatalf("%d wants", len(fr.Want))
			}
		case frameData:
			if len(fr.Data) == 0 || len(fr.Data) > maxDataPayload {
				t.Fatalf("data payload of %d", len(fr.Data))
			}
		}
	})
}

// FuzzDecodeSignal: decrypted signalling from a password holder is still
// checked before use.
func FuzzDecodeSignal(f *testing.F) {
	f.Add([]byte(`{"t":"offer","sdp":"v=0\r\n"}`))
	f.Add([]byte(`{"t":"answer","sdp":"v=0\r\n"}`))
	f.Add([]byte(`{"t":"cand","cand":{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0"}}`))
	f.Add([]byte(`{"t":"bye","why":"connection failed"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeSignal(b)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v does not wrap ErrProtocol", err)
			}
			return
		}
		if (m.T == sigOffer || m.T == sigAnswer) && m.SDP == "" || m.T == sigCand && m.Cand == nil || len(m.Why) > maxWhy {
			t.Fatalf("accepted malformed %+v", m)
		}
	})
}
