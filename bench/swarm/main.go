//go:build linux

// Command swarm benchmarks p2pxfer as a swarm of real processes on an
// emulated LAN: one sender and N receivers, each in its own network
// namespace, joined by veth pairs to a Linux bridge that lives in a
// dedicated "hub" namespace (the root namespace is not touched). Every
// host's upload (the egress of its veth, inside its namespace) is capped
// with a tbf qdisc; downloads are not capped, like a typical access line
// whose upload is the bottleneck.
//
// It times three scenarios, from the moment all receivers are started to
// the moment the last one has its verified file in its --out directory:
//
//	(a) one receiver alone;
//	(b) N receivers, seeding and multi-source (recv's default);
//	(c) N receivers served one-to-many by the sender only
//	    (recv --no-seed, send --max-uploads N).
//
// and prints the times and the ratios b/a and c/a (the project aims at
// b/a <= 2.5). Each received file is checked byte-exact (SHA-256). A raw
// TCP copy of the file between the sender's and the first receiver's
// namespace, through the same shaped link, shows what the link itself
// delivers.
//
// Needs root, iproute2 (ip, tc) and the tbf qdisc:
//
//	go run ./bench/swarm -size 64 -rate 40mbit -receivers 8
//	go run ./bench/swarm -size 16 -scenarios a,c -runs 3
//	go run ./bench/swarm -cleanup    # remove namespaces left by a killed run
//
// Everything it creates (namespaces, and with them the veths, the bridge
// and the qdiscs) is removed on exit, also on failure and on Ctrl-C.
package main

import (
	"bufio"
	"bytes"
	"context"
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
	"sync"
	"time"

	"github.com/p2pxfer/p2pxfer/bench/internal/benchkit"
)

const (
	nsPrefix   = "p2pxb-"      // namespaces are p2pxb-<pid>-hub, p2pxb-<pid>-0 (sender), -1.. (receivers)
	subnet     = "10.77.0."    // host i has 10.77.0.(i+1)/24; the sender is 10.77.0.1
	sigPort    = "7777"        // the sender's embedded signalling server
	tcpPort    = "7778"        // the raw TCP baseline
	password   = "bench-bench" // P2PXFER_PASSWORD on both sides
	hostIf     = "veth0"       // the interface inside each host namespace
	bridgeName = "br0"         // in the hub namespace
	minBurst   = 5 * 1514      // tbf burst floor: five full Ethernet frames
)

type config struct {
	sizeMiB    int
	rate       string
	rateBits   int64
	burst      int64 // bytes
	latency    time.Duration
	receivers  int
	runs       int
	scenarios  string
	keep       bool
	keepNetns  bool
	timeout    time.Duration
	bin        string
	verbose    bool
	cpuprofile bool
	tcp        bool
	ipv6       bool
	fec        string
	sendFlags  []string
	recvFlags  []string
	seedTime   string
	caps       caps
	work       string
	src        string
	want       [32]byte
	size       int64
}

