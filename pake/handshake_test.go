package pake

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
)

var testParams = Params{Room: "k7m2p9qx", Initiator: "receiver0001", Responder: "sender000001"}

// detReader is a deterministic randomness source (SHA-512 in counter
// mode) so handshakes can be replayed exactly in tests and fuzzers.
type detReader struct {
	seed string
	ctr  uint64
	buf  []byte
}

func (d *detReader) Read(p []byte) (int, error) {
	for len(d.buf) < len(p) {
		h := sha512.Sum512(binary.BigEndian.AppendUint64([]byte(d.seed), d.ctr))
		d.ctr++
		d.buf = append(d.buf, h[:]...)
	}
	n := copy(p, d.buf)
	d.buf = d.buf[n:]
	return n, nil
}

// handshake runs a full handshake and fails the test on any error.
func handshake(t testing.TB, pwI, pwR string, pI, pR Params) (*Session, *Session) {
	t.Helper()
	ini, hello, err := NewInitiator(pwI, pI)
	if err != nil {
		t.Fatalf("NewInitiator: %v", err)
	}
	resp, reply, err := Respond(pwR, pR, hello)
	if err != nil {
		t.Fatalf("Respond: %v", err)
	}
	si, confirm, err := ini.Finish(reply)
	if err != nil {
		t.Fatalf("Initiator.Finish: %v", err)
	}
	sr, err := resp.Finish(confirm)
	if err != nil {
		t.Fatalf("Responder.Finish: %v", err)
	}
	return si, sr
}

func mustSeal(t testing.TB, s *Session, pt []byte) []byte {
	t.Helper()
	f, err := s.Seal(pt)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return f
}

func TestHandshakeAndSeal(t *testing.T) {
	si, sr := handshake(t, "abcde-fghjk", "abcde-fghjk", testParams, testParams)
	if !si.Initiator() || sr.Initiator() {
		t.Fatalf("Initiator(): initiator %v, responder %v", si.Initiator(), sr.Initiator())
	}
	for _, dir := range []struct {
		name     string
		from, to *Session
	}{{"i->r", si, sr}, {"r->i", sr, si}} {
		for n, msg := range [][]byte{[]byte("v=0 offer"), {}, bytes.Repeat([]byte{7}, MaxPlaintext)} {
			f := mustSeal(t, dir.from, msg)
			if k, err := FrameKind(f); err != nil || k != KindSealed {
				t.Fatalf("%s: FrameKind(sealed) = %v, %v", dir.name, k, err)
			}
			got, err := dir.to.Open(f)
			if err != nil {
				t.Fatalf("%s #%d: Open: %v", dir.name, n, err)
			}
			if !bytes.Equal(got, msg) {
				t.Fatalf("%s #%d: got %q", dir.name, n, got)
			}
		}
	}
}

func TestFrameSizes(t *testing.T) {
	ini, hello, err := NewInitiator("pw", testParams)
	if err != nil {
		t.Fatal(err)
	}
	resp, reply, err := Respond("pw", testParams, hello)
	if err != nil {
		t.Fatal(err)
	}
	_, confirm, err := ini.Finish(reply)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := resp.Finish(confirm); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		f    []byte
		kind Kind
		n    int
	}{{hello, KindHello, 50}, {reply, KindReply, 65}, {confirm, KindConfirm, 33}} {
		if len(c.f) != c.n {
			t.Errorf("%v frame is %d bytes, want %d", c.kind, len(c.f), c.n)
		}
		if k, err := FrameKind(c.f); err != nil || k != c.kind {
			t.Errorf("FrameKind(%v) = %v, %v", c.kind, k, err)
		}
	}
}

