//go:build !unix

package lane

import "net"

// readBufferSize is unknown here; 0 means "don't warn".
func readBufferSize(*net.UDPConn) int { return 0 }
