package main

import (
	"context"
	"fmt"
	"os"

	"github.com/p2pxfer/p2pxfer/bench/internal/latency"
)

// latencyScenario runs the latency scenario with bin and adds its figures
// to sum; where it cannot run (not root, no TUN) it says why and skips.
func latencyScenario(ctx context.Context, bin string, sizeMiB, runs int, sum *summary) error {
	fmt.Println()
	if err := latency.Check(); err != nil {
		fmt.Println("latency scenario skipped:", err)
		sum.add("latency scenario", "skipped", err.Error())
		return nil
	}
	work, err := os.MkdirTemp("", "p2pxfer-latency-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	cfg := latency.Config{SizeMiB: sizeMiB, Runs: runs, Work: work, Interval: -1}
	res, err := latency.Run(ctx, cfg, bin, os.Stdout)
	if err != nil {
		return fmt.Errorf("latency scenario: %w", err)
	}
	sum.add(fmt.Sprintf("50 ms RTT, 200 Mbit/s path, %d MiB", sizeMiB),
		fmt.Sprintf("%.1f MB/s", res.P2P.MBps),
		fmt.Sprintf("%.3f of TCP on the same path (%.1f MB/s); runs %.2f to %.2f", res.Ratio, res.TCP.MBps, res.MinRatio, res.MaxRatio))
	return nil
}
