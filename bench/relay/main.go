//go:build linux

// Command relay benchmarks p2pxfer's TURN relay (signal --turn) on one
// NAT lab (internal/netlab): real signal, send and recv processes in
// network namespaces, behind routers that NAT as Linux's MASQUERADE does.
//
// In one run, on one lab with one signalling server run with --turn, it
// measures:
//
//  1. a transfer of -size MiB between two hosts behind port-preserving
//     NATs, which connect directly through the NATs (the baseline), and
//     the same between two hosts behind symmetric NATs, which connect
//     through the relay; runs of the two alternate, so a slow phase of the
//     machine hits both. Each end must report the path expected, and the
//     received file must have the right SHA-256. It reports each median
//     MB/s and the ratio relay/direct;
//  2. the CPU-seconds the signal --turn process used during each transfer
//     (from /proc/<pid>/stat), per GiB relayed, and send's and recv's
//     CPU-seconds;
//  3. the time to connect, from recv's start to its "connected to the
//     sender:" line, with a 1 MiB file, for each case of the lab: a LAN
//     without NAT, port-preserving NATs, symmetric NATs (relay), a network
//     that blocks UDP (relay over TCP) and bare-MASQUERADE routers
//     (netlab's NoFirewall), each behind a provider's router (Provider:
//     a punch can end between them) and adjacent on one segment (it
//     cannot), reporting the path each took.
//
// Needs root, iproute2 and iptables (tc too with -rate):
//
//	go run ./bench/relay                 # 128 MiB, 3 runs
//	go run ./bench/relay -size 32 -runs 1
//	go run ./bench/relay -rate 100mbit   # cap the relay server's upload
//
// Everything it creates (the lab's namespaces, the processes in them, the
// work directory) is removed on exit, also on failure and on Ctrl-C.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/p2pxfer/p2pxfer/bench/internal/benchkit"
	"github.com/p2pxfer/p2pxfer/internal/netlab"
)

const (
	prog        = "relay"
	password    = "bench-relay-password" // P2PXFER_PASSWORD of send and recv
	sigPort     = "8080"
	connectSize = 1 << 20 // the file of the time-to-connect cases
	clkTck      = 100     // USER_HZ: the unit of utime and stime in /proc/<pid>/stat on Linux
	mib         = 1 << 20
	gib         = 1 << 30
)

type config struct {
	sizeMiB  int
	runs     int
	keep     bool
	rate     string
	rateBits int64
	timeout  time.Duration
	bin      string
	lanes    int
}

func main() {
	var cfg config
	flag.IntVar(&cfg.sizeMiB, "size", 128, "file size in MiB of the direct and relayed transfers")
	flag.IntVar(&cfg.runs, "runs", 3, "runs of each measurement (the median is reported)")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the work directory (binary, files, every process's stdout and stderr)")
	flag.IntVar(&cfg.lanes, "lanes", 0, "--lanes for recv (0: p2pxfer's default; 1: one peer connection, on whose path a ride lane still opens)")
	flag.StringVar(&cfg.rate, "rate", "", "cap the relay server's upload with a tbf qdisc, e.g. 100mbit (tc units; default: no cap)")
	flag.DurationVar(&cfg.timeout, "timeout", 0, "give up on a transfer after this long (default: 60s + 1s per MiB, or 3x the time at -rate)")
	flag.StringVar(&cfg.bin, "bin", "", "use this p2pxfer binary instead of building one")
	flag.Parse()

	if err := netlab.Check(); err != nil {
		fmt.Fprintln(os.Stderr, prog+":", err)
		os.Exit(2)
	}
	if cfg.sizeMiB < 1 || cfg.runs < 1 {
		fmt.Fprintln(os.Stderr, prog+": need -size >= 1 and -runs >= 1")
		os.Exit(2)
	}
	if cfg.rate != "" {
		if _, err := exec.LookPath("tc"); err != nil {
			fmt.Fprintln(os.Stderr, prog+": -rate needs tc (iproute2) in PATH")
			os.Exit(2)
		}
		var err error
		if cfg.rateBits, err = benchkit.ParseRate(cfg.rate); err != nil {
			fmt.Fprintln(os.Stderr, prog+": -rate:", err)
			os.Exit(2)
		}
	}
	if cfg.timeout <= 0 {
		cfg.timeout = 60*time.Second + time.Duration(cfg.sizeMiB)*time.Second
		if cfg.rateBits > 0 {
			cfg.timeout = 60*time.Second + 3*time.Duration(float64(cfg.sizeMiB)*mib*8/float64(cfg.rateBits)*float64(time.Second))
		}
	}

	b := &bench{cfg: cfg}
	ctx, cancel := context.WithCancel(context.Background())
	benchkit.OnSignals(prog, cancel, func() {
		fmt.Fprintln(os.Stderr, prog+": forced: killing the processes and removing the lab now")
		b.teardown(true)
		os.Exit(130)
	})

	err := b.run(ctx)
	b.teardown(false)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, prog+": interrupted; everything it set up is removed")
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, prog+":", err)
		os.Exit(1)
	}
}

