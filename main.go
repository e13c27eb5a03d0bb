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
	code := cmd.Run(ctx, cmd.OSEnv(), os.Args)
	stop()
	os.Exit(code)
}
