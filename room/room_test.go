package room

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id, err := NewRoomID()
		if err != nil {
			t.Fatal(err)
		}
		if !ValidRoomID(id) {
			t.Fatalf("invalid room ID %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate room ID %q", id)
		}
		seen[id] = true
	}
	pw, err := NewPassword()
	if err != nil {
		t.Fatal(err)
	}
	if len(pw) != 2*PasswordGroup+1 || pw[PasswordGroup] != '-' {
		t.Fatalf("password %q has the wrong form", pw)
	}
	if bits := float64(2*PasswordGroup) * math.Log2(float64(len(Alphabet))); bits < 40 {
		t.Fatalf("password entropy %.1f bits < 40", bits)
	}
	for _, bad := range []string{"", "abcdefg", "abcdefghj", "ABCDEFGH", "abcdefg0", "abcdefgl", "abcdefg\x00"} {
		if ValidRoomID(bad) {
			t.Errorf("ValidRoomID(%q) = true", bad)
		}
	}
	if got := NormalizeRoomID("  ABCDefgh \n"); got != "abcdefgh" {
		t.Errorf("NormalizeRoomID = %q", got)
	}
}

func TestAlphabetUniform(t *testing.T) {
	counts := map[byte]int{}
	const n = 31 * 2000
	s, err := randomString(n)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	if len(counts) != len(Alphabet) {
		t.Fatalf("saw %d distinct characters, want %d", len(counts), len(Alphabet))
	}
	for c, k := range counts {
		if k < 1500 || k > 2500 { // expected 2000, sd ~44
			t.Errorf("character %q drawn %d times, expected about 2000", c, k)
		}
	}
}

