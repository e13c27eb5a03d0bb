//go:build unix && !linux

package main

import (
	"context"
	"fmt"
)

// latencyScenario needs Linux (network namespaces and TUN).
func latencyScenario(_ context.Context, _ string, _, _ int, sum *summary) error {
	fmt.Println("\nlatency scenario skipped: it needs Linux")
	sum.add("latency scenario", "skipped", "needs Linux")
	return nil
}
