// Command p2pxfer moves files directly between machines over WebRTC data
// channels, protected by a password that never leaves the two machines.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/p2pxfer/p2pxfer/cmd"
)

func main() {
	tuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first Ctrl-C the commands wind down; a second one
		// kills at once, as usual.
		<-ctx.Done()
		stop()
	}()
	env := cmd.OSEnv()
	env.SharedCPUs = cpuSharer()
	code := cmd.Run(ctx, env, os.Args)
	stop()
	os.Exit(code)
}

// tuneGC trades a little memory for CPU: pion allocates for every packet,
// and with the default GOGC the collector runs so often that a transfer
// spends a sixth of its CPU on it. A heap allowed to grow to 4x live but
// never past 64 MiB costs less CPU and gives more throughput on the
// loopback benchmark while peak RSS stays small (docs/performance.md).
// GOGC and GOMEMLIMIT set by the user win.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(64 << 20)
	}
}

// cpuSharer halves GOMAXPROCS while a direct lane to a peer on this host
// is open, and gives the runtime back its default after. Both processes
// of the transfer then work on the same CPUs, each with a P for every
// one of them; with half as many each, a transfer on loopback takes less
// CPU on each side and goes faster (docs/performance.md): fewer thread
// wakeups, cheaper allocation, and the goroutines that hand a packet along
// share one core's cache. A GOMAXPROCS set by the user wins.
func cpuSharer() func(shared bool) {
	if os.Getenv("GOMAXPROCS") != "" || runtime.GOMAXPROCS(0) < 2 {
		return nil
	}
	return func(shared bool) {
		if shared {
			runtime.GOMAXPROCS(max(1, runtime.GOMAXPROCS(0)/2))
		} else {
			runtime.SetDefaultGOMAXPROCS()
		}
	}
}
