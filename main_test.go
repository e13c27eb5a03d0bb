package main

import (
	"os"
	"runtime"
	"testing"
)

// TestCPUSharer: a transfer with a peer on this host halves GOMAXPROCS
// until it ends; one the user set is left alone.
func TestCPUSharer(t *testing.T) {
	if os.Getenv("GOMAXPROCS") != "" {
		t.Skip("GOMAXPROCS is set")
	}
	prev := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(prev)
	runtime.SetDefaultGOMAXPROCS()
	all := runtime.GOMAXPROCS(0)
	share := cpuSharer()
	if all < 2 {
		if share != nil {
			t.Fatal("a sharer with one CPU")
		}
		t.Skip("one CPU")
	}
	share(true)
	if got := runtime.GOMAXPROCS(0); got != all/2 {
		t.Fatalf("shared: GOMAXPROCS %d, want %d", got, all/2)
	}
	share(false)
	if got := runtime.GOMAXPROCS(0); got != all {
		t.Fatalf("no longer shared: GOMAXPROCS %d, want %d", got, all)
	}
	t.Setenv("GOMAXPROCS", "3")
	if cpuSharer() != nil {
		t.Fatal("GOMAXPROCS set by the user must win")
	}
}
