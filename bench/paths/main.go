//go:build linux

// Command paths measures p2pxfer against the kernel's TCP on the kinds of
// link users have (issue 20): two network namespaces joined by a veth,
// segmentation offloads off (so a dropped packet is one packet), receive
// offload (GRO) off where there is loss (the loss rule sees what GRO has
// coalesced) and on where there is none, as a NIC has it (-gro=false:
// off everywhere), and per scenario
//
//	a  tbf 200 Mbit/s, 64 kB burst, 20 ms queue, on each side's veth
//	b  the same and 1 % random loss on each side
//	c  1 % random loss, no rate limit
//	d  LAN: no shaping, no loss
//	e  LAN with MTU 9000
//	f  50 ms RTT, 200 Mbit/s, a 20 ms (500 kB) drop-tail queue, 1 % loss:
//	   bench/internal/latency's TUN relay, with the same iptables loss
//
// Loss is iptables' statistic match (no netem here) on what each side
// receives, in the raw table before anything else looks at the packet.
// The queue of a and b is the tbf on the sender's own veth: the kernel's
// TCP feels it through TCP Small Queues, p2pxfer's UDP socket only once
// its send buffer is full (see docs/performance.md).
//
// Each scenario alternates, run by run, TCP (a sender and a receiver
// process: this program re-executed in the namespaces, sendfile into the
// socket, io.Copy into a file) and p2pxfer (signal and send in a, recv in
// b, --stun none, --interface the veth), and reports medians: MB/s, the
// ratio, CPU seconds of each side, the tbf's tail drops and the random
// drops. -alt adds a second p2pxfer binary to the rotation, for an A/B
// comparison of a change. Runs as root only.
//
//	flock /tmp/p2pxfer-bench.lock go run ./bench/paths
//	go run ./bench/paths -scenarios a,b,c -runs 5 -alt /tmp/p2pxfer-candidate
//	go run ./bench/paths -cleanup   # remove namespaces left by a killed run
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/p2pxfer/p2pxfer/bench/internal/benchkit"
	"github.com/p2pxfer/p2pxfer/bench/internal/latency"
	"github.com/p2pxfer/p2pxfer/internal/netlab"
)

const (
	nsPrefix = "p2ppath" // namespaces p2ppath<pid>-a (sender) and -b (receiver)
	subnet   = "10.97.0."
	password = "bench-paths"
)

// scenario is one kind of path.
type scenario struct {
	key, desc string
	rate      string  // tbf rate on each side ("" = none)
	loss      float64 // random loss on each side's receive, 0..1
	mtu       int
	rtt       time.Duration // > 0: the TUN relay of bench/internal/latency
	gro       bool          // receive offload on, as a NIC has it (-gro)
}

var scenarios = []scenario{
	{key: "a", desc: "tbf 200 Mbit/s, 20 ms queue", rate: "200mbit", mtu: 1500},
	{key: "b", desc: "tbf 200 Mbit/s + 1 % loss", rate: "200mbit", loss: 0.01, mtu: 1500},
	{key: "c", desc: "1 % loss, no rate limit", loss: 0.01, mtu: 1500},
	{key: "d", desc: "LAN, MTU 1500", mtu: 1500},
	{key: "e", desc: "LAN, MTU 9000", mtu: 9000},
	{key: "f", desc: "50 ms, 200 Mbit/s, 1 % loss", rate: "200mbit", loss: 0.01, mtu: 1500, rtt: 50 * time.Millisecond},
}

// tbf's shape, as the issue measured it.
const (
	tbfBurst   = "64kb"
	tbfLatency = "20ms"
)

type config struct {
	sizeMiB              int
	runs                 int
	lanes                int
	timeout              time.Duration
	verbose              bool
	bins                 []string // p2pxfer binaries: the one measured, and -alt
	work                 string
	src                  string
	want                 [32]byte
	tcpCC                string
	gro                  bool
	selfPath             string
	sendFlags, recvFlags []string
}

// run is one transfer as measured.
type run struct {
	secs             float64
	sendCPU, recvCPU float64
	tailDrops        int64 // tbf drops on both sides
	lossDrops        int64 // iptables random drops on both sides
	others           float64
}

