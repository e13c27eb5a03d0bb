//go:build linux

// Command browser measures the browser page receiving: one `p2pxfer
// send` of a file, and in turn `p2pxfer recv`, the room's page in
// headless Chromium (internal/chromium) and `recv --lanes 1` receiving
// it, each run a new receiver of the same room (with -alt, a second
// binary's send in the same rotation). It reports the medians of each
// receiver's MB/s, their ratio to recv's, Chromium's CPU-seconds per GiB
// (all its processes, from /proc), the sender's, and the UDP datagrams
// the kernel dropped at full socket buffers. With -raw it also measures
// the transport alone: a pion peer connection, set up as p2pxfer's
// toward a browser, sending into a data channel of a bare Chromium tab
// that only counts the bytes; with -c2c, Chromium to Chromium in one
// tab; with -hash, the page's SHA-256 (noble) in this Chromium.
//
//	go run ./bench/browser -size 256 -runs 3
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/p2pxfer/p2pxfer/bench/internal/benchkit"
	"github.com/p2pxfer/p2pxfer/internal/chromium"
)

const password = "bench-browser-password"

func main() {
	sizeMiB := flag.Int("size", 256, "file size in MiB")
	runs := flag.Int("runs", 3, "runs of each receiver (the median is reported)")
	receivers := flag.String("receivers", "recv,page,one", "which receivers to time, in turn each run: recv, page, one (recv --lanes 1: one peer connection, SCTP as the page's; on one host recv otherwise opens a direct lane); empty: none")
	raw := flag.Bool("raw", true, "also measure a bare data channel from pion into Chromium (the transport's ceiling)")
	c2c := flag.Bool("c2c", true, "also measure a bare data channel between two peer connections in one Chromium tab")
	hash := flag.Bool("hash", true, "also measure the page's SHA-256 (noble) in this Chromium")
	flag.IntVar(&rawHigh, "raw-high", rawHigh, "the bare channel's sender waits above this many bytes buffered and unacknowledged")
	flag.IntVar(&rawLow, "raw-low", rawLow, "and resumes at this many")
	flag.Float64Var(&rawPace, "raw-pace", 0, "hold the bare channel's sender to this many bytes a second, in 16 KiB messages (0: no pacing)")
	flag.DurationVar(&rawRTOMax, "raw-rto-max", 0, "cap the bare channel's SCTP retransmission timeout (0: pion's, at least 1 s)")
	flag.IntVar(&rawCAStep, "raw-ca-step", rawCAStep, "the bare channel's SCTP congestion window growth per round trip, in packets (peer/lane's toward a browser: 1; toward CLI peers: 32)")
	keep := flag.Bool("keep", false, "keep the work directory")
	bin := flag.String("bin", "", "use this p2pxfer binary instead of building one")
	alt := flag.String("alt", "", "a second p2pxfer `BINARY`: its own send, whose page and recv --lanes 1 runs alternate with the first's (an A/B of a change)")
	timeout := flag.Duration("timeout", 0, "give up on a transfer after this long (0: 60 s + 1 s per MiB)")
	flag.Parse()
	if *timeout == 0 {
		*timeout = time.Minute + time.Duration(*sizeMiB)*time.Second
	}
	if chromium.Binary() == "" {
		fmt.Fprintln(os.Stderr, "browser:", chromium.ErrNoChromium)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, config{size: int64(*sizeMiB) << 20, runs: *runs, receivers: *receivers, raw: *raw, c2c: *c2c, hash: *hash, keep: *keep, bin: *bin, alt: *alt, timeout: *timeout})
	if err != nil {
		fmt.Fprintln(os.Stderr, "browser:", err)
		os.Exit(1)
	}
}

type config struct {
	size                 int64
	runs                 int
	receivers            string
	raw, c2c, hash, keep bool
	bin, alt             string
	timeout              time.Duration
}

// result is one receiver's run.
type result struct {
	secs     float64 // start to verified files
	dataSecs float64 // the page's: its manifest to its last verified chunk (0 for recv)
	recvCPU  float64 // CPU-seconds of the receiver (all of Chromium's processes)
	sendCPU  float64 // of the sender during the run
	busy     float64 // CPU-seconds of the whole machine during the run
	drops    int64   // UDP datagrams the kernel dropped for full receive buffers, machine-wide
}

