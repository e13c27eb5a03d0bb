package cmd

import (
	"fmt"
	"io"
	"strings"

	"rsc.io/qr"
)

// qrQuiet is the blank margin around a QR code, in modules: the
// standard's four, without which scanners may not find the code.
const qrQuiet = 4

// printQR draws text as a QR code, two modules a character with half
// blocks. Black on white is set explicitly rather than taken from the
// terminal's colours, so the code reads the same way round on dark and
// light terminals; each line resets, so nothing bleeds past the code.
func printQR(w io.Writer, text string) error {
	code, err := qr.Encode(text, qr.L)
	if err != nil {
		return fmt.Errorf("QR code of the link: %w", err)
	}
	n := code.Size + 2*qrQuiet
	black := func(x, y int) bool {
		x, y = x-qrQuiet, y-qrQuiet
		return x >= 0 && y >= 0 && x < code.Size && y < code.Size && code.Black(x, y)
	}
	var b strings.Builder
	for y := 0; y < n; y += 2 {
		b.WriteString("  " + qrColours)
		for x := 0; x < n; x++ {
			switch top, bottom := black(x, y), black(x, y+1); {
			case top && bottom:
				b.WriteString("█")
			case top:
				b.WriteString("▀")
			case bottom:
				b.WriteString("▄")
			default:
				b.WriteString(" ")
			}
		}
		b.WriteString(qrReset + "\n")
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// SGR sequences: black on bright white, and back to the terminal's own.
const (
	qrColours = "\x1b[30;107m"
	qrReset   = "\x1b[0m"
)
