//go:build linux

// Package latency is the "latency scenario" benchmark: a plain TCP stream
// and p2pxfer send -> recv over the same emulated wide-area path (by
// default 50 ms RTT, 200 Mbit/s, a drop-tail queue of one bandwidth-delay
// product), and the ratio of their throughputs.
//
// The path is emulated at the IP-packet level, so TCP and UDP (p2pxfer's
// SCTP over DTLS) cross exactly the same bottleneck: two network
// namespaces, a and b, each hold one TUN device whose fd this process
// keeps, and a relay in this process moves packets between the two (see
// relay.go). It needs no qdisc (netem is not on every kernel), only root,
// iproute2 and /dev/net/tun.
//
// The TCP baseline is a Go sender in a (io.Copy from the file, sendfile)
// and a Go receiver in b writing into a file in the work directory with
// io.Copy, as bench/loopback does, both in this process: their sockets
// are created on a thread switched into the namespace (setns). p2pxfer
// runs as processes: signal and send in a, recv in b, timed from recv's
// start to its exit with the file complete, whose SHA-256 is checked (the
// TCP copy's too).
//
// Besides the medians, each run prints what explains a figure: drops at
// the bottleneck, the queue's peak, packet counts and sizes, CPU of
// send, recv and this process (the relay, which also pays for the
// kernel's receive path of the packets it writes), how busy the machine
// was (others' load shows), and the throughput across the path per
// interval, which shows ramps, stalls after a loss and plateaus.
//
// Run is the entry point; bench/latency is the command around it, and
// another benchmark can call Run to put the figures in its own table.
package latency

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/p2pxfer/p2pxfer/bench/internal/benchkit"
)

// Config is the scenario. Zero fields take the defaults in brackets.
type Config struct {
	RTT        time.Duration // round-trip propagation delay [50ms]
	RateBits   int64         // bottleneck rate in bit/s, each direction [200e6]
	QueueBytes int64         // drop-tail queue of the bottleneck [one BDP: RateBits/8 x RTT]
	SizeMiB    int           // file size [256]
	Runs       int           // runs of each measurement; the median is reported [3]
	Timeout    time.Duration // per transfer [60s + 10x the time at RateBits]

	TCPCC        string        // TCP congestion control in the namespaces [the host's default]
	NoTCP, NoP2P bool          // skip one of the two measurements
	Interval     time.Duration // throughput timeline resolution [1s]; negative: no timeline
	Work         string        // directory for the file, outputs and logs [a temporary one, removed]
	Verbose      bool          // run send and recv with -v; their stderr goes to Work/send-N.stderr, recv-N.stderr
	SendFlags    []string      // extra flags for send
	RecvFlags    []string      // extra flags for recv

	// PathHook, if set, is called once the path is up with each side's
	// namespace and TUN device (a's first), to add to the path what the
	// relay does not emulate (bench/paths: random loss with iptables).
	PathHook func(ctx context.Context, ns, dev [2]string) error
}

// Measurement is the median run of one kind of transfer.
type Measurement struct {
	Secs    float64   // wall time of the median run
	MBps    float64   // payload MB/s (1e6 bytes) of the median run
	All     []float64 // every run's seconds, sorted
	Drops   int64     // relay drops (both directions) in the median run
	SendCPU float64   // CPU seconds of send (p2pxfer only)
	RecvCPU float64   // CPU seconds of recv (p2pxfer only)
	Steady  float64   // payload MB/s from the first MiB delivered to the end (set-up excluded)
}

// Result holds the medians; Ratio is P2P.MBps / TCP.MBps (0 if either is
// missing).
type Result struct {
	Size    int64
	PingRTT time.Duration // median ICMP echo across the path
	TCP     Measurement
	P2P     Measurement
	Ratio   float64
	// MinRatio and MaxRatio bound the p2pxfer runs, each against the TCP
	// median: runs on this path can be bimodal, which a median hides.
	MinRatio, MaxRatio float64
}