// pair is one lab case: a sender and a receiver, and the path both must
// report ("" accepts any, and the path taken is reported).
type pair struct {
	name     string
	snd, rcv *netlab.Host
	want     string
}

type bench struct {
	cfg config

	mu      sync.Mutex // guards lab, work and torn against the forced teardown
	lab     *netlab.Lab
	work    string
	torn    bool
	sig     *benchkit.Proc
	srv     *netlab.Host
	url     string
	relayAt string // "via relay <server IPv4>"
	// ride: a sender behind a symmetric NAT, a receiver with a public
	// address: no direct lane connects, the data rides ICE's pair.
	ride pair
}

// teardown stops every process, deletes the lab and, unless -keep, the
// work directory. Idempotent; force kills at once.
func (b *bench) teardown(force bool) {
	benchkit.KillAll(force)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.torn {
		return
	}
	b.torn = true
	if b.lab != nil {
		if err := b.lab.Close(); err != nil {
			fmt.Fprintln(os.Stderr, prog+":", err)
		}
	}
	if b.work == "" {
		return
	}
	if b.cfg.keep {
		fmt.Println("work directory kept:", b.work)
		return
	}
	_ = os.RemoveAll(b.work)
}

func (b *bench) run(ctx context.Context) error {
	cfg := &b.cfg
	work, err := os.MkdirTemp("", "p2pxfer-relay-")
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.work = work
	b.mu.Unlock()

	if cfg.bin == "" {
		cfg.bin = filepath.Join(work, "p2pxfer")
		if err := benchkit.Build(ctx, cfg.bin); err != nil {
			return err
		}
	} else if cfg.bin, err = filepath.Abs(cfg.bin); err != nil {
		return err
	}

	size := int64(cfg.sizeMiB) * mib
	big := filepath.Join(work, "src", fmt.Sprintf("relay-%dMiB.bin", cfg.sizeMiB))
	small := filepath.Join(work, "src", "connect-1MiB.bin")
	if err := os.MkdirAll(filepath.Dir(big), 0o755); err != nil {
		return err
	}
	fmt.Printf("writing a %d MiB and a 1 MiB random file ...\n", cfg.sizeMiB)
	bigSum, err := benchkit.RandomFile(big, size)
	if err != nil {
		return err
	}
	smallSum, err := benchkit.RandomFile(small, connectSize)
	if err != nil {
		return err
	}

	fmt.Println("setting up the NAT lab ...")
	lab, err := netlab.New("relaybench")
	if err != nil {
		return err
	}
	b.mu.Lock()
	if b.torn { // a forced teardown came first
		b.mu.Unlock()
		_ = lab.Close()
		return ctx.Err()
	}
	b.lab = lab
	b.mu.Unlock()

	cases, direct, relayed, err := b.setupLab(ctx)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	// 3 first, as it is quick: a broken path shows before the long part.
	fmt.Printf("\ntime to connect, %d run(s) of each case, 1 MiB:\n", cfg.runs)
	conn := make([][]xfer, len(cases))
	for r := 0; r < cfg.runs; r++ {
		for i, c := range cases {
			x, err := b.transfer(ctx, c, small, smallSum, connectSize, fmt.Sprintf("connect-%d-%d", i, r+1))
			if err != nil {
				return fmt.Errorf("%s, run %d: %w", c.name, r+1, err)
			}
			fmt.Printf("  run %d  %-30s %6.3f s  %s\n", r+1, c.name, x.connect.Seconds(), x.recvPath)
			conn[i] = append(conn[i], x)
		}
	}

	// 1 and 2: direct and relayed transfers, alternating, with the order
	// swapped every other run.
	fmt.Printf("\ntransfers of %d MiB, %d run(s) of each, alternating:\n", cfg.sizeMiB, cfg.runs)
	var dirRuns, relRuns []xfer
	for r := 0; r < cfg.runs; r++ {
		order := []*pair{&direct, &relayed}
		if r%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, p := range order {
			x, err := b.transfer(ctx, *p, big, bigSum, size, fmt.Sprintf("xfer-%s-%d", short(p), r+1))
			if err != nil {
				return fmt.Errorf("%s transfer, run %d: %w", p.name, r+1, err)
			}
			fmt.Printf("  run %d  %-30s %6.2f s %7.1f MB/s  connected after %.3f s; CPU-s send %.2f, recv %.2f, relay %.2f; relay link %s in, %s out; machine busy %.2f cores\n",
				r+1, p.name, x.data().Seconds(), x.mbps(size), x.connect.Seconds(), x.sendCPU, x.recvCPU, x.relayCPU,
				bytesStr(x.relayRx), bytesStr(x.relayTx), x.machine)
			if p == &direct {
				dirRuns = append(dirRuns, x)
			} else {
				relRuns = append(relRuns, x)
			}
		}
	}

	// 3: a ride lane.
	var rides []float64
	for r := 0; r < cfg.runs; r++ {
		x, err := b.transfer(ctx, b.ride, big, bigSum, size, fmt.Sprintf("xfer-ride-%d", r+1))
		if err != nil {
			return fmt.Errorf("%s transfer, run %d: %w", b.ride.name, r+1, err)
		}
		fmt.Printf("  run %d  %-30s %6.2f s %7.1f MB/s  connected after %.3f s; CPU-s send %.2f, recv %.2f; machine busy %.2f cores\n",
			r+1, b.ride.name, x.data().Seconds(), x.mbps(size), x.connect.Seconds(), x.sendCPU, x.recvCPU, x.machine)
		rides = append(rides, x.mbps(size))
	}

	b.report(cases, conn, direct, relayed, dirRuns, relRuns, size)
	fmt.Printf("\n%s: %.1f MB/s (median of %d)\n", b.ride.name, median(rides), len(rides))
	return nil
}

