//go:build !linux

package lane

import "syscall"

var gsoSpace = 0

func appendGSO(b []byte, _ int) []byte { return b }

func gsoRefused(error) bool { return true }

// gsoAvailable: UDP_SEGMENT is Linux's.
const gsoAvailable = false

var groSpace = 0

func enableGRO(syscall.Conn) bool { return false }

func groSize([]byte) int { return 0 }

const msgTrunc = 0