func (c *Config) defaults() error {
	if c.RTT == 0 {
		c.RTT = 50 * time.Millisecond
	}
	if c.RateBits == 0 {
		c.RateBits = 200e6
	}
	if c.QueueBytes == 0 {
		c.QueueBytes = int64(float64(c.RateBits) / 8 * c.RTT.Seconds())
	}
	if c.SizeMiB == 0 {
		c.SizeMiB = 256
	}
	if c.Runs == 0 {
		c.Runs = 3
	}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.Timeout == 0 {
		ideal := float64(int64(c.SizeMiB)<<20) * 8 / float64(c.RateBits)
		c.Timeout = 60*time.Second + time.Duration(10*ideal*float64(time.Second))
	}
	switch {
	case c.RTT < 0 || c.RTT > 10*time.Second:
		return errors.New("RTT must be between 0 and 10s")
	case c.RateBits < 100e3 || c.RateBits > 10e9:
		return errors.New("rate must be between 100 kbit/s and 10 Gbit/s")
	case c.QueueBytes < linkMTU:
		return fmt.Errorf("queue must hold at least one packet (%d bytes)", linkMTU)
	case c.SizeMiB < 1 || c.Runs < 1:
		return errors.New("size and runs must be at least 1")
	}
	return nil
}

// bench is one Run's state.
type bench struct {
	cfg   Config
	bin   string
	out   io.Writer
	size  int64
	src   string
	want  [32]byte
	relay *relay

	mu    sync.Mutex
	ns    []string // namespaces created, for teardown
	tuns  []int    // TUN fds until the relay owns them
	procs map[*exec.Cmd]bool

	p2pRuns int // numbers the logs of -v
}

// Run sets up the path, measures TCP and p2pxfer (binary bin) over it
// cfg.Runs times each, prints progress and a table to out, and removes
// everything it set up before it returns, also when ctx is cancelled.
func Run(ctx context.Context, cfg Config, bin string, out io.Writer) (Result, error) {
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	if err := Check(); err != nil {
		return Result{}, err
	}
	b := &bench{cfg: cfg, bin: bin, out: out, size: int64(cfg.SizeMiB) << 20, procs: map[*exec.Cmd]bool{}}
	if b.cfg.Work == "" {
		dir, err := os.MkdirTemp("", "p2pxfer-latency-")
		if err != nil {
			return Result{}, err
		}
		defer os.RemoveAll(dir)
		b.cfg.Work = dir
	} else if err := os.MkdirAll(b.cfg.Work, 0o755); err != nil {
		return Result{}, err
	}
	defer b.teardown()

	b.src = filepath.Join(b.cfg.Work, fmt.Sprintf("latency-%dMiB.bin", cfg.SizeMiB))
	fmt.Fprintf(out, "writing a %d MiB random file ...\n", cfg.SizeMiB)
	var err error
	if b.want, err = benchkit.RandomFile(b.src, b.size); err != nil {
		return Result{}, err
	}
	bdp := float64(cfg.RateBits) / 8 * cfg.RTT.Seconds()
	fmt.Fprintf(out, "setting up the path: RTT %v, %s each way, drop-tail queue %d B (%.2f BDP) ...\n",
		cfg.RTT, benchkit.FmtRate(cfg.RateBits), cfg.QueueBytes, float64(cfg.QueueBytes)/bdp)
	if err := b.setup(ctx); err != nil {
		return Result{}, fmt.Errorf("path setup: %w", err)
	}
	if cfg.PathHook != nil {
		if err := cfg.PathHook(ctx, [2]string{nsName('a'), nsName('b')}, [2]string{tunName('a'), tunName('b')}); err != nil {
			return Result{}, fmt.Errorf("path setup: %w", err)
		}
	}
	res := Result{Size: b.size}
	if res.PingRTT, err = b.ping(ctx); err != nil {
		return Result{}, fmt.Errorf("ping across the path: %w", err)
	}
	cc, _ := b.readInNetns(nsName('a'), "/proc/sys/net/ipv4/tcp_congestion_control")
	if cfg.TCPCC != "" {
		cc = cfg.TCPCC + " (set on the baseline's sockets)"
	}
	fmt.Fprintf(out, "ping a -> b: %.1f ms (median of 5); TCP congestion control in the namespaces: %s\n",
		float64(res.PingRTT.Microseconds())/1e3, strings.TrimSpace(cc))

	var tcps, p2ps []run
	for i := 1; i <= cfg.Runs; i++ {
		// Interleaved, so a slow phase of the shared machine hits both.
		if !cfg.NoTCP {
			r, err := b.measure(ctx, "TCP", i, b.tcpRun)
			if err != nil {
				return res, fmt.Errorf("TCP run %d: %w", i, err)
			}
			tcps = append(tcps, r)
		}
		if !cfg.NoP2P {
			r, err := b.measure(ctx, "p2pxfer", i, b.p2pRun)
			if err != nil {
				return res, fmt.Errorf("p2pxfer run %d: %w", i, err)
			}
			p2ps = append(p2ps, r)
		}
	}
	res.TCP, res.P2P = b.median(tcps), b.median(p2ps)
	if res.TCP.MBps > 0 && res.P2P.MBps > 0 {
		res.Ratio = res.P2P.MBps / res.TCP.MBps
		all := res.P2P.All // sorted: slowest run last
		res.MinRatio, res.MaxRatio = res.TCP.Secs/all[len(all)-1], res.TCP.Secs/all[0]
	}
	b.table(res)
	return res, nil
}