func TestWrongPassword(t *testing.T) {
	ini, hello, err := NewInitiator("right-password", testParams)
	if err != nil {
		t.Fatal(err)
	}
	resp, reply, err := Respond("wrong-password", testParams, hello)
	if err != nil {
		t.Fatalf("Respond cannot know the password is wrong yet: %v", err)
	}
	s, confirm, err := ini.Finish(reply)
	if !errors.Is(err, ErrWrongPassword) || s != nil || confirm != nil {
		t.Fatalf("Initiator.Finish = %v, %v, %v; want ErrWrongPassword", s, confirm, err)
	}
	if errors.Is(err, ErrPeerAborted) {
		t.Errorf("local failure reported as peer abort: %v", err)
	}
	// The initiator tells the responder, which learns it from the abort.
	abort := AbortFrame(AbortReason(err))
	_, err = resp.Finish(abort)
	if !errors.Is(err, ErrWrongPassword) || !errors.Is(err, ErrPeerAborted) {
		t.Fatalf("Responder.Finish(abort) = %v; want ErrWrongPassword and ErrPeerAborted", err)
	}
}

func TestResponderRejectsBogusConfirm(t *testing.T) {
	for name, confirm := range map[string][]byte{
		"zero MAC":      confirmFrame(make([]byte, macLen)),
		"MAC_b echoed":  nil, // filled below: reflecting the responder's own MAC
		"right MAC bad": nil, // right MAC with one bit flipped
	} {
		t.Run(name, func(t *testing.T) {
			ini, hello, _ := NewInitiator("pw", testParams)
			resp, reply, err := Respond("pw", testParams, hello)
			if err != nil {
				t.Fatal(err)
			}
			switch name {
			case "MAC_b echoed":
				confirm = confirmFrame(reply[1+pointLen:])
			case "right MAC bad":
				_, good, err := ini.Finish(reply)
				if err != nil {
					t.Fatal(err)
				}
				confirm = bytes.Clone(good)
				confirm[len(confirm)-1] ^= 1
			}
			if s, err := resp.Finish(confirm); !errors.Is(err, ErrWrongPassword) || s != nil {
				t.Fatalf("Responder.Finish = %v, %v; want ErrWrongPassword", s, err)
			}
		})
	}
}

func TestParamsMismatch(t *testing.T) {
	for name, pR := range map[string]Params{
		"room":      {Room: "otherroom", Initiator: testParams.Initiator, Responder: testParams.Responder},
		"initiator": {Room: testParams.Room, Initiator: "mallory00001", Responder: testParams.Responder},
		"responder": {Room: testParams.Room, Initiator: testParams.Initiator, Responder: "mallory00001"},
		"swapped":   {Room: testParams.Room, Initiator: testParams.Responder, Responder: testParams.Initiator},
		// Length prefixes keep field boundaries: moving a byte between
		// fields must change CI.
		"shifted": {Room: testParams.Room + "r", Initiator: testParams.Initiator[1:], Responder: testParams.Responder},
	} {
		t.Run(name, func(t *testing.T) {
			ini, hello, _ := NewInitiator("pw", testParams)
			_, reply, err := Respond("pw", pR, hello)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := ini.Finish(reply); !errors.Is(err, ErrWrongPassword) {
				t.Fatalf("Finish = %v; want ErrWrongPassword", err)
			}
		})
	}
}

func TestHandshakeIsSingleUse(t *testing.T) {
	ini, hello, _ := NewInitiator("pw", testParams)
	resp, reply, _ := Respond("pw", testParams, hello)
	// A bad first reply ends the handshake: no second guess with the same state.
	if _, _, err := ini.Finish(reply[:10]); !errors.Is(err, ErrBadFrame) {
		t.Fatalf("Finish(truncated) = %v", err)
	}
	if _, _, err := ini.Finish(reply); !errors.Is(err, ErrFinished) {
		t.Fatalf("second Finish = %v; want ErrFinished", err)
	}
	if _, err := resp.Finish(confirmFrame(make([]byte, macLen))); !errors.Is(err, ErrWrongPassword) {
		t.Fatal(err)
	}
	if _, err := resp.Finish(confirmFrame(make([]byte, macLen))); !errors.Is(err, ErrFinished) {
		t.Fatalf("second Responder.Finish = %v; want ErrFinished", err)
	}
}