// anyPath is a pair's want when the ends may name the path differently.
const anyPath = "*"

func short(p *pair) string {
	if strings.HasPrefix(p.want, "via relay") {
		return "relay"
	}
	return "direct"
}

// setupLab builds the lab: the server with the signalling server and its
// relay, and the LANs of every case. It returns the cases of the
// time-to-connect table, and the direct and relayed pairs of the
// transfers.
func (b *bench) setupLab(ctx context.Context) (cases []pair, direct, relayed pair, err error) {
	lab := b.lab
	if b.srv, err = lab.Server("srv"); err != nil {
		return
	}
	if b.cfg.rateBits > 0 {
		burst := max(b.cfg.rateBits/8*2/1000, 5*1514) // 2 ms at the rate, at least five full frames
		if err = benchkit.Sh(ctx, "tc", "-n", b.srv.NS, "qdisc", "add", "dev", "eth0", "root", "tbf",
			"rate", fmt.Sprintf("%dbit", b.cfg.rateBits), "burst", fmt.Sprintf("%db", burst), "latency", "50ms"); err != nil {
			return
		}
		fmt.Printf("  the server's upload is capped at %s (tbf, burst %d B, latency 50 ms)\n", benchkit.FmtRate(b.cfg.rateBits), burst)
	}
	if err = b.startSignal(ctx); err != nil {
		return
	}
	b.relayAt = "via relay " + b.srv.IPv4.String()

	hostOn := func(lanName, hostName string, opts netlab.LANOptions) (*netlab.Network, *netlab.Host, error) {
		n, err := lab.LAN(lanName, opts)
		if err != nil {
			return nil, nil, err
		}
		h, err := n.Host(hostName)
		return n, h, err
	}
	lan, err := lab.LAN("lan", netlab.LANOptions{})
	if err != nil {
		return
	}
	lanA, err := lan.Host("lan-a")
	if err != nil {
		return
	}
	lanB, err := lan.Host("lan-b")
	if err != nil {
		return
	}
	pp := netlab.LANOptions{NAT: netlab.PortPreserving}
	sym := netlab.LANOptions{NAT: netlab.Symmetric}
	nofw := netlab.LANOptions{NAT: netlab.PortPreserving, NoFirewall: true}
	isp := netlab.LANOptions{NAT: netlab.PortPreserving, NoFirewall: true, Provider: true}
	var ppA, ppB, symA, symB, udpB, nofwA, nofwB, ispA, ispB *netlab.Host
	var udpNet *netlab.Network
	for _, m := range []struct {
		lan, host string
		opts      netlab.LANOptions
		h         **netlab.Host
		n         **netlab.Network
	}{
		{"ppnet-a", "pp-a", pp, &ppA, nil},
		{"ppnet-b", "pp-b", pp, &ppB, nil},
		{"symnet-a", "sym-a", sym, &symA, nil},
		{"symnet-b", "sym-b", sym, &symB, nil},
		{"udpnet-b", "udp-b", pp, &udpB, &udpNet},
		{"nofwnet-a", "nofw-a", nofw, &nofwA, nil},
		{"nofwnet-b", "nofw-b", nofw, &nofwB, nil},
		{"ispnet-a", "isp-a", isp, &ispA, nil},
		{"ispnet-b", "isp-b", isp, &ispB, nil},
	} {
		n, h, err := hostOn(m.lan, m.host, m.opts)
		if err != nil {
			return nil, pair{}, pair{}, err
		}
		*m.h = h
		if m.n != nil {
			*m.n = n
		}
	}
	// The network that lets no UDP out: its router forwards none.
	if err = benchkit.Sh(ctx, "ip", "netns", "exec", udpNet.NS, "iptables", "-w", "-A", "FORWARD", "-p", "udp", "-j", "DROP"); err != nil {
		return
	}

	direct = pair{"direct (port-preserving NATs)", ppA, ppB, "direct through NAT"}
	// Each end names the path as its side of the pair shows it: the
	// receiver sees a host, the sender its NAT.
	b.ride = pair{"ride (symmetric NAT, public)", symA, lanB, anyPath}
	relayed = pair{"relay (symmetric NATs)", symA, symB, b.relayAt}
	cases = []pair{
		{"LAN (no NAT)", lanA, lanB, "direct (LAN)"},
		{"port-preserving NATs", ppA, ppB, "direct through NAT"},
		{"symmetric NATs", symA, symB, b.relayAt},
		{"UDP blocked (relay over TCP)", symA, udpB, b.relayAt},
		{"bare MASQUERADE, providers", ispA, ispB, ""},
		{"bare MASQUERADE, adjacent", nofwA, nofwB, ""},
	}
	fmt.Printf("  server %s (signal --turn, %s), LAN without NAT, and LANs behind port-preserving NATs,\n"+
		"  symmetric NATs, a port-preserving NAT that drops UDP, and bare-MASQUERADE routers (behind providers, and adjacent)\n", b.srv.IPv4, b.url)
	return cases, direct, relayed, nil
}