// run is one transfer as measured.
type run struct {
	secs             float64
	sendCPU, recvCPU float64
	relayCPU         float64
	busy, steal      float64 // CPU seconds the whole machine was busy / stolen by the hypervisor
	ab, ba           Counters
	tunDrops         [2]int64 // kernel drops at the TUNs of a and b (the relay read too slowly)
	udpErrs          string
	start            time.Time  // set by the transfer: when its clock starts
	samples          []sample   // a->b every 10 ms during the measurement
	timeline         []Counters // a->b per cfg.Interval from start
	firstMiB         float64    // seconds from start until 1 MiB had crossed a->b
}

type sample struct {
	t time.Time
	c Counters
}

func (b *bench) median(rs []run) Measurement {
	if len(rs) == 0 {
		return Measurement{}
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].secs < rs[j].secs })
	m := rs[len(rs)/2]
	all := make([]float64, len(rs))
	for i, r := range rs {
		all[i] = r.secs
	}
	steady := 0.0
	if m.firstMiB > 0 && m.secs > m.firstMiB {
		steady = float64(b.size-1<<20) / 1e6 / (m.secs - m.firstMiB)
	}
	return Measurement{Secs: m.secs, MBps: float64(b.size) / 1e6 / m.secs, All: all,
		Drops: m.ab.Drops + m.ba.Drops, SendCPU: m.sendCPU, RecvCPU: m.recvCPU, Steady: steady}
}

