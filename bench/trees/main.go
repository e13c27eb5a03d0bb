//go:build unix

// Command trees benchmarks sending folders: in one run it builds the
// binary and sends, over loopback, a folder of many 4 KiB files and a
// folder of 1 GiB in 1,000 files of mixed sizes, each with a signalling
// server, `p2pxfer send DIR` and `p2pxfer recv` as separate processes. It
// checks every received file's SHA-256 and reports the time from recv's
// start to its exit, and the CPU time and peak RSS of each side, next to
// tar over TCP measured in the same run on the same tree: `tar -c` into a
// loopback TCP connection and `tar -x` out of it, the pair's time from
// connecting to the extracting tar's exit, and again followed by a sync
// (of the whole system: the closest a shell gets), since p2pxfer makes the files durable before it exits
// and tar does not. With -many N it also sends N files of a few bytes, to
// see what the file count costs in memory. croc is timed when a croc
// binary is on PATH. With -bin A,B it compares builds: each run sends with
// every binary in turn, then tar, so each figure has its neighbours.
//
//	go run ./bench/trees -runs 3 -many 100000
//	go run ./bench/trees -bin /tmp/p2pxfer-old,/tmp/p2pxfer-new -runs 5
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/p2pxfer/p2pxfer/bench/internal/benchkit"
)

