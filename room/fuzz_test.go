package room

import "testing"

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"type":"join","v":2,"room":"abcdefgh"}`))
	f.Add([]byte(`{"type":"relay","peer":"abcdefghjkmn","data":"AQID"}`))
	f.Add([]byte(`{"type":"error","code":"room_not_found","text":"x"}`))
	f.Add([]byte(`{"type":"joined","room":"abcdefgh","peer":"abcdefghjkmn","host":"23456789abcd","ice":[{"urls":["turn:h:3478?transport=udp"],"username":"1:x","credential":"y"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		// What Decode accepts must be valid and re-encodable.
		if err := m.Validate(); err != nil {
			t.Fatalf("decoded message fails Validate: %v", err)
		}
		if _, err := Encode(m); err != nil {
			t.Fatalf("decoded message does not re-encode: %v", err)
		}
	})
}