// measure runs one transfer with the relay's counters, this process's CPU
// (the relay's, for p2pxfer) and a timeline of what crossed a->b.
func (b *bench) measure(ctx context.Context, name string, i int, fn func(context.Context, *run) error) (run, error) {
	var r run
	ab0, ba0 := b.relay.AB.counters(), b.relay.BA.counters()
	tunA0, tunB0 := b.tunDrops('a'), b.tunDrops('b')
	udp0 := b.udpCounters()
	cpu0 := selfCPU()
	busy0, steal0 := benchkit.MachineCPU()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			r.samples = append(r.samples, sample{time.Now(), b.relay.AB.counters()})
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	err := fn(ctx, &r)
	close(stop)
	wg.Wait()
	if err != nil {
		return r, err
	}
	r.relayCPU = selfCPU() - cpu0
	busy1, steal1 := benchkit.MachineCPU()
	r.busy, r.steal = busy1-busy0, steal1-steal0
	r.ab, r.ba = b.relay.AB.counters().Sub(ab0), b.relay.BA.counters().Sub(ba0)
	r.tunDrops = [2]int64{b.tunDrops('a') - tunA0, b.tunDrops('b') - tunB0}
	r.udpErrs = udpDelta(udp0, b.udpCounters())
	b.timeline(&r)
	mbps := float64(b.size) / 1e6 / r.secs
	fmt.Fprintf(b.out, "  run %d %-8s %6.2f s %7.1f MB/s %6.1f Mbit/s  drops %d (a->b) %d (b->a), queue peak %d B",
		i, name, r.secs, mbps, mbps*8, r.ab.Drops, r.ba.Drops, r.ab.MaxQueue)
	if r.ab.Packets > 0 && r.ba.Packets > 0 {
		// Packet sizes show the per-packet overhead (TCP's ~1500 vs SCTP
		// in DTLS), packet counts how often the receiver acknowledges.
		fmt.Fprintf(b.out, ", a->b %d pkts of %d B avg, b->a %d pkts",
			r.ab.Packets, r.ab.Bytes/r.ab.Packets, r.ba.Packets)
	}
	if r.tunDrops != [2]int64{} {
		fmt.Fprintf(b.out, ", TUN drops a %d b %d", r.tunDrops[0], r.tunDrops[1])
	}
	if r.sendCPU > 0 {
		fmt.Fprintf(b.out, ", CPU send %.1f s recv %.1f s", r.sendCPU, r.recvCPU)
	}
	fmt.Fprintf(b.out, ", bench/relay CPU %.1f s", r.relayCPU)
	if r.ab.Packets > 0 {
		fmt.Fprintf(b.out, ", a->b late mean %d us max %d us", r.ab.LateSum/r.ab.Packets/1e3, r.ab.LateMax/1e3)
	}
	if r.udpErrs != "" {
		fmt.Fprintf(b.out, ", UDP %s", r.udpErrs)
	}
	// Others' load on a shared machine shows as busy time beyond ours.
	fmt.Fprintf(b.out, ", machine busy %.1f CPU-s (others ~%.1f), steal %.1f s\n",
		r.busy, max(0, r.busy-r.relayCPU-r.sendCPU-r.recvCPU), r.steal)
	if b.cfg.Interval > 0 && len(r.timeline) > 0 {
		var sb, db strings.Builder
		for _, c := range r.timeline {
			fmt.Fprintf(&sb, " %.0f", float64(c.Bytes)*8/1e6/b.cfg.Interval.Seconds())
			fmt.Fprintf(&db, " %d", c.Drops)
		}
		fmt.Fprintf(b.out, "      a->b Mbit/s (IP) per %v:%s\n      a->b drops per %v:%s\n", b.cfg.Interval, sb.String(), b.cfg.Interval, db.String())
	}
	if r.firstMiB > 0 {
		fmt.Fprintf(b.out, "      first MiB across after %.2f s; %.1f MB/s from there to the end\n",
			r.firstMiB, float64(b.size-1<<20)/1e6/(r.secs-r.firstMiB))
	}
	return r, nil
}

// timeline turns the 10 ms samples into per-interval deltas from r.start
// to the end of the transfer, and finds when the first MiB was across
// (connection set-up and the first round trips).
func (b *bench) timeline(r *run) {
	if len(r.samples) == 0 || r.start.IsZero() {
		return
	}
	end := r.start.Add(time.Duration(r.secs * float64(time.Second)))
	var base *sample
	for i := range r.samples {
		if s := &r.samples[i]; base == nil || !s.t.After(r.start) {
			base = s
		}
	}
	last, next := base.c, r.start.Add(b.cfg.Interval)
	for _, s := range r.samples {
		if !s.t.After(r.start) {
			continue
		}
		if r.firstMiB == 0 && s.c.Bytes-base.c.Bytes >= 1<<20 {
			r.firstMiB = s.t.Sub(r.start).Seconds()
		}
		if b.cfg.Interval <= 0 {
			continue
		}
		if !s.t.Before(next) || (s.t.After(end) && s.c.Bytes > last.Bytes) {
			r.timeline = append(r.timeline, s.c.Sub(last))
			last, next = s.c, next.Add(b.cfg.Interval)
		}
		if s.t.After(end) {
			break
		}
	}
	r.samples = nil
}

