package pake

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The fuzzers replay a deterministic handshake (detReader), so the valid
// frames in the seed corpus are valid for the state being fuzzed and the
// fuzzer starts from the success path, not only from garbage.

const fuzzPassword = "abcde-fghjk"

func fuzzInitiator(t testing.TB) (*Initiator, []byte) {
	i, hello, err := newInitiator(&detReader{seed: "fuzz initiator"}, fuzzPassword, testParams)
	if err != nil {
		t.Fatal(err)
	}
	return i, hello
}

func fuzzResponder(t testing.TB, password string, hello []byte) (*Responder, []byte) {
	r, reply, err := respond(&detReader{seed: "fuzz responder"}, password, testParams, hello)
	if err != nil {
		t.Fatal(err)
	}
	return r, reply
}

// fuzzFrames is the deterministic handshake's frames, plus a reply made
// with the wrong password.
type fuzzFrames struct {
	hello, reply, badReply, confirm []byte
}

func makeFuzzFrames(t testing.TB) fuzzFrames {
	ini, hello := fuzzInitiator(t)
	_, reply := fuzzResponder(t, fuzzPassword, hello)
	_, badReply := fuzzResponder(t, "wrong", hello)
	_, confirm, err := ini.Finish(reply)
	if err != nil {
		t.Fatal(err)
	}
	return fuzzFrames{hello, reply, badReply, confirm}
}

// fuzzSessionKeys key the session FuzzOpen attacks, and its honest peer.
var fuzzKeyA, fuzzKeyB = bytes.Repeat([]byte{0xa}, keyLen), bytes.Repeat([]byte{0xb}, keyLen)

func fuzzSessions(t testing.TB) (peer, victim *Session) {
	peer, err := newSession(true, fuzzKeyA, fuzzKeyB)
	if err != nil {
		t.Fatal(err)
	}
	victim, err = newSession(false, fuzzKeyB, fuzzKeyA)
	if err != nil {
		t.Fatal(err)
	}
	return peer, victim
}

// fuzzSeeds returns each fuzzer's seeds by name: f.Add uses them, and
// TestWriteFuzzCorpus writes them to testdata/fuzz.
func fuzzSeeds(t testing.TB) map[string]map[string][]byte {
	fr := makeFuzzFrames(t)
	peer, _ := fuzzSessions(t)
	var sealed [][]byte
	for _, m := range []string{"", "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n", "candidate:1 1 udp 1 192.0.2.1 9 typ host"} {
		f, err := peer.Seal([]byte(m))
		if err != nil {
			t.Fatal(err)
		}
		sealed = append(sealed, f)
	}
	v2 := bytes.Clone(fr.hello)
	v2[1] = 2
	aborts := map[string][]byte{
		"abort-wrong-password": AbortFrame(AbortWrongPassword),
		"abort-busy":           AbortFrame(AbortBusy),
	}
	with := func(m map[string][]byte) map[string][]byte {
		for k, v := range aborts {
			m[k] = v
		}
		return m
	}
	return map[string]map[string][]byte{
		"FuzzRespond": with(map[string][]byte{
			"valid":     fr.hello,
			"version-2": v2,
			"identity":  helloFrame(make([]byte, sidLen), make([]byte, pointLen)),
		}),
		"FuzzInitiatorFinish": with(map[string][]byte{
			"valid":          fr.reply,
			"wrong-password": fr.badReply,
		}),
		"FuzzResponderFinish": with(map[string][]byte{
			"valid":    fr.confirm,
			"zero-mac": confirmFrame(make([]byte, macLen)),
		}),
		"FuzzOpen": with(map[string][]byte{
			"valid-0": sealed[0],
			"valid-1": sealed[1],
			"valid-2": sealed[2],
		}),
		"FuzzFrameKind": with(map[string][]byte{
			"hello":   fr.hello,
			"reply":   fr.reply,
			"confirm": fr.confirm,
			"sealed":  sealed[1],
		}),
		"FuzzParseAbort": with(map[string][]byte{
			"abort-other": AbortFrame(AbortOther),
			"confirm":     fr.confirm,
		}),
	}
}

func addSeeds(f *testing.F) {
	for _, b := range fuzzSeeds(f)[f.Name()] {
		f.Add(b)
	}
}

// TestWriteFuzzCorpus regenerates testdata/fuzz when
// PAKE_WRITE_FUZZ_CORPUS=1 (needed only if the handshake changes).
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("PAKE_WRITE_FUZZ_CORPUS") != "1" {
		t.Skip("set PAKE_WRITE_FUZZ_CORPUS=1 to rewrite testdata/fuzz")
	}
	for target, seeds := range fuzzSeeds(t) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range seeds {
			data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestFuzzCorpusUpToDate makes sure the checked-in seeds are still the
// deterministic handshake's frames, so the fuzzers keep reaching the
// success path.
func TestFuzzCorpusUpToDate(t *testing.T) {
	for target, seeds := range fuzzSeeds(t) {
		for name, want := range seeds {
			path := filepath.Join("testdata", "fuzz", target, name)
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (regenerate with PAKE_WRITE_FUZZ_CORPUS=1)", err)
			}
			body, ok := strings.CutPrefix(string(raw), "go test fuzz v1\n[]byte(")
			body, ok2 := strings.CutSuffix(body, ")\n")
			got, err := strconv.Unquote(body)
			if !ok || !ok2 || err != nil || got != string(want) {
				t.Errorf("%s is stale (regenerate with PAKE_WRITE_FUZZ_CORPUS=1)", path)
			}
		}
	}
}

