package cmd

import (
	"os"
	"runtime/pprof"
	"testing"
	"time"
)

func (r *run) waitDump(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case c := <-r.code:
		return c
	case <-time.After(d):
		pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
		t.Fatalf("command did not end; stderr:\n%s", r.stderr.String())
		return -1
	}
}
