package chromium

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// DefaultTimeout bounds every wait whose context has no deadline.
const DefaultTimeout = 20 * time.Second

// startTimeout bounds Chromium's start, up to a DevTools connection.
const startTimeout = 20 * time.Second

// Binaries are the names Chromium is looked up by, in PATH.
var Binaries = []string{"chromium", "chromium-browser", "google-chrome"}

// Browser is a headless Chromium process and its DevTools connection.
type Browser struct {
	closeOnce sync.Once
	cmd       *exec.Cmd
	exited    chan struct{} // closed when the process has been waited for
	stderr    *tailBuffer
	cdp       *conn
	started   time.Duration

	mu        sync.Mutex
	pages     map[string]*Page // by session ID, workers' sessions included
	downloads map[string]*Download
	order     []string // download GUIDs in order
	changed   chan struct{}
	wg        sync.WaitGroup // goroutines that set up worker sessions
}

// Start launches headless Chromium with a fresh profile, connects to it
// over DevTools, and registers the cleanup that checks its pages, closes
// it and kills what is left of its processes. The test is skipped when no
// Chromium is installed (.ci/run installs Debian's chromium).
func Start(t testing.TB) *Browser {
	t.Helper()
	if Binary() == "" {
		t.Skip("no Chromium installed (apt-get install chromium): browser tests skipped")
	}
	b, err := Launch(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, pr := range b.Close() {
			t.Errorf("%s", pr)
		}
	})
	return b
}

// Binary is the path of the Chromium found in PATH, "" if none is.
func Binary() string {
	for _, name := range Binaries {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Launch starts headless Chromium with its profile in dir (which must be
// empty and stays the caller's to remove) and connects to it over
// DevTools: Start for programs that are not tests (bench/browser). Close
// it when done.
func Launch(dir string) (*Browser, error) {
	bin := Binary()
	if bin == "" {
		return nil, ErrNoChromium
	}
	begin := time.Now()
	args := []string{
		"--headless=new",
		"--user-data-dir=" + dir,
		"--remote-debugging-port=0",
		// Loopback candidates, and no mDNS names in their place, so a
		// page can reach peers on this machine.
		"--allow-loopback-in-peer-connection",
		"--disable-features=WebRtcHideLocalIpsWithMdns,Translate,MediaRouter,OptimizationHints,AutofillServerCommunication",
		// Nothing but the page talks to the network.
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--disable-extensions", "--disable-breakpad",
		"--no-first-run", "--no-default-browser-check", "--password-store=basic", "--use-mock-keychain",
		"--disable-gpu", "--disable-dev-shm-usage", "--mute-audio",
		"about:blank",
	}
	if os.Geteuid() == 0 {
		args = append([]string{"--no-sandbox"}, args...)
	}
	b := &Browser{
		exited: make(chan struct{}), stderr: &tailBuffer{max: 16 << 10},
		pages: map[string]*Page{}, downloads: map[string]*Download{}, changed: make(chan struct{}),
	}
	b.cmd = exec.Command(bin, args...)
	b.cmd.Stderr = b.stderr
	// What Chromium keeps outside its profile (crash reports, dconf)
	// stays in the profile's directory too.
	b.cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_CACHE_HOME="+filepath.Join(dir, "cache"))
	b.cmd.SysProcAttr = processGroup()
	if err := b.cmd.Start(); err != nil {
		return nil, fmt.Errorf("chromium: start %s: %w", bin, err)
	}
	go func() {
		_ = b.cmd.Wait()
		close(b.exited)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	wsURL, err := b.devToolsURL(ctx, dir)
	if err == nil {
		b.cdp, err = dialCDP(ctx, wsURL, b.event)
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, b.stderr)
		}
	}
	if err != nil {
		b.Close()
		return nil, err
	}
	b.started = time.Since(begin)
	return b, nil
}

// devToolsURL waits for Chromium to write DevToolsActivePort (the port it
// picked and the browser's path) into its profile.
func (b *Browser) devToolsURL(ctx context.Context, dir string) (string, error) {
	file := filepath.Join(dir, "DevToolsActivePort")
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if data, err := os.ReadFile(file); err == nil {
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			if len(lines) == 2 {
				if port, err := strconv.Atoi(strings.TrimSpace(lines[0])); err == nil && port > 0 {
					return fmt.Sprintf("ws://127.0.0.1:%d%s", port, strings.TrimSpace(lines[1])), nil
				}
			}
		}
		select {
		case <-b.exited:
			return "", fmt.Errorf("chromium exited at start (%v):\n%s", b.cmd.ProcessState, b.stderr)
		case <-ctx.Done():
			return "", fmt.Errorf("chromium: no DevToolsActivePort after %v:\n%s", startTimeout, b.stderr)
		case <-tick.C:
		}
	}
}

// StartupTime is how long Start took, from launch to DevTools connected.
func (b *Browser) StartupTime() time.Duration { return b.started }

// Close asks the browser to close, kills its process group whatever it
// answered, and waits for the process and for the client's goroutines. It
// returns the problems its pages had (Page.Problems), each prefixed with
// the page's URL, and a line if the process outlived SIGKILL. Start's
// cleanup fails the test with them.
func (b *Browser) Close() []string {
	var problems []string
	b.closeOnce.Do(func() { problems = b.close() })
	return problems
}

func (b *Browser) close() []string {
	b.mu.Lock()
	var pages []*Page
	for s, p := range b.pages {
		if s == p.session {
			pages = append(pages, p)
		}
	}
	b.mu.Unlock()
	var problems []string
	for _, p := range pages {
		for _, pr := range p.Problems() {
			problems = append(problems, fmt.Sprintf("page %s: %s", p.url(), pr))
		}
	}
	if b.cdp != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = b.cdp.call(ctx, "", "Browser.close", nil, nil)
		cancel()
	}
	select {
	case <-b.exited:
	case <-time.After(2 * time.Second):
	}
	killGroup(b.cmd.Process.Pid)
	select {
	case <-b.exited:
	case <-time.After(10 * time.Second):
		problems = append(problems, fmt.Sprintf("chromium (pid %d) still running 10 s after SIGKILL", b.cmd.Process.Pid))
	}
	if b.cdp != nil {
		b.cdp.close()
	}
	b.wg.Wait()
	return problems
}

