//go:build !unix

package chromium

import (
	"os"
	"syscall"
)

func processGroup() *syscall.SysProcAttr { return nil }

func killGroup(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}