// result is one contender's median over the runs of a scenario.
type result struct {
	name string
	runs []run // sorted by time
	med  run
	mbps float64
	// Not known in scenario f: TCP's CPU (bench/internal/latency runs
	// TCP inside its own process) and the random drops of either.
	noCPU, noLoss bool
}

func main() {
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "-tcp-") {
		os.Exit(tcpHelper(os.Args[1:]))
	}
	var cfg config
	keys := flag.String("scenarios", "a,b,c,d,e,f", "scenarios to run, comma-separated (a-f; see go doc ./bench/paths)")
	flag.IntVar(&cfg.sizeMiB, "size", 128, "file size in MiB")
	flag.IntVar(&cfg.runs, "runs", 3, "runs of each transfer per scenario (the median is reported)")
	flag.IntVar(&cfg.lanes, "lanes", 0, "--lanes for send and recv (0: p2pxfer's default)")
	flag.DurationVar(&cfg.timeout, "timeout", 0, "give up on a transfer after this long (default: 60 s + 10x the time at 25 MB/s)")
	flag.BoolVar(&cfg.verbose, "v", false, "run send and recv with -v; their output stays in the work directory (implies -keep)")
	flag.BoolVar(&cfg.gro, "gro", true, "turn the veths' receive offload (GRO) on in the scenarios without loss (d, e), as a NIC has it; with loss it stays off, so that the loss rule drops wire packets, not coalesced ones")
	flag.StringVar(&cfg.tcpCC, "tcp-cc", "", "TCP congestion control in the namespaces, e.g. cubic (default: the host's)")
	bin := flag.String("bin", "", "measure this p2pxfer binary instead of building one")
	alt := flag.String("alt", "", "also measure this second p2pxfer binary, alternating with the first (not in scenario f)")
	sendFlags := flag.String("send-flags", "", "extra flags for send, space-separated (e.g. \"--debug pion\" with -v)")
	recvFlags := flag.String("recv-flags", "", "extra flags for recv, space-separated")
	keep := flag.Bool("keep", false, "keep the work directory (binary, file, logs)")
	cleanup := flag.Bool("cleanup", false, "remove namespaces left behind by paths runs that are no longer alive, and exit")
	flag.Parse()
	cfg.sendFlags, cfg.recvFlags = strings.Fields(*sendFlags), strings.Fields(*recvFlags)

	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "paths: must run as root (it creates network namespaces, qdiscs and iptables rules); try: sudo -E go run ./bench/paths")
		os.Exit(2)
	}
	if *cleanup {
		n := benchkit.CleanupNetns(nsPrefix, "paths", os.Stdout)
		n += latency.Cleanup(os.Stdout)
		fmt.Printf("removed %d stale namespace(s)\n", n)
		return
	}
	var chosen []scenario
	for _, k := range strings.Split(*keys, ",") {
		k = strings.TrimSpace(k)
		i := sort.Search(len(scenarios), func(i int) bool { return scenarios[i].key >= k })
		if i == len(scenarios) || scenarios[i].key != k {
			fmt.Fprintf(os.Stderr, "paths: -scenarios: no scenario %q (a to f)\n", k)
			os.Exit(2)
		}
		chosen = append(chosen, scenarios[i])
	}
	if cfg.sizeMiB < 1 || cfg.runs < 1 || cfg.lanes < 0 {
		fmt.Fprintln(os.Stderr, "paths: -size and -runs must be at least 1, -lanes at least 0")
		os.Exit(2)
	}
	if err := checkTools(chosen); err != nil {
		fmt.Fprintln(os.Stderr, "paths:", err)
		os.Exit(2)
	}
	if cfg.timeout == 0 {
		cfg.timeout = 60*time.Second + 10*time.Duration(float64(int64(cfg.sizeMiB)<<20)/25e6*float64(time.Second))
	}
	var err error
	if cfg.selfPath, err = os.Executable(); err != nil {
		fmt.Fprintln(os.Stderr, "paths:", err)
		os.Exit(1)
	}

	ctx, cancel := context.WithCancel(context.Background())
	benchkit.OnSignals("paths", cancel, func() {
		benchkit.KillAll(true)
		fmt.Fprintln(os.Stderr, "paths: forced; remove what is left with: go run ./bench/paths -cleanup")
		os.Exit(130)
	})
	err = runAll(ctx, &cfg, chosen, *bin, *alt, *keep || cfg.verbose)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "paths: interrupted; everything it set up is removed")
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "paths:", err)
		os.Exit(1)
	}
}