func main() {
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "__tcp-") {
		os.Exit(tcpHelper(os.Args[1], os.Args[2:]))
	}
	var cfg config
	var sendFlags, recvFlags, burst string
	cleanup := flag.Bool("cleanup", false, "remove "+nsPrefix+"* namespaces left behind by bench runs that are no longer alive, and exit")
	flag.IntVar(&cfg.sizeMiB, "size", 64, "file size in MiB")
	flag.StringVar(&cfg.rate, "rate", "40mbit", "upload cap of every host (tc units: kbit, mbit, gbit, bit; kbps/mbps = bytes)")
	flag.StringVar(&burst, "burst", "", "tbf burst in bytes (default: 2 ms at -rate, at least 5 full frames)")
	flag.DurationVar(&cfg.latency, "latency", 50*time.Millisecond, "tbf latency: the longest a packet may wait in a host's upload queue (sets the queue length)")
	flag.IntVar(&cfg.receivers, "receivers", 8, "receivers in scenarios b and c")
	flag.IntVar(&cfg.runs, "runs", 1, "runs of each scenario (the median is reported)")
	flag.StringVar(&cfg.scenarios, "scenarios", "a,b,c", "scenarios to run, comma-separated: a (one receiver), b (swarm), c (sender only)")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the work directory (binary, file, logs of every process, received files)")
	flag.BoolVar(&cfg.keepNetns, "keep-netns", false, "leave the namespaces up at the end for inspection (remove them with -cleanup)")
	flag.DurationVar(&cfg.timeout, "timeout", 0, "give up on a scenario after this long (default: 60s + 3 x receivers x the time of one copy at -rate)")
	flag.StringVar(&cfg.bin, "bin", "", "use this p2pxfer binary instead of building one")
	flag.BoolVar(&cfg.verbose, "v", false, "run send and recv with -v (their stderr goes to the logs in the work directory)")
	flag.BoolVar(&cfg.cpuprofile, "cpuprofile", false, "run send and recv with --cpuprofile (profiles in the work directory; implies -keep)")
	flag.BoolVar(&cfg.tcp, "tcp", true, "also measure a raw TCP copy over the same shaped link")
	flag.BoolVar(&cfg.ipv6, "ipv6", true, "keep IPv6 link-local addresses on the veths (as on a real LAN)")
	flag.StringVar(&cfg.fec, "fec", "", "pass --fec VALUE to send (e.g. 8+2, off)")
	flag.StringVar(&sendFlags, "send-flags", "", "extra flags for send, space-separated")
	flag.StringVar(&recvFlags, "recv-flags", "", "extra flags for recv, space-separated")
	flag.StringVar(&cfg.seedTime, "seed-time", "1h", "recv --seed-time in scenario b (receivers are killed once the last one has finished)")
	flag.Parse()
	cfg.sendFlags, cfg.recvFlags = strings.Fields(sendFlags), strings.Fields(recvFlags)
	cfg.keep = cfg.keep || cfg.cpuprofile

	if err := checkHost(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if *cleanup {
		n := cleanupStale(true)
		fmt.Printf("removed %d stale namespace(s)\n", n)
		return
	}
	var err error
	if cfg.rateBits, err = benchkit.ParseRate(cfg.rate); err != nil {
		fmt.Fprintln(os.Stderr, "bench: -rate:", err)
		os.Exit(2)
	}
	cfg.burst = max(cfg.rateBits/8*2/1000, minBurst)
	if burst != "" {
		if cfg.burst, err = strconv.ParseInt(burst, 10, 64); err != nil || cfg.burst < 1514 {
			fmt.Fprintln(os.Stderr, "bench: -burst must be a number of bytes, at least 1514 (one full frame)")
			os.Exit(2)
		}
	}
	if cfg.sizeMiB < 1 || cfg.receivers < 1 || cfg.receivers > 250 || cfg.runs < 1 || cfg.latency < time.Millisecond {
		fmt.Fprintln(os.Stderr, "bench: need -size >= 1, 1 <= -receivers <= 250, -runs >= 1, -latency >= 1ms")
		os.Exit(2)
	}
	for _, s := range strings.Split(cfg.scenarios, ",") {
		if s != "a" && s != "b" && s != "c" {
			fmt.Fprintf(os.Stderr, "bench: unknown scenario %q (want a, b, c)\n", s)
			os.Exit(2)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	benchkit.OnSignals("bench", cancel, func() {
		fmt.Fprintln(os.Stderr, "bench: forced: killing processes and removing namespaces now")
		benchkit.KillAll(true)
		teardown(&cfg)
		if !cfg.keep && cfg.work != "" {
			_ = os.RemoveAll(cfg.work)
		}
		os.Exit(130)
	})

	err = run(ctx, &cfg)
	teardown(&cfg)
	if !cfg.keep && cfg.work != "" {
		_ = os.RemoveAll(cfg.work)
	} else if cfg.work != "" {
		fmt.Println("work directory kept:", cfg.work)
	}
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "bench: interrupted; everything it set up is removed")
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// checkHost says clearly what is missing to run at all.
func checkHost() error {
	if os.Geteuid() != 0 {
		return errors.New("must run as root (it creates network namespaces, veths, a bridge and tc qdiscs); try: sudo -E go run ./bench/swarm")
	}
	for _, t := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%q not found in PATH: install iproute2", t)
		}
	}
	return nil
}

