package chromium

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain: the client's goroutines end with each test's browser.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// site serves a small page under a strict policy: a module script, a
// fetch, a worker and a file to download. /bad adds an inline script
// (which the policy blocks) and a script that throws.
func site(t *testing.T) *httptest.Server {
	t.Helper()
	files := map[string]string{
		"/":            `<!doctype html><title>t</title><script type="module" src="/a.js"></script>`,
		"/bad":         `<!doctype html><title>bad</title><script>window.inline = 1</script><script src="/throw.js"></script><script src="/wstart.js"></script><link rel="stylesheet" href="https://third.example/x.css">`,
		"/wstart.js":   `new Worker("/wthrow.js")`,
		"/wthrow.js":   `setTimeout(() => { throw new Error("worker boom") }, 10)`,
		"/a.js":        `console.log("hello", 42); window.loaded = true; window.got = fetch("/data").then(r => r.text()); new Worker("/w.js");`,
		"/w.js":        `console.log("from the worker"); fetch("/data");`,
		"/throw.js":    `throw new Error("boom on purpose")`,
		"/data":        strings.Repeat("data ", 1000),
		"/file":        "the downloaded file\n",
		"/favicon.ico": "",
		"/up":          `<!doctype html><input id="f" type="file" multiple>`,
		"/dl":          `<!doctype html><a id="a" download="x.txt" href="/file">x</a>`,
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Security-Policy", "default-src 'self'")
		switch {
		case strings.HasSuffix(r.URL.Path, ".js"):
			w.Header().Set("Content-Type", "text/javascript")
		case r.URL.Path == "/data" || r.URL.Path == "/file":
			w.Header().Set("Content-Type", "text/plain")
		default:
			w.Header().Set("Content-Type", "text/html")
		}
		fmt.Fprint(w, body)
	}))
	t.Cleanup(ts.Close)
	return ts
}

// TestChromium runs the harness's tests on one browser: starting one
// takes about a second.
func TestChromium(t *testing.T) {
	ts := site(t)
	b := Start(t)
	t.Logf("Chromium started in %v", b.StartupTime())
	t.Run("page", func(t *testing.T) { testPage(t, b, ts) })
	t.Run("problems", func(t *testing.T) { testProblems(t, b, ts) })
	t.Run("download", func(t *testing.T) { testDownload(t, b, ts) })
	t.Run("upload", func(t *testing.T) { testUpload(t, b, ts) })
}

// testPage: navigate, evaluate and await, wait with a bound, and read
// console, requests and origins, including the worker's.
func testPage(t *testing.T, b *Browser, ts *httptest.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Navigate(ctx, ts.URL+"/"); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(ctx, "window.loaded", ""); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := p.Eval(ctx, "window.got", &got); err != nil || got != strings.Repeat("data ", 1000) {
		t.Fatalf("awaited fetch: %.40q, %v", got, err)
	}
	var n int
	if err := p.Eval(ctx, "new Promise(r => setTimeout(() => r(6 * 7), 20))", &n); err != nil || n != 42 {
		t.Fatalf("awaited promise: %d, %v", n, err)
	}
	if err := p.Eval(ctx, "Promise.reject(new Error('nope'))", nil); !errors.Is(err, ErrJS) || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("rejected promise: %v", err)
	}
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	err = p.WaitFor(short, "window.never", "document.title")
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "document.title is t") {
		t.Fatalf("WaitFor of what never comes: %v", err)
	}
	// The worker's console and requests are the page's.
	waitFor(t, func() bool {
		return slices.ContainsFunc(p.Console(), func(m ConsoleMessage) bool { return m.Text == "from the worker" })
	}, "the worker's console message")
	if !slices.ContainsFunc(p.Console(), func(m ConsoleMessage) bool { return m.Text == "hello 42" && m.Level == "log" }) {
		t.Errorf("console: %+v", p.Console())
	}
	waitFor(t, func() bool {
		data := 0
		for _, r := range p.Requests() {
			if strings.HasSuffix(r.URL, "/data") && r.Finished {
				data++
			}
		}
		return data == 2
	}, "the page's and the worker's fetch")
	for _, r := range p.Requests() {
		if r.Status != 200 || r.Bytes <= 0 {
			t.Errorf("request %+v", r)
		}
	}
	if o := p.Origins(); len(o) != 1 || o[0] != ts.URL {
		t.Errorf("origins %v, want only %s", o, ts.URL)
	}
	if pr := p.Problems(); len(pr) != 0 {
		t.Errorf("problems on a clean page: %v", pr)
	}
}

