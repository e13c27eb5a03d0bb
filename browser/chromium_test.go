package browser

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2pxfer/p2pxfer/internal/chromium"
	"github.com/p2pxfer/p2pxfer/signalclient"
	"github.com/p2pxfer/p2pxfer/sigserver"
)

// recorder keeps the request URIs a server saw.
type recorder struct {
	mu   sync.Mutex
	uris []string
	next http.Handler
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.uris = append(r.uris, req.RequestURI)
	r.mu.Unlock()
	r.next.ServeHTTP(w, req)
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.uris...)
}

// pageBudget is what loading the page may take on the wire, gzipped.
const pageBudget = 150 << 10

// TestPageInChromium opens a room's page in real headless Chromium, in
// front of a real signalling server with a host in the room: the page
// loads under its policy with no error, exception or violation, takes
// the password from the fragment (which the server never sees) or from
// its form, joins the room over the server's WebSocket, asks nothing of
// any other origin, and says in plain words when the room does not
// exist. It logs the bytes the page took to load.
func TestPageInChromium(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sig := sigserver.New(sigserver.Config{})
	defer sig.Close()
	h, err := New(sig)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{next: h}
	ts := httptest.NewServer(rec)
	defer ts.Close()
	host, err := signalclient.Dial(ctx, ts.URL+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	roomID, _, err := host.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}

	b := chromium.Start(t)
	t.Logf("Chromium started in %v", b.StartupTime())
	p, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const status = `document.getElementById("status").textContent`
	if err := p.Navigate(ctx, ts.URL+"/r/"+roomID+"#secret-pw"); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(ctx, `document.body.dataset.state === "joined"`, status); err != nil {
		t.Fatal(err)
	}
	if n := sig.Stats().Conns; n != 2 {
		t.Errorf("the server has %d connections, want the host's and the page's", n)
	}
	var title string
	if err := p.Eval(ctx, "document.title", &title); err != nil || title != "Room "+roomID+" — p2pxfer" {
		t.Errorf("title %q (%v)", title, err)
	}
	if o := p.Origins(); len(o) != 2 || o[0] != ts.URL || o[1] != "ws"+strings.TrimPrefix(ts.URL, "http") {
		t.Errorf("the page asked %v, want only its server", o)
	}
	if err := p.WaitRequests(ctx); err != nil {
		t.Fatal(err)
	}
	var total int64
	ws := 0
	for _, r := range p.Requests() {
		switch {
		case r.Type == "WebSocket":
			ws++
			if r.Status != 101 || r.Frames < 2 {
				t.Errorf("WebSocket %+v: want open, with the join and joined", r)
			}
		case r.Status != 200 || !r.Finished:
			t.Errorf("request %+v", r)
		case r.Type == "Script" && r.Encoding != "gzip":
			t.Errorf("%s not gzipped", r.URL)
		default:
			total += r.Bytes
			t.Logf("%7d B  %s %s", r.Bytes, r.Encoding, r.URL)
		}
	}
	if ws != 1 {
		t.Errorf("%d WebSockets, want 1", ws)
	}
	t.Logf("the page took %d bytes on the wire, headers included, to load (%d requests)", total, len(p.Requests())-ws)
	// The budget for the page, libraries included.
	if total > pageBudget {
		t.Errorf("the page took %d bytes to load, over its budget of %d", total, pageBudget)
	}
	for _, u := range rec.seen() {
		if strings.Contains(u, "secret") {
			t.Errorf("the server saw the password: %s", u)
		}
	}

	// No fragment: the page asks, then joins.
	p2, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p2.Navigate(ctx, ts.URL+"/r/"+roomID); err != nil {
		t.Fatal(err)
	}
	if err := p2.WaitFor(ctx, `document.body.dataset.state === "password"`, status); err != nil {
		t.Fatal(err)
	}
	if err := p2.Eval(ctx, `document.getElementById("password").value = "secret-pw"; document.getElementById("password-form").requestSubmit()`, nil); err != nil {
		t.Fatal(err)
	}
	if err := p2.WaitFor(ctx, `document.body.dataset.state === "joined"`, status); err != nil {
		t.Fatal(err)
	}

	// A room nobody opened: plain words.
	p3, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p3.Navigate(ctx, ts.URL+"/r/zzzz2222#pw"); err != nil {
		t.Fatal(err)
	}
	if err := p3.WaitFor(ctx, `document.body.dataset.state === "error"`, status); err != nil {
		t.Fatal(err)
	}
	var text string
	if err := p3.Eval(ctx, status, &text); err != nil || !strings.HasPrefix(text, "There is no such room") {
		t.Errorf("status for a missing room: %q (%v)", text, err)
	}

	// Behind a reverse proxy that serves the server under a path and
	// rewrites the Host header, as nginx does by default: the page's
	// relative URLs and 'self' in connect-src still hold.
	target, _ := url.Parse(ts.URL)
	front := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Host = "backend.invalid:8080"
		pr.Out.URL.Path = strings.TrimPrefix(pr.In.URL.Path, "/p2pxfer")
		pr.Out.URL.RawPath = ""
	}})
	defer front.Close()
	p4, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p4.Navigate(ctx, front.URL+"/p2pxfer/r/"+roomID+"#secret-pw"); err != nil {
		t.Fatal(err)
	}
	if err := p4.WaitFor(ctx, `document.body.dataset.state === "joined"`, status); err != nil {
		t.Fatal(err)
	}
	for _, r := range p4.Requests() {
		if !strings.Contains(r.URL, "/p2pxfer/") {
			t.Errorf("behind the proxy the page asked for %s", r.URL)
		}
	}
}