func main() {
	runs := flag.Int("runs", 3, "runs of each measurement (the median is reported)")
	small := flag.Int("small", 10000, "files of 4 KiB in the first tree (0: skip)")
	bigMiB := flag.Int("big", 1024, "MiB in the second tree, in -bigfiles files of mixed sizes (0: skip)")
	bigFiles := flag.Int("bigfiles", 1000, "files in the second tree")
	many := flag.Int("many", 0, "also send a tree of this many files of a few bytes, once (0: skip)")
	keep := flag.Bool("keep", false, "keep the work directory")
	bins := flag.String("bin", "", "comma-separated p2pxfer binaries to compare, each in every run (default: build this tree)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var rows []string
	var binList []string
	if *bins != "" {
		binList = strings.Split(*bins, ",")
	}
	err := run(ctx, *runs, *small, *bigMiB, *bigFiles, *many, *keep, binList, &rows)
	if len(rows) > 0 {
		fmt.Printf("\nSummary (%d CPUs; times from the receiver's start to its exit; RSS is peak)\n", benchkit.NumCPU())
		for _, r := range rows {
			fmt.Println(r)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// result is one transfer: its time, and CPU seconds and peak RSS (KiB)
// of the sending and the receiving side.
type result struct {
	secs             float64
	sendCPU, recvCPU float64
	sendRSS, recvRSS int64
}

func (r result) String() string {
	return fmt.Sprintf("%7.2f s   send %5.2f CPU-s %6.1f MiB   recv %5.2f CPU-s %6.1f MiB",
		r.secs, r.sendCPU, float64(r.sendRSS)/1024, r.recvCPU, float64(r.recvRSS)/1024)
}

// tree is a folder to send and the SHA-256 of each of its files, by path
// relative to the folder's parent.
type tree struct {
	dir   string
	sums  map[string][32]byte
	bytes int64
}

func run(ctx context.Context, runs, small, bigMiB, bigFiles, many int, keep bool, bins []string, rows *[]string) error {
	work, err := os.MkdirTemp("", "p2pxfer-trees-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(work)
	}
	if len(bins) == 0 {
		bin := filepath.Join(work, "p2pxfer")
		if err := benchkit.Build(ctx, bin); err != nil {
			return err
		}
		bins = []string{bin}
	}
	croc, _ := exec.LookPath("croc")
	if croc == "" {
		fmt.Println("no croc binary on PATH: croc is not measured")
	}
	type scenario struct {
		name  string
		make  func(dir string) (*tree, error)
		runs  int
		tarOK bool
	}
	var scenarios []scenario
	if small > 0 {
		scenarios = append(scenarios, scenario{fmt.Sprintf("%d files of 4 KiB", small), func(dir string) (*tree, error) {
			return makeTree(dir, small, func(int, *mrand.Rand) int64 { return 4 << 10 })
		}, runs, true})
	}
	if bigMiB > 0 {
		total := int64(bigMiB) << 20
		scenarios = append(scenarios, scenario{fmt.Sprintf("%d MiB in %d files of mixed sizes", bigMiB, bigFiles), func(dir string) (*tree, error) {
			return makeTree(dir, bigFiles, mixedSizes(total, bigFiles))
		}, runs, true})
	}
	if many > 0 {
		scenarios = append(scenarios, scenario{fmt.Sprintf("%d files of a few bytes", many), func(dir string) (*tree, error) {
			return makeTree(dir, many, func(int, *mrand.Rand) int64 { return 8 })
		}, 1, true})
	}
	for k, sc := range scenarios {
		if err := ctx.Err(); err != nil {
			return err
		}
		fmt.Printf("\n%s: writing the tree ...\n", sc.name)
		t, err := sc.make(filepath.Join(work, fmt.Sprintf("src%d", k), "tree"))
		if err != nil {
			return err
		}
		p2p := make([][]result, len(bins))
		var tarRes, tarSync []result
		var outs []string
		for i := range sc.runs {
			// A new directory for each run, all removed once the tree is
			// done: ext4 without a journal skips inodes freed in the last
			// few seconds one by one at every creation (recently_deleted),
			// which would charge whichever run comes after a removal.
			out := filepath.Join(work, fmt.Sprintf("out%d-%d", k, i))
			for b, bin := range bins {
				dst := fmt.Sprintf("%s-p2p%d", out, b)
				outs = append(outs, dst)
				r, err := transfer(ctx, bin, dst, t)
				if err != nil {
					return fmt.Errorf("%s, p2pxfer %s run %d: %w", sc.name, binLabel(bins, b), i+1, err)
				}
				fmt.Printf("  p2pxfer%s run %d: %v\n", binLabel(bins, b), i+1, r)
				p2p[b] = append(p2p[b], r)
			}
			outs = append(outs, out+"-tarfalse", out+"-tartrue")
			for _, sync := range []bool{false, true} {
				r, err := tarOverTCP(ctx, t, fmt.Sprintf("%s-tar%v", out, sync), sync)
				if err != nil {
					return fmt.Errorf("%s, tar run %d: %w", sc.name, i+1, err)
				}
				label := "tar/TCP  "
				if sync {
					label = "tar+sync "
					tarSync = append(tarSync, r)
				} else {
					tarRes = append(tarRes, r)
				}
				fmt.Printf("  %s run %d: %v\n", label, i+1, r)
			}
		}
		mt, ms := median(tarRes), median(tarSync)
		*rows = append(*rows, fmt.Sprintf("%s (%.0f MiB), median of %d:", sc.name, float64(t.bytes)/(1<<20), sc.runs))
		for b := range bins {
			mp := median(p2p[b])
			*rows = append(*rows,
				fmt.Sprintf("  p2pxfer%s %v", binLabel(bins, b), mp),
				fmt.Sprintf("    time / tar: %.2f;  / tar+sync: %.2f;  peak RSS send %.1f x, recv %.1f x tar's;  runs %s",
					mp.secs/mt.secs, mp.secs/ms.secs, float64(mp.sendRSS)/float64(mt.sendRSS), float64(mp.recvRSS)/float64(mt.recvRSS), runTimes(p2p[b])))
		}
		*rows = append(*rows,
			fmt.Sprintf("  tar over TCP   %v;  runs %s", mt, runTimes(tarRes)),
			fmt.Sprintf("  tar, then sync %v;  runs %s", ms, runTimes(tarSync)))
		for _, o := range outs {
			_ = os.RemoveAll(o)
		}
		if !keep {
			_ = os.RemoveAll(filepath.Dir(t.dir))
		}
		syscall.Sync()
	}
	return nil
}

// binLabel names binary b of bins in the output: nothing for one.
func binLabel(bins []string, b int) string {
	if len(bins) < 2 {
		return "  "
	}
	return fmt.Sprintf(" %c (%s)", 'A'+b, filepath.Base(bins[b]))
}

// runTimes lists each run's seconds, in order.
func runTimes(rs []result) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("%.2f", r.secs))
	}
	return strings.Join(parts, " ")
}

func median(rs []result) result {
	rs = slices.Clone(rs) // the runs stay in order for runTimes
	sort.Slice(rs, func(i, j int) bool { return rs[i].secs < rs[j].secs })
	return rs[len(rs)/2]
}

// makeTree writes n files with sizes from size into dir, 100 to a folder
// in two levels of folders, with random contents.
func makeTree(dir string, n int, size func(i int, r *mrand.Rand) int64) (*tree, error) {
	r := mrand.New(mrand.NewPCG(1, 2))
	t := &tree{dir: dir, sums: make(map[string][32]byte, n)}
	for i := range n {
		rel := filepath.Join(filepath.Base(dir), fmt.Sprintf("a%03d", i/10000), fmt.Sprintf("b%02d", i/100%100), fmt.Sprintf("file %05d.dat", i))
		p := filepath.Join(filepath.Dir(dir), rel)
		if i%100 == 0 {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return nil, err
			}
		}
		sz := size(i, r)
		sum, err := benchkit.RandomFile(p, sz)
		if err != nil {
			return nil, err
		}
		t.sums[rel] = sum
		t.bytes += sz
	}
	return t, nil
}

