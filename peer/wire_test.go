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
	if f, err = parseFrame(changedFrame(70000)); err != nil || f.Type != frameChanged || f.File != 70000 {
		t.Fatalf("changed frame: %+v %v", f, err)
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
		{frameChanged}, {frameChanged, 0, 0, 1}, {frameChanged, 0, 0, 0, 1, 0},
		make([]byte, maxFrame+1),
	}
	for _, b := range bad {
		if _, err := parseFrame(b); !errors.Is(err, ErrProtocol) {
			t.Errorf("parseFrame(%x) = %v, want ErrProtocol", b[:min(len(b), 16)], err)
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
	f.Add(changedFrame(2))
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
