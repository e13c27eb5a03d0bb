//go:build linux

package netlab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// nsPrefix starts every namespace name: netlab<pid>-<n>-...
const nsPrefix = "netlab"

// readyTimeout bounds the wait for links to come up; they take
// milliseconds, so reaching it means something is broken.
const readyTimeout = 5 * time.Second

// Check reports why a lab cannot run here (not root, no ip or iptables,
// no network namespaces, bridges, veth or NAT in the kernel), or nil. The
// first call tries the real thing in a scratch namespace; later calls
// return its answer.
func Check() error { return checkOnce() }

var checkOnce = sync.OnceValue(func() error {
	if os.Geteuid() != 0 {
		return errors.New("netlab needs root (it creates network namespaces and NAT rules)")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("netlab needs %q in PATH (iproute2, iptables)", tool)
		}
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return fmt.Errorf("no network namespaces (%v): the kernel needs CONFIG_NET_NS", err)
	}
	// Everything a lab uses, once, in a namespace of its own: the kernel
	// may lack bridges or NAT, a container may forbid namespaces.
	ns := fmt.Sprintf("%s%d-0-check", nsPrefix, os.Getpid())
	if err := ip("netns", "add", ns); err != nil {
		return fmt.Errorf("cannot create a network namespace: %w", err)
	}
	defer deleteNetns(ns)
	for _, step := range [][]string{
		{"ip", "-n", ns, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", ns, "link", "add", "v0", "type", "veth", "peer", "name", "v1"},
		{"ip", "netns", "exec", ns, "iptables", "-w", "-t", "nat", "-A", "POSTROUTING", "-o", "v0", "-j", "MASQUERADE", "--random-fully"},
		{"ip", "netns", "exec", ns, "iptables", "-w", "-A", "INPUT", "-i", "v0", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP"},
	} {
		if err := run(step[0], step[1:]...); err != nil {
			return fmt.Errorf("netlab cannot run here: %w", err)
		}
	}
	return nil
})

// Cleanup deletes the namespaces that labs of dead processes left behind
// (a test binary killed at its timeout never runs Close), killing what
// still runs in them, and returns their names. Those of live processes
// stay, and so do those of a dead process whose pid was reused, until
// that process ends too. New calls it.
func Cleanup() ([]string, error) {
	names, err := listNetns()
	if err != nil {
		return nil, fmt.Errorf("netlab cleanup: %w", err)
	}
	var removed []string
	var errs []error
	for _, name := range names {
		rest, ok := strings.CutPrefix(name, nsPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		if pid, err := strconv.Atoi(pidStr); err != nil || pid <= 0 || alive(pid) {
			continue
		}
		if err := deleteNetns(name); err != nil {
			if _, serr := os.Stat("/run/netns/" + name); errors.Is(serr, fs.ErrNotExist) {
				continue // another process's Cleanup was first
			}
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("netlab cleanup: %w", err)
	}
	return removed, nil
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func listNetns() ([]string, error) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("ip netns list: %w", err)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0]) // "name (id: 3)"
		}
	}
	return names, nil
}

// deleteNetns kills whatever runs inside ns (a few rounds: a process may
// fork meanwhile), then deletes it and with it every device in it; a
// veth's peer in another namespace goes too.
func deleteNetns(ns string) error {
	for range 3 {
		out, err := exec.Command("ip", "netns", "pids", ns).Output()
		if err != nil || len(bytes.TrimSpace(out)) == 0 {
			break
		}
		for _, f := range strings.Fields(string(out)) {
			// Never this process: a thread of it may be inside for Do.
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	return ip("netns", "del", ns)
}

func ip(args ...string) error { return run("ip", args...) }

// run runs a command; its error names the command and quotes its output.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// sysctls sets /proc/sys/<key> = value for each key/value pair, as
// namespace ns sees them (files under /proc/sys/net are per namespace,
// that of the thread opening them).
func sysctls(ns string, kv ...string) error {
	return InNetns(ns, func() error {
		for i := 0; i+1 < len(kv); i += 2 {
			if err := os.WriteFile("/proc/sys/"+kv[i], []byte(kv[i+1]), 0); err != nil {
				return fmt.Errorf("sysctl in %s: %w", ns, err)
			}
		}
		return nil
	})
}

// InNetns runs fn on an OS thread switched into the named network
// namespace ns (one `ip netns add` made): sockets fn
// creates stay in ns for their whole life, whatever thread later uses
// them. The thread goes back to its own namespace before it is released;
// if that fails it stays locked, so Go ends it with the goroutine rather
// than reuse a thread in the wrong namespace.
func InNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("own netns: %w", err)
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns %s: %w", ns, err)
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns back from %s: %w", ns, err) // thread stays locked and dies
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// waitReady waits until the devices devs of namespace ns are usable: up
// with carrier (a veth's comes when its peer is up too), forwarding if a
// bridge port, with no IPv6 address still tentative. Carrier and port
// state settle asynchronously after ip returns, and a device's queue
// drops what it is given until then.
func waitReady(ns string, devs ...string) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		pending, err := notReady(ns, devs)
		if err != nil || pending == "" {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s in %s: not ready after %v", pending, ns, readyTimeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// notReady returns the first of devs in ns not ready and why, or "".
func notReady(ns string, devs []string) (string, error) {
	out, err := exec.Command("ip", "-n", ns, "-j", "-d", "addr", "show").Output()
	if err != nil {
		return "", fmt.Errorf("ip -n %s addr show: %w", ns, err)
	}
	var links []struct {
		Name      string `json:"ifname"`
		OperState string `json:"operstate"`
		LinkInfo  struct {
			SlaveKind string `json:"info_slave_kind"`
			SlaveData struct {
				State string `json:"state"`
			} `json:"info_slave_data"`
		} `json:"linkinfo"`
		Addrs []struct {
			Local     string `json:"local"`
			Tentative bool   `json:"tentative"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		return "", fmt.Errorf("ip -n %s addr show: %w", ns, err)
	}
	for _, dev := range devs {
		found := false
		for _, l := range links {
			if l.Name != dev {
				continue
			}
			found = true
			if l.OperState != "UP" {
				return dev + " is " + l.OperState, nil
			}
			if l.LinkInfo.SlaveKind == "bridge" && l.LinkInfo.SlaveData.State != "forwarding" {
				return dev + " is " + l.LinkInfo.SlaveData.State, nil
			}
			for _, a := range l.Addrs {
				if a.Tentative {
					return dev + "'s " + a.Local + " is tentative", nil
				}
			}
		}
		if !found {
			return "", fmt.Errorf("no device %s in %s", dev, ns)
		}
	}
	return "", nil
}
