// Package discovery finds a room's signalling server on the local network
// with DNS-SD over multicast DNS (RFC 6762, 6763; pion/mdns), so that
// `p2pxfer recv ROOMID` needs no --signal when the sender runs its own
// server on the same LAN.
//
// The sender announces a service of type Service named after the room ID,
// at its signalling server's port; a receiver browses for that name on
// every interface, IPv4 and IPv6, for a couple of seconds. Anyone on the
// LAN can answer, truthfully or not: a spoofed answer only leads to a
// server where the password handshake with the real sender cannot succeed.
//
// discovery never prints: diagnostics go to the logger it is given.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/pion/mdns/v2"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/p2pxfer/p2pxfer/internal/pionlog"
)

// Service is the DNS-SD service type of p2pxfer's signalling servers.
const Service = "_p2pxfer._tcp"

// ErrUnavailable: multicast DNS cannot run here (no multicast socket).
var ErrUnavailable = errors.New("multicast DNS unavailable")

// open makes an mDNS endpoint on every interface, IPv4 and IPv6, where it
// can; localNames, if any, are host names it answers for.
func open(log *slog.Logger, localNames ...string) (*mdns.Conn, error) {
	var c4 *ipv4.PacketConn
	var c6 *ipv6.PacketConn
	if l, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(224, 0, 0, 0), Port: 5353}); err == nil {
		c4 = ipv4.NewPacketConn(l)
	}
	if l, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.ParseIP("ff02::"), Port: 5353}); err == nil {
		c6 = ipv6.NewPacketConn(l)
	}
	if c4 == nil && c6 == nil {
		return nil, ErrUnavailable
	}
	opts := []mdns.ServerOption{mdns.WithLoggerFactory(&pionlog.Factory{Log: log})}
	if len(localNames) > 0 {
		opts = append(opts, mdns.WithLocalNames(localNames...))
	}
	c, err := mdns.NewServer(c4, c6, opts...)
	if err != nil {
		if c4 != nil {
			_ = c4.Close()
		}
		if c6 != nil {
			_ = c6.Close()
		}
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return c, nil
}

// Announcement is a room's signalling server announced on the LAN.
type Announcement struct{ c *mdns.Conn }

// Announce advertises the signalling server of roomID, at port on this
// host, until Close.
func Announce(roomID string, port int, log *slog.Logger) (*Announcement, error) {
	host := "p2pxfer-" + roomID + ".local"
	c, err := open(log, host)
	if err != nil {
		return nil, fmt.Errorf("discovery: announce: %w", err)
	}
	if err := c.Register(mdns.ServiceInstance{Instance: roomID, Service: Service, Host: host + ".", Port: uint16(port)}); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("discovery: announce: %w", err)
	}
	return &Announcement{c: c}, nil
}

// Close stops announcing.
func (a *Announcement) Close() error { return a.c.Close() }

// Find browses the LAN for roomID's signalling server until ctx ends or
// one is found, and returns the WebSocket URLs of those that answered:
// every address the first answer resolved to, in the order found.
func Find(ctx context.Context, roomID string, log *slog.Logger) ([]string, error) {
	c, err := open(log)
	if err != nil {
		return nil, fmt.Errorf("discovery: find: %w", err)
	}
	defer c.Close()
	var mu sync.Mutex
	var urls []string
	found := make(chan struct{}, 1)
	c.OnServiceDiscovered(func(ev mdns.ServiceEvent) {
		// A link-local address would need its interface in the URL.
		if ev.Instance.Instance != roomID || ev.Instance.Port == 0 || !ev.Addr.IsValid() || ev.Addr.Unmap().IsLinkLocalUnicast() {
			return
		}
		u := URL(ev.Addr, int(ev.Instance.Port))
		mu.Lock()
		urls = append(urls, u)
		mu.Unlock()
		select {
		case found <- struct{}{}:
		default:
		}
	})
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := c.Browse(bctx, Service); err != nil {
		return nil, fmt.Errorf("discovery: find: %w", err)
	}
	select {
	case <-found:
		// Other addresses of the same answer come within moments.
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	case <-ctx.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	return append([]string(nil), urls...), nil
}

// URL is the WebSocket URL of a signalling server at addr and port.
func URL(addr netip.Addr, port int) string {
	return "ws://" + net.JoinHostPort(addr.Unmap().String(), strconv.Itoa(port)) + "/ws"
}
