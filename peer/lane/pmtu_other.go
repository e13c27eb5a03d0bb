//go:build !linux

package lane

import (
	"errors"
	"net"
)

// probeSupported: without a portable way to forbid local fragmentation,
// direct lanes run only on one host here.
const probeSupported = false

func setDontFragment(*net.UDPConn, bool) error {
	return errors.New("lane: path MTU probing is not supported on this system")
}