// checkTools says what is missing: network namespaces, ip, tc, ethtool,
// iptables for loss, and TUN for scenario f.
func checkTools(chosen []scenario) error {
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return fmt.Errorf("no network namespaces (%v): the kernel needs CONFIG_NET_NS", err)
	}
	need := map[string]string{"ip": "iproute2", "tc": "iproute2", "ethtool": "ethtool"}
	for _, s := range chosen {
		if s.loss > 0 {
			need["iptables"] = "iptables"
		}
		if s.rtt > 0 {
			if err := latency.Check(); err != nil {
				return fmt.Errorf("scenario %s: %w", s.key, err)
			}
		}
	}
	for tool, pkg := range need {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%q not found in PATH: install %s (apt-get install %s)", tool, pkg, pkg)
		}
	}
	return nil
}

func runAll(ctx context.Context, cfg *config, chosen []scenario, bin, alt string, keep bool) error {
	work, done, err := benchkit.WorkDir("p2pxfer-paths-", keep)
	if err != nil {
		return err
	}
	defer done()
	cfg.work = work
	if bin == "" {
		bin = filepath.Join(work, "p2pxfer")
		if err := benchkit.Build(ctx, bin); err != nil {
			return err
		}
	}
	for _, b := range []string{bin, alt} {
		if b == "" {
			continue
		}
		abs, err := filepath.Abs(b)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("binary: %w", err)
		}
		cfg.bins = append(cfg.bins, abs)
	}
	if n := benchkit.CleanupNetns(nsPrefix, "paths", io.Discard); n > 0 {
		fmt.Printf("removed %d namespace(s) left by an earlier run\n", n)
	}
	cfg.src = filepath.Join(work, fmt.Sprintf("paths-%dMiB.bin", cfg.sizeMiB))
	fmt.Printf("writing a %d MiB random file ...\n", cfg.sizeMiB)
	if cfg.want, err = benchkit.RandomFile(cfg.src, int64(cfg.sizeMiB)<<20); err != nil {
		return err
	}
	var rows [][]result
	var names []scenario
	defer func() {
		if len(rows) > 0 {
			table(cfg, names, rows)
		}
	}()
	for _, s := range chosen {
		if err := ctx.Err(); err != nil {
			return err
		}
		var res []result
		if s.rtt > 0 {
			res, err = relayScenario(ctx, cfg, s)
		} else {
			res, err = vethScenario(ctx, cfg, s)
		}
		if err != nil {
			return fmt.Errorf("scenario %s (%s): %w", s.key, s.desc, err)
		}
		rows, names = append(rows, res), append(names, s)
	}
	return nil
}

// ---- the veth scenarios ----

// path is the two namespaces of one scenario.
type path struct {
	ns  [2]string // a (sender), b (receiver)
	dev [2]string
}

func nsName(side byte) string { return fmt.Sprintf("%s%d-%c", nsPrefix, os.Getpid(), side) }

func addrOf(i int) string { return subnet + strconv.Itoa(i+1) }