// bounded gives ctx DefaultTimeout when it has no deadline.
func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

// notifyLocked wakes every waiter; b.mu is held.
func (b *Browser) notifyLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// waitChange waits until cond (called with b.mu held) holds, or ctx ends.
func (b *Browser) waitChange(ctx context.Context, cond func() bool) error {
	for {
		b.mu.Lock()
		ok, ch := cond(), b.changed
		b.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// event is the reader's callback: it records and never blocks.
func (b *Browser) event(session, method string, params json.RawMessage) {
	b.mu.Lock()
	defer b.mu.Unlock()
	defer b.notifyLocked()
	switch method {
	case "Browser.downloadWillBegin":
		var e struct {
			GUID              string `json:"guid"`
			URL               string `json:"url"`
			SuggestedFilename string `json:"suggestedFilename"`
		}
		if json.Unmarshal(params, &e) == nil {
			b.downloads[e.GUID] = &Download{URL: e.URL, Name: e.SuggestedFilename, State: "inProgress"}
			b.order = append(b.order, e.GUID)
		}
		return
	case "Browser.downloadProgress":
		var e struct {
			GUID          string `json:"guid"`
			ReceivedBytes int64  `json:"receivedBytes"`
			State         string `json:"state"`
		}
		if json.Unmarshal(params, &e) == nil && b.downloads[e.GUID] != nil {
			d := b.downloads[e.GUID]
			d.Bytes, d.State = e.ReceivedBytes, e.State
		}
		return
	case "Target.attachedToTarget":
		var e struct {
			SessionID  string `json:"sessionId"`
			TargetInfo struct {
				Type string `json:"type"`
				URL  string `json:"url"`
			} `json:"targetInfo"`
		}
		p := b.pages[session]
		if json.Unmarshal(params, &e) != nil || p == nil {
			return
		}
		// A worker (or frame) of the page: its console, exceptions and
		// requests are the page's. Set it up off the reader.
		b.pages[e.SessionID] = p
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			p.enable(ctx, e.SessionID, true)
		}()
		return
	case "Target.detachedFromTarget":
		var e struct {
			SessionID string `json:"sessionId"`
		}
		if json.Unmarshal(params, &e) == nil {
			if p := b.pages[e.SessionID]; p != nil && p.session != e.SessionID {
				delete(b.pages, e.SessionID)
			}
		}
		return
	}
	if p := b.pages[session]; p != nil {
		p.eventLocked(method, params)
	}
}

// Download is a file the browser downloaded, or is downloading.
type Download struct {
	URL   string
	Name  string // the suggested file name, which it is saved under
	State string // inProgress, completed or canceled
	Bytes int64  // received so far
}

// SetDownloadDir makes downloads go to dir without asking.
func (b *Browser) SetDownloadDir(ctx context.Context, dir string) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	return b.cdp.call(ctx, "", "Browser.setDownloadBehavior",
		map[string]any{"behavior": "allow", "downloadPath": dir, "eventsEnabled": true}, nil)
}

// Downloads lists the downloads so far, in the order they began.
func (b *Browser) Downloads() []Download {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Download, 0, len(b.order))
	for _, g := range b.order {
		out = append(out, *b.downloads[g])
	}
	return out
}

// WaitDownload waits until a download named name has completed, and
// returns it; a canceled one is an error.
func (b *Browser) WaitDownload(ctx context.Context, name string) (Download, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	var got *Download
	err := b.waitChange(ctx, func() bool {
		for _, g := range b.order {
			if d := b.downloads[g]; d.Name == name && d.State != "inProgress" {
				got = d
				return true
			}
		}
		return false
	})
	if err != nil {
		return Download{}, fmt.Errorf("chromium: download %s not complete: %w (downloads: %+v)", name, err, b.Downloads())
	}
	if got.State != "completed" {
		return *got, fmt.Errorf("chromium: download %s %s", name, got.State)
	}
	return *got, nil
}

// tailBuffer keeps the last max bytes written: Chromium's stderr, for
// failure messages.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if len(w.b) > w.max {
		w.b = w.b[len(w.b)-w.max:]
	}
	return len(p), nil
}

func (w *tailBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(w.b))
	for sc.Scan() {
		out.WriteString("  chromium: " + sc.Text() + "\n")
	}
	return out.String()
}