// udpDrops is the kernel's count of UDP datagrams dropped because a
// socket's receive buffer was full, over IPv4 and IPv6 (RcvbufErrors in
// /proc/net/snmp and Udp6RcvbufErrors in /proc/net/snmp6): the page may
// connect over either loopback.
func udpDrops() int64 {
	var n int64
	if b, err := os.ReadFile("/proc/net/snmp"); err == nil {
		var names []string
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(l, "Udp: ") {
				continue
			}
			f := strings.Fields(l)[1:]
			if names == nil {
				names = f
				continue
			}
			for i, name := range names {
				if name == "RcvbufErrors" && i < len(f) {
					v, _ := strconv.ParseInt(f[i], 10, 64)
					n += v
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/net/snmp6"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] == "Udp6RcvbufErrors" {
				v, _ := strconv.ParseInt(f[1], 10, 64)
				n += v
			}
		}
	}
	return n
}

var (
	linkRE = regexp.MustCompile(`(https?://\S+/r/\S+)`)
	recvRE = regexp.MustCompile(`(?m)--signal (wss?://\S+) (\S+)$`)
)

func run(ctx context.Context, c config) error {
	work, done, err := benchkit.WorkDir("p2pxfer-browser-", c.keep)
	if err != nil {
		return err
	}
	defer done()
	bin := c.bin
	if bin == "" {
		bin = filepath.Join(work, "p2pxfer")
		if err := benchkit.Build(ctx, bin); err != nil {
			return err
		}
	}
	src := filepath.Join(work, "payload.bin")
	fmt.Printf("writing a %d MiB random file ...\n", c.size>>20)
	want, err := benchkit.RandomFile(src, c.size)
	if err != nil {
		return err
	}
	load := func() string {
		b, _ := os.ReadFile("/proc/loadavg")
		return strings.Join(strings.Fields(string(b))[:3], " ")
	}
	fmt.Printf("%d CPUs, load average %s\n", benchkit.NumCPU(), load())

	// One sender for every run: receivers come and go in its room.
	main, err := startSender(ctx, bin, src, work, "send")
	if err != nil {
		return err
	}
	defer main.proc.Stop()
	senders := []*sender{main}
	if c.alt != "" {
		alt, err := startSender(ctx, c.alt, src, work, "send-alt")
		if err != nil {
			return err
		}
		defer alt.proc.Stop()
		senders = append(senders, alt)
	}
	if c.hash {
		if err := hashRate(ctx, work, main.link); err != nil {
			return fmt.Errorf("hash: %w", err)
		}
	}

	type variant struct {
		name string
		run  func(i int) (result, error)
	}
	cliRun := func(s *sender, flags ...string) func(int) (result, error) {
		return func(i int) (result, error) {
			out := filepath.Join(work, fmt.Sprintf("recv-%d", i))
			defer os.RemoveAll(out)
			return recvRun(ctx, c, s.bin, s.proc.Cmd.Process.Pid, s.wsURL, s.room, out, want, flags)
		}
	}
	var variants []variant
	for _, name := range strings.Split(c.receivers, ",") {
		for k, s := range senders {
			suffix := ""
			if k > 0 {
				suffix = " (alt)"
				if strings.TrimSpace(name) == "recv" {
					continue // the baseline is the main sender's
				}
			}
			switch strings.TrimSpace(name) {
			case "recv":
				variants = append(variants, variant{"recv", cliRun(s)})
			case "page":
				variants = append(variants, variant{"page" + suffix, func(i int) (result, error) {
					return pageRun(ctx, c, work, s.proc.Cmd.Process.Pid, s.link+"#"+password)
				}})
			case "one":
				variants = append(variants, variant{"recv --lanes 1" + suffix, cliRun(s, "--lanes", "1")})
			case "":
			default:
				return fmt.Errorf("-receivers: unknown receiver %q (recv, page, one)", name)
			}
		}
	}
	res := map[string][]result{}
	failed := map[string]int{}
	mb := func(secs float64) float64 { return float64(c.size) / 1e6 / secs }
	gib := float64(c.size) / (1 << 30)
	for i := 0; i < c.runs && len(variants) > 0; i++ {
		for _, v := range variants {
			if err := ctx.Err(); err != nil {
				return err
			}
			syscall.Sync()
			r, err := v.run(i)
			if err != nil {
				// One failed run says something too: go on with the others.
				fmt.Printf("  %-15s run %d: FAILED: %v\n", v.name, i+1, err)
				failed[v.name]++
				continue
			}
			extra := ""
			if r.dataSecs > 0 {
				extra = fmt.Sprintf(" (from the manifest %.2f s, %.1f MB/s)", r.dataSecs, mb(r.dataSecs))
			}
			fmt.Printf("  %-15s run %d: %6.2f s %7.1f MB/s%s; CPU-s receiver %.2f, sender %.2f; machine busy %.2f CPU-s; UDP drops %d\n",
				v.name, i+1, r.secs, mb(r.secs), extra, r.recvCPU, r.sendCPU, r.busy, r.drops)
			res[v.name] = append(res[v.name], r)
		}
	}
	for _, s := range senders {
		if s.proc.Exited() {
			return fmt.Errorf("%s exited: %s\n%s", s.proc.Name, s.proc.ExitDesc(), s.proc.Stderr)
		}
	}

	var raw *rawResult
	if c.raw {
		r, err := rawRate(ctx, work, c.size, c.runs)
		if err != nil {
			return fmt.Errorf("raw data channel: %w", err)
		}
		raw = &r
	}

	var c2c []float64
	var c2cCPU float64
	for i := 0; c.c2c && i < c.runs; i++ {
		mbs, cpu, err := c2cRate(ctx, work, c.size)
		if err != nil {
			return fmt.Errorf("Chromium to Chromium: %w", err)
		}
		fmt.Printf("  Chromium->Chromium run %d: %7.1f MB/s; CPU-s Chromium %.2f\n", i+1, mbs, cpu)
		c2c = append(c2c, mbs)
		c2cCPU += cpu
	}

	median := func(rs []result) result {
		s := append([]result(nil), rs...)
		sort.Slice(s, func(i, j int) bool { return s[i].secs < s[j].secs })
		return s[len(s)/2]
	}
	var cli result
	if len(res["recv"]) > 0 {
		cli = median(res["recv"])
	}
	fmt.Printf("\n%d MiB on loopback, median of %d, %d CPUs, load average now %s\n", c.size>>20, c.runs, benchkit.NumCPU(), load())
	fmt.Printf("%-40s %8s %8s  %s\n", "receiver", "MB/s", "vs recv", "CPU-s per GiB: receiver, sender")
	for _, v := range variants {
		if n := failed[v.name]; n > 0 {
			fmt.Printf("%-40s %d of %d runs FAILED (left out)\n", v.name, n, c.runs)
		}
		if len(res[v.name]) == 0 {
			continue
		}
		m := median(res[v.name])
		name := v.name
		if strings.HasPrefix(v.name, "page") {
			name = "page in headless Chromium" + strings.TrimPrefix(v.name, "page")
		}
		fmt.Printf("%-40s %8.1f %8.3f  %.1f, %.1f\n", name, mb(m.secs), cli.secs/m.secs, m.recvCPU/gib, m.sendCPU/gib)
		if strings.HasPrefix(v.name, "page") {
			fmt.Printf("%-40s %8.1f %8.3f\n", "  page, from its manifest", mb(m.dataSecs), cli.secs/m.dataSecs)
		}
	}
	if raw != nil {
		fmt.Printf("%-40s %8.1f %8.3f  %.1f, %.1f\n", fmt.Sprintf("bare data channel pion -> Chromium (%d KiB messages)", rawMessage>>10),
			raw.mbs, raw.mbs/mb(cli.secs), raw.chromeCPU/gib, raw.goCPU/gib)
	}
	if len(c2c) > 0 {
		sort.Float64s(c2c)
		fmt.Printf("%-40s %8.1f %8.3f  %.1f (both ends, mean)\n", "bare data channel Chromium -> Chromium", c2c[len(c2c)/2], c2c[len(c2c)/2]/mb(cli.secs), c2cCPU/float64(len(c2c))/gib)
	}
	return nil
}