// setup builds the path of s: namespaces, the veth, offloads off, the tbf
// and the loss rules.
func setup(ctx context.Context, s scenario) (*path, error) {
	p := &path{ns: [2]string{nsName('a'), nsName('b')}, dev: [2]string{"veth-a", "veth-b"}}
	for _, ns := range p.ns {
		if err := benchkit.Sh(ctx, "ip", "netns", "add", ns); err != nil {
			p.teardown()
			return nil, err
		}
	}
	steps := [][]string{{"ip", "link", "add", p.dev[0], "netns", p.ns[0], "type", "veth", "peer", "name", p.dev[1], "netns", p.ns[1]}}
	for i, ns := range p.ns {
		dev := p.dev[i]
		steps = append(steps,
			[]string{"ip", "-n", ns, "link", "set", "lo", "up"},
			// IPv4 only (no link-local IPv6 for ICE to try), as in bench/latency.
			[]string{"ip", "-n", ns, "link", "set", dev, "mtu", strconv.Itoa(s.mtu), "addrgenmode", "none"},
			[]string{"ip", "-n", ns, "addr", "add", addrOf(i) + "/24", "dev", dev},
			[]string{"ip", "-n", ns, "link", "set", dev, "up"},
			// A dropped packet must be one wire packet, not a 64 KB
			// segment that veth would carry whole: TCP's (tso, gso) or
			// UDP's (tx-udp-segmentation: a UDP_SEGMENT send crosses a
			// veth whole otherwise, and the loss rule would drop 1 % of
			// batches of up to 64 datagrams instead of 1 % of datagrams).
			[]string{"ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", onOff(s.gro), "tx-udp-segmentation", "off"},
		)
		if s.rate != "" {
			steps = append(steps, []string{"tc", "-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf",
				"rate", s.rate, "burst", tbfBurst, "latency", tbfLatency})
		}
		if s.loss > 0 {
			steps = append(steps, lossRule(ns, dev, s.loss))
		}
	}
	if err := benchkit.ShAll(ctx, steps); err != nil {
		p.teardown()
		return nil, err
	}
	return p, nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// lossRule drops a random fraction of what ns receives on dev, in the raw
// table: before conntrack, so it costs little and counts every packet.
func lossRule(ns, dev string, loss float64) []string {
	return []string{"ip", "netns", "exec", ns, "iptables", "-w", "-t", "raw", "-A", "PREROUTING", "-i", dev,
		"-m", "statistic", "--mode", "random", "--probability", strconv.FormatFloat(loss, 'f', -1, 64), "-j", "DROP"}
}

func (p *path) teardown() {
	for i := len(p.ns) - 1; i >= 0; i-- {
		if exec.Command("ip", "netns", "pids", p.ns[i]).Run() == nil {
			benchkit.DeleteNetns(p.ns[i])
		}
	}
}

// drops reads the tbf's drops and the loss rule's packet count, both
// sides summed.
func (p *path) drops() (tail, loss int64) {
	for i, ns := range p.ns {
		out, err := exec.Command("tc", "-n", ns, "-s", "-j", "qdisc", "show", "dev", p.dev[i]).Output()
		if err == nil {
			var qs []struct {
				Kind  string `json:"kind"`
				Drops int64  `json:"drops"`
			}
			if json.Unmarshal(out, &qs) == nil {
				for _, q := range qs {
					tail += q.Drops
				}
			}
		}
		out, err = exec.Command("ip", "netns", "exec", ns, "iptables", "-w", "-t", "raw", "-nvxL", "PREROUTING").Output()
		if err == nil {
			for _, l := range strings.Split(string(out), "\n") {
				if f := strings.Fields(l); len(f) > 2 && strings.Contains(l, "statistic") {
					n, _ := strconv.ParseInt(f[0], 10, 64)
					loss += n
				}
			}
		}
	}
	return tail, loss
}

func vethScenario(ctx context.Context, cfg *config, s scenario) ([]result, error) {
	s.gro = cfg.gro && s.loss == 0
	offloads := "offloads off"
	if s.gro {
		offloads = "offloads off but GRO"
	}
	fmt.Printf("\nscenario %s: %s (veth MTU %d, %s)\n", s.key, s.desc, s.mtu, offloads)
	p, err := setup(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("path setup: %w", err)
	}
	defer p.teardown()
	if cfg.tcpCC != "" {
		for _, ns := range p.ns {
			if err := netlab.InNetns(ns, func() error {
				return os.WriteFile("/proc/sys/net/ipv4/tcp_congestion_control", []byte(cfg.tcpCC), 0)
			}); err != nil {
				return nil, fmt.Errorf("-tcp-cc %s: %w", cfg.tcpCC, err)
			}
		}
	}
	var cc []byte
	_ = netlab.InNetns(p.ns[0], func() (err error) {
		cc, err = os.ReadFile("/proc/sys/net/ipv4/tcp_congestion_control")
		return err
	})
	fmt.Printf("TCP congestion control in the namespaces: %s\n", strings.TrimSpace(string(cc)))

	names := []string{"TCP", "p2pxfer"}
	if len(cfg.bins) > 1 {
		names = append(names, "p2pxfer alt")
	}
	all := make([][]run, len(names))
	for i := 1; i <= cfg.runs; i++ {
		// Interleaved, so a slow phase of the shared machine hits each.
		for k, name := range names {
			tail0, loss0 := p.drops()
			busy0, _ := benchkit.MachineCPU()
			var r run
			var err error
			if k == 0 {
				r, err = tcpRun(ctx, cfg, p, i)
			} else {
				r, err = p2pRun(ctx, cfg, p, cfg.bins[k-1], fmt.Sprintf("%s-%d", strings.ReplaceAll(name, " ", "-"), i))
			}
			if err != nil {
				return nil, fmt.Errorf("%s run %d: %w", name, i, err)
			}
			tail1, loss1 := p.drops()
			busy1, _ := benchkit.MachineCPU()
			r.tailDrops, r.lossDrops = tail1-tail0, loss1-loss0
			r.others = max(0, busy1-busy0-r.sendCPU-r.recvCPU)
			mbps := float64(int64(cfg.sizeMiB)<<20) / 1e6 / r.secs
			fmt.Printf("  run %d %-12s %6.2f s %7.1f MB/s  CPU send %5.2f s recv %5.2f s  tail drops %5d  random drops %5d  others' CPU ~%.1f s\n",
				i, name, r.secs, mbps, r.sendCPU, r.recvCPU, r.tailDrops, r.lossDrops, r.others)
			all[k] = append(all[k], r)
		}
	}
	res := make([]result, len(names))
	for k, name := range names {
		res[k] = median(cfg, name, all[k])
	}
	return res, nil
}

func median(cfg *config, name string, rs []run) result {
	sort.Slice(rs, func(i, j int) bool { return rs[i].secs < rs[j].secs })
	m := rs[len(rs)/2]
	return result{name: name, runs: rs, med: m, mbps: float64(int64(cfg.sizeMiB)<<20) / 1e6 / m.secs}
}

// ---- TCP: this program re-executed as sender and receiver ----

var listenRE = regexp.MustCompile(`listening on (\S+)`)

// tcpRun starts a receiver in b and a sender in a; the time runs from the
// sender's start to the receiver's exit with the file written, then
// checked.
func tcpRun(ctx context.Context, cfg *config, p *path, i int) (run, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	dst := filepath.Join(cfg.work, "tcp.out")
	defer os.Remove(dst)
	watch := &benchkit.LineWatch{RE: listenRE, Found: make(chan string, 1)}
	rcv, err := startIn(p.ns[1], fmt.Sprintf("tcp-recv-%d", i), cfg.work, watch, cfg.selfPath, "-tcp-recv", addrOf(1)+":0", dst)
	if err != nil {
		return run{}, err
	}
	defer rcv.Stop()
	var addr string
	select {
	case addr = <-watch.Found:
	case <-rcv.Done():
		return run{}, fmt.Errorf("receiver: %s\n%s", rcv.ExitDesc(), rcv.Stderr)
	case <-time.After(10 * time.Second):
		return run{}, errors.New("the TCP receiver did not listen within 10 s")
	case <-ctx.Done():
		return run{}, ctx.Err()
	}
	start := time.Now()
	snd, err := startIn(p.ns[0], fmt.Sprintf("tcp-send-%d", i), cfg.work, nil, cfg.selfPath, "-tcp-send", addr, cfg.src)
	if err != nil {
		return run{}, err
	}
	defer snd.Stop()
	select {
	case <-rcv.Done():
	case <-ctx.Done():
		return run{}, fmt.Errorf("TCP transfer: %w", ctx.Err())
	}
	secs := time.Since(start).Seconds()
	if rcv.FailedOnItsOwn() {
		return run{}, fmt.Errorf("receiver: %s\n%s", rcv.ExitDesc(), rcv.Stderr)
	}
	select {
	case <-snd.Done():
	case <-time.After(10 * time.Second):
		return run{}, errors.New("the TCP sender did not exit after its receiver finished")
	}
	if snd.FailedOnItsOwn() {
		return run{}, fmt.Errorf("sender: %s\n%s", snd.ExitDesc(), snd.Stderr)
	}
	if err := benchkit.CheckHash(dst, cfg.want); err != nil {
		return run{}, err
	}
	return run{secs: secs, sendCPU: snd.CPU(), recvCPU: rcv.CPU()}, nil
}

// tcpHelper is this program as TCP's receiver (-tcp-recv ADDR FILE:
// prints "listening on ADDR", takes one connection, copies it into FILE)
// or sender (-tcp-send ADDR FILE). Its exit code says whether it worked.
func tcpHelper(args []string) int {
	if len(args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: paths -tcp-recv|-tcp-send ADDR FILE")
		return 2
	}
	err := func() error {
		switch args[0] {
		case "-tcp-recv":
			ln, err := net.Listen("tcp4", args[1])
			if err != nil {
				return err
			}
			defer ln.Close()
			fmt.Printf("listening on %s\n", ln.Addr())
			// The benchmark kills us if nobody comes: its timeout bounds this.
			c, err := ln.Accept()
			if err != nil {
				return err
			}
			defer c.Close()
			f, err := os.Create(args[2])
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, c); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		case "-tcp-send":
			f, err := os.Open(args[2])
			if err != nil {
				return err
			}
			defer f.Close()
			c, err := net.DialTimeout("tcp4", args[1], 10*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := io.Copy(c, f); err != nil { // sendfile
				return err
			}
			if err := c.(*net.TCPConn).CloseWrite(); err != nil {
				return err
			}
			// Wait for the receiver's close, so the exit means delivered.
			_, err = io.Copy(io.Discard, c)
			return err
		}
		return fmt.Errorf("unknown mode %s", args[0])
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "paths:", args[0], err)
		return 1
	}
	return 0
}

