package browser

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/p2pxfer/p2pxfer/sigserver"
)

// server runs the page in front of a real signalling server.
func server(t *testing.T) (*httptest.Server, *Handler) {
	t.Helper()
	sig := sigserver.New(sigserver.Config{})
	t.Cleanup(func() { _ = sig.Close() })
	h, err := New(sig)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts, h
}

// get fetches u with the given request headers and without Go's own
// transparent gzip, so the test sees what went over the wire.
func get(t *testing.T, method, u string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{
		Transport:     &http.Transport{DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

const room1 = "abcd2345"

// TestSecurityHeaders: every answer, the page, assets, redirects, 404s,
// 405s and the signalling server's own, carries the security headers,
// and the policy is exactly the strict one.
func TestSecurityHeaders(t *testing.T) {
	ts, h := server(t)
	host := strings.TrimPrefix(ts.URL, "http://")
	wantCSP := "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
		"connect-src 'self' ws://" + host + " wss://" + host + "; worker-src 'self'; " +
		"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	for _, c := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/r/" + room1, 200},
		{"HEAD", "/r/" + room1, 200},
		{"GET", "/r/ABCD2345", 301},
		{"POST", "/r/" + room1, 405},
		{"GET", "/r/abcd234o", 404},
		{"GET", "/r/", 404},
		{"GET", h.AssetBase() + "app.js", 200},
		{"GET", h.AssetBase() + "nope.js", 404},
		{"GET", "/p/0000000000000000/app.js", 404},
		{"GET", "/p/", 404},
		{"GET", "/", 404},
		{"GET", "/favicon.ico", 404},
		{"GET", "/healthz", 200},
		{"GET", "/ws", 426}, // not a WebSocket handshake
	} {
		resp, _ := get(t, c.method, ts.URL+c.path, nil)
		if resp.StatusCode != c.code {
			t.Errorf("%s %s: %s, want %d", c.method, c.path, resp.Status, c.code)
		}
		for k, want := range map[string]string{
			"Content-Security-Policy":      wantCSP,
			"Referrer-Policy":              "no-referrer",
			"X-Content-Type-Options":       "nosniff",
			"Cross-Origin-Opener-Policy":   "same-origin",
			"Cross-Origin-Resource-Policy": "same-origin",
		} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("%s %s: %s = %q, want %q", c.method, c.path, k, got, want)
			}
		}
	}
}

// TestCSPHost: a Host header that is not a plain host[:port] adds
// nothing to the policy.
func TestCSPHost(t *testing.T) {
	for host, plain := range map[string]bool{
		"example.com":            true,
		"192.168.1.20:40123":     true,
		"[2001:db8::1]:8080":     true,
		"":                       false,
		"a; script-src *":        false,
		"a 'unsafe-inline'":      false,
		"evil.com,other":         false,
		strings.Repeat("a", 300): false,
	} {
		csp := CSP(host)
		if got := strings.Contains(csp, "ws://"); got != plain {
			t.Errorf("CSP(%q) = %q: explicit WebSocket source %v, want %v", host, csp, got, plain)
		}
		if strings.Count(csp, ";") != 8 || strings.Contains(csp, "unsafe") || strings.Contains(csp, "*") {
			t.Errorf("CSP(%q) = %q", host, csp)
		}
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/r/"+room1, nil)
	req.Host = "x; script-src 'unsafe-inline'"
	h, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	h.ServeHTTP(rec, req)
	if csp := rec.Header().Get("Content-Security-Policy"); strings.Contains(csp, "unsafe") {
		t.Errorf("a crafted Host made the policy %q", csp)
	}
}

// TestPage: a room's page is served fresh, names its assets under the
// current hash relatively, and every file it refers to, and every module
// those import, is there with its type; bad room IDs are not found, with
// a plain 404.
func TestPage(t *testing.T) {
	ts, h := server(t)
	resp, body := get(t, "GET", ts.URL+"/r/"+room1, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("page: %s %v", resp.Status, resp.Header)
	}
	if !bytes.Contains(body, []byte(`src="..`+h.AssetBase()+`app.js"`)) {
		t.Errorf("page does not load ..%sapp.js:\n%s", h.AssetBase(), body)
	}
	if bytes.Contains(body, []byte("<style")) || regexp.MustCompile(`<script[^>]*>[^<]`).Match(body) || regexp.MustCompile(`\son[a-z]+=`).Match(body) {
		t.Errorf("page has inline script or style:\n%s", body)
	}
	// Everything the page and its modules refer to is served.
	seen := map[string]bool{}
	var visit func(ref, from string)
	visit = func(ref, from string) {
		base, _ := url.Parse(from)
		u, err := base.Parse(ref)
		if err != nil {
			t.Errorf("%s: bad reference %q", from, ref)
			return
		}
		if seen[u.String()] {
			return
		}
		seen[u.String()] = true
		resp, b := get(t, "GET", u.String(), nil)
		if resp.StatusCode != 200 {
			t.Errorf("%s refers to %s: %s", from, u.Path, resp.Status)
			return
		}
		if strings.HasSuffix(u.Path, ".js") {
			if ct := resp.Header.Get("Content-Type"); ct != "text/javascript; charset=utf-8" {
				t.Errorf("%s: Content-Type %q", u.Path, ct)
			}
			for _, m := range importRE.FindAllSubmatch(b, -1) {
				visit(string(m[1]), u.String())
			}
		}
	}
	for _, m := range regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllSubmatch(body, -1) {
		visit(string(m[1]), ts.URL+"/r/"+room1)
	}
	if len(seen) < 3 {
		t.Errorf("the page refers to %d files", len(seen))
	}

	for _, p := range []string{"/r/abcd234", "/r/abcd23456", "/r/abcd234o", "/r/abcd2345/", "/r/abcd2345/x", "/r/../p/x", "/r/ab%20cd2345"} {
		resp, body := get(t, "GET", ts.URL+p, nil)
		if resp.StatusCode != 404 || string(body) != "404 page not found\n" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("%s: %s %q", p, resp.Status, body)
		}
	}
	resp, _ = get(t, "GET", ts.URL+"/r/ABCD2345", nil)
	if loc := resp.Header.Get("Location"); resp.StatusCode != 301 || loc != room1 {
		t.Errorf("/r/ABCD2345: %s to %q, want 301 to %s", resp.Status, loc, room1)
	}
}

