//go:build !unix

package peer

import "net"

// readBufferSize is unknown here; 0 means "don't warn".
func readBufferSize(*net.UDPConn) int { return 0 }
