//go:build linux

// Command latency is the latency scenario: it builds p2pxfer, emulates a
// wide-area path between two network namespaces (by default 50 ms RTT,
// 200 Mbit/s each way, a drop-tail queue of one bandwidth-delay product),
// and reports what a plain TCP stream and p2pxfer send -> recv get over
// it, and their ratio. See package bench/internal/latency for how.
//
// Needs root, iproute2 and /dev/net/tun. Other benchmarks may share the
// host, so serialize:
//
//	flock /tmp/p2pxfer-bench.lock go run ./bench/latency
//	flock /tmp/p2pxfer-bench.lock go run ./bench/latency -rtt 100ms -rate 100mbit -size 128 -runs 1
//	go run ./bench/latency -cleanup   # remove namespaces left by a killed run
//
// Everything it creates is removed on exit, also on failure and Ctrl-C.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/p2pxfer/p2pxfer/bench/internal/benchkit"
	"github.com/p2pxfer/p2pxfer/bench/internal/latency"
)

func main() {
	var cfg latency.Config
	rate := flag.String("rate", "200mbit", "bottleneck rate each way (kbit, mbit, gbit; kbps, mbps = bytes)")
	flag.DurationVar(&cfg.RTT, "rtt", 50*time.Millisecond, "round-trip delay of the path (half each way)")
	flag.Int64Var(&cfg.QueueBytes, "queue", 0, "drop-tail queue of the bottleneck in bytes (default: one BDP, rate x rtt)")
	flag.IntVar(&cfg.SizeMiB, "size", 256, "file size in MiB")
	flag.IntVar(&cfg.Runs, "runs", 3, "runs of each transfer (the median is reported)")
	flag.DurationVar(&cfg.Timeout, "timeout", 0, "give up on a transfer after this long (default: 60s + 10x the time at -rate)")
	flag.DurationVar(&cfg.Interval, "interval", time.Second, "resolution of the per-run throughput timeline (negative: none)")
	flag.StringVar(&cfg.TCPCC, "tcp-cc", "", "TCP congestion control for the baseline, e.g. cubic or reno (default: the host's)")
	flag.BoolVar(&cfg.NoTCP, "no-tcp", false, "skip the TCP baseline")
	flag.BoolVar(&cfg.NoP2P, "no-p2pxfer", false, "skip p2pxfer (check the path with TCP only)")
	flag.BoolVar(&cfg.Verbose, "v", false, "run send and recv with -v, their stderr in the work directory (implies -keep)")
	keep := flag.Bool("keep", false, "keep the work directory (binary, file, logs)")
	bin := flag.String("bin", "", "use this p2pxfer binary instead of building one")
	sendFlags := flag.String("send-flags", "", "extra flags for send, space-separated")
	recvFlags := flag.String("recv-flags", "", "extra flags for recv, space-separated")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of this process (the relay, and TCP's two ends) to FILE")
	cleanup := flag.Bool("cleanup", false, "remove namespaces left behind by latency runs that are no longer alive, and exit")
	flag.Parse()
	cfg.SendFlags, cfg.RecvFlags = strings.Fields(*sendFlags), strings.Fields(*recvFlags)

	if err := latency.Check(); err != nil {
		fmt.Fprintln(os.Stderr, "latency:", err)
		os.Exit(2)
	}
	if *cleanup {
		fmt.Printf("removed %d stale namespace(s)\n", latency.Cleanup(os.Stdout))
		return
	}
	var err error
	if cfg.RateBits, err = latency.ParseRate(*rate); err != nil {
		fmt.Fprintln(os.Stderr, "latency: -rate:", err)
		os.Exit(2)
	}

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "latency: -cpuprofile:", err)
			os.Exit(2)
		}
		defer pprof.StopCPUProfile()
	}

	ctx, cancel := context.WithCancel(context.Background())
	benchkit.OnSignals("latency", cancel, func() {
		// The children die with us (Pdeathsig) and the TUNs with our fds;
		// only the namespaces stay, which -cleanup or the next run removes.
		fmt.Fprintln(os.Stderr, "latency: forced; remove what is left with: go run ./bench/latency -cleanup")
		os.Exit(130)
	})

	err = run(ctx, &cfg, *bin, *keep || cfg.Verbose)
	pprof.StopCPUProfile() // os.Exit skips deferred calls
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "latency: interrupted; everything it set up is removed")
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "latency:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg *latency.Config, bin string, keep bool) error {
	work, done, err := benchkit.WorkDir("p2pxfer-latency-", keep)
	if err != nil {
		return err
	}
	defer done()
	cfg.Work = work
	if bin == "" {
		bin = filepath.Join(work, "p2pxfer")
		if err := benchkit.Build(ctx, bin); err != nil {
			return err
		}
	} else if bin, err = filepath.Abs(bin); err != nil {
		return err
	}
	_, err = latency.Run(ctx, *cfg, bin, os.Stdout)
	return err
}
