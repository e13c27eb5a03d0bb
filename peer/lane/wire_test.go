package lane

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestDecodeSignal(t *testing.T) {
	key := `"` + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" + `"` // 32 bytes
	long := `"` + strings.Repeat("A", 88) + `"`                       // 66 bytes
	direct := func(port int, fp string) string { return fmt.Sprintf(`"direct":{"port":%d,"fp":%s}`, port, fp) }
	more := func(ports string) string { return `"direct":{"port":5000,"fp":` + key + `,"more":` + ports + `}` }
	for _, s := range []string{`{"v":6,"t":"offer","sdp":"v=0"}`, `{"v":6,"t":"cand","cand":{"candidate":"x"}}`, `{"v":6,"t":"bye","why":"x"}`, `{"v":6,"t":"punched","to":"198.51.100.3:4000"}`,
		`{"v":6,"t":"answer","sdp":"v=0","info":` + key + `}`, `{"v":6,"t":"offer","sdp":"v=0","lanes":3}`,
		`{"v":6,"t":"answer","sdp":"v=0","lanes":4}`, `{"v":6,"t":"lanes","lanes":1}`, `{"v":6,"t":"offer","sdp":"v=0","lanes":1,"rides":true}`,
		`{"v":6,"t":"answer","sdp":"v=0","lanes":1,"rides":true}`,
		`{"v":6,"t":"lanes","lanes":2,` + direct(5000, key) + `}`, `{"v":6,"t":"direct",` + direct(65535, key) + `}`,
		`{"v":6,"t":"lanes","lanes":4,` + more(`[5001,5002]`) + `}`, `{"v":6,"t":"direct",` + more(`[5001]`) + `}`} {
		if _, err := decodeSignal([]byte(s)); err != nil {
			t.Errorf("decodeSignal(%s): %v", s, err)
		}
	}
	for _, s := range []string{``, `{}`, `{"v":6,"t":"offer"}`, `{"v":6,"t":"cand"}`, `{"v":6,"t":"hack","sdp":"x"}`, `[1]`,
		`{"v":6,"t":"offer","sdp":"v=0","info":` + key + `}`, `{"v":6,"t":"answer","sdp":"v=0","info":` + long + `}`,
		`{"t":"offer","sdp":"v=0"}`, `{"v":5,"t":"offer","sdp":"v=0"}`, `{"v":7,"t":"bye"}`,
		`{"v":6,"t":"lanes"}`, `{"v":6,"t":"lanes","lanes":5}`, `{"v":6,"t":"offer","sdp":"v=0","lanes":-1}`,
		`{"v":6,"t":"cand","cand":{"candidate":"x"},"lanes":2}`, `{"v":6,"t":"bye","lanes":2}`,
		`{"v":6,"t":"direct"}`, `{"v":6,"t":"direct",` + direct(0, key) + `}`, `{"v":6,"t":"direct",` + direct(65536, key) + `}`,
		`{"v":6,"t":"direct",` + direct(5000, `"AAAA"`) + `}`, `{"v":6,"t":"direct",` + direct(5000, `null`) + `}`,
		`{"v":6,"t":"lanes","lanes":1,` + direct(5000, key) + `}`, `{"v":6,"t":"lanes","lanes":3,` + direct(5000, key) + `}`,
		`{"v":6,"t":"offer","sdp":"v=0",` + direct(5000, key) + `}`, `{"v":6,"t":"bye",` + direct(5000, key) + `}`,
		`{"v":6,"t":"lanes","lanes":2,` + more(`[5001]`) + `}`, `{"v":6,"t":"direct",` + more(`[5001,0]`) + `}`,
		`{"v":6,"t":"direct",` + more(`[5001,5002,5003]`) + `}`, `{"v":6,"t":"direct",` + more(`[70000]`) + `}`,
		`{"v":6,"t":"punched"}`, `{"v":6,"t":"punched","to":"198.51.100.3"}`, `{"v":6,"t":"punched","to":"198.51.100.3:0"}`,
		`{"v":6,"t":"punched","to":"host:4000"}`, `{"v":6,"t":"bye","to":"198.51.100.3:4000"}`,
		`{"v":6,"t":"lanes","lanes":1,"rides":true}`, `{"v":6,"t":"cand","cand":{"candidate":"x"},"rides":true}`,
		`{"v":6,"t":"offer","sdp":"v=0","rides":1}`} {
		if _, err := decodeSignal([]byte(s)); !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrVersion) {
			t.Errorf("decodeSignal(%s) = %v, want ErrProtocol or ErrVersion", s, err)
		}
	}
}

// FuzzDecodeSignal: decrypted signalling from a password holder is still
// checked before use.
func FuzzDecodeSignal(f *testing.F) {
	f.Add([]byte(`{"v":6,"t":"offer","sdp":"v=0\r\n"}`))
	f.Add([]byte(`{"v":6,"t":"answer","sdp":"v=0\r\n"}`))
	f.Add([]byte(`{"v":6,"t":"cand","cand":{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0"}}`))
	f.Add([]byte(`{"v":6,"t":"bye","why":"connection failed"}`))
	f.Add([]byte(`{"v":6,"t":"lanes","lanes":1}`))
	f.Add([]byte(`{"v":6,"t":"offer","sdp":"v=0\r\n","lanes":3}`))
	f.Add([]byte(`{"v":6,"t":"direct","direct":{"port":5000,"fp":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}`))
	f.Add([]byte(`{"v":6,"t":"lanes","lanes":2,"direct":{"port":5000,"fp":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}`))
	f.Add([]byte(`{"v":6,"t":"lanes","lanes":4,"direct":{"port":5000,"fp":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","more":[5001,5002]}}`))
	f.Add([]byte(`{"v":6,"t":"punched","to":"198.51.100.3:4000"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeSignal(b)
		if err != nil {
			if !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrVersion) {
				t.Fatalf("error %v wraps neither ErrProtocol nor ErrVersion", err)
			}
			return
		}
		if (m.T == sigOffer || m.T == sigAnswer) && m.SDP == "" || m.T == sigCand && m.Cand == nil || len(m.Why) > maxWhy {
			t.Fatalf("accepted malformed %+v", m)
		}
		if m.V != Version {
			t.Fatalf("accepted version %d", m.V)
		}
		if m.Info != nil && (m.T != sigAnswer || len(m.Info) > maxInfo) {
			t.Fatalf("accepted malformed info in %+v", m)
		}
		if m.Lanes < 0 || m.Lanes > MaxLanes || m.T == sigLanes && m.Lanes == 0 ||
			m.Lanes != 0 && m.T != sigOffer && m.T != sigAnswer && m.T != sigLanes {
			t.Fatalf("accepted malformed lane count in %+v", m)
		}
		if to, err := netip.ParseAddrPort(m.To); m.T == sigPunched && (err != nil || to.Port() == 0) || m.T != sigPunched && m.To != "" {
			t.Fatalf("accepted malformed punch address in %+v", m)
		}
		if m.T == sigDirect && m.Direct == nil || m.Direct != nil && (slices.Contains(m.Direct.ports(), 0) || len(m.Direct.Fingerprint) != 32 ||
			len(m.Direct.ports()) > MaxLanes-1 || m.T != sigDirect && !(m.T == sigLanes && m.Lanes == 1+len(m.Direct.ports()))) {
			t.Fatalf("accepted malformed direct lane in %+v", m)
		}
	})
}