func TestHandshakeBadFrames(t *testing.T) {
	_, hello, _ := NewInitiator("pw", testParams)
	v2 := bytes.Clone(hello)
	v2[1] = 2
	for name, c := range map[string]struct {
		hello []byte
		want  error
	}{
		"empty":        {nil, ErrBadFrame},
		"kind only":    {hello[:1], ErrBadFrame},
		"truncated":    {hello[:len(hello)-1], ErrBadFrame},
		"extended":     {append(bytes.Clone(hello), 0), ErrBadFrame},
		"wrong kind":   {append([]byte{byte(KindReply)}, hello[1:]...), ErrBadFrame},
		"version 2":    {v2, ErrVersion},
		"version 2 sh": {v2[:2], ErrVersion},
		"version 0":    {[]byte{1, 0}, ErrVersion},
	} {
		_, reply, err := Respond("pw", testParams, c.hello)
		if !errors.Is(err, c.want) || reply != nil {
			t.Errorf("%s: Respond = %v; want %v", name, err, c.want)
		}
	}
	if _, _, err := Respond("", testParams, hello); err == nil {
		t.Error("Respond accepted an empty password")
	}
	if _, _, err := NewInitiator("", testParams); err == nil {
		t.Error("NewInitiator accepted an empty password")
	}
	err := fmt.Errorf("x: %w", ErrVersion)
	if AbortReason(err) != AbortVersion {
		t.Errorf("AbortReason(ErrVersion) = %d", AbortReason(err))
	}

	for name, reply := range map[string][]byte{
		"hello as reply":   hello,
		"confirm as reply": confirmFrame(make([]byte, macLen)),
		"short":            make([]byte, replyLen-1),
		"long":             append([]byte{byte(KindReply)}, make([]byte, replyLen)...),
	} {
		ini, _, _ := NewInitiator("pw", testParams)
		if _, _, err := ini.Finish(reply); !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: Initiator.Finish = %v; want ErrBadFrame", name, err)
		}
	}
}

func TestDeterministicHandshake(t *testing.T) {
	_, h1, err := newInitiator(&detReader{seed: "x"}, "pw", testParams)
	if err != nil {
		t.Fatal(err)
	}
	_, h2, _ := newInitiator(&detReader{seed: "x"}, "pw", testParams)
	_, h3, _ := newInitiator(&detReader{seed: "y"}, "pw", testParams)
	if !bytes.Equal(h1, h2) || bytes.Equal(h1, h3) {
		t.Fatal("detReader does not make handshakes reproducible")
	}
	// Fresh randomness from crypto/rand differs every time.
	_, r1, _ := NewInitiator("pw", testParams)
	_, r2, _ := NewInitiator("pw", testParams)
	if bytes.Equal(r1, r2) {
		t.Fatal("two hellos are equal")
	}
}