var listenRE = regexp.MustCompile(`listening on (ws://\S+)`)

// startSignal runs signal --turn on the server and waits for its URL.
func (b *bench) startSignal(ctx context.Context) error {
	dir := filepath.Join(b.work, "signal")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	w := newWatch(listenRE)
	p, err := startProc(b.srv, "signal", dir, w, nil, b.cfg.bin,
		"signal", "--addr", b.srv.IPv4.String(), "--port", sigPort, "--turn")
	if err != nil {
		return err
	}
	b.sig = p
	select {
	case <-w.found:
		b.url = w.match
	case <-p.Done():
		return fmt.Errorf("signal ended: %s: %s", p.ExitDesc(), p.Stderr.String())
	case <-time.After(15 * time.Second):
		return fmt.Errorf("signal did not say where it listens within 15 s: %s", p.Stderr.String())
	case <-ctx.Done():
		return ctx.Err()
	}
	// Host.Command runs ip netns exec, which execs p2pxfer in the same
	// process: the pid is the relay's own, whose CPU time we read.
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.Cmd.Process.Pid))
	if err != nil || strings.TrimSpace(string(comm)) != filepath.Base(b.cfg.bin) {
		return fmt.Errorf("pid %d is %q, not p2pxfer signal: cannot read the relay's CPU time", p.Cmd.Process.Pid, strings.TrimSpace(string(comm)))
	}
	return nil
}