func (b *bench) table(res Result) {
	c := b.cfg
	bdp := float64(c.RateBits) / 8 * c.RTT.Seconds()
	fmt.Fprintf(b.out, "\n%d MiB, RTT %v (ping %.1f ms), %s, queue %d B (%.2f BDP), median of %d, %d CPUs\n",
		c.SizeMiB, c.RTT, float64(res.PingRTT.Microseconds())/1e3, benchkit.FmtRate(c.RateBits), c.QueueBytes, float64(c.QueueBytes)/bdp, c.Runs, benchkit.NumCPU())
	fmt.Fprintf(b.out, "%-28s %8s %8s %8s %8s %7s %10s\n", "", "time s", "MB/s", "Mbit/s", "ratio", "drops", "steady MB/s")
	if res.TCP.Secs > 0 {
		m := res.TCP
		fmt.Fprintf(b.out, "%-28s %8.2f %8.1f %8.1f %8s %7d %10.1f\n", "TCP io.Copy to a file", m.Secs, m.MBps, m.MBps*8, "1.00", m.Drops, m.Steady)
	}
	if res.P2P.Secs > 0 {
		m := res.P2P
		ratio := "-"
		if res.Ratio > 0 {
			ratio = fmt.Sprintf("%.3f", res.Ratio)
		}
		fmt.Fprintf(b.out, "%-28s %8.2f %8.1f %8.1f %8s %7d %10.1f\n", "p2pxfer send -> recv", m.Secs, m.MBps, m.MBps*8, ratio, m.Drops, m.Steady)
		fmt.Fprintf(b.out, "p2pxfer CPU seconds (median run): send %.2f, recv %.2f\n", m.SendCPU, m.RecvCPU)
		if len(m.All) > 1 && res.Ratio > 0 {
			fmt.Fprintf(b.out, "p2pxfer runs against the TCP median: ratio %.3f to %.3f\n", res.MinRatio, res.MaxRatio)
		}
	}
	fmt.Fprintf(b.out, "(the path carries at most %.1f MB/s of IP bytes; times from connect / recv start to a verified file)\n", float64(c.RateBits)/8e6)
}

// ---- the path ----

func (b *bench) addNetns(ctx context.Context, name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := benchkit.Sh(ctx, "ip", "netns", "add", name); err != nil {
		return err
	}
	b.ns = append(b.ns, name)
	return nil
}

// setup creates the namespaces and TUNs and starts the relay.
func (b *bench) setup(ctx context.Context) error {
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil && bytes.Contains(out, []byte(nsPrefix)) {
		if n := Cleanup(io.Discard); n > 0 {
			fmt.Fprintf(b.out, "removed %d namespace(s) left by an earlier run\n", n)
		}
	}
	tuns := map[byte]int{}
	for _, side := range []byte{'a', 'b'} {
		ns, tun := nsName(side), tunName(side)
		if err := b.addNetns(ctx, ns); err != nil {
			return err
		}
		f, err := openTUN(tun)
		if err != nil {
			return err
		}
		b.mu.Lock()
		b.tuns = append(b.tuns, f)
		b.mu.Unlock()
		tuns[side] = f
		if err := benchkit.ShAll(ctx, [][]string{
			{"ip", "link", "set", tun, "netns", ns}, // the fd stays ours
			{"ip", "-n", ns, "link", "set", "lo", "up"},
			// IPv4 only, so both transfers use the same packet sizes.
			// A long TUN queue: a burst the stack hands over while the
			// relay's reader waits for a CPU must reach the emulated
			// queue, where drops belong, not die in the kernel (500).
			{"ip", "-n", ns, "link", "set", tun, "mtu", strconv.Itoa(linkMTU), "addrgenmode", "none", "txqueuelen", strconv.Itoa(tunQueueLen)},
			{"ip", "-n", ns, "addr", "add", addrOf(side) + "/24", "dev", tun},
			{"ip", "-n", ns, "link", "set", tun, "up"},
		}); err != nil {
			return err
		}
	}
	b.mu.Lock()
	b.relay = newRelay(tuns['a'], tuns['b'], b.cfg.RateBits, b.cfg.QueueBytes, b.cfg.RTT/2)
	b.tuns = nil
	b.mu.Unlock()
	if b.relay.NiceErr != nil {
		fmt.Fprintf(b.out, "note: the relay runs at normal priority (%v): a busy CPU will delay packets more\n", b.relay.NiceErr)
	}
	return nil
}

// teardown stops the processes, the relay (closing the TUN fds deletes
// the devices) and deletes the namespaces. Idempotent.
func (b *bench) teardown() {
	b.mu.Lock()
	for c := range b.procs {
		_ = c.Process.Kill()
	}
	r, tuns, ns := b.relay, b.tuns, b.ns
	b.relay, b.tuns, b.ns = nil, nil, nil
	b.mu.Unlock()
	if r != nil {
		r.Close()
	}
	for _, fd := range tuns {
		unix.Close(fd)
	}
	for i := len(ns) - 1; i >= 0; i-- {
		benchkit.DeleteNetns(ns[i])
	}
}