func run(ctx context.Context, cfg *config) error {
	var err error
	if cfg.work, err = os.MkdirTemp("", "p2pxfer-swarm-"); err != nil {
		return err
	}
	if cfg.bin == "" {
		cfg.bin = filepath.Join(cfg.work, "p2pxfer")
		if err := benchkit.Build(ctx, cfg.bin); err != nil {
			return err
		}
	} else if cfg.bin, err = filepath.Abs(cfg.bin); err != nil {
		return err
	}
	if cfg.caps, err = probeCaps(cfg.bin); err != nil {
		return err
	}
	if cfg.fec != "" && !cfg.caps.fec {
		return errors.New("-fec given but this p2pxfer send has no --fec flag")
	}
	for _, n := range cfg.caps.notes(cfg.scenarios) {
		fmt.Println("note:", n)
	}

	cfg.size = int64(cfg.sizeMiB) << 20
	cfg.src = filepath.Join(cfg.work, "src", fmt.Sprintf("swarm-%dMiB.bin", cfg.sizeMiB))
	if err := os.MkdirAll(filepath.Dir(cfg.src), 0o755); err != nil {
		return err
	}
	fmt.Printf("writing a %d MiB random file ...\n", cfg.sizeMiB)
	if cfg.want, err = benchkit.RandomFile(cfg.src, cfg.size); err != nil {
		return err
	}

	hosts := 2
	if strings.ContainsAny(cfg.scenarios, "bc") {
		hosts = 1 + cfg.receivers
	}
	fmt.Printf("setting up %d hosts + hub: upload %s each (tbf burst %d B, latency %v) ...\n",
		hosts, benchkit.FmtRate(cfg.rateBits), cfg.burst, cfg.latency)
	if err := setupNet(ctx, cfg, hosts); err != nil {
		return fmt.Errorf("network setup: %w", err)
	}

	copySecs := float64(cfg.size) * 8 / float64(cfg.rateBits)
	if cfg.timeout == 0 {
		cfg.timeout = 60*time.Second + time.Duration(3*float64(cfg.receivers)*copySecs*float64(time.Second))
	}

	var tcpTimes []float64
	results := map[string][]outcome{}
	for r := 1; r <= cfg.runs; r++ {
		if cfg.tcp {
			s, err := tcpBaseline(ctx, cfg, r)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				fmt.Printf("run %d  raw TCP: FAILED: %v\n", r, err)
			} else {
				fmt.Printf("run %d  raw TCP sender -> receiver 1: %.2f s (%.1f Mbit/s of payload)\n", r, s, float64(cfg.size)*8/1e6/s)
				tcpTimes = append(tcpTimes, s)
			}
		}
		for _, key := range strings.Split(cfg.scenarios, ",") {
			sc := makeScenario(cfg, key)
			o := runScenario(ctx, cfg, sc, r)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			results[key] = append(results[key], o)
		}
	}
	summary(cfg, copySecs, tcpTimes, results)
	for _, rs := range results {
		for _, o := range rs {
			if o.err != nil {
				return errors.New("some runs failed (see above)")
			}
		}
	}
	return nil
}

// ---- p2pxfer's flags ----

type caps struct {
	maxUploads, fec, noSeed, seedTime bool
	seedIdle                          bool // recv ends idle seeding by itself unless --seed-idle 0
}

func probeCaps(bin string) (caps, error) {
	help := func(cmd string) (string, error) {
		out, err := exec.Command(bin, cmd, "--help").CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("%s %s --help: %v\n%s", bin, cmd, err, out)
		}
		return string(out), nil
	}
	s, err := help("send")
	if err != nil {
		return caps{}, err
	}
	r, err := help("recv")
	if err != nil {
		return caps{}, err
	}
	return caps{
		maxUploads: strings.Contains(s, "--max-uploads"),
		fec:        strings.Contains(s, "--fec"),
		noSeed:     strings.Contains(r, "--no-seed"),
		seedTime:   strings.Contains(r, "--seed-time"),
		seedIdle:   strings.Contains(r, "--seed-idle"),
	}, nil
}

// notes says which of the flags the scenarios use are missing.
func (c caps) notes(scenarios string) []string {
	var n []string
	if !c.maxUploads && strings.Contains(scenarios, "c") {
		n = append(n, "send has no --max-uploads: scenario c runs without it (the sender's own limit applies)")
	}
	if !c.noSeed && strings.Contains(scenarios, "c") {
		n = append(n, "recv has no --no-seed: in scenario c receivers run with the binary's default")
	}
	if !c.seedTime && strings.Contains(scenarios, "b") {
		n = append(n, "recv has no --seed-time: this binary does not seed, so scenario b measures what scenario c does")
	}
	return n
}

// ---- scenarios ----

type scenario struct {
	key, title string
	receivers  int
	sendArgs   []string
	recvArgs   []string
}