// ---- one transfer ----

type xfer struct {
	connect  time.Duration // recv's start to its "connected to the sender:" line
	total    time.Duration // recv's start to its exit
	recvPath string
	sendPath string
	sendCPU  float64
	recvCPU  float64
	relayCPU float64 // the signal --turn process, from before recv starts to after send ends
	relayRx  int64   // bytes in and out of the server's link in that time
	relayTx  int64
	wall     time.Duration // recv's start to send's exit: the relay's CPU window
	machine  float64       // cores the whole machine kept busy while recv ran (others' load and steal too)
}

// data is the transfer proper: from connected to recv's exit.
func (x xfer) data() time.Duration { return x.total - x.connect }

func (x xfer) mbps(size int64) float64 { return float64(size) / x.data().Seconds() / 1e6 }

// cores is how many cores send, recv and the relay kept busy from recv's
// start to send's exit (send's share includes hashing the file before).
func (x xfer) cores() float64 {
	return (x.sendCPU + x.recvCPU + x.relayCPU) / x.wall.Seconds()
}

var (
	roomRE     = regexp.MustCompile(`Room:\s+(\S+)`)
	recvPathRE = regexp.MustCompile(`connected to the sender: ([^\r\n]*)\r?\n`)
	sendPathRE = regexp.MustCompile(`receiver \S+ connected: ([^\r\n]*)\r?\n`)
)

