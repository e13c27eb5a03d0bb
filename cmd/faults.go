package cmd

import (
	"fmt"
	"net"
	"slices"
	"strings"
)

// checkInterfaces refuses --interface names this host has no interface
// by: with none of them, nothing could connect, and the failure would
// look like a firewall's.
func checkInterfaces(names []string) error {
	if len(names) == 0 {
		return nil
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("list network interfaces: %w", err)
	}
	var have []string
	for _, i := range ifs {
		have = append(have, i.Name)
	}
	for _, n := range names {
		if !slices.Contains(have, n) {
			return usagef("--interface %s: no such network interface here (there are: %s)", quoteName(n), strings.Join(have, ", "))
		}
	}
	return nil
}