func makeScenario(cfg *config, key string) scenario {
	n := cfg.receivers
	switch key {
	case "a":
		return scenario{key: "a", title: "one receiver alone", receivers: 1}
	case "b":
		sc := scenario{key: "b", title: fmt.Sprintf("%d receivers, seeding + multi-source", n), receivers: n}
		if cfg.caps.seedTime {
			// Everyone keeps seeding until the last has finished; the
			// bench kills them then.
			sc.recvArgs = []string{"--seed-time", cfg.seedTime}
		}
		if cfg.caps.seedIdle {
			// A seed nobody picked for a while must not leave early.
			sc.recvArgs = append(sc.recvArgs, "--seed-idle", "0")
		}
		return sc
	default:
		sc := scenario{key: "c", title: fmt.Sprintf("%d receivers, one-to-many from the sender only", n), receivers: n}
		if cfg.caps.maxUploads {
			sc.sendArgs = []string{"--max-uploads", strconv.Itoa(n)}
		}
		if cfg.caps.noSeed {
			sc.recvArgs = []string{"--no-seed"}
		}
		return sc
	}
}

type recvResult struct {
	secs float64 // 0: never finished
	exit string
	cpu  float64
}

type outcome struct {
	secs    float64 // the last receiver's; valid if err == nil
	recv    []recvResult
	sendCPU float64
	wall    float64
	cores   float64 // CPU-seconds of all processes per second of wall time
	err     error
}