// transfer sends file (of size bytes, SHA-256 sum) from p.snd to p.rcv
// through the lab's signalling server, and checks the paths both ends
// report and the received file.
func (b *bench) transfer(ctx context.Context, p pair, file string, sum [32]byte, size int64, tag string) (xfer, error) {
	var x xfer
	dir := filepath.Join(b.work, tag)
	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return x, err
	}
	syscall.Sync() // our earlier writes must not go to disk while p2pxfer runs
	if b.sig.Exited() {
		return x, fmt.Errorf("the signalling server ended: %s: %s", b.sig.ExitDesc(), b.sig.Stderr.String())
	}

	room := newWatch(roomRE)
	sendPath := newWatch(sendPathRE)
	s, err := startProc(p.snd, "send", dir, room, sendPath, b.cfg.bin,
		"send", "--signal", b.url, "--stun", "none", "--max-receivers", "1", file)
	if err != nil {
		return x, err
	}
	defer s.Stop()
	select {
	case <-room.found:
	case <-s.Done():
		return x, fmt.Errorf("send ended before it opened a room: %s:\n%s", s.ExitDesc(), indent(s.Stderr.String()))
	case <-time.After(60 * time.Second):
		return x, fmt.Errorf("send opened no room within 60 s:\n%s", indent(s.Stderr.String()))
	case <-ctx.Done():
		return x, ctx.Err()
	}

	cpu0, err := procCPU(b.sig.Cmd.Process.Pid)
	if err != nil {
		return x, err
	}
	rx0, tx0, err := linkBytes(b.srv.NS, "eth0")
	if err != nil {
		return x, err
	}
	recvPath := newWatch(recvPathRE)
	busy0, all0 := machineCPU()
	start := time.Now()
	args := []string{"recv", "--no-seed", "--stun", "none", "--signal", b.url, "--out", out}
	if b.cfg.lanes > 0 {
		args = append(args, "--lanes", strconv.Itoa(b.cfg.lanes))
	}
	r, err := startProc(p.rcv, "recv", dir, nil, recvPath, b.cfg.bin, append(args, room.match)...)
	if err != nil {
		return x, err
	}
	defer r.Stop()
	limit := time.NewTimer(b.cfg.timeout)
	defer limit.Stop()
	select {
	case <-r.Done():
	case <-limit.C:
		return x, fmt.Errorf("recv still running after %v:\n%s", b.cfg.timeout, indent(r.Stderr.String()))
	case <-ctx.Done():
		return x, ctx.Err()
	}
	x.total = time.Since(start)
	if busy1, all1 := machineCPU(); all1 > all0 {
		x.machine = float64(busy1-busy0) / float64(all1-all0) * float64(benchkit.NumCPU())
	}
	if !r.Cmd.ProcessState.Success() {
		return x, fmt.Errorf("recv: %s:\n%s\nsend:\n%s", r.ExitDesc(), indent(r.Stderr.String()), indent(s.Stderr.String()))
	}
	select {
	case <-s.Done():
	case <-time.After(30 * time.Second):
		return x, fmt.Errorf("send still running 30 s after recv ended:\n%s", indent(s.Stderr.String()))
	case <-ctx.Done():
		return x, ctx.Err()
	}
	x.wall = time.Since(start)
	if !s.Cmd.ProcessState.Success() {
		return x, fmt.Errorf("send: %s:\n%s", s.ExitDesc(), indent(s.Stderr.String()))
	}
	cpu1, err := procCPU(b.sig.Cmd.Process.Pid)
	if err != nil {
		return x, fmt.Errorf("the signalling server: %w", err)
	}
	rx1, tx1, err := linkBytes(b.srv.NS, "eth0")
	if err != nil {
		return x, err
	}
	x.relayCPU, x.relayRx, x.relayTx = cpu1-cpu0, rx1-rx0, tx1-tx0
	x.sendCPU, x.recvCPU = s.CPU(), r.CPU()

	if !recvPath.seen() {
		return x, fmt.Errorf("recv never said \"connected to the sender:\":\n%s", indent(r.Stderr.String()))
	}
	x.connect = recvPath.at.Sub(start)
	x.recvPath = recvPath.match
	if !sendPath.seen() {
		return x, fmt.Errorf("send never said \"receiver ... connected:\":\n%s", indent(s.Stderr.String()))
	}
	x.sendPath = sendPath.match
	if p.want != "" && p.want != anyPath && (x.recvPath != p.want || x.sendPath != p.want) {
		return x, fmt.Errorf("wrong path: want %q; recv said %q, send said %q", p.want, x.recvPath, x.sendPath)
	}
	if p.want == "" && x.recvPath != x.sendPath {
		return x, fmt.Errorf("the ends disagree on the path: recv said %q, send said %q", x.recvPath, x.sendPath)
	}
	got := filepath.Join(out, filepath.Base(file))
	h, err := benchkit.HashFile(got)
	if err != nil {
		return x, err
	}
	if h != sum {
		return x, fmt.Errorf("received file has the wrong SHA-256")
	}
	_ = os.Remove(got)
	return x, nil
}

// ---- the report ----

