package lane

import (
	"encoding/binary"
	"errors"
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
