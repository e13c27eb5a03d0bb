//go:build !linux

package netlab

import (
	"errors"
	"fmt"
)

// errNeedsLinux is what every constructor says elsewhere.
var errNeedsLinux = fmt.Errorf("netlab needs Linux (network namespaces, veth, bridges, iptables): %w", errors.ErrUnsupported)

// Lab is one emulated network; it exists only on Linux.
type Lab struct{}

// Check reports that a lab cannot run here.
func Check() error { return errNeedsLinux }

// New fails: a lab needs Linux.
func New(name string) (*Lab, error) { return nil, fmt.Errorf("netlab new: %w", errNeedsLinux) }

// Cleanup has nothing to clean here.
func Cleanup() ([]string, error) { return nil, nil }

func (l *Lab) Prefix() string                                     { return "" }
func (l *Lab) Close() error                                       { return nil }
func (l *Lab) Server(name string) (*Host, error)                  { return nil, errNeedsLinux }
func (l *Lab) LAN(name string, opts LANOptions) (*Network, error) { return nil, errNeedsLinux }
func (n *Network) Host(name string) (*Host, error)                { return nil, errNeedsLinux }
func (h *Host) Do(fn func() error) error                          { return errNeedsLinux }

// InNetns needs Linux.
func InNetns(string, func() error) error { return errNeedsLinux }
