package peer

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestFrames(t *testing.T) {
	f, err := parseFrame(append(appendDataHeader(nil, 7, 4096), "abc"...))
	if err != nil || f.Type != frameData || f.Index != 7 || f.Offset != 4096 || string(f.Data) != "abc" {
		t.Fatalf("data frame: %+v %v", f, err)
	}
	f, err = parseFrame(append(appendPartHeader(nil, frameManifest, 10, 5), "12345"...))
	if err != nil || f.Total != 10 || f.Offset != 5 {
		t.Fatalf("manifest frame: %+v %v", f, err)
	}
	for _, typ := range []byte{frameWant, frameCancel, frameHave} {
		f, err = parseFrame(listFrames(typ, []uint32{1, 2, 1 << 31})[0])
		if err != nil || f.Type != typ || len(f.List) != 3 || f.List[2] != 1<<31 {
			t.Fatalf("%q frame: %+v %v", typ, f, err)
		}
	}
	if frames := listFrames(frameWant, make([]uint32, maxList+1)); len(frames) != 2 {
		t.Fatalf("%d frames for maxList+1 indices", len(frames))
	}
	if f, err = parseFrame([]byte{frameFinished, finishedSeeding}); err != nil || f.Flags != finishedSeeding {
		t.Fatalf("finished frame: %+v %v", f, err)
	}
	if f, err = parseFrame(errorFrame(string(bytes.Repeat([]byte("é"), 300)))); err != nil || len(f.Data) > maxWhy {
		t.Fatalf("long error frame: %v", err)
	}
	// An empty bitmap (no pieces) is one header-only frame.
	if fr := partFrames(frameBitmap, nil); len(fr) != 1 {
		t.Fatalf("empty bitmap in %d frames", len(fr))
	} else if f, err = parseFrame(fr[0]); err != nil || f.Total != 0 {
		t.Fatalf("empty bitmap frame: %+v %v", f, err)
	}
	// Parts reassemble in order only.
	whole := bytes.Repeat([]byte("m"), 3*maxFrame)
	var a assembler
	for i, b := range partFrames(frameManifest, whole) {
		f, err := parseFrame(b)
		if err != nil {
			t.Fatal(err)
		}
		done, err := a.add(f)
		if err != nil || done != (i == 3) {
			t.Fatalf("part %d: done %v, %v", i, done, err)
		}
	}
	if !bytes.Equal(a.buf, whole) {
		t.Fatal("reassembled manifest differs")
	}
	var b assembler
	parts := partFrames(frameManifest, whole)
	f0, _ := parseFrame(parts[1])
	if _, err := b.add(f0); !errors.Is(err, ErrProtocol) {
		t.Fatalf("part out of order: %v", err)
	}
	bad := [][]byte{
		nil, {0}, {'Z'}, {frameData, 0, 0, 0, 1, 0, 0, 0, 0}, // no payload
		{frameWant, 0, 0}, {frameWant, 0, 2, 0, 0, 0, 1}, {frameCancel, 0}, {frameHave, 0, 1, 0},
		{frameFinished}, {frameFinished, 2}, {frameFinished, 1, 0}, {frameServes}, {frameServes, 3},
		append(appendPartHeader(nil, frameManifest, 3, 2), "xx"...), // past total
		append(appendPartHeader(nil, frameManifest, 1<<30, 0), "x"...),
		append(appendPartHeader(nil, frameBitmap, 1<<30, 0), "x"...),
		appendPartHeader(nil, frameBitmap, 5, 0), // empty part of a non-empty whole
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
	key := `"` + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" + `"`
	direct := func(port int, fp string) string { return fmt.Sprintf(`"direct":{"port":%d,"fp":%s}`, port, fp) }
	more := func(ports string) string { return `"direct":{"port":5000,"fp":` + key + `,"more":` + ports + `}` }
	for _, s := range []string{`{"t":"offer","sdp":"v=0"}`, `{"t":"cand","cand":{"candidate":"x"}}`, `{"t":"bye","why":"x"}`,
		`{"t":"answer","sdp":"v=0","key":` + key + `}`, `{"t":"offer","sdp":"v=0","lanes":3}`,
		`{"t":"answer","sdp":"v=0","lanes":4}`, `{"t":"lanes","lanes":1}`,
		`{"t":"lanes","lanes":2,` + direct(5000, key) + `}`, `{"t":"direct",` + direct(65535, key) + `}`,
		`{"t":"lanes","lanes":4,` + more(`[5001,5002]`) + `}`, `{"t":"direct",` + more(`[5001]`) + `}`} {
		if _, err := decodeSignal([]byte(s)); err != nil {
			t.Errorf("decodeSignal(%s): %v", s, err)
		}
	}
	for _, s := range []string{``, `{}`, `{"t":"offer"}`, `{"t":"cand"}`, `{"t":"hack","sdp":"x"}`, `[1]`,
		`{"t":"offer","sdp":"v=0","key":` + key + `}`, `{"t":"answer","sdp":"v=0","key":"AAAA"}`,
		`{"t":"lanes"}`, `{"t":"lanes","lanes":5}`, `{"t":"offer","sdp":"v=0","lanes":-1}`,
		`{"t":"cand","cand":{"candidate":"x"},"lanes":2}`, `{"t":"bye","lanes":2}`,
		`{"t":"direct"}`, `{"t":"direct",` + direct(0, key) + `}`, `{"t":"direct",` + direct(65536, key) + `}`,
		`{"t":"direct",` + direct(5000, `"AAAA"`) + `}`, `{"t":"direct",` + direct(5000, `null`) + `}`,
		`{"t":"lanes","lanes":1,` + direct(5000, key) + `}`, `{"t":"lanes","lanes":3,` + direct(5000, key) + `}`,
		`{"t":"offer","sdp":"v=0",` + direct(5000, key) + `}`, `{"t":"bye",` + direct(5000, key) + `}`,
		`{"t":"lanes","lanes":2,` + more(`[5001]`) + `}`, `{"t":"direct",` + more(`[5001,0]`) + `}`,
		`{"t":"direct",` + more(`[5001,5002,5003]`) + `}`, `{"t":"direct",` + more(`[70000]`) + `}`} {
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
	f.Add(append(appendPartHeader(nil, frameManifest, 4, 0), "abcd"...))
	f.Add(append(appendPartHeader(nil, frameBitmap, 1, 0), 0xff))
	f.Add(listFrames(frameWant, []uint32{0, 5, 9})[0])
	f.Add(listFrames(frameHave, []uint32{3})[0])
	f.Add([]byte{frameFinished, 1})
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
		case frameManifest, frameBitmap:
			if uint64(fr.Offset)+uint64(len(fr.Data)) > uint64(fr.Total) {
				t.Fatal("part past its total")
			}
		case frameWant, frameCancel, frameHave:
			if len(fr.List) == 0 || len(fr.List) > maxList {
				t.Fatalf("%d indices", len(fr.List))
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
	f.Add([]byte(`{"t":"lanes","lanes":1}`))
	f.Add([]byte(`{"t":"offer","sdp":"v=0\r\n","lanes":3}`))
	f.Add([]byte(`{"t":"direct","direct":{"port":5000,"fp":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}`))
	f.Add([]byte(`{"t":"lanes","lanes":2,"direct":{"port":5000,"fp":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}`))
	f.Add([]byte(`{"t":"lanes","lanes":4,"direct":{"port":5000,"fp":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","more":[5001,5002]}}`))
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
		if m.Key != nil && (m.T != sigAnswer || len(m.Key) != 32) {
			t.Fatalf("accepted malformed key in %+v", m)
		}
		if m.Lanes < 0 || m.Lanes > MaxLanes || m.T == sigLanes && m.Lanes == 0 ||
			m.Lanes != 0 && m.T != sigOffer && m.T != sigAnswer && m.T != sigLanes {
			t.Fatalf("accepted malformed lane count in %+v", m)
		}
		if m.T == sigDirect && m.Direct == nil || m.Direct != nil && (slices.Contains(m.Direct.ports(), 0) || len(m.Direct.Fingerprint) != 32 ||
			len(m.Direct.ports()) > MaxLanes-1 || m.T != sigDirect && !(m.T == sigLanes && m.Lanes == 1+len(m.Direct.ports()))) {
			t.Fatalf("accepted malformed direct lane in %+v", m)
		}
	})
}