func runScenario(ctx context.Context, cfg *config, sc scenario, run int) (o outcome) {
	reported := false
	defer func() {
		if o.err != nil && !reported && ctx.Err() == nil {
			fmt.Printf("run %d  (%s) %s: FAILED: %v\n", run, sc.key, sc.title, o.err)
		}
	}()
	dir := filepath.Join(cfg.work, fmt.Sprintf("run%d", run), sc.key)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return outcome{err: err}
	}
	env := benchkit.ProcEnv(password)
	common := []string{"--stun", "none"}
	if cfg.verbose {
		common = append(common, "-v")
	}

	prof := func(name string) []string {
		if !cfg.cpuprofile {
			return nil
		}
		return []string{"--cpuprofile", filepath.Join(dir, name+".prof")}
	}
	sendArgs := append(append(append([]string{cfg.bin}, prof("send")...), "send", "--listen", "0.0.0.0:"+sigPort), common...)
	sendArgs = append(sendArgs, sc.sendArgs...)
	if cfg.fec != "" {
		sendArgs = append(sendArgs, "--fec", cfg.fec)
	}
	sendArgs = append(append(sendArgs, cfg.sendFlags...), cfg.src)
	watch := &benchkit.LineWatch{RE: regexp.MustCompile(`Room:[ \t]+(\S+)\n`), Found: make(chan string, 1)}
	sender, err := startProc(nsName(0), "send", dir, env, watch, sendArgs)
	if err != nil {
		return outcome{err: err}
	}
	all := []*benchkit.Proc{sender}
	defer func() { benchkit.StopAll(all) }()

	var roomID string
	select {
	case roomID = <-watch.Found:
	case <-sender.Done():
		return outcome{err: fmt.Errorf("send ended (%s) before printing a room\n%s", sender.ExitDesc(), indent(sender.Stderr.String()))}
	case <-time.After(2 * time.Minute):
		return outcome{err: errors.New("send printed no room within 2 minutes")}
	case <-ctx.Done():
		return outcome{err: ctx.Err()}
	}
	url := "ws://" + hostIP(0) + ":" + sigPort + "/ws"

	name := filepath.Base(cfg.src)
	recvs := make([]*benchkit.Proc, sc.receivers)
	outs := make([]string, sc.receivers)
	for i := range recvs {
		outs[i] = filepath.Join(dir, fmt.Sprintf("recv%d.out", i+1))
		if err := os.MkdirAll(outs[i], 0o755); err != nil {
			return outcome{err: err}
		}
	}
	start := time.Now()
	for i := range recvs {
		args := append(append(append([]string{cfg.bin}, prof(fmt.Sprintf("recv%d", i+1))...), "recv", "--signal", url, "--out", outs[i]), common...)
		args = append(append(append(args, sc.recvArgs...), cfg.recvFlags...), roomID)
		p, err := startProc(nsName(i+1), fmt.Sprintf("recv%d", i+1), dir, env, nil, args)
		if err != nil {
			return outcome{err: err}
		}
		recvs[i] = p
		all = append(all, p)
	}

	// Poll every 20 ms for each receiver's final file (recv renames it into
	// place only once verified).
	done := make([]time.Duration, sc.receivers)
	pending := sc.receivers
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(cfg.timeout)
	var failed error
	for pending > 0 && failed == nil {
		select {
		case <-ctx.Done():
			return outcome{err: ctx.Err()}
		case <-deadline:
			failed = fmt.Errorf("timed out after %v with %d of %d receivers unfinished", cfg.timeout, pending, sc.receivers)
		case <-tick.C:
		}
		now := time.Since(start)
		for i, p := range recvs {
			if done[i] != 0 {
				continue
			}
			if _, err := os.Stat(filepath.Join(outs[i], name)); err == nil {
				done[i] = now
				pending--
				continue
			}
			select {
			case <-p.Done():
				// Exited without its file (one more stat: it may have
				// renamed it between the two checks).
				if _, err := os.Stat(filepath.Join(outs[i], name)); err == nil {
					done[i] = now
					pending--
				} else if failed == nil {
					failed = fmt.Errorf("recv%d ended (%s) without the file", i+1, p.ExitDesc())
				}
			default:
			}
		}
	}
	wall := time.Since(start)
	if failed == nil {
		// Receivers that end on their own (--no-seed) get a moment to do
		// so, so that their exit code is their own; seeds are stopped.
		grace := time.After(time.Second)
	wait:
		for _, p := range recvs {
			select {
			case <-p.Done():
			case <-grace:
				break wait
			}
		}
	}
	benchkit.StopAll(all)

	o = outcome{recv: make([]recvResult, sc.receivers), sendCPU: sender.CPU(), wall: wall.Seconds()}
	var last time.Duration
	for i, p := range recvs {
		o.recv[i] = recvResult{secs: done[i].Seconds(), exit: p.ExitDesc(), cpu: p.CPU()}
		last = max(last, done[i])
		if done[i] == 0 {
			continue
		}
		got, err := benchkit.HashFile(filepath.Join(outs[i], name))
		if err == nil && got != cfg.want {
			err = errors.New("wrong SHA-256")
		}
		if err != nil && failed == nil {
			failed = fmt.Errorf("recv%d: received file: %v", i+1, err)
		}
	}
	o.secs = last.Seconds()
	o.err = failed

	// Details.
	status := fmt.Sprintf("%.2f s", o.secs)
	if failed != nil {
		status = "FAILED: " + failed.Error()
	}
	reported = true
	fmt.Printf("run %d  (%s) %s: %s\n", run, sc.key, sc.title, status)
	fmt.Printf("    send              %-20s cpu %6.2f s\n", sender.ExitDesc(), o.sendCPU)
	totalCPU := o.sendCPU
	for i, r := range o.recv {
		t := fmt.Sprintf("%9s", "-")
		if r.secs > 0 {
			t = fmt.Sprintf("%7.2f s", r.secs)
		}
		fmt.Printf("    recv%-2d %s  %-20s cpu %6.2f s\n", i+1, t, r.exit, r.cpu)
		totalCPU += r.cpu
	}
	o.cores = totalCPU / o.wall
	if o.wall >= 1 {
		fmt.Printf("    all processes: %.1f CPU-s; %.2f of %d cores while the receivers ran\n", totalCPU, totalCPU/o.wall, benchkit.NumCPU())
	}
	if failed != nil {
		for i, p := range recvs {
			if done[i] == 0 || p.FailedOnItsOwn() {
				fmt.Printf("    recv%d stderr (tail):\n%s", i+1, indent(p.Stderr.String()))
			}
		}
		if sender.FailedOnItsOwn() || sender.Stderr.Len() > 0 {
			fmt.Printf("    send stderr (tail):\n%s", indent(sender.Stderr.String()))
		}
	}
	if !cfg.keep {
		for _, d := range outs {
			_ = os.RemoveAll(d)
		}
	}
	return o
}

