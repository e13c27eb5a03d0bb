package cmd

import (
	"context"
	"strings"
	"testing"
)

// --interface with a name this host has no interface by is a usage
// error that says so, not a connection failure later.
func TestNoSuchInterface(t *testing.T) {
	for _, args := range [][]string{
		{"send", "--interface", "nosuch0", "faults_test.go"},
		{"recv", "--interface", "nosuch0", "--no-seed", "--signal", "ws://127.0.0.1:1/ws", "abcdefgh"},
	} {
		r := start(context.Background(), map[string]string{"P2PXFER_PASSWORD": "x"}, args...)
		if c := r.wait(t); c != ExitUsage || !strings.Contains(r.stderr.String(), "nosuch0: no such network interface") {
			t.Fatalf("%v: exit %d, want %d saying there is no such interface:\n%s", args, c, ExitUsage, r.stderr.String())
		}
	}
}