func (b *bench) report(cases []pair, conn [][]xfer, direct, relayed pair, dirRuns, relRuns []xfer, size int64) {
	fmt.Printf("\n== Results (%d run(s) each, medians; %d CPUs; relay: signal --turn on %s", b.cfg.runs, benchkit.NumCPU(), b.srv.IPv4)
	if b.cfg.rateBits > 0 {
		fmt.Printf(", upload capped at %s", benchkit.FmtRate(b.cfg.rateBits))
	}
	fmt.Println(") ==")

	fmt.Printf("\nThroughput, %d MiB (MB/s = 10^6 B/s, from recv's \"connected\" line to its exit)\n", b.cfg.sizeMiB)
	fmt.Printf("%-30s %-24s %8s %8s %8s %8s %8s\n", "transfer", "path", "MB/s", "min", "max", "total s", "vs base")
	rate := func(xs []xfer) []float64 { return collect(xs, func(x xfer) float64 { return x.mbps(size) }) }
	dRate, rRate := median(rate(dirRuns)), median(rate(relRuns))
	for _, row := range []struct {
		p  pair
		xs []xfer
	}{{direct, dirRuns}, {relayed, relRuns}} {
		v := rate(row.xs)
		fmt.Printf("%-30s %-24s %8.1f %8.1f %8.1f %8.2f %8.2f\n", row.p.name, row.p.want, median(v), minOf(v), maxOf(v),
			median(collect(row.xs, func(x xfer) float64 { return x.total.Seconds() })), median(v)/dRate)
	}
	fmt.Printf("ratio relay/direct: %.2f\n", rRate/dRate)

	gibs := float64(size) / gib
	fmt.Printf("\nCPU-seconds per run (medians; per GiB = per GiB of file sent)\n")
	fmt.Printf("%-30s %8s %8s %8s %12s %12s %8s %8s\n", "transfer", "send", "recv", "relay", "relay s/GiB", "MB/relay-s", "ours", "machine")
	for _, row := range []struct {
		p  pair
		xs []xfer
	}{{direct, dirRuns}, {relayed, relRuns}} {
		relay := median(collect(row.xs, func(x xfer) float64 { return x.relayCPU }))
		perCPU := "-"
		if relay > 0 {
			perCPU = fmt.Sprintf("%.0f", float64(size)/1e6/relay)
		}
		fmt.Printf("%-30s %8.2f %8.2f %8.2f %12.2f %12s %8.2f %8.2f\n", row.p.name,
			median(collect(row.xs, func(x xfer) float64 { return x.sendCPU })),
			median(collect(row.xs, func(x xfer) float64 { return x.recvCPU })),
			relay, relay/gibs, perCPU,
			median(collect(row.xs, func(x xfer) float64 { return x.cores() })),
			median(collect(row.xs, func(x xfer) float64 { return x.machine })))
	}
	rx := median(collect(relRuns, func(x xfer) float64 { return float64(x.relayRx) }))
	tx := median(collect(relRuns, func(x xfer) float64 { return float64(x.relayTx) }))
	fmt.Printf("the relay's link carried %s in and %s out per relayed %d MiB (%.3f and %.3f x the file)\n",
		bytesStr(int64(rx)), bytesStr(int64(tx)), b.cfg.sizeMiB, rx/float64(size), tx/float64(size))
	fmt.Println("(MB/relay-s: MB of file relayed per CPU-second of the relay; send's CPU includes hashing the file before the room opens;\n" +
		" ours: cores send, recv and the relay kept busy from recv's start to send's exit; machine: cores busy machine-wide while recv ran)")
	if n := float64(benchkit.NumCPU()); n > 0 {
		if c := median(collect(relRuns, func(x xfer) float64 { return x.machine })); c > 0.85*n {
			fmt.Printf("CPU-BOUND: the machine had %.2f of %.0f cores busy during the relayed runs:\n"+
				"send, recv and the relay share them, so the relayed MB/s measures this machine's CPUs as much as the relay.\n", c, n)
		}
	}

	fmt.Printf("\nTime to connect (recv's start to \"connected to the sender:\", 1 MiB file)\n")
	fmt.Printf("%-30s %-24s %8s %8s %8s %8s\n", "case", "path", "median s", "min s", "max s", "vs LAN")
	var lanMed float64
	for i, c := range cases {
		v := collect(conn[i], func(x xfer) float64 { return x.connect.Seconds() })
		m := median(v)
		if i == 0 {
			lanMed = m
		}
		fmt.Printf("%-30s %-24s %8.3f %8.3f %8.3f %8.2f\n", c.name, paths(conn[i]), m, minOf(v), maxOf(v), m/lanMed)
	}
}