// testProblems: CSP violations (an inline script, a third-party
// stylesheet) and uncaught exceptions, a worker's included, are reported,
// and fail the test unless allowed.
func testProblems(t *testing.T, b *Browser, ts *httptest.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Navigate(ctx, ts.URL+"/bad"); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitRequests(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(p.Problems()) >= 5 }, "five problems")
	pr := strings.Join(p.Problems(), "\n")
	if len(p.CSPViolations()) != 2 || !strings.Contains(pr, "request blocked (csp): https://third.example/x.css") || !strings.Contains(pr, "Content Security Policy") || !strings.Contains(pr, "boom on purpose") || !strings.Contains(pr, "worker boom") {
		t.Errorf("problems:\n%s\nconsole: %+v", pr, p.Console())
	}
	var inline any
	if err := p.Eval(ctx, "window.inline", &inline); err != nil || inline != nil {
		t.Errorf("the inline script ran: %v %v", inline, err)
	}
	p.Allow("Content Security Policy")
	p.Allow("boom")
	p.Allow("https://third.example/")
	if pr := p.Problems(); len(pr) != 0 {
		t.Errorf("allowed problems still reported: %v", pr)
	}
}

// testDownload: a download goes to the directory set, and is waited for.
func testDownload(t *testing.T, b *Browser, ts *httptest.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	if err := b.SetDownloadDir(ctx, dir); err != nil {
		t.Fatal(err)
	}
	p, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Navigate(ctx, ts.URL+"/dl"); err != nil {
		t.Fatal(err)
	}
	if err := p.Eval(ctx, `document.getElementById("a").click()`, nil); err != nil {
		t.Fatal(err)
	}
	d, err := b.WaitDownload(ctx, "x.txt")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "x.txt")); err != nil || string(got) != "the downloaded file\n" || d.Bytes != int64(len(got)) {
		t.Fatalf("download %+v: %q %v", d, got, err)
	}
}

// testUpload: files given to a file input are the page's to read, and
// the browser's CPU time is measured.
func testUpload(t *testing.T, b *Browser, ts *httptest.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	before, err := b.CPU()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, body := range map[string]string{"a.txt": "first", "b.txt": "second"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Navigate(ctx, ts.URL+"/up"); err != nil {
		t.Fatal(err)
	}
	if err := p.SetInputFiles(ctx, "#nope", filepath.Join(dir, "a.txt")); err == nil {
		t.Error("SetInputFiles on no element: no error")
	}
	if err := p.SetInputFiles(ctx, "#f", filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt")); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := p.Eval(ctx, `Promise.all([...document.getElementById("f").files].map(async f => f.name + "=" + await f.text()))`, &got); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "a.txt=first,b.txt=second" {
		t.Errorf("the page read %v", got)
	}
	// A fixed amount of work in the page (about 0.4 s here; fixed, not
	// timed, so a loaded machine does not matter): the browser's CPU
	// time grows.
	if err := p.Eval(ctx, `(() => { let x = 0; for (let i = 0; i < 3e7; i++) x = (x + i) % 1000003; return x })()`, nil); err != nil {
		t.Fatal(err)
	}
	after, err := b.CPU()
	if err != nil {
		t.Fatal(err)
	}
	if after-before < 50*time.Millisecond {
		t.Errorf("browser CPU grew by %v over a busy loop of 3e7 steps", after-before)
	}
	t.Logf("browser CPU %v, then %v", before, after)
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 10 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