func summary(cfg *config, copySecs float64, tcpTimes []float64, res map[string][]outcome) {
	n := cfg.receivers
	recvs := ""
	if strings.ContainsAny(cfg.scenarios, "bc") {
		recvs = fmt.Sprintf(", %d receivers in b/c", n)
	}
	fmt.Printf("\n%d MiB, upload %s per host (tbf burst %d B, latency %v)%s, %d run(s), %d CPUs\n",
		cfg.sizeMiB, benchkit.FmtRate(cfg.rateBits), cfg.burst, cfg.latency, recvs, cfg.runs, benchkit.NumCPU())
	fmt.Printf("one copy at the link rate (file size x 8 / rate): %.2f s\n\n", copySecs)
	fmt.Printf("%-52s %9s %9s %9s %10s\n", "", "median", "min", "max", "bound")
	if len(tcpTimes) > 0 {
		sort.Float64s(tcpTimes)
		fmt.Printf("%-52s %8.2fs %8.2fs %8.2fs %9.2fs\n", "raw TCP, sender -> 1 receiver (link check)",
			median(tcpTimes), tcpTimes[0], tcpTimes[len(tcpTimes)-1], copySecs)
	}
	// Lower bounds with every host uploading at the rate: one copy must
	// leave the sender (a, b), and N copies in total must be uploaded by the
	// N+1 hosts (b); in c the sender uploads all N copies.
	bounds := map[string]float64{"a": copySecs, "b": max(copySecs, float64(n)*copySecs/float64(n+1)), "c": float64(n) * copySecs}
	med := map[string]float64{}
	var cpuBound []string
	for _, key := range []string{"a", "b", "c"} {
		runs := res[key]
		if len(runs) == 0 {
			continue
		}
		var t []float64
		for _, o := range runs {
			if o.err == nil {
				t = append(t, o.secs)
			}
		}
		title := "(" + key + ") " + makeScenario(cfg, key).title
		if len(t) == 0 {
			fmt.Printf("%-52s %9s %9s %9s %9.2fs\n", title, "FAILED", "", "", bounds[key])
			continue
		}
		sort.Float64s(t)
		med[key] = median(t)
		failed := ""
		if len(t) < len(runs) {
			failed = fmt.Sprintf("  (%d of %d runs failed)", len(runs)-len(t), len(runs))
		}
		fmt.Printf("%-52s %8.2fs %8.2fs %8.2fs %9.2fs%s\n", title, med[key], t[0], t[len(t)-1], bounds[key], failed)
		for _, o := range runs {
			if o.err == nil && o.cores > 0.85*float64(benchkit.NumCPU()) {
				cpuBound = append(cpuBound, fmt.Sprintf("(%s) %.2f", key, o.cores))
				break
			}
		}
	}
	if len(cpuBound) > 0 {
		fmt.Printf("\nCPU-BOUND: the processes used nearly all %d cores in %s (cores busy, one run):\n"+
			"those times measure this machine's CPUs as much as the links.\n", benchkit.NumCPU(), strings.Join(cpuBound, ", "))
	}
	fmt.Println()
	if a, ok := med["a"]; ok {
		if b, ok := med["b"]; ok {
			verdict := "meets"
			if b/a > 2.5 {
				verdict = "MISSES"
			}
			fmt.Printf("(b)/(a) = %.2f   %s the target (<= 2.5)\n", b/a, verdict)
		}
		if c, ok := med["c"]; ok {
			fmt.Printf("(c)/(a) = %.2f   (sender only; %d expected from the link alone)\n", c/a, n)
		}
	}
	for _, note := range cfg.caps.notes(cfg.scenarios) {
		fmt.Println("note:", note)
	}
}

// ---- network ----

var netState struct {
	sync.Mutex
	created []string // namespaces, in creation order
	torn    bool
}

func nsName(i int) string { return fmt.Sprintf("%s%d-%d", nsPrefix, os.Getpid(), i) }
func hubName() string     { return fmt.Sprintf("%s%d-hub", nsPrefix, os.Getpid()) }
func hostIP(i int) string { return subnet + strconv.Itoa(i+1) }

func addNetns(ctx context.Context, name string) error {
	netState.Lock()
	defer netState.Unlock()
	if netState.torn {
		return errors.New("tearing down")
	}
	if err := benchkit.Sh(ctx, "ip", "netns", "add", name); err != nil {
		return err
	}
	netState.created = append(netState.created, name)
	return nil
}

