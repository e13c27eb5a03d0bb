package lane

import (
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// canPunch: Linux takes a datagram's TTL (IP_TTL, IPV6_HOPLIMIT) with
// the datagram itself, so the socket's other datagrams keep theirs.
const canPunch = true

// sendTTL sends b to to from c, with ttl as the datagram's TTL (hop limit).
func sendTTL(c *net.UDPConn, b []byte, to netip.AddrPort, ttl int) error {
	level, typ := unix.IPPROTO_IP, unix.IP_TTL
	if !to.Addr().Is4() {
		level, typ = unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT
	}
	oob := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = int32(level), int32(typ)
	h.SetLen(unix.CmsgLen(4))
	*(*int32)(unsafe.Pointer(&oob[unix.CmsgLen(0)])) = int32(ttl)
	_, _, err := c.WriteMsgUDPAddrPort(b, oob, to)
	return err
}