func TestEncodeDecode(t *testing.T) {
	msgs := []*Message{
		{Type: TypeCreate, Version: ProtocolVersion},
		{Type: TypeJoin, Version: ProtocolVersion, Room: "abcdefgh"},
		{Type: TypeRelay, Peer: "abcdefghjkmn", Data: []byte{1, 2, 3}},
		{Type: TypeError, Code: CodeRoomNotFound, Text: "no such room"},
		{Type: TypeJoined, Room: "abcdefgh", Peer: "abcdefghjkmn", Host: "23456789abcd", Key: make([]byte, KeySize)},
		{Type: TypeCreate, Version: ProtocolVersion, Slots: 4, MaxFailures: 10, Key: make([]byte, KeySize)},
		{Type: TypeSeed, Slots: 4, Complete: true},
		{Type: TypeWant, Count: 4},
		{Type: TypePeers, Peers: []string{"abcdefghjkmn", "23456789abcd"}},
		{Type: TypeQueued, Position: 3, Sources: 2},
		{Type: TypeRelease, Peer: "abcdefghjkmn"},
		{Type: TypeFail},
		{Type: TypeCreated, Room: "abcdefgh", Peer: "abcdefghjkmn", ICE: []ICEServer{
			{URLs: []string{"stun:relay.example.org:3478"}},
			{URLs: []string{"turn:relay.example.org:3478?transport=udp", "turn:[2001:db8::1]:3478?transport=tcp"}, Username: "1900000000:abcdefgh.abcdefghjkmn", Credential: "c2VjcmV0"},
		}},
	}
	for _, m := range msgs {
		b, err := Encode(m)
		if err != nil {
			t.Fatalf("Encode(%+v): %v", m, err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(%s): %v", b, err)
		}
		if got.Type != m.Type || got.Room != m.Room || got.Peer != m.Peer || string(got.Data) != string(m.Data) {
			t.Fatalf("round trip: got %+v want %+v", got, m)
		}
	}
	bad := []string{
		``, `{`, `[]`, `{"type":"nope"}`, `{"type":"join","v":1}`, `{"type":"join","room":"abcdefgh"}`,
		`{"type":"relay","peer":"abcdefghjkmn"}`, `{"type":"relay","peer":"../../etc","data":"AQ=="}`,
		`{"type":"error","code":"made_up"}`, `{"type":"create","v":1,"room":"x"}`,
		`{"type":"relay","peer":"abcdefghjkmn","data":"` + strings.Repeat("A", MaxMessageSize) + `"}`,
		`{"type":"seed"}`, `{"type":"seed","slots":65}`, `{"type":"seed","slots":-1}`,
		`{"type":"want"}`, `{"type":"want","count":17}`,
		`{"type":"peers"}`, `{"type":"peers","peers":["../x"]}`,
		`{"type":"queued","position":0}`, `{"type":"release"}`,
		`{"type":"queued","position":1,"sources":-1}`, `{"type":"queued","position":1,"sources":1048577}`,
		`{"type":"peers","peers":["abcdefghjkmn"],"sources":1}`,
		`{"type":"create","v":1,"key":"AQID"}`, `{"type":"create","v":1,"max_failures":100000}`,
		`{"type":"relay","peer":"abcdefghjkmn","data":"AQ==","ice":[{"urls":["stun:x"]}]}`,
		`{"type":"created","room":"abcdefgh","peer":"abcdefghjkmn","ice":[{"urls":[]}]}`,
		`{"type":"created","room":"abcdefgh","peer":"abcdefghjkmn","ice":[{"urls":["http://x"]}]}`,
		`{"type":"created","room":"abcdefgh","peer":"abcdefghjkmn","ice":[{"urls":["turn:"]}]}`,
		`{"type":"joined","room":"abcdefgh","peer":"abcdefghjkmn","host":"23456789abcd","ice":[{"urls":["stun:x"]},{"urls":["stun:x"]},{"urls":["stun:x"]},{"urls":["stun:x"]},{"urls":["stun:x"]}]}`,
		`{"type":"joined","room":"abcdefgh","peer":"abcdefghjkmn","host":"23456789abcd","ice":[{"urls":["turn:x"],"username":"` + strings.Repeat("u", 300) + `"}]}`,
	}
	for _, s := range bad {
		if _, err := Decode([]byte(s)); err == nil {
			t.Errorf("Decode(%.60q) accepted", s)
		} else if !errors.Is(err, ErrBadMessage) && !errors.Is(err, ErrTooLarge) {
			t.Errorf("Decode(%.60q) = %v, want ErrBadMessage or ErrTooLarge", s, err)
		}
	}
	if _, err := Encode(&Message{Type: TypeRelay, Peer: "abcdefghjkmn", Data: make([]byte, MaxDataSize+1)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Encode of oversized data = %v, want ErrTooLarge", err)
	}
}

func TestCodes(t *testing.T) {
	for c, e := range codeErrs {
		if got := CodeOf(e); got != c {
			t.Errorf("CodeOf(%v) = %q, want %q", e, got, c)
		}
		err := ErrorFromCode(c, "because")
		if !errors.Is(err, e) {
			t.Errorf("ErrorFromCode(%q) = %v, does not wrap %v", c, err, e)
		}
		m := ErrorMessage(err)
		if m.Code != c || m.Validate() != nil {
			t.Errorf("ErrorMessage(%v) = %+v", err, m)
		}
	}
	if CodeOf(errors.New("other")) != CodeInternal {
		t.Error("unknown errors should map to CodeInternal")
	}
	if !errors.Is(ErrorFromCode("bogus", ""), ErrInternal) {
		t.Error("unknown codes should map to ErrInternal")
	}
}

func TestErrorMessageRoundTrip(t *testing.T) {
	// The sentinel's text must not come back twice.
	err := ErrorFromCode(CodeRoomClosed, ErrorMessage(fmt.Errorf("%w: host left", ErrRoomClosed)).Text)
	if !errors.Is(err, ErrRoomClosed) || err.Error() != "room closed: host left" {
		t.Errorf("round trip = %q", err)
	}
	// Long non-ASCII or invalid text must still decode on the other side.
	for _, text := range []string{strings.Repeat("é", 400), strings.Repeat("\xff", 400), "a" + strings.Repeat("€", 300)} {
		b, err := Encode(ErrorMessage(errors.New(text)))
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		if _, err := Decode(b); err != nil {
			t.Errorf("Decode of error message with %.10q...: %v", text, err)
		}
	}
}