// checkErr fails if err does not wrap one of the sentinels an operation is
// documented to return: anything else is an unexpected path.
func checkErr(t *testing.T, op string, err error, allowed ...error) {
	t.Helper()
	for _, a := range allowed {
		if errors.Is(err, a) {
			return
		}
	}
	t.Fatalf("%s: unexpected error %v", op, err)
}

func FuzzRespond(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, hello []byte) {
		r, reply, err := respond(&detReader{seed: "fuzz responder"}, fuzzPassword, testParams, hello)
		if err != nil {
			checkErr(t, "respond", err, ErrBadFrame, ErrVersion, ErrBadPoint, ErrPeerAborted)
			if r != nil || reply != nil {
				t.Fatal("respond returned state with an error")
			}
			return
		}
		if k, err := FrameKind(hello); err != nil || k != KindHello || len(hello) != helloLen {
			t.Fatalf("respond accepted a non-hello: %v %v", k, err)
		}
		if k, err := FrameKind(reply); err != nil || k != KindReply {
			t.Fatalf("respond produced a bad reply: %v %v", k, err)
		}
		// A bogus confirm must fail cleanly.
		if _, err := r.Finish(hello[:confirmLen]); err == nil {
			t.Fatal("responder accepted a hello prefix as confirm")
		}
	})
}

func FuzzInitiatorFinish(f *testing.F) {
	addSeeds(f)
	valid := makeFuzzFrames(f)
	f.Fuzz(func(t *testing.T, reply []byte) {
		ini, _ := fuzzInitiator(t)
		s, confirm, err := ini.Finish(reply)
		if err != nil {
			checkErr(t, "initiator finish", err, ErrBadFrame, ErrBadPoint, ErrWrongPassword, ErrPeerAborted)
			return
		}
		// Only the honest responder's reply can carry a valid MAC.
		if !bytes.Equal(reply, valid.reply) || !bytes.Equal(confirm, valid.confirm) {
			t.Fatalf("initiator accepted a forged reply %x", reply)
		}
		if _, err := s.Seal([]byte("x")); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzResponderFinish(f *testing.F) {
	addSeeds(f)
	valid := makeFuzzFrames(f)
	f.Fuzz(func(t *testing.T, confirm []byte) {
		r, _ := fuzzResponder(t, fuzzPassword, valid.hello)
		s, err := r.Finish(confirm)
		if err != nil {
			checkErr(t, "responder finish", err, ErrBadFrame, ErrWrongPassword, ErrPeerAborted)
			return
		}
		if !bytes.Equal(confirm, valid.confirm) {
			t.Fatalf("responder accepted a forged confirm %x", confirm)
		}
		if s.Initiator() {
			t.Fatal("responder session claims to be the initiator")
		}
	})
}

func FuzzOpen(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, frame []byte) {
		_, victim := fuzzSessions(t)
		pt, err := victim.Open(frame)
		if err != nil {
			checkErr(t, "open", err, ErrBadFrame, ErrDecrypt, ErrReplay, ErrPeerAborted)
			return
		}
		if len(pt) > MaxPlaintext {
			t.Fatalf("opened %d bytes", len(pt))
		}
		if _, err := victim.Open(frame); !errors.Is(err, ErrReplay) {
			t.Fatalf("replay accepted: %v", err)
		}
	})
}

func FuzzFrameKind(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := FrameKind(b)
		reason, aerr := ParseAbort(b)
		if (aerr == nil) != (err == nil && k == KindAbort) {
			t.Fatalf("FrameKind %v %v disagrees with ParseAbort %v", k, err, aerr)
		}
		if err != nil {
			checkErr(t, "frame kind", err, ErrBadFrame)
			return
		}
		if k < KindHello || k > KindAbort || byte(k) != b[0] {
			t.Fatalf("FrameKind returned %v for %x", k, b)
		}
		if aerr == nil && !bytes.Equal(AbortFrame(reason), b) {
			t.Fatal("abort frame does not round-trip")
		}
	})
}

func FuzzParseAbort(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		reason, err := ParseAbort(b)
		if err != nil {
			checkErr(t, "parse abort", err, ErrBadFrame)
			return
		}
		if !bytes.Equal(AbortFrame(reason), b) {
			t.Fatalf("ParseAbort(%x) = %d does not round-trip", b, reason)
		}
		ae := AbortError(reason)
		if !errors.Is(ae, ErrPeerAborted) {
			t.Fatalf("AbortError(%d) = %v does not wrap ErrPeerAborted", reason, ae)
		}
		if AbortReason(ae) != AbortOther {
			t.Fatalf("peer abort %d would be echoed", reason)
		}
	})
}
