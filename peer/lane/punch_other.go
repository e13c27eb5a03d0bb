//go:build !linux

package lane

import (
	"errors"
	"net"
	"net/netip"
)

// canPunch: elsewhere the TTL is a socket's, not a datagram's; setting it
// for a punch would shorten the checks sent meanwhile too.
const canPunch = false

func sendTTL(*net.UDPConn, []byte, netip.AddrPort, int) error {
	return errors.ErrUnsupported
}