// sender is a `p2pxfer send` of the file, with what it printed.
type sender struct {
	proc        *benchkit.Proc
	bin         string // recv runs with the same binary
	link        string // the page's URL, without the password
	wsURL, room string
}

// startSender runs bin's send of src with its embedded signalling
// server, and waits for its room and link.
func startSender(ctx context.Context, bin, src, work, name string) (*sender, error) {
	cmd := exec.Command(bin, "send", "--stun", "none", "--loopback", "--interface", "lo", "--listen", "127.0.0.1:0", src)
	cmd.Env = benchkit.ProcEnv(password)
	stdout := &benchkit.Tail{Max: 64 << 10}
	p, err := benchkit.StartProc(cmd, name, work, stdout, nil)
	if err != nil {
		return nil, err
	}
	s := &sender{proc: p, bin: bin}
	deadline := time.Now().Add(2 * time.Minute)
	for s.link == "" || s.room == "" {
		if m := recvRE.FindStringSubmatch(stdout.String()); m != nil {
			s.wsURL, s.room = m[1], m[2]
		}
		if m := linkRE.FindStringSubmatch(stdout.String()); m != nil {
			s.link = m[1]
		}
		if s.link != "" && s.room != "" {
			break
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("%s printed no room and link in 2 minutes", name)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-p.Done():
			return nil, fmt.Errorf("%s exited: %s\n%s", name, p.ExitDesc(), p.Stderr)
		case <-ctx.Done():
			p.Stop()
			return nil, ctx.Err()
		}
	}
	fmt.Printf("%s (%s): room %s, page %s\n", name, bin, s.room, s.link)
	return s, nil
}

