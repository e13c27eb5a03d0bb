package benchkit

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// Benchmarks that build network namespaces name them prefix<pid>-..., so a
// later run can tell which ones a dead run left behind.

// CleanupNetns deletes the namespaces named prefix<pid>-* whose pid is not
// a live process whose command line contains prog (a reused pid does not
// protect them), saying what it does on out, and returns how many.
func CleanupNetns(prefix, prog string, out io.Writer) int {
	list, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return 0
	}
	n := 0
	for _, line := range strings.Split(string(list), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], prefix) {
			continue
		}
		name := f[0]
		pidStr, _, _ := strings.Cut(strings.TrimPrefix(name, prefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if pid > 0 && syscall.Kill(pid, 0) == nil && runs(pid, prog) {
			fmt.Fprintf(out, "keeping %s: benchmark process %d is still running\n", name, pid)
			continue
		}
		fmt.Fprintln(out, "removing", name)
		DeleteNetns(name)
		n++
	}
	return n
}

func runs(pid int, prog string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(b, []byte(prog))
}

// DeleteNetns kills whatever still runs inside ns, then deletes it (and
// with it any device still in it); a failure is reported on stderr.
func DeleteNetns(ns string) {
	if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: ip netns del %s: %v: %s", ns, err, out)
	}
}
