//go:build unix

package lane

import (
	"net"
	"runtime"
	"syscall"
)

// readBufferSize asks the kernel what SO_RCVBUF really is (Linux caps it at
// net.core.rmem_max and reports twice the usable size).
func readBufferSize(c *net.UDPConn) int {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	_ = rc.Control(func(fd uintptr) {
		n, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
	})
	if runtime.GOOS == "linux" {
		n /= 2
	}
	return n
}