// procCPU is the CPU-seconds (user and system) process pid has used.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return float64(u+st) / 100
}

// recvRun times `recv --no-seed` from its start to its exit with the
// verified file.
func recvRun(ctx context.Context, c config, bin string, sendPID int, wsURL, roomID, out string, want [32]byte, flags []string) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := os.Mkdir(out, 0o755); err != nil {
		return result{}, err
	}
	args := append([]string{"recv", "--no-seed", "--stun", "none", "--loopback", "--interface", "lo", "--signal", wsURL, "--out", out}, flags...)
	cmd := exec.CommandContext(ctx, bin, append(args, roomID)...)
	cmd.Env = benchkit.ProcEnv(password)
	errs := &benchkit.Tail{Max: 3000}
	cmd.Stderr = errs
	s0, b0, d0 := procCPU(sendPID), busyCPU(), udpDrops()
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("recv: %w\n%s", err, errs)
	}
	r := result{secs: time.Since(start).Seconds(), sendCPU: procCPU(sendPID) - s0, busy: busyCPU() - b0, drops: udpDrops() - d0}
	if u, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.recvCPU = time.Duration(u.Utime.Nano() + u.Stime.Nano()).Seconds()
	}
	entries, err := os.ReadDir(out)
	if err != nil || len(entries) != 1 {
		return result{}, fmt.Errorf("recv left %d entries in %s (%v)", len(entries), out, err)
	}
	return r, benchkit.CheckHash(filepath.Join(out, entries[0].Name()), want)
}

func busyCPU() float64 { b, _ := benchkit.MachineCPU(); return b }

// pageRun opens the room's page in a new headless Chromium (a fresh
// profile: nothing to resume) and times it from the navigation to
// "Received", then closes the browser, whose tab would otherwise go on
// as a seed of the room.
func pageRun(ctx context.Context, c config, work string, sendPID int, link string) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	profile, err := os.MkdirTemp(work, "chromium-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(profile)
	b, err := chromium.Launch(profile)
	if err != nil {
		return result{}, err
	}
	defer b.Close()
	p, err := b.NewPage(ctx)
	if err != nil {
		return result{}, err
	}
	cpu0, err := b.CPU()
	if err != nil {
		return result{}, err
	}
	s0, b0, d0 := procCPU(sendPID), busyCPU(), udpDrops()
	start := time.Now()
	if err := p.Navigate(ctx, link); err != nil {
		return result{}, err
	}
	state := `document.body.dataset.state === "done" || document.body.dataset.state === "error"`
	if err := p.WaitFor(ctx, state, `document.getElementById("status").textContent`); err != nil {
		return result{}, err
	}
	r := result{secs: time.Since(start).Seconds()}
	cpu1, err := b.CPU()
	if err != nil {
		return result{}, err
	}
	r.recvCPU, r.sendCPU, r.busy, r.drops = (cpu1 - cpu0).Seconds(), procCPU(sendPID)-s0, busyCPU()-b0, udpDrops()-d0
	var out struct {
		State, Text, Manifest, Done string
	}
	if err := p.Eval(ctx, `({state: document.body.dataset.state, text: document.getElementById("status").textContent,
		manifest: document.body.dataset.manifestAt, done: document.body.dataset.doneAt})`, &out); err != nil {
		return result{}, err
	}
	if out.State != "done" || !strings.HasPrefix(out.Text, "Received") {
		return result{}, fmt.Errorf("the page ended with %q", out.Text)
	}
	m, _ := strconv.Atoi(out.Manifest)
	d, _ := strconv.Atoi(out.Done)
	r.dataSecs = float64(d-m) / 1000
	// The page verified every chunk against the signed manifest; that the
	// bytes it stored are the file's, the browser tests check.
	return r, nil
}