// ping sends five ICMP echoes from a to b (a raw socket in a) and returns
// the median round trip.
func (b *bench) ping(ctx context.Context) (time.Duration, error) {
	var pc *icmp.PacketConn
	if err := inNetns(nsName('a'), func() (err error) {
		pc, err = icmp.ListenPacket("ip4:icmp", addrOf('a'))
		return err
	}); err != nil {
		return 0, err
	}
	defer pc.Close()
	dst := &net.IPAddr{IP: net.ParseIP(addrOf('b'))}
	var rtts []time.Duration
	buf := make([]byte, 1500)
	for seq := 1; seq <= 5 && ctx.Err() == nil; seq++ {
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: os.Getpid() & 0xffff, Seq: seq, Data: make([]byte, 56)}}
		wb, err := msg.Marshal(nil)
		if err != nil {
			return 0, err
		}
		t0 := time.Now()
		if _, err := pc.WriteTo(wb, dst); err != nil {
			return 0, err
		}
		_ = pc.SetReadDeadline(time.Now().Add(2*b.cfg.RTT + 2*time.Second))
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return 0, fmt.Errorf("echo %d: %w", seq, err)
			}
			m, err := icmp.ParseMessage(1, buf[:n])
			if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
				continue
			}
			if e, ok := m.Body.(*icmp.Echo); ok && e.Seq == seq && e.ID == os.Getpid()&0xffff {
				break
			}
		}
		rtts = append(rtts, time.Since(t0))
		time.Sleep(50 * time.Millisecond)
	}
	if len(rtts) == 0 {
		return 0, ctx.Err()
	}
	sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
	return rtts[len(rtts)/2], nil
}

// readInNetns reads a /proc file as seen from namespace ns (for /proc/net
// use /proc/thread-self/net: /proc/self follows the main thread).
func (b *bench) readInNetns(ns, path string) (string, error) {
	var s []byte
	err := inNetns(ns, func() (err error) { s, err = os.ReadFile(path); return err })
	return string(s), err
}

// tunDrops is what the kernel dropped at side's TUN: packets the stack
// could not queue for the relay to read.
func (b *bench) tunDrops(side byte) int64 {
	out, err := exec.Command("ip", "-n", nsName(side), "-s", "-j", "link", "show", "dev", tunName(side)).Output()
	if err != nil {
		return 0
	}
	var v []struct {
		Stats64 struct {
			Tx struct{ Dropped int64 } `json:"tx"`
			Rx struct{ Dropped int64 } `json:"rx"`
		} `json:"stats64"`
	}
	if json.Unmarshal(out, &v) != nil || len(v) != 1 {
		return 0
	}
	return v[0].Stats64.Tx.Dropped + v[0].Stats64.Rx.Dropped
}

// udpCounters reads the UDP error counters of both namespaces: datagrams
// lost to full socket buffers never reach the relay's counters.
func (b *bench) udpCounters() map[string]int64 {
	m := map[string]int64{}
	for _, side := range []byte{'a', 'b'} {
		s, err := b.readInNetns(nsName(side), "/proc/thread-self/net/snmp")
		if err != nil {
			continue
		}
		var head []string
		for _, l := range strings.Split(s, "\n") {
			f := strings.Fields(l)
			if len(f) < 2 || f[0] != "Udp:" {
				continue
			}
			if head == nil {
				head = f[1:]
				continue
			}
			for i, v := range f[1:] {
				if i < len(head) && strings.HasSuffix(head[i], "Errors") {
					n, _ := strconv.ParseInt(v, 10, 64)
					m[string(side)+":"+head[i]] = n
				}
			}
		}
	}
	return m
}

func udpDelta(before, after map[string]int64) string {
	var parts []string
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			parts = append(parts, fmt.Sprintf("%s +%d", k, d))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func selfCPU() float64 {
	var u syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &u) != nil {
		return 0
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano()).Seconds()
}

// ---- TCP ----

