//go:build !linux

package chromium

import (
	"errors"
	"time"
)

// CPU is measured from /proc, on Linux only.
func (b *Browser) CPU() (time.Duration, error) {
	return 0, errors.New("chromium: CPU: only on Linux")
}
