//go:build !linux

package lane

var gsoSpace = 0

func appendGSO(b []byte, _ int) []byte { return b }

func gsoRefused(error) bool { return true }

// gsoAvailable: UDP_SEGMENT is Linux's.
const gsoAvailable = false
