//go:build linux

package latency

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"

	"github.com/p2pxfer/p2pxfer/bench/internal/benchkit"
	"github.com/p2pxfer/p2pxfer/internal/netlab"
)

// Names. The pid in every name lets concurrent runs coexist and lets
// Cleanup tell a live run's namespaces from a dead one's.
const (
	nsPrefix = "p2plat"   // namespaces p2plat<pid>-a (sender) and -b (receiver)
	subnet   = "10.98.0." // .1 in a, .2 in b; private to the two namespaces
	linkMTU  = 1500
	// tunQueueLen is the TUN devices' txqueuelen (their ring of packets
	// waiting for the relay to read them).
	tunQueueLen = 10000
)

func nsName(side byte) string { return fmt.Sprintf("%s%d-%c", nsPrefix, os.Getpid(), side) }

// tunName is the TUN device of one side: created in the root namespace
// (so unique there, within IFNAMSIZ) and then moved into its namespace.
func tunName(side byte) string { return fmt.Sprintf("plat%d%c", os.Getpid(), side) }

func addrOf(side byte) string {
	if side == 'a' {
		return subnet + "1"
	}
	return subnet + "2"
}

// Check says clearly what is missing to run at all: root, iproute2,
// network namespaces and TUN.
func Check() error {
	if os.Geteuid() != 0 {
		return errors.New("must run as root (it creates network namespaces and TUN devices); try: sudo -E go run ./bench/latency")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New(`"ip" not found in PATH: install iproute2`)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("cannot open /dev/net/tun (%v): the kernel needs CONFIG_TUN (modprobe tun), and a container needs the device passed in", err)
	}
	unix.Close(fd)
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return fmt.Errorf("no network namespaces (%v): the kernel needs CONFIG_NET_NS", err)
	}
	if out, err := exec.Command("ip", "netns", "list").CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns list: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// Cleanup deletes p2plat<pid>-* namespaces whose benchmark process is
// gone, and returns how many. Namespaces of a live run are kept.
func Cleanup(out io.Writer) int { return benchkit.CleanupNetns(nsPrefix, "latency", out) }

// openTUN creates a TUN device (IP packets, no packet-info header) and
// returns its fd, non-blocking (the relay's reader waits in poll(2), so
// it can notice a stop). The device lives as long as the fd.
func openTUN(name string) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return -1, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("TUNSETIFF %s: %w", name, err)
	}
	return fd, nil
}

// inNetns runs fn inside namespace ns (see netlab.InNetns).
func inNetns(ns string, fn func() error) error { return netlab.InNetns(ns, fn) }