// mixedSizes spreads total bytes over n files with sizes spread evenly on
// a log scale from 1 KiB to about 64 MiB, as a folder of documents,
// photos and a few videos would be.
func mixedSizes(total int64, n int) func(int, *mrand.Rand) int64 {
	weights := make([]float64, n)
	r := mrand.New(mrand.NewPCG(3, 4))
	var sum float64
	for i := range weights {
		weights[i] = float64(int64(1) << (10 + r.IntN(17)))
		sum += weights[i]
	}
	sizes := make([]int64, n)
	var given int64
	for i := range sizes {
		sizes[i] = int64(weights[i] / sum * float64(total))
		given += sizes[i]
	}
	sizes[n-1] += total - given
	return func(i int, _ *mrand.Rand) int64 { return sizes[i] }
}

var (
	roomRE   = regexp.MustCompile(`Room:[ \t]+(\S+)\n`)
	listenRE = regexp.MustCompile(`listening on (ws://\S+)`)
)

// transfer sends t's folder with p2pxfer into the new directory out and
// checks every file.
func transfer(ctx context.Context, bin, out string, t *tree) (result, error) {
	syscall.Sync() // the tree and the last run's files are on the disk
	ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	env := append(os.Environ(), "P2PXFER_PASSWORD=bench-password")
	common := []string{"--stun", "none", "--loopback", "--interface", "lo"}
	sig := exec.CommandContext(ctx, bin, "signal", "--addr", "127.0.0.1", "--port", "0")
	sigOut, _ := sig.StdoutPipe()
	if err := sig.Start(); err != nil {
		return result{}, err
	}
	defer func() { _ = sig.Process.Signal(syscall.SIGTERM); _ = sig.Wait() }()
	url, err := waitFor(sigOut, listenRE)
	if err != nil {
		return result{}, fmt.Errorf("signal: %w", err)
	}
	send := exec.CommandContext(ctx, bin, append(append([]string{"send", "--signal", url, "--max-receivers", "1"}, common...), t.dir)...)
	send.Env = env
	watch := &benchkit.LineWatch{RE: roomRE, Found: make(chan string, 1)}
	send.Stdout = watch
	sendErr := &benchkit.Tail{}
	send.Stderr = sendErr
	if err := send.Start(); err != nil {
		return result{}, err
	}
	var roomID string
	select {
	case roomID = <-watch.Found:
	case <-time.After(10 * time.Minute):
		_ = send.Process.Kill()
		_ = send.Wait()
		return result{}, fmt.Errorf("send printed no room:\n%s", sendErr)
	}
	if err := os.Mkdir(out, 0o755); err != nil {
		return result{}, err
	}
	recv := exec.CommandContext(ctx, bin, append(append([]string{"recv", "--no-seed", "--signal", url, "--out", out}, common...), roomID)...)
	recv.Env = env
	recvErr := &benchkit.Tail{}
	recv.Stderr = recvErr
	start := time.Now()
	if err := recv.Run(); err != nil {
		_ = send.Process.Kill()
		_ = send.Wait()
		return result{}, fmt.Errorf("recv: %w\n%s", err, recvErr)
	}
	secs := time.Since(start).Seconds()
	if err := send.Wait(); err != nil {
		return result{}, fmt.Errorf("send: %w\n%s", err, sendErr)
	}
	if err := check(out, t); err != nil {
		return result{}, err
	}
	return usage(secs, send.ProcessState, recv.ProcessState), nil
}