// startIn starts argv in namespace ns with benchkit.StartProc.
func startIn(ns, name, dir string, stdout io.Writer, argv ...string) (*benchkit.Proc, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Env = benchkit.ProcEnv(password)
	return benchkit.StartProc(cmd, name, dir, stdout, nil)
}

// ---- p2pxfer ----

var (
	roomRE  = regexp.MustCompile(`Room:[ \t]+(\S+)\n`)
	wsURLRE = regexp.MustCompile(`listening on (ws://\S+)`)
)

func (cfg *config) extra() []string {
	var a []string
	if cfg.lanes > 0 {
		a = append(a, "--lanes", strconv.Itoa(cfg.lanes))
	}
	if cfg.verbose {
		a = append(a, "-v")
	}
	return a
}

// p2pRun runs signal and send in a, recv in b; the time is recv's, from
// its start to its exit with the file complete, as in bench/loopback.
func p2pRun(ctx context.Context, cfg *config, p *path, bin, tag string) (run, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	sigWatch := &benchkit.LineWatch{RE: wsURLRE, Found: make(chan string, 1)}
	sig, err := startIn(p.ns[0], "signal-"+tag, cfg.work, sigWatch, bin, "signal", "--addr", addrOf(0), "--port", "0")
	if err != nil {
		return run{}, err
	}
	defer sig.Stop()
	var url string
	if url, err = await(ctx, sig, sigWatch, "signal printed no address"); err != nil {
		return run{}, err
	}
	roomWatch := &benchkit.LineWatch{RE: roomRE, Found: make(chan string, 1)}
	args := append([]string{bin, "send", "--signal", url, "--max-receivers", "1", "--stun", "none", "--interface", p.dev[0]}, cfg.extra()...)
	args = append(args, cfg.sendFlags...)
	snd, err := startIn(p.ns[0], "send-"+tag, cfg.work, roomWatch, append(args, cfg.src)...)
	if err != nil {
		return run{}, err
	}
	defer snd.Stop()
	room, err := await(ctx, snd, roomWatch, "send printed no room")
	if err != nil {
		return run{}, err
	}
	out := filepath.Join(cfg.work, "recv")
	_ = os.RemoveAll(out)
	if err := os.Mkdir(out, 0o755); err != nil {
		return run{}, err
	}
	defer os.RemoveAll(out)
	args = append([]string{bin, "recv", "--no-seed", "--signal", url, "--out", out, "--stun", "none", "--interface", p.dev[1]}, cfg.extra()...)
	args = append(args, cfg.recvFlags...)
	start := time.Now()
	rcv, err := startIn(p.ns[1], "recv-"+tag, cfg.work, nil, append(args, room)...)
	if err != nil {
		return run{}, err
	}
	defer rcv.Stop()
	select {
	case <-rcv.Done():
	case <-ctx.Done():
		return run{}, fmt.Errorf("recv: %w\n%s", ctx.Err(), rcv.Stderr)
	}
	secs := time.Since(start).Seconds()
	if rcv.FailedOnItsOwn() {
		return run{}, fmt.Errorf("recv: %s\n%s", rcv.ExitDesc(), rcv.Stderr)
	}
	// send exits by itself once its one receiver is done.
	select {
	case <-snd.Done():
	case <-time.After(10 * time.Second):
		return run{}, errors.New("send did not exit within 10 s after its receiver finished")
	}
	if snd.FailedOnItsOwn() {
		return run{}, fmt.Errorf("send: %s\n%s", snd.ExitDesc(), snd.Stderr)
	}
	if err := benchkit.CheckHash(filepath.Join(out, filepath.Base(cfg.src)), cfg.want); err != nil {
		return run{}, err
	}
	return run{secs: secs, sendCPU: snd.CPU(), recvCPU: rcv.CPU()}, nil
}

