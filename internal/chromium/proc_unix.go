//go:build unix

package chromium

import "syscall"

// processGroup puts Chromium in a group of its own, so its helpers
// (zygote, renderers, GPU, network service) die with it.
func processGroup() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

func killGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGKILL) }