// tcpRun copies the file from a to b over one TCP connection, io.Copy
// into a file in b like bench/loopback does; timed from the dial to the
// file closed on b's side, then checked.
func (b *bench) tcpRun(ctx context.Context, r *run) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	var ln net.Listener
	if err := inNetns(nsName('b'), func() (err error) {
		lc := net.ListenConfig{Control: b.setCC}
		ln, err = lc.Listen(ctx, "tcp4", addrOf('b')+":0")
		return err
	}); err != nil {
		return err
	}
	defer ln.Close()
	dst := filepath.Join(b.cfg.Work, "tcp.out")
	defer os.Remove(dst)
	recvd := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			recvd <- err
			return
		}
		defer c.Close()
		context.AfterFunc(ctx, func() { c.Close() })
		f, err := os.Create(dst)
		if err != nil {
			recvd <- err
			return
		}
		if _, err := io.Copy(f, c); err != nil {
			f.Close()
			recvd <- err
			return
		}
		recvd <- f.Close()
	}()
	r.start = time.Now()
	var c net.Conn
	if err := inNetns(nsName('a'), func() (err error) {
		d := net.Dialer{Timeout: 10 * time.Second, Control: b.setCC}
		c, err = d.DialContext(ctx, "tcp4", ln.Addr().String())
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	context.AfterFunc(ctx, func() { c.Close() })
	sent := make(chan error, 1)
	go func() {
		f, err := os.Open(b.src)
		if err != nil {
			sent <- err
			return
		}
		defer f.Close()
		_, err = io.Copy(c, f)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		sent <- err
	}()
	if err := <-recvd; err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("receiving: %w (%w)", err, ctx.Err())
		}
		return fmt.Errorf("receiving: %w", err)
	}
	r.secs = time.Since(r.start).Seconds()
	if err := <-sent; err != nil {
		return fmt.Errorf("sending: %w", err)
	}
	return benchkit.CheckHash(dst, b.want)
}

// setCC sets cfg.TCPCC on a baseline socket (accepted ones inherit it).
func (b *bench) setCC(_, _ string, rc syscall.RawConn) error {
	if b.cfg.TCPCC == "" {
		return nil
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, b.cfg.TCPCC)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("TCP congestion control %q (see /proc/sys/net/ipv4/tcp_available_congestion_control): %w", b.cfg.TCPCC, serr)
	}
	return nil
}

// ---- p2pxfer ----

var (
	roomRE   = regexp.MustCompile(`Room:[ \t]+(\S+)\n`)
	listenRE = regexp.MustCompile(`listening on (ws://\S+)`)
)

// start runs argv in namespace ns (ip netns exec execs it, so the pid and
// the rusage are the program's), in a process group of its own (a Ctrl-C
// on the terminal reaches only the bench, which stops it), killed if the
// bench dies (Pdeathsig) or ctx ends.
func (b *bench) start(ctx context.Context, ns string, stdout, stderr io.Writer, argv ...string) (*exec.Cmd, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Env = benchkit.ProcEnv("bench-latency")
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.relay == nil {
		return nil, errors.New("tearing down")
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	b.procs[cmd] = true
	return cmd, nil
}

func (b *bench) done(cmd *exec.Cmd) {
	b.mu.Lock()
	delete(b.procs, cmd)
	b.mu.Unlock()
}

// stop ends a process that should be finishing: SIGTERM, SIGKILL after 5s.
func (b *bench) stop(cmd *exec.Cmd, waitc <-chan error) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-waitc:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-waitc
	}
	b.done(cmd)
}

func waitChan(cmd *exec.Cmd) <-chan error {
	c := make(chan error, 1)
	go func() { c <- cmd.Wait() }()
	return c
}