// await waits for w to find its line in p's output.
func await(ctx context.Context, p *benchkit.Proc, w *benchkit.LineWatch, what string) (string, error) {
	select {
	case s := <-w.Found:
		return s, nil
	case <-p.Done():
		return "", fmt.Errorf("%s (%s)\n%s", what, p.ExitDesc(), p.Stderr)
	case <-time.After(time.Minute):
		return "", fmt.Errorf("%s within a minute", what)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// ---- scenario f: the TUN relay of bench/internal/latency ----

func relayScenario(ctx context.Context, cfg *config, s scenario) ([]result, error) {
	fmt.Printf("\nscenario %s: %s (bench/internal/latency's relay; TCP inside the benchmark, no CPU figures)\n", s.key, s.desc)
	rate, err := benchkit.ParseRate(s.rate)
	if err != nil {
		return nil, err
	}
	queue, _ := time.ParseDuration(tbfLatency)
	lc := latency.Config{
		RTT:        s.rtt,
		RateBits:   rate,
		QueueBytes: int64(float64(rate) / 8 * queue.Seconds()),
		SizeMiB:    cfg.sizeMiB,
		Runs:       cfg.runs,
		Timeout:    cfg.timeout,
		TCPCC:      cfg.tcpCC,
		Interval:   -1,
		Work:       filepath.Join(cfg.work, "latency"),
		Verbose:    cfg.verbose,
		SendFlags:  append(cfg.extra(), cfg.sendFlags...),
		RecvFlags:  append(cfg.extra(), cfg.recvFlags...),
		PathHook: func(ctx context.Context, ns, dev [2]string) error {
			return benchkit.ShAll(ctx, [][]string{lossRule(ns[0], dev[0], s.loss), lossRule(ns[1], dev[1], s.loss)})
		},
	}
	lc.SendFlags = slicesWithout(lc.SendFlags, "-v")
	lc.RecvFlags = slicesWithout(lc.RecvFlags, "-v")
	r, err := latency.Run(ctx, lc, cfg.bins[0], os.Stdout)
	if err != nil {
		return nil, err
	}
	conv := func(name string, m latency.Measurement, noCPU bool) result {
		md := run{secs: m.Secs, sendCPU: m.SendCPU, recvCPU: m.RecvCPU, tailDrops: m.Drops}
		return result{name: name, med: md, mbps: m.MBps, noCPU: noCPU, noLoss: true}
	}
	return []result{conv("TCP", r.TCP, true), conv("p2pxfer", r.P2P, false)}, nil
}

func slicesWithout(a []string, s string) []string {
	var out []string
	for _, x := range a {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// ---- the table ----

func table(cfg *config, names []scenario, rows [][]result) {
	lanes := "p2pxfer's default lanes"
	if cfg.lanes > 0 {
		lanes = fmt.Sprintf("--lanes %d", cfg.lanes)
	}
	fmt.Printf("\n%d MiB, median of %d, %s, %d CPUs (shared: others' load shows in the per-run lines)\n", cfg.sizeMiB, cfg.runs, lanes, benchkit.NumCPU())
	hasAlt := len(cfg.bins) > 1
	fmt.Printf("%-32s %8s %8s %6s", "scenario", "TCP MB/s", "p2p MB/s", "ratio")
	if hasAlt {
		fmt.Printf(" %8s %6s", "alt MB/s", "ratio")
	}
	fmt.Printf("  %-11s %-11s", "TCP CPU s/r", "p2p CPU s/r")
	if hasAlt {
		fmt.Printf(" %-11s", "alt CPU s/r")
	}
	fmt.Printf("  %-17s %-17s\n", "tail drops T/p2p", "random drops T/p2p")
	for i, s := range names {
		r := rows[i]
		tcp, p2p := r[0], r[1]
		ratio := func(x result) string {
			if tcp.mbps <= 0 {
				return "-"
			}
			return fmt.Sprintf("%.3f", x.mbps/tcp.mbps)
		}
		cpu := func(x result) string {
			if x.noCPU {
				return "-"
			}
			return fmt.Sprintf("%.1f/%.1f", x.med.sendCPU, x.med.recvCPU)
		}
		fmt.Printf("%-32s %8.1f %8.1f %6s", s.key+" "+s.desc, tcp.mbps, p2p.mbps, ratio(p2p))
		if hasAlt && len(r) > 2 {
			fmt.Printf(" %8.1f %6s", r[2].mbps, ratio(r[2]))
		} else if hasAlt {
			fmt.Printf(" %8s %6s", "-", "-")
		}
		fmt.Printf("  %-11s %-11s", cpu(tcp), cpu(p2p))
		if hasAlt && len(r) > 2 {
			fmt.Printf(" %-11s", cpu(r[2]))
		} else if hasAlt {
			fmt.Printf(" %-11s", "-")
		}
		tail := fmt.Sprintf("%d/%d", tcp.med.tailDrops, p2p.med.tailDrops)
		loss := "-"
		if !p2p.noLoss {
			loss = fmt.Sprintf("%d/%d", tcp.med.lossDrops, p2p.med.lossDrops)
		}
		if hasAlt && len(r) > 2 {
			tail += fmt.Sprintf("/%d", r[2].med.tailDrops)
			loss += fmt.Sprintf("/%d", r[2].med.lossDrops)
		}
		fmt.Printf("  %-17s %-17s\n", tail, loss)
		if len(p2p.runs) > 1 && tcp.mbps > 0 {
			// Runs can be bimodal, which a median hides.
			fmt.Printf("%-32s p2pxfer runs against the TCP median: ratio %.3f to %.3f\n", "", tcp.med.secs/p2p.runs[len(p2p.runs)-1].secs, tcp.med.secs/p2p.runs[0].secs)
		}
	}
	fmt.Println("(times from recv's / the TCP sender's start to a complete file; CPU s/r: send/recv CPU-seconds of the median run;")
	fmt.Println(" tail drops: the tbf's on both sides (scenario f: the relay's queue); random drops: the iptables rule's)")
}
