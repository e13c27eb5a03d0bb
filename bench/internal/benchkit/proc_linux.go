package benchkit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StopGrace is how long Stop waits after SIGINT before it sends SIGKILL.
const StopGrace = 5 * time.Second

// Proc is a process a benchmark runs (p2pxfer, or a helper), in a
// process group of its own, registered so that KillAll can stop it.
type Proc struct {
	Name   string
	Cmd    *exec.Cmd
	Stderr *Tail // the last 3000 bytes of its stderr
	done   chan struct{}

	mu     sync.Mutex
	killed bool // we sent a signal
}

var live struct {
	sync.Mutex
	procs map[*Proc]bool
	torn  bool
}

// ProcEnv is this process's environment without anything that would
// change where send and recv connect, plus P2PXFER_PASSWORD=password.
func ProcEnv(password string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "P2PXFER_") {
			env = append(env, kv)
		}
	}
	return append(env, "P2PXFER_PASSWORD="+password)
}

// StartProc starts cmd (its path, arguments and environment set; usually
// ip netns exec, which execs the program, so the pid is the program's
// own), its stdout and stderr in dir/name.stdout and .stderr and, if not
// nil, also written to stdout and stderr. It has a process group of its
// own (a Ctrl-C on the terminal reaches only the benchmark, which then
// stops it) and dies with the benchmark (Pdeathsig) if that is killed
// outright. After KillAll it starts nothing.
func StartProc(cmd *exec.Cmd, name, dir string, stdout, stderr io.Writer) (*Proc, error) {
	so, err := os.Create(filepath.Join(dir, name+".stdout"))
	if err != nil {
		return nil, err
	}
	se, err := os.Create(filepath.Join(dir, name+".stderr"))
	if err != nil {
		so.Close()
		return nil, err
	}
	p := &Proc{Name: name, Cmd: cmd, Stderr: &Tail{Max: 3000}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = io.Writer(so), io.MultiWriter(se, p.Stderr)
	if stdout != nil {
		cmd.Stdout = io.MultiWriter(so, stdout)
	}
	if stderr != nil {
		cmd.Stderr = io.MultiWriter(se, p.Stderr, stderr)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	live.Lock()
	if live.torn {
		live.Unlock()
		so.Close()
		se.Close()
		return nil, errors.New("tearing down")
	}
	if err := cmd.Start(); err != nil {
		live.Unlock()
		so.Close()
		se.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	if live.procs == nil {
		live.procs = map[*Proc]bool{}
	}
	live.procs[p] = true
	live.Unlock()
	go func() {
		_ = cmd.Wait()
		so.Close()
		se.Close()
		live.Lock()
		delete(live.procs, p)
		live.Unlock()
		close(p.done)
	}()
	return p, nil
}

// Done is closed once the process has exited (and its files are closed).
func (p *Proc) Done() <-chan struct{} { return p.done }

func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends s to the process's group.
func (p *Proc) Signal(s syscall.Signal) {
	p.mu.Lock()
	p.killed = true
	p.mu.Unlock()
	_ = syscall.Kill(-p.Cmd.Process.Pid, s)
}

// Stop sends SIGINT, then SIGKILL after StopGrace, and waits.
func (p *Proc) Stop() {
	if p.Exited() {
		return
	}
	p.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(StopGrace):
		p.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// StopAll stops the processes, all at once, and waits for them.
func StopAll(ps []*Proc) {
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() { defer wg.Done(); p.Stop() }()
	}
	wg.Wait()
}

// KillAll stops every process still running (SIGINT then SIGKILL, or
// SIGKILL at once if force) and lets no new one start.
func KillAll(force bool) {
	live.Lock()
	live.torn = true
	var ps []*Proc
	for p := range live.procs {
		ps = append(ps, p)
	}
	live.Unlock()
	if force {
		for _, p := range ps {
			p.Signal(syscall.SIGKILL)
		}
	}
	StopAll(ps)
}

// ExitDesc is "exit 0", "exit 130", "killed", with "(stopped)" when the
// benchmark signalled it, or "running".
func (p *Proc) ExitDesc() string {
	if !p.Exited() {
		return "running"
	}
	ws, _ := p.Cmd.ProcessState.Sys().(syscall.WaitStatus)
	s := "exit " + strconv.Itoa(ws.ExitStatus())
	if ws.Signaled() {
		s = ws.Signal().String()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.killed {
		s += " (stopped)"
	}
	return s
}

// FailedOnItsOwn says it exited with an error before the benchmark
// signalled it.
func (p *Proc) FailedOnItsOwn() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.Exited() && !p.killed && !p.Cmd.ProcessState.Success()
}

// CPU is the CPU-seconds (user and system) of the process, once ended.
func (p *Proc) CPU() float64 {
	if !p.Exited() {
		return 0
	}
	u, ok := p.Cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano()).Seconds()
}