// p2pRun runs signal and send in a, recv in b; the time is recv's, from
// its start to its exit with the file complete, as in bench/loopback.
func (b *bench) p2pRun(ctx context.Context, r *run) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	nsA, nsB := nsName('a'), nsName('b')
	b.p2pRuns++
	logs := func(name string) (io.Writer, func(), error) {
		if !b.cfg.Verbose {
			return &benchkit.Tail{Max: 3000}, func() {}, nil
		}
		f, err := os.Create(filepath.Join(b.cfg.Work, fmt.Sprintf("%s-%d.stderr", name, b.p2pRuns)))
		if err != nil {
			return nil, nil, err
		}
		return f, func() { f.Close() }, nil
	}
	verbose := []string{}
	if b.cfg.Verbose {
		verbose = []string{"-v"}
	}

	sigR, sigW := io.Pipe()
	sig, err := b.start(ctx, nsA, sigW, io.Discard, b.bin, "signal", "--addr", addrOf('a'), "--port", "0")
	if err != nil {
		return fmt.Errorf("signal: %w", err)
	}
	sigWait := waitChan(sig)
	defer func() { b.stop(sig, sigWait); sigW.Close() }()
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(sigR)
		for sc.Scan() {
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				urlc <- m[1]
				break
			}
		}
		_, _ = io.Copy(io.Discard, sigR)
	}()
	var url string
	select {
	case url = <-urlc:
	case <-time.After(10 * time.Second):
		return errors.New("signal printed no address")
	case <-ctx.Done():
		return ctx.Err()
	}

	sendErr, closeSend, err := logs("send")
	if err != nil {
		return err
	}
	defer closeSend()
	watch := &benchkit.LineWatch{RE: roomRE, Found: make(chan string, 1)}
	args := append([]string{b.bin, "send", "--signal", url, "--max-receivers", "1", "--stun", "none", "--interface", tunName('a')}, verbose...)
	args = append(append(args, b.cfg.SendFlags...), b.src)
	send, err := b.start(ctx, nsA, watch, sendErr, args...)
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	sendWait := waitChan(send)
	defer func() { b.stop(send, sendWait) }()
	var room string
	select {
	case room = <-watch.Found:
	case err := <-sendWait:
		sendWait = closedWith(err)
		return fmt.Errorf("send ended before printing a room: %v\n%s", err, tailOf(sendErr))
	case <-time.After(2 * time.Minute):
		return errors.New("send printed no room")
	case <-ctx.Done():
		return ctx.Err()
	}

	outDir := filepath.Join(b.cfg.Work, "recv")
	_ = os.RemoveAll(outDir)
	if err := os.Mkdir(outDir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(outDir)
	recvErr, closeRecv, err := logs("recv")
	if err != nil {
		return err
	}
	defer closeRecv()
	args = append([]string{b.bin, "recv", "--no-seed", "--signal", url, "--out", outDir, "--stun", "none", "--interface", tunName('b')}, verbose...)
	args = append(append(args, b.cfg.RecvFlags...), room)
	r.start = time.Now()
	recv, err := b.start(ctx, nsB, io.Discard, recvErr, args...)
	if err != nil {
		return fmt.Errorf("recv: %w", err)
	}
	err = recv.Wait()
	b.done(recv)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("recv: %w (%w)", err, ctx.Err())
		}
		return fmt.Errorf("recv: %w\n%s", err, tailOf(recvErr))
	}
	r.secs = time.Since(r.start).Seconds()
	// send exits by itself once its one receiver is done.
	select {
	case err := <-sendWait:
		sendWait = closedWith(err)
		b.done(send)
		if err != nil {
			return fmt.Errorf("send: %w\n%s", err, tailOf(sendErr))
		}
	case <-time.After(10 * time.Second):
		return errors.New("send did not exit after its receiver finished")
	}
	r.sendCPU, r.recvCPU = cpuOf(send), cpuOf(recv)
	return benchkit.CheckHash(filepath.Join(outDir, filepath.Base(b.src)), b.want)
}

func closedWith(err error) <-chan error {
	c := make(chan error, 1)
	c <- err
	return c
}

func cpuOf(cmd *exec.Cmd) float64 {
	u, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano()).Seconds()
}

func tailOf(w io.Writer) string {
	if t, ok := w.(*benchkit.Tail); ok {
		return t.String()
	}
	if f, ok := w.(*os.File); ok {
		return "(see " + f.Name() + ")"
	}
	return ""
}

// ParseRate reads a rate in tc's units (200mbit, 1gbit, 512kbit, 25mbps
// for bytes) into bits per second.
func ParseRate(s string) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, u := range []struct {
		suffix string
		mul    float64
	}{
		{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"gbps", 8e9}, {"mbps", 8e6}, {"kbps", 8e3}, {"bit", 1}, {"bps", 8}, {"", 1},
	} {
		if !strings.HasSuffix(s, u.suffix) {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSuffix(s, u.suffix), 64)
		if err != nil || f <= 0 {
			return 0, fmt.Errorf("bad rate %q (e.g. 200mbit, 512kbit, 1gbit)", s)
		}
		return int64(f * u.mul), nil
	}
	return 0, fmt.Errorf("bad rate %q", s)
}