func TestReplayAndTamper(t *testing.T) {
	si, sr := handshake(t, "pw", "pw", testParams, testParams)
	f0 := mustSeal(t, si, []byte("zero"))
	f1 := mustSeal(t, si, []byte("one"))
	f2 := mustSeal(t, si, []byte("two"))
	f3 := mustSeal(t, si, []byte("three"))

	// Reordering: f1 first, then f0 is stale.
	if _, err := sr.Open(f1); err != nil {
		t.Fatal(err)
	}
	if _, err := sr.Open(f0); !errors.Is(err, ErrReplay) {
		t.Fatalf("Open(older) = %v; want ErrReplay", err)
	}
	if _, err := sr.Open(f1); !errors.Is(err, ErrReplay) {
		t.Fatalf("Open(replay) = %v; want ErrReplay", err)
	}

	// Tampering anywhere fails, and changes no state: f2 still opens.
	for i := range f2 {
		bad := bytes.Clone(f2)
		bad[i] ^= 0x40
		_, err := sr.Open(bad)
		if i == 0 {
			if !errors.Is(err, ErrBadFrame) {
				t.Errorf("kind byte flipped: %v", err)
			}
			continue
		}
		if !errors.Is(err, ErrDecrypt) {
			t.Fatalf("byte %d flipped: Open = %v; want ErrDecrypt", i, err)
		}
	}
	// A forged huge sequence number must not push the window forward.
	forged := bytes.Clone(f3)
	binary.BigEndian.PutUint64(forged[1:9], 1<<62)
	if _, err := sr.Open(forged); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("forged seq: %v", err)
	}
	maxSeq := bytes.Clone(f3)
	binary.BigEndian.PutUint64(maxSeq[1:9], ^uint64(0))
	if _, err := sr.Open(maxSeq); !errors.Is(err, ErrBadFrame) {
		t.Fatalf("seq 2^64-1: %v", err)
	}
	if pt, err := sr.Open(f2); err != nil || string(pt) != "two" {
		t.Fatalf("Open(f2) after forgeries = %q, %v", pt, err)
	}
	// Gaps are fine (the relay may drop), truncation is not.
	if _, err := sr.Open(f3[:sealedMin-1]); !errors.Is(err, ErrBadFrame) {
		t.Fatalf("truncated: %v", err)
	}
	if _, err := sr.Open(f3[:len(f3)-1]); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("one byte short: %v", err)
	}

	// Reflection: a frame sent to the peer does not open at its sender.
	back := mustSeal(t, si, []byte("reflect me"))
	if _, err := si.Open(back); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("reflected frame: %v; want ErrDecrypt", err)
	}
	// Another session's frames do not open.
	_, other := handshake(t, "pw", "pw", testParams, testParams)
	if _, err := other.Open(back); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("cross-session frame: %v; want ErrDecrypt", err)
	}

	if _, err := si.Seal(make([]byte, MaxPlaintext+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Seal(too large) = %v", err)
	}
	if _, err := sr.Open(append([]byte{byte(KindSealed)}, make([]byte, sealedMax)...)); !errors.Is(err, ErrBadFrame) {
		t.Fatalf("oversized sealed frame: %v", err)
	}
}

func TestAbortFrames(t *testing.T) {
	cases := []struct {
		reason byte
		want   error
	}{
		{AbortWrongPassword, ErrWrongPassword},
		{AbortVersion, ErrVersion},
		{AbortBusy, ErrBusy},
		{AbortOther, ErrPeerAborted},
		{0, ErrPeerAborted},
		{200, ErrPeerAborted},
	}
	si, _ := handshake(t, "pw", "pw", testParams, testParams)
	for _, c := range cases {
		f := AbortFrame(c.reason)
		if k, err := FrameKind(f); err != nil || k != KindAbort {
			t.Fatalf("FrameKind(abort %d) = %v, %v", c.reason, k, err)
		}
		r, err := ParseAbort(f)
		if err != nil || r != c.reason {
			t.Fatalf("ParseAbort(abort %d) = %d, %v", c.reason, r, err)
		}
		ae := AbortError(r)
		if !errors.Is(ae, c.want) || !errors.Is(ae, ErrPeerAborted) {
			t.Errorf("AbortError(%d) = %v; want %v", r, ae, c.want)
		}
		if got := AbortReason(fmt.Errorf("op: %w", c.want)); c.want != ErrPeerAborted && got != c.reason {
			t.Errorf("AbortReason(%v) = %d, want %d", c.want, got, c.reason)
		}
		// Echoing a peer's abort back would ping-pong.
		if AbortReason(ae) != AbortOther {
			t.Errorf("AbortReason(peer abort %d) = %d", r, AbortReason(ae))
		}

		// Every step reports an abort frame as the peer's abort.
		if _, _, err := Respond("pw", testParams, f); !errors.Is(err, c.want) {
			t.Errorf("Respond(abort %d) = %v", c.reason, err)
		}
		ini, _, _ := NewInitiator("pw", testParams)
		if _, _, err := ini.Finish(f); !errors.Is(err, c.want) || !errors.Is(err, ErrPeerAborted) {
			t.Errorf("Initiator.Finish(abort %d) = %v", c.reason, err)
		}
		if _, err := si.Open(f); !errors.Is(err, c.want) || !errors.Is(err, ErrPeerAborted) {
			t.Errorf("Open(abort %d) = %v", c.reason, err)
		}
	}
	for _, b := range [][]byte{nil, {5}, {5, 1, 0}, {4, 1}} {
		if _, err := ParseAbort(b); !errors.Is(err, ErrBadFrame) {
			t.Errorf("ParseAbort(%x) = %v; want ErrBadFrame", b, err)
		}
	}
}

