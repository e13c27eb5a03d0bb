// Package benchkit holds what the benchmark programs under bench/ share:
// finding the repository, test files with their SHA-256, running
// processes and watching their output, shell commands, network namespaces
// and Ctrl-C handling. It exists so the programs do not each carry a copy.
package benchkit

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// RepoRoot returns the nearest directory at or above the working directory
// that holds go.mod (the working directory if none does).
func RepoRoot() string {
	dir, _ := os.Getwd()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return dir
}

// NumCPU counts the machine's processors from /proc/cpuinfo (all of them,
// not just those this process may use), 0 if it cannot tell.
func NumCPU() int {
	n := 0
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range bytes.Split(b, []byte("\n")) {
		if bytes.HasPrefix(l, []byte("processor")) {
			n++
		}
	}
	return n
}

// Sh runs a command, and returns an error with its output if it fails.
func Sh(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ShAll runs the commands (name and arguments each) in turn with Sh, up
// to the first that fails.
func ShAll(ctx context.Context, steps [][]string) error {
	for _, s := range steps {
		if err := Sh(ctx, s[0], s[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// FmtRate writes a rate in bits per second as Gbit/s, Mbit/s or kbit/s.
func FmtRate(bits int64) string {
	switch {
	case bits >= 1e9:
		return fmt.Sprintf("%g Gbit/s", float64(bits)/1e9)
	case bits >= 1e6:
		return fmt.Sprintf("%g Mbit/s", float64(bits)/1e6)
	}
	return fmt.Sprintf("%g kbit/s", float64(bits)/1e3)
}

// RandomFile writes size random bytes to path and returns their SHA-256.
func RandomFile(path string, size int64) ([sha256.Size]byte, error) {
	f, err := os.Create(path)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		return [32]byte{}, err
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, f.Close()
}

// HashFile returns the SHA-256 of the file at path.
func HashFile(path string) ([sha256.Size]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return [32]byte{}, err
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// LineWatch is a process's output that sends the first submatch of RE on
// Found (buffered by the caller, at least 1) once it appears.
type LineWatch struct {
	RE    *regexp.Regexp
	Found chan string

	mu   sync.Mutex
	buf  []byte
	done bool
}

func (w *LineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.buf = append(w.buf, p...)
		if m := w.RE.FindSubmatch(w.buf); m != nil {
			w.done = true
			w.Found <- string(m[1])
		}
	}
	return len(p), nil
}

// Tail keeps the last Max bytes written to it (a process's stderr, for an
// error message). Safe for concurrent use.
type Tail struct {
	Max int

	mu sync.Mutex
	b  []byte
}

func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 2*t.Max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.Max:]...)
	}
	return len(p), nil
}

// Len is how many bytes are kept.
func (t *Tail) Len() int { t.mu.Lock(); defer t.mu.Unlock(); return len(t.b) }

// String returns the last Max bytes, with each line that progress bars
// redrew with \r reduced to its last state.
func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.b
	if len(b) > t.Max {
		b = b[len(b)-t.Max:]
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if i := strings.LastIndex(strings.TrimRight(l, "\r"), "\r"); i >= 0 {
			l = l[i+1:]
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

// ParseRate reads a rate in tc's units into bits per second.
func ParseRate(s string) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	units := []struct {
		suffix string
		mul    float64
	}{
		{"gibit", 1 << 30}, {"mibit", 1 << 20}, {"kibit", 1 << 10},
		{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1},
		{"gibps", 8 << 30}, {"mibps", 8 << 20}, {"kibps", 8 << 10},
		{"gbps", 8e9}, {"mbps", 8e6}, {"kbps", 8e3}, {"bps", 8},
		{"", 1},
	}
	for _, u := range units {
		if !strings.HasSuffix(s, u.suffix) {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSuffix(s, u.suffix), 64)
		if err != nil || f <= 0 {
			return 0, fmt.Errorf("bad rate %q (e.g. 40mbit, 512kbit, 1gbit)", s)
		}
		bits := int64(f * u.mul)
		if bits < 8000 {
			return 0, fmt.Errorf("rate %q is below 8 kbit/s", s)
		}
		return bits, nil
	}
	return 0, fmt.Errorf("bad rate %q", s)
}

// CPUTicks reads the machine's CPU time since boot from /proc/stat, in
// clock ticks summed over all CPUs: user, nice, system, idle, iowait,
// irq, softirq, steal; ok is false where there is no such file.
func CPUTicks() (t [8]int64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return t, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return t, false
	}
	for i := range t {
		t[i], _ = strconv.ParseInt(f[i+1], 10, 64)
	}
	return t, true
}

// MachineCPU reads /proc/stat: CPU seconds of all processors busy (user,
// nice, system, irq, softirq) and stolen, since boot. A benchmark takes
// the difference over a run to show how much others' load took.
func MachineCPU() (busy, steal float64) {
	t, ok := CPUTicks()
	if !ok {
		return 0, 0
	}
	const userHZ = 100
	return float64(t[0]+t[1]+t[2]+t[5]+t[6]) / userHZ, float64(t[7]) / userHZ
}

// CheckHash says whether path holds what has the SHA-256 want.
func CheckHash(path string, want [sha256.Size]byte) error {
	got, err := HashFile(path)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%s has the wrong SHA-256", path)
	}
	return nil
}

// WorkDir makes a new work directory under $TMPDIR named after prefix;
// done removes it, or with keep says where it is.
func WorkDir(prefix string, keep bool) (dir string, done func(), err error) {
	dir, err = os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	if keep {
		return dir, func() { fmt.Println("work directory kept:", dir) }, nil
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// Build builds p2pxfer from the repository into bin, saying so.
func Build(ctx context.Context, bin string) error {
	fmt.Println("building p2pxfer ...")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Dir = RepoRoot()
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	return nil
}