// paths is the path the runs took, or each distinct one.
func paths(xs []xfer) string {
	var seen []string
	for _, x := range xs {
		found := false
		for _, s := range seen {
			found = found || s == x.recvPath
		}
		if !found {
			seen = append(seen, x.recvPath)
		}
	}
	return strings.Join(seen, " / ")
}

func collect(xs []xfer, f func(xfer) float64) []float64 {
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	return v
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func minOf(v []float64) float64 {
	m := v[0]
	for _, x := range v {
		m = min(m, x)
	}
	return m
}

func maxOf(v []float64) float64 {
	m := v[0]
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

// ---- processes ----

// watch is a process's output that records the first submatch of re and
// when it was written, as it is written.
type watch struct {
	re    *regexp.Regexp
	found chan struct{}

	mu    sync.Mutex
	buf   []byte
	match string
	at    time.Time
}

func newWatch(re *regexp.Regexp) *watch { return &watch{re: re, found: make(chan struct{})} }

func (w *watch) Write(p []byte) (int, error) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.at.IsZero() {
		w.buf = append(w.buf, p...)
		if m := w.re.FindSubmatch(w.buf); m != nil {
			w.match, w.at, w.buf = string(m[1]), now, nil
			close(w.found)
		}
	}
	return len(p), nil
}

func (w *watch) seen() bool {
	select {
	case <-w.found:
		return true
	default:
		return false
	}
}

// startProc runs bin with args on host h (ip netns exec execs it: the
// pid is the program's own) with the benchmark's environment; see
// benchkit.StartProc.
func startProc(h *netlab.Host, name, dir string, stdout, stderr io.Writer, bin string, args ...string) (*benchkit.Proc, error) {
	cmd := h.Command(context.Background(), bin, args...)
	cmd.Env = benchkit.ProcEnv(password)
	return benchkit.StartProc(cmd, name, dir, stdout, stderr)
}

// procCPU reads the CPU-seconds (utime + stime, all threads) a running
// process has used so far from /proc/<pid>/stat.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// "pid (comm) state ppid ...": comm may hold spaces, so count the
	// fields after its closing parenthesis; utime and stime are fields
	// 14 and 15 of the whole line.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: cannot parse", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime or stime", pid)
	}
	return float64(ut+st) / clkTck, nil
}

// machineCPU reads the machine's busy and total CPU time so far (clock
// ticks, all CPUs) from /proc/stat; steal counts as busy: it was not ours
// to use.
func machineCPU() (busy, total int64) {
	t, ok := benchkit.CPUTicks()
	if !ok {
		return 0, 0
	}
	for i, n := range t {
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// linkBytes reads the bytes received and sent by dev in namespace ns.
func linkBytes(ns, dev string) (rx, tx int64, err error) {
	out, err := exec.Command("ip", "-n", ns, "-j", "-s", "link", "show", "dev", dev).Output()
	if err != nil {
		return 0, 0, fmt.Errorf("ip -n %s -s link show %s: %w", ns, dev, err)
	}
	var links []struct {
		Stats struct {
			RX struct {
				Bytes int64 `json:"bytes"`
			} `json:"rx"`
			TX struct {
				Bytes int64 `json:"bytes"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		return 0, 0, fmt.Errorf("ip -n %s -s link show %s: cannot parse: %v", ns, dev, err)
	}
	return links[0].Stats.RX.Bytes, links[0].Stats.TX.Bytes, nil
}

// ---- helpers ----

func bytesStr(n int64) string {
	switch {
	case n >= gib:
		return fmt.Sprintf("%.2f GiB", float64(n)/gib)
	case n >= mib:
		return fmt.Sprintf("%.1f MiB", float64(n)/mib)
	}
	return fmt.Sprintf("%.0f KiB", float64(n)/1024)
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "      (empty)"
	}
	return "      " + strings.ReplaceAll(s, "\n", "\n      ")
}
