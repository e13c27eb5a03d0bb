// Command p2pxfer moves files directly between machines over WebRTC data
// channels, protected by a password that never leaves the two machines.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/p2pxfer/p2pxfer/cmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first Ctrl-C the commands wind down; a second one
		// kills at once, as usual.
		<-ctx.Done()
		stop()
	}()
	code := cmd.Run(ctx, cmd.OSEnv(), os.Args)
	stop()
	os.Exit(code)
}