// setupNet builds the LAN: a hub namespace with a bridge, and per host a
// namespace with lo up and one end of a veth pair (the other end on the
// bridge), an address in 10.77.0.0/24 and a tbf qdisc on its egress.
//
// tbf parameters: the rate is the cap. burst is how many bytes may leave
// back to back at line rate after an idle moment; 2 ms worth (10 kB at
// 40 Mbit/s), at least five full frames, so the qdisc never depends on
// timer precision to reach its rate while the burst stays negligible next
// to a transfer of seconds. latency bounds the queue (limit = rate x
// latency + burst, 260 kB at 40 Mbit/s): a modest home router's upload
// buffer; packets beyond it are dropped, which is what a congestion
// controller (SCTP's, TCP's) sees on a real uplink. The queue also delays
// what the host sends back (acknowledgements) while it is uploading.
func setupNet(ctx context.Context, cfg *config, hosts int) error {
	if out, err := exec.Command("ip", "netns", "list").CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns list: %v: %s", err, out)
	} else if bytes.Contains(out, []byte(nsPrefix)) {
		if n := cleanupStale(false); n > 0 {
			fmt.Printf("removed %d namespace(s) left by an earlier run\n", n)
		}
	}
	hub := hubName()
	if err := addNetns(ctx, hub); err != nil {
		return err
	}
	steps := [][]string{
		{"ip", "-n", hub, "link", "add", bridgeName, "type", "bridge"},
		{"ip", "-n", hub, "link", "set", bridgeName, "up"},
	}
	if err := benchkit.ShAll(ctx, steps); err != nil {
		return err
	}
	rate := fmt.Sprintf("%dbit", cfg.rateBits)
	for i := 0; i < hosts; i++ {
		ns, port := nsName(i), fmt.Sprintf("h%d", i)
		if err := addNetns(ctx, ns); err != nil {
			return err
		}
		steps := [][]string{
			{"ip", "link", "add", hostIf, "netns", ns, "type", "veth", "peer", "name", port, "netns", hub},
			{"ip", "-n", hub, "link", "set", port, "master", bridgeName},
			{"ip", "-n", hub, "link", "set", port, "up"},
			{"ip", "-n", ns, "link", "set", "lo", "up"},
		}
		if !cfg.ipv6 {
			steps = append(steps, []string{"ip", "-n", ns, "link", "set", hostIf, "addrgenmode", "none"})
		}
		steps = append(steps,
			[]string{"ip", "-n", ns, "addr", "add", hostIP(i) + "/24", "dev", hostIf},
			[]string{"ip", "-n", ns, "link", "set", hostIf, "up"},
			[]string{"tc", "-n", ns, "qdisc", "add", "dev", hostIf, "root", "tbf",
				"rate", rate, "burst", fmt.Sprintf("%db", cfg.burst), "latency", fmt.Sprintf("%dus", cfg.latency.Microseconds())},
		)
		if err := benchkit.ShAll(ctx, steps); err != nil {
			if strings.Contains(err.Error(), "qdisc kind is unknown") {
				return fmt.Errorf("%w\nthe kernel has no tbf qdisc (CONFIG_NET_SCH_TBF)", err)
			}
			return err
		}
	}
	if cfg.verbose {
		out, _ := exec.Command("tc", "-n", nsName(0), "qdisc", "show", "dev", hostIf).CombinedOutput()
		fmt.Printf("  %s", out)
	}
	// Let IPv6 duplicate address detection settle so link-local addresses
	// are usable (not "tentative") when the first ICE agent gathers.
	if cfg.ipv6 {
		waitIPv6(ctx, hosts)
	}
	return nil
}