// importRE finds static and dynamic imports, and workers, by relative path.
var importRE = regexp.MustCompile(`(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|new URL\(\s*)["'](\.{1,2}/[^"']+\.m?js)["']`)

// TestAssets: assets are cached for good under their hash, revalidate by
// ETag, and go gzipped to a client that accepts it, not to others.
func TestAssets(t *testing.T) {
	ts, h := server(t)
	for name, a := range h.assets {
		u := ts.URL + h.AssetBase() + name
		resp, plain := get(t, "GET", u, nil)
		if resp.StatusCode != 200 || !bytes.Equal(plain, a.plain) || resp.Header.Get("Content-Encoding") != "" {
			t.Errorf("%s: %s, %d bytes, encoding %q", name, resp.Status, len(plain), resp.Header.Get("Content-Encoding"))
			continue
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
			t.Errorf("%s: Cache-Control %q", name, cc)
		}
		etag := resp.Header.Get("ETag")
		if etag == "" {
			t.Errorf("%s: no ETag", name)
		}
		if resp, _ := get(t, "GET", u, map[string]string{"If-None-Match": etag}); resp.StatusCode != 304 {
			t.Errorf("%s: If-None-Match its ETag: %s", name, resp.Status)
		}
		resp, gz := get(t, "GET", u, map[string]string{"Accept-Encoding": "br, gzip"})
		if a.gz == nil {
			continue
		}
		if resp.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
			t.Errorf("%s: not gzipped to a client that accepts it: %v", name, resp.Header)
			continue
		}
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			t.Fatal(err)
		}
		if un, err := io.ReadAll(zr); err != nil || !bytes.Equal(un, a.plain) {
			t.Errorf("%s: gzip form does not match: %v", name, err)
		}
		if resp, _ := get(t, "GET", u, map[string]string{"Accept-Encoding": "gzip;q=0"}); resp.Header.Get("Content-Encoding") != "" {
			t.Errorf("%s: gzipped to a client that refuses it", name)
		}
	}
	if h.assets["app.js"] == nil || h.assets["app.js"].gz == nil {
		t.Error("app.js is not served gzipped")
	}
	if _, ok := h.assets[indexFile]; ok {
		t.Error("the page template is served as an asset")
	}
}

// TestEmbedAll: every file under web/ in the source tree is served,
// including the ones whose names start with '_' or '.', which a plain
// go:embed would drop.
func TestEmbedAll(t *testing.T) {
	_, h := server(t)
	err := filepath.WalkDir("web", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name := filepath.ToSlash(strings.TrimPrefix(p, "web"+string(filepath.Separator)))
		if _, ok := h.assets[name]; !ok && name != indexFile {
			t.Errorf("web/%s is not served", name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("web/app.js"); err != nil {
		t.Fatal(err)
	}
}
