package lane

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"
)

// resolveTimeout bounds the lookup of the STUN and TURN servers' names.
// pion looks a name up itself, with no deadline, whenever it gathers
// candidates, and closing a peer connection waits for that: with DNS
// black-holed, a transfer finished in a fraction of a second and then
// waited ten for a lookup before it could exit. So the names are looked up
// once, in the background from the start, within this bound, and pion
// gets addresses.
const resolveTimeout = 3 * time.Second

// lookupFunc looks up a host name's addresses.
type lookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

// resolveICE returns servers with the host name of every stun: and turn:
// URL replaced by its addresses, a URL for each family it has; stuns: and
// turns: keep their names, which TLS checks. A name that does not resolve
// within ctx is left out, and its error returned.
func resolveICE(ctx context.Context, servers []webrtc.ICEServer, lookup lookupFunc) ([]webrtc.ICEServer, []error) {
	type result struct {
		addrs []netip.Addr
		err   error
	}
	names := map[string]*result{}
	for _, s := range servers {
		for _, u := range s.URLs {
			if uri, err := stun.ParseURI(u); err == nil && !uri.IsSecure() {
				if _, err := netip.ParseAddr(uri.Host); err != nil {
					names[uri.Host] = &result{}
				}
			}
		}
	}
	var wg sync.WaitGroup
	for name, r := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.addrs, r.err = lookup(ctx, name)
		}()
	}
	wg.Wait()
	var out []webrtc.ICEServer
	var errs []error
	for _, s := range servers {
		var urls []string
		for _, u := range s.URLs {
			uri, err := stun.ParseURI(u)
			var r *result
			if err == nil && !uri.IsSecure() {
				r = names[uri.Host]
			}
			switch {
			case r == nil: // an address already, a TLS URL, or not a URL pion takes
				urls = append(urls, u)
			case r.err != nil:
				errs = append(errs, fmt.Errorf("%s: %w", u, r.err))
			default:
				for _, a := range firstOfEachFamily(r.addrs) {
					uri.Host = a.String()
					urls = append(urls, uri.String())
				}
			}
		}
		if len(urls) > 0 {
			s.URLs = urls
			out = append(out, s)
		}
	}
	return out, errs
}

func firstOfEachFamily(addrs []netip.Addr) []netip.Addr {
	var v4, v6 []netip.Addr
	for _, a := range addrs {
		if a = a.Unmap(); a.Is4() && v4 == nil {
			v4 = []netip.Addr{a}
		} else if a.Is6() && v6 == nil {
			v6 = []netip.Addr{a}
		}
	}
	return append(v4, v6...)
}

// lookupHost is the system resolver's lookup, which ctx bounds.
func lookupHost(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}