func waitIPv6(ctx context.Context, hosts int) {
	end := time.Now().Add(5 * time.Second)
	for i := 0; i < hosts && time.Now().Before(end); {
		out, _ := exec.CommandContext(ctx, "ip", "-n", nsName(i), "-6", "addr", "show", "dev", hostIf).CombinedOutput()
		if bytes.Contains(out, []byte("inet6")) && !bytes.Contains(out, []byte("tentative")) {
			i++
			continue
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// teardown kills every process still running and deletes the namespaces
// (deleting a namespace deletes the veths, qdiscs and bridge in it).
// Idempotent; also called from the second-signal path.
func teardown(cfg *config) {
	benchkit.KillAll(false)
	netState.Lock()
	defer netState.Unlock()
	if netState.torn {
		return
	}
	netState.torn = true
	if cfg.keepNetns {
		if len(netState.created) > 0 {
			fmt.Printf("namespaces kept (-keep-netns): %s\nremove them with: go run ./bench/swarm -cleanup\n", strings.Join(netState.created, " "))
		}
		return
	}
	for i := len(netState.created) - 1; i >= 0; i-- {
		benchkit.DeleteNetns(netState.created[i])
	}
	netState.created = nil
	out, _ := exec.Command("ip", "netns", "list").CombinedOutput()
	mine := fmt.Sprintf("%s%d-", nsPrefix, os.Getpid())
	if bytes.Contains(out, []byte(mine)) {
		fmt.Fprintf(os.Stderr, "bench: WARNING: namespaces %s* still listed after teardown:\n%s", mine, out)
	}
}

// cleanupStale deletes p2pxb-<pid>-* namespaces whose bench process is
// gone; verbose says which.
func cleanupStale(verbose bool) int {
	out := io.Discard
	if verbose {
		out = os.Stdout
	}
	return benchkit.CleanupNetns(nsPrefix, "swarm", out)
}

// ---- processes ----

// startProc runs argv inside namespace ns (ip netns exec execs the
// command, so the pid is the program's own); see benchkit.StartProc.
func startProc(ns, name, dir string, env []string, stdout io.Writer, argv []string) (*benchkit.Proc, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Env = env
	return benchkit.StartProc(cmd, name, dir, stdout, nil)
}

// ---- raw TCP baseline ----

// tcpBaseline copies the file over TCP from the sender's namespace to the
// first receiver's, through the same shaped link: what the link delivers
// to a plain TCP connection. It runs this program itself as the two ends.
func tcpBaseline(ctx context.Context, cfg *config, run int) (float64, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	dir := filepath.Join(cfg.work, fmt.Sprintf("run%d", run), "tcp")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	ready := &benchkit.LineWatch{RE: regexp.MustCompile(`(ready)\n`), Found: make(chan string, 1)}
	srv, err := startProc(nsName(0), "tcp-serve", dir, os.Environ(), ready, []string{self, "__tcp-serve", "0.0.0.0:" + tcpPort, cfg.src})
	if err != nil {
		return 0, err
	}
	defer srv.Stop()
	select {
	case <-ready.Found:
	case <-srv.Done():
		return 0, fmt.Errorf("tcp server ended: %s", srv.Stderr.String())
	case <-time.After(10 * time.Second):
		return 0, errors.New("tcp server not ready")
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	out := filepath.Join(dir, "tcp.out")
	start := time.Now()
	cli, err := startProc(nsName(1), "tcp-fetch", dir, os.Environ(), nil, []string{self, "__tcp-fetch", hostIP(0) + ":" + tcpPort, out})
	if err != nil {
		return 0, err
	}
	defer cli.Stop()
	select {
	case <-cli.Done():
	case <-time.After(cfg.timeout):
		return 0, errors.New("timed out")
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	secs := time.Since(start).Seconds()
	if !cli.Cmd.ProcessState.Success() {
		return 0, fmt.Errorf("fetch: %s: %s", cli.ExitDesc(), cli.Stderr.String())
	}
	got, err := benchkit.HashFile(out)
	_ = os.Remove(out)
	if err != nil {
		return 0, err
	}
	if got != cfg.want {
		return 0, errors.New("wrong SHA-256")
	}
	return secs, nil
}

// tcpHelper is this program run inside a namespace as one end of the TCP
// baseline: "__tcp-serve ADDR FILE" serves FILE to one connection,
// "__tcp-fetch ADDR OUT" writes what ADDR sends into OUT.
func tcpHelper(mode string, args []string) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, mode+":", err); return 1 }
	if len(args) != 2 {
		return fail(errors.New("want ADDR FILE"))
	}
	switch mode {
	case "__tcp-serve":
		ln, err := net.Listen("tcp", args[0])
		if err != nil {
			return fail(err)
		}
		fmt.Println("ready")
		c, err := ln.Accept()
		if err != nil {
			return fail(err)
		}
		f, err := os.Open(args[1])
		if err != nil {
			return fail(err)
		}
		if _, err := io.Copy(c, f); err != nil {
			return fail(err)
		}
		if err := c.Close(); err != nil {
			return fail(err)
		}
		return 0
	case "__tcp-fetch":
		c, err := net.DialTimeout("tcp", args[0], 10*time.Second)
		if err != nil {
			return fail(err)
		}
		f, err := os.Create(args[1])
		if err != nil {
			return fail(err)
		}
		if _, err := io.Copy(f, c); err != nil {
			return fail(err)
		}
		if err := f.Close(); err != nil {
			return fail(err)
		}
		return 0
	}
	return fail(errors.New("unknown mode"))
}

// ---- helpers ----

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "      (empty)\n"
	}
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		b.WriteString("      ")
		b.WriteString(sc.Text())
		b.WriteByte('\n')
	}
	return b.String()
}
