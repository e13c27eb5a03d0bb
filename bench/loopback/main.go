//go:build unix

// Command loopback is p2pxfer's benchmark: in one run it builds the
// binary, runs a signalling server, a sender and a receiver as separate
// processes over loopback, checks the received files' hashes, and reports
// throughput, CPU time and peak RSS of each side next to raw TCP loopback
// measured in the same run; the time to first byte (a 1-byte file) and to
// receive 1000 files of 4 KiB; and, on Linux as root, the latency
// scenario: TCP and p2pxfer over the same emulated 50 ms, 200 Mbit/s path
// (bench/internal/latency). It ends with a summary table of ratios.
//
//	go run ./bench/loopback -size 1024 -runs 3
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
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/p2pxfer/p2pxfer/bench/internal/benchkit"
)

func main() {
	sizeMiB := flag.Int("size", 1024, "file size in MiB")
	runs := flag.Int("runs", 3, "runs of each measurement (the median is reported)")
	keep := flag.Bool("keep", false, "keep the work directory")
	small := flag.Int("small", 1000, "also time this many 4 KiB files in one send, and a 1-byte file (0: skip)")
	one := flag.Bool("one", true, "also time the file over one peer connection (--lanes 1), as between two hosts")
	lat := flag.Bool("latency", true, "also run the latency scenario (Linux, as root): TCP and p2pxfer over one emulated 50 ms, 200 Mbit/s path")
	latSize := flag.Int("latency-size", 256, "file size in MiB for the latency scenario")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var sum summary
	err := run(ctx, *sizeMiB, *runs, *small, *one, *keep, &sum, func(bin string) error {
		if !*lat {
			return nil
		}
		return latencyScenario(ctx, bin, *latSize, *runs, &sum)
	})
	sum.print(os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// summary collects one row per measurement for the table printed last.
type summary struct{ rows [][3]string }

func (s *summary) add(what, value, vs string) { s.rows = append(s.rows, [3]string{what, value, vs}) }

func (s *summary) print(w io.Writer) {
	if len(s.rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\nSummary (%d CPUs)\n", benchkit.NumCPU())
	fmt.Fprintf(w, "%-46s %-24s %s\n", "measurement", "p2pxfer", "vs baseline")
	for _, r := range s.rows {
		fmt.Fprintf(w, "%-46s %-24s %s\n", r[0], r[1], r[2])
	}
}

type result struct {
	secs             float64
	sendCPU, recvCPU float64 // seconds
	sendRSS, recvRSS int64   // KiB
}

func run(ctx context.Context, sizeMiB, runs, small int, one, keep bool, sum *summary, more func(bin string) error) error {
	work, err := os.MkdirTemp("", "p2pxfer-bench-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(work)
	}
	bin := filepath.Join(work, "p2pxfer")
	if err := benchkit.Build(ctx, bin); err != nil {
		return err
	}
	src := filepath.Join(work, "payload.bin")
	size := int64(sizeMiB) << 20
	fmt.Printf("writing a %d MiB random file ...\n", sizeMiB)
	want, err := benchkit.RandomFile(src, size)
	if err != nil {
		return err
	}

	var tcp []float64
	for i := 0; i < runs; i++ {
		syscall.Sync() // as before each transfer
		s, err := tcpCopy(src, filepath.Join(work, "tcp.out"))
		if err != nil {
			return fmt.Errorf("tcp baseline: %w", err)
		}
		tcp = append(tcp, s)
	}
	// On one host the receiver opens a direct lane (what a user gets on
	// one machine); --lanes 1 keeps to one peer connection, on whose path
	// a ride lane carries the file, and --no-ride keeps it on that
	// connection's SCTP, which is what a relayed path gets.
	type variant struct {
		name, row string
		flags     []string
	}
	variants := []variant{{"p2pxfer send -> recv", fmt.Sprintf("loopback, %d MiB", sizeMiB), nil}}
	if one {
		variants = append(variants,
			variant{"  one peer connection", "  one peer connection, a ride lane (--lanes 1)", []string{"--lanes", "1"}},
			variant{"  its SCTP", "  one peer connection's SCTP (--lanes 1 --no-ride)", []string{"--lanes", "1", "--no-ride"}})
	}
	sort.Float64s(tcp)
	mt := tcp[len(tcp)/2]
	mb := func(s float64) float64 { return float64(size) / 1e6 / s }
	var lines []string
	for _, v := range variants {
		var res []result
		label := strings.Join(append([]string{"p2pxfer"}, v.flags...), " ")
		for i := 0; i < runs; i++ {
			out := filepath.Join(work, "out")
			r, err := transfer(bin, out, []string{src}, [][32]byte{want}, v.flags...)
			_ = os.RemoveAll(out)
			if err != nil {
				return fmt.Errorf("%s run %d: %w", label, i+1, err)
			}
			fmt.Printf("  %s run %d: %.2fs  %.1f MB/s\n", label, i+1, r.secs, mb(r.secs))
			res = append(res, r)
		}
		sort.Slice(res, func(i, j int) bool { return res[i].secs < res[j].secs })
		mr := res[len(res)/2]
		lines = append(lines, fmt.Sprintf("%-26s %10.1f %8.3f   send %.2f CPU-s, %d MiB; recv %.2f CPU-s, %d MiB",
			v.name, mb(mr.secs), mt/mr.secs, mr.sendCPU, mr.sendRSS>>10, mr.recvCPU, mr.recvRSS>>10))
		sum.add(v.row, fmt.Sprintf("%.1f MB/s", mb(mr.secs)), fmt.Sprintf("%.3f of raw TCP (%.0f MB/s)", mt/mr.secs, mb(mt)))
		indent := strings.Repeat(" ", 2+len(v.row)-len(strings.TrimLeft(v.row, " ")))
		sum.add(indent+"send: peak RSS, MB per CPU-second", fmt.Sprintf("%d MiB, %.1f", mr.sendRSS>>10, float64(size)/1e6/mr.sendCPU), "")
		sum.add(indent+"recv: peak RSS, MB per CPU-second", fmt.Sprintf("%d MiB, %.1f", mr.recvRSS>>10, float64(size)/1e6/mr.recvCPU), "")
	}
	fmt.Printf("\n%d MiB over loopback, median of %d, %d CPUs\n", sizeMiB, runs, benchkit.NumCPU())
	fmt.Printf("%-26s %10s %8s   %s\n", "", "MB/s", "ratio", "CPU and peak RSS per side")
	fmt.Printf("%-26s %10.1f %8s\n", "raw TCP io.Copy (baseline)", mb(mt), "1.00")
	for _, l := range lines {
		fmt.Println(l)
	}
	if small > 0 {
		if err := smallFiles(bin, work, runs, small, sum); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return more(bin)
}

// smallFiles times, from recv's start to its exit with verified files,
// a 1-byte file (time to first byte, connection set-up included) and n
// files of 4 KiB in one send.
func smallFiles(bin, work string, runs, n int, sum *summary) error {
	fmt.Println()
	for _, c := range []struct {
		name   string
		count  int
		size   int64
		target string
	}{{"1-byte file", 1, 1, "0.150 s"}, {fmt.Sprintf("%d files of 4 KiB", n), n, 4 << 10, "0.500 s"}} {
		dir := filepath.Join(work, "small")
		_ = os.RemoveAll(dir)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		var srcs []string
		var wants [][32]byte
		for i := range c.count {
			p := filepath.Join(dir, fmt.Sprintf("f%04d", i))
			sum, err := benchkit.RandomFile(p, c.size)
			if err != nil {
				return err
			}
			srcs, wants = append(srcs, p), append(wants, sum)
		}
		var secs []float64
		for i := 0; i < runs; i++ {
			// Each run receives into a new directory, and all are removed
			// at the end. ext4 without a journal skips inodes deleted in
			// the last 60 s (300 s while their table block is unwritten),
			// one by one, at every file creation: creating 1000 files a
			// second after deleting the last run's 1000 costs 3 to 5 times
			// as much. That is the benchmark's own doing, not p2pxfer's.
			out := filepath.Join(work, fmt.Sprintf("out-%d-files-%d", c.count, i))
			defer os.RemoveAll(out)
			r, err := transfer(bin, out, srcs, wants)
			if err != nil {
				return fmt.Errorf("%s, run %d: %w", c.name, i+1, err)
			}
			secs = append(secs, r.secs)
		}
		sort.Float64s(secs)
		fmt.Printf("%-26s %8.3f s from recv start (median of %d; min %.3f)\n", c.name, secs[len(secs)/2], runs, secs[0])
		sum.add(c.name+", recv start to verified", fmt.Sprintf("%.3f s", secs[len(secs)/2]), fmt.Sprintf("target %s", c.target))
	}
	return nil
}

// tcpCopy is the baseline: the file over a loopback TCP connection into a
// file, as a plain Go program does it.
func tcpCopy(src, dst string) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		f, err := os.Open(src)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		_, err = io.Copy(c, f)
		errc <- err
	}()
	start := time.Now()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	out, err := os.Create(dst)
	if err != nil {
		return 0, err
	}
	defer os.Remove(dst)
	if _, err := io.Copy(out, c); err != nil {
		return 0, err
	}
	if err := out.Close(); err != nil {
		return 0, err
	}
	secs := time.Since(start).Seconds()
	return secs, <-errc
}

var (
	roomRE   = regexp.MustCompile(`Room:[ \t]+(\S+)\n`)
	listenRE = regexp.MustCompile(`listening on (ws://\S+)`)
)

// transfer runs signal, send and recv as processes to send srcs into the
// new directory out, and checks them against wants; the caller removes
// out. The time is recv's, from its start to its exit with verified files.
func transfer(bin, out string, srcs []string, wants [][32]byte, flags ...string) (result, error) {
	// p2pxfer makes the files durable before it exits, so it waits for the
	// disk; the benchmark's own writes (the large file, the TCP baseline's
	// copies, the small sources) must not still be going there. Without
	// this, the time for 1000 files varies by half with what is left to
	// write back.
	syscall.Sync()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	env := append(os.Environ(), "P2PXFER_PASSWORD=bench-password")
	common := append([]string{"--stun", "none", "--loopback", "--interface", "lo"}, flags...)

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

	send := exec.CommandContext(ctx, bin, append(append([]string{"send", "--signal", url, "--max-receivers", "1"}, common...), srcs...)...)
	send.Env = env
	watch := &benchkit.LineWatch{RE: roomRE, Found: make(chan string, 1)}
	send.Stdout = watch
	send.Stderr = io.Discard
	if err := send.Start(); err != nil {
		return result{}, err
	}
	var roomID string
	select {
	case roomID = <-watch.Found:
	case <-time.After(2 * time.Minute):
		_ = send.Process.Kill()
		_ = send.Wait()
		return result{}, errors.New("send printed no room")
	}

	_ = os.RemoveAll(out)
	if err := os.Mkdir(out, 0o755); err != nil {
		return result{}, err
	}
	recv := exec.CommandContext(ctx, bin, append(append([]string{"recv", "--no-seed", "--signal", url, "--out", out}, common...), roomID)...)
	recv.Env = env
	var recvErr bytes.Buffer
	recv.Stderr = &recvErr
	start := time.Now()
	if err := recv.Run(); err != nil {
		_ = send.Process.Kill()
		_ = send.Wait()
		return result{}, fmt.Errorf("recv: %w\n%s", err, tail(recvErr.String()))
	}
	secs := time.Since(start).Seconds()
	if err := send.Wait(); err != nil {
		return result{}, fmt.Errorf("send: %w", err)
	}
	for i, src := range srcs {
		if err := benchkit.CheckHash(filepath.Join(out, filepath.Base(src)), wants[i]); err != nil {
			return result{}, err
		}
	}
	su, ru := send.ProcessState.SysUsage().(*syscall.Rusage), recv.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := func(u *syscall.Rusage) float64 {
		return time.Duration(u.Utime.Nano() + u.Stime.Nano()).Seconds()
	}
	return result{secs: secs, sendCPU: cpu(su), recvCPU: cpu(ru), sendRSS: su.Maxrss, recvRSS: ru.Maxrss}, nil
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

func tail(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}