// tarOverTCP is the baseline: tar -c into a loopback TCP connection, tar -x
// out of it into out; with sync, a sync of out's file system after.
func tarOverTCP(ctx context.Context, t *tree, out string, sync bool) (result, error) {
	syscall.Sync()
	if err := os.Mkdir(out, 0o755); err != nil {
		return result{}, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	defer ln.Close()
	start := time.Now()
	type done struct {
		st  *os.ProcessState
		err error
	}
	sent := make(chan done, 1)
	var sendHWM int64
	go func() {
		c, err := ln.Accept()
		if err != nil {
			sent <- done{nil, err}
			return
		}
		f, _ := c.(*net.TCPConn).File() // a descriptor tar writes to itself
		c.Close()
		defer f.Close()
		tc := exec.CommandContext(ctx, "tar", "-cf", "-", "-C", filepath.Dir(t.dir), filepath.Base(t.dir))
		tc.Stdout = f
		hwm, err := runWatched(tc)
		sendHWM = hwm
		sent <- done{tc.ProcessState, err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return result{}, err
	}
	f, _ := c.(*net.TCPConn).File()
	c.Close()
	tx := exec.CommandContext(ctx, "tar", "-xf", "-", "-C", out)
	tx.Stdin = f
	recvHWM, err := runWatched(tx)
	f.Close()
	if err != nil {
		return result{}, fmt.Errorf("tar -x: %w", err)
	}
	if sync {
		syscall.Sync()
	}
	secs := time.Since(start).Seconds()
	s := <-sent
	if s.err != nil {
		return result{}, fmt.Errorf("tar -c: %w", s.err)
	}
	if err := check(out, t); err != nil {
		return result{}, err
	}
	r := usage(secs, s.st, tx.ProcessState)
	r.sendRSS, r.recvRSS = sendHWM, recvHWM
	return r, nil
}

// runWatched runs cmd and returns its peak RSS in KiB, read from
// /proc/PID/status (VmHWM) every few milliseconds until it exits. The
// rusage of a child started from Go reports at least the parent's own
// size (the child shares its memory until exec), which for a small
// program like tar is most of the figure.
func runWatched(cmd *exec.Cmd) (int64, error) {
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	stop := make(chan struct{})
	peak := make(chan int64, 1)
	go func() {
		var max int64
		for {
			if kb := vmHWM(cmd.Process.Pid); kb > max {
				max = kb
			}
			select {
			case <-stop:
				peak <- max
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	err := cmd.Wait()
	close(stop)
	return <-peak, err
}

// vmHWM is a process's peak RSS in KiB, 0 if it cannot be read.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb
		}
	}
	return 0
}

func usage(secs float64, send, recv *os.ProcessState) result {
	su, ru := send.SysUsage().(*syscall.Rusage), recv.SysUsage().(*syscall.Rusage)
	cpu := func(u *syscall.Rusage) float64 { return time.Duration(u.Utime.Nano() + u.Stime.Nano()).Seconds() }
	return result{secs: secs, sendCPU: cpu(su), recvCPU: cpu(ru), sendRSS: su.Maxrss, recvRSS: ru.Maxrss}
}

// check compares every file under out with t, and that no other arrived.
func check(out string, t *tree) error {
	seen := 0
	err := filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(out, p)
		want, ok := t.sums[rel]
		if !ok {
			return fmt.Errorf("unexpected file %s", rel)
		}
		got, err := benchkit.HashFile(p)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s has the wrong SHA-256", rel)
		}
		seen++
		return nil
	})
	if err == nil && seen != len(t.sums) {
		err = fmt.Errorf("%d of %d files arrived", seen, len(t.sums))
	}
	return err
}

func waitFor(r io.Reader, re *regexp.Regexp) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			return m[1], nil
		}
	}
	return "", fmt.Errorf("output ended before %s", re)
}
