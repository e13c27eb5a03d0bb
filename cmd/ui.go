package cmd

import (
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode"

	"github.com/schollz/progressbar/v3"

	"github.com/p2pxfer/p2pxfer/pake"
)

var pakeWrongPassword = pake.ErrWrongPassword

// newBar draws bytes, rate and ETA on stderr.
func newBar(env Env, total int64, desc string) *progressbar.ProgressBar {
	w := env.Stderr
	if w == nil {
		w = io.Discard
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetDescription(desc),
		progressbar.OptionSetWriter(w),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionSetWidth(20),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)
}

// quoteName prints a file name from the network safely: as is when it is
// plain printable text, else quoted with escapes, so no name can move the
// cursor, clear the screen or hide its real ending.
func quoteName(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) || r == '"' || r == '\\' {
			return strconv.QuoteToASCII(s)
		}
	}
	return s
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
