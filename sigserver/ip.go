package sigserver

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// ipState is the per-address bookkeeping behind the limits. Guarded by
// Server.mu.
type ipState struct {
	lim   *rate.Limiter // joins; driven with Config.Now so tests control time
	rooms int           // open rooms created from this address
	conns int           // open connections from this address
	// silent holds a token per assignment its receivers may leave unused
	// (Config.SilentBurst, refilled at one per SilentEvery); nil until
	// the first.
	silent *rate.Limiter
}

func (s *Server) ipLocked(key string) *ipState {
	st := s.ips[key]
	if st == nil {
		st = &ipState{lim: rate.NewLimiter(rate.Limit(s.cfg.JoinRate), s.cfg.JoinBurst)}
		s.ips[key] = st
	}
	return st
}

// chargeSilentLocked counts an assignment that key's receiver left unused.
func (s *Server) chargeSilentLocked(key string, now time.Time) {
	st := s.ipLocked(key)
	if st.silent == nil {
		st.silent = rate.NewLimiter(rate.Every(s.cfg.SilentEvery), s.cfg.SilentBurst)
	}
	// Reserve, not Allow: the charge stands even past the burst, so an
	// address that keeps hoarding stays refused for longer.
	st.silent.ReserveN(now, 1)
}

// silencedLocked reports whether key's receivers have left too many
// assignments unused lately to be given more.
func (s *Server) silencedLocked(key string, now time.Time) bool {
	st := s.ips[key]
	return st != nil && st.silent != nil && st.silent.TokensAt(now) < 1
}

// pruneIPsLocked drops addresses that hold no room and no connection and
// whose buckets have refilled: forgetting them changes nothing, and
// keeping them would let the map grow with every address ever seen.
func (s *Server) pruneIPsLocked(now time.Time) {
	for k, st := range s.ips {
		if st.rooms == 0 && st.conns == 0 && st.lim.TokensAt(now) >= float64(s.cfg.JoinBurst) &&
			(st.silent == nil || st.silent.TokensAt(now) >= float64(s.cfg.SilentBurst)) {
			delete(s.ips, k)
		}
	}
}

// clientIP returns the client's address: the last hop of X-Forwarded-For
// when trusted (the address the reverse proxy saw; earlier hops are
// whatever the client claimed), else the TCP peer. The zero Addr means it
// could not be parsed.
func clientIP(r *http.Request, trustForwarded bool) netip.Addr {
	if trustForwarded {
		if vs := r.Header.Values("X-Forwarded-For"); len(vs) > 0 {
			last := vs[len(vs)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if a, err := netip.ParseAddr(strings.TrimSpace(last)); err == nil {
				return a.Unmap()
			}
		}
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// ipKey is the rate-limit bucket of an address. An IPv6 client usually
// owns a whole /64 and could rotate through it, so IPv6 addresses share
// the bucket of their /64.
func ipKey(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	if a.Is6() {
		if p, err := a.WithZone("").Prefix(64); err == nil {
			return p.String()
		}
	}
	return a.String()
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	return a.String()
}

// requestHost is the host a client reached us by, from the request's
// Host header without the port: an IP address, or a name of letters,
// digits, dots and hyphens; "" for anything else. It only ever goes back
// to the same client, in the relay URLs handed to it.
func requestHost(r *http.Request) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return a.Unmap().String()
	}
	if host == "" || len(host) > 253 {
		return ""
	}
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return ""
		}
	}
	return strings.ToLower(host)
}