func TestFrameKind(t *testing.T) {
	ok := map[string]struct {
		b    []byte
		want Kind
	}{
		"hello":      {make([]byte, helloLen), KindHello},
		"hello v2":   {[]byte{1, 2, 3}, KindHello},
		"reply":      {append([]byte{2}, make([]byte, replyLen-1)...), KindReply},
		"confirm":    {append([]byte{3}, make([]byte, confirmLen-1)...), KindConfirm},
		"sealed min": {append([]byte{4}, make([]byte, sealedMin-1)...), KindSealed},
		"sealed max": {append([]byte{4}, make([]byte, sealedMax-1)...), KindSealed},
		"abort":      {[]byte{5, 9}, KindAbort},
	}
	ok["hello"].b[0], ok["hello"].b[1] = 1, Version
	for name, c := range ok {
		if k, err := FrameKind(c.b); err != nil || k != c.want {
			t.Errorf("%s: FrameKind = %v, %v; want %v", name, k, err, c.want)
		}
	}
	bad := map[string][]byte{
		"empty":          nil,
		"zero kind":      {0},
		"unknown":        {6, 0},
		"hello v1 short": {1, 1, 0},
		"hello bare":     {1},
		"reply":          {2},
		"confirm":        append([]byte{3}, make([]byte, confirmLen)...),
		"sealed":         append([]byte{4}, make([]byte, sealedMin-2)...),
		"sealed big":     append([]byte{4}, make([]byte, sealedMax)...),
		"abort":          {5},
	}
	for name, b := range bad {
		if k, err := FrameKind(b); !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: FrameKind = %v, %v; want ErrBadFrame", name, k, err)
		}
	}
	if KindSealed.String() != "sealed" || Kind(9).String() != "kind(9)" {
		t.Error("Kind.String")
	}
}

// TestConcurrentSealOpen exercises both directions at once, with Seal and
// Open of one Session on different goroutines (run with -race).
func TestConcurrentSealOpen(t *testing.T) {
	si, sr := handshake(t, "pw", "pw", testParams, testParams)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	pipe := func(from, to *Session, tag string) {
		ch := make(chan []byte, 16)
		wg.Add(2)
		go func() {
			defer wg.Done()
			defer close(ch)
			for i := range n {
				f, err := from.Seal(fmt.Appendf(nil, "%s %d", tag, i))
				if err != nil {
					errs <- err
					return
				}
				ch <- f
			}
		}()
		go func() {
			defer wg.Done()
			i := 0
			for f := range ch {
				pt, err := to.Open(f)
				if err != nil {
					errs <- err
					return
				}
				if want := fmt.Sprintf("%s %d", tag, i); string(pt) != want {
					errs <- fmt.Errorf("got %q, want %q", pt, want)
					return
				}
				i++
			}
		}()
	}
	pipe(si, sr, "i->r")
	pipe(sr, si, "r->i")
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
