package lane

import (
	"net"

	"golang.org/x/sys/unix"
)

// probeSupported: this system lets a socket send with the don't-fragment
// bit set and never fragment locally, which probing needs.
const probeSupported = true

// setDontFragment makes c send every datagram whole with the don't-
// fragment bit, whatever the kernel learnt of the path's MTU: a probe
// that does not fit is lost, which is what it is there to find out.
func setDontFragment(c *net.UDPConn, v6 bool) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if v6 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_PROBE)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_PROBE)
		}
	})
	if err != nil {
		return err
	}
	return serr
}
