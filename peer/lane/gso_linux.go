package lane

import (
	"encoding/binary"
	"errors"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// gsoSpace is the control message room one UDP_SEGMENT option takes.
var gsoSpace = unix.CmsgSpace(2)

// appendGSO appends a UDP_SEGMENT control message: the kernel splits the
// datagram that carries it into datagrams of size bytes (the last may be
// shorter), after one trip through the stack instead of one each.
func appendGSO(b []byte, size int) []byte {
	n := len(b)
	b = append(b, make([]byte, gsoSpace)...)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[n]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(b[n+unix.CmsgLen(0):], uint16(size))
	return b
}

// gsoRefused reports whether err is the kernel turning segmentation down
// (no support, or a device without checksum offload), rather than the
// datagram's own failure.
func gsoRefused(err error) bool {
	return errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOPROTOOPT) ||
		errors.Is(err, unix.EOPNOTSUPP)
}

const gsoAvailable = true

// groSpace is the control message room the UDP_GRO option takes.
var groSpace = unix.CmsgSpace(4)

// enableGRO asks the kernel to hand c's datagrams of one flow over
// coalesced (UDP_GRO): one trip through the receiving stack and one copy
// for up to 64 KB of them, where the device coalesces (GRO) at all.
func enableGRO(c syscall.Conn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 1)
	}); err != nil {
		return false
	}
	return serr == nil
}

// groSize is the size of the datagrams coalesced in one read, from its
// control messages; 0 when it holds one datagram.
func groSize(oob []byte) int {
	for len(oob) >= unix.CmsgLen(0) {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		n := int(h.Len)
		if n < unix.CmsgLen(0) || n > len(oob) {
			return 0
		}
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && n >= unix.CmsgLen(4) {
			return int(int32(binary.NativeEndian.Uint32(oob[unix.CmsgLen(0):])))
		}
		oob = oob[min(len(oob), unix.CmsgSpace(n-unix.CmsgLen(0))):]
	}
	return 0
}

// msgTrunc flags a read cut short by its buffer.
const msgTrunc = unix.MSG_TRUNC
