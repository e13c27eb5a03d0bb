//go:build unix

package benchkit

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// OnSignals makes a benchmark stoppable: the first Ctrl-C (or TERM, HUP)
// calls stop so the run winds down and tears down what it made; a second
// one calls forced, which must exit. SIGPIPE counts too: with stdout gone
// (| head) the benchmark must still tear down rather than die on its next
// write. prog prefixes the messages.
func OnSignals(prog string, stop, forced func()) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "\n%s: %v: stopping and tearing down (again to force) ...\n", prog, s)
		stop()
		<-sigs
		forced()
	}()
}
