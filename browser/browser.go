package browser

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/p2pxfer/p2pxfer/room"
)

// The page's files. all: keeps files whose names start with '_' or '.',
// which the vendored noble libraries have and plain embed drops.
//
//go:embed all:web
var webFS embed.FS

// Paths the page takes on a server. Everything else goes to the next
// handler (the signalling server).
const (
	// PagePrefix + a room ID is the page of that room.
	PagePrefix = "/r/"
	// SendPath is the page that sends: drop files, get a room, a
	// password and the link to PagePrefix + the room.
	SendPath = "/send"
	// AssetPrefix + the tree's hash + "/" + a file's path serves a file of
	// web/. Every asset URL names the hash of the whole tree, so a URL
	// never changes meaning and browsers may keep its answer for good;
	// relative imports between modules keep working unchanged.
	AssetPrefix = "/p/"
)

// indexFile is the page's template, the one file of web/ that is not an
// asset.
const indexFile = "index.html"

// asset is one file of web/ ready to serve.
type asset struct {
	ctype string
	etag  string // weak: the identity and gzip forms are the same content
	plain []byte
	gz    []byte // nil when gzip would not make it smaller
}

// Handler serves the page and its assets, passes other requests to the
// next handler, and puts the security headers on every response.
type Handler struct {
	next   http.Handler
	hash   string // of the whole tree, in asset URLs
	assets map[string]*asset
	page   *asset // index.html filled in: the same for every room
}

// New returns a Handler over the embedded page. next serves every other
// path (the signalling server's /ws and /healthz); nil answers 404.
func New(next http.Handler) (*Handler, error) {
	h := &Handler{next: next, assets: map[string]*asset{}}
	sum := sha256.New()
	var names []string
	var index []byte
	err := fs.WalkDir(webFS, "web", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		names = append(names, strings.TrimPrefix(p, "web/"))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("browser: read page: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		b, err := webFS.ReadFile("web/" + name)
		if err != nil {
			return nil, fmt.Errorf("browser: read page: %w", err)
		}
		fmt.Fprintf(sum, "%d:%s%d:", len(name), name, len(b))
		sum.Write(b)
		if name == indexFile {
			index = b
			continue
		}
		a, err := newAsset(name, b)
		if err != nil {
			return nil, err
		}
		h.assets[name] = a
	}
	if index == nil {
		return nil, fmt.Errorf("browser: no %s in the page", indexFile)
	}
	h.hash = hex.EncodeToString(sum.Sum(nil))[:16]
	tmpl, err := template.New(indexFile).Parse(string(index))
	if err != nil {
		return nil, fmt.Errorf("browser: page template: %w", err)
	}
	var buf bytes.Buffer
	// Relative, so that it holds behind a proxy that serves us under a
	// path: /r/ROOM -> ../p/HASH/.
	if err := tmpl.Execute(&buf, pageData{Assets: ".." + h.AssetBase()}); err != nil {
		return nil, fmt.Errorf("browser: page template: %w", err)
	}
	if h.page, err = newAsset(indexFile, buf.Bytes()); err != nil {
		return nil, err
	}
	return h, nil
}

func newAsset(name string, b []byte) (*asset, error) {
	fh := sha256.Sum256(b)
	a := &asset{ctype: contentType(name), etag: `W/"` + hex.EncodeToString(fh[:12]) + `"`, plain: b}
	gz, err := gzipped(b)
	if err != nil {
		return nil, fmt.Errorf("browser: compress %s: %w", name, err)
	}
	if len(gz) < len(b) {
		a.gz = gz
	}
	return a, nil
}

func gzipped(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// contentType is set by name, not sniffed (nosniff is on): a module
// script served with any type but JavaScript does not run.
func contentType(name string) string {
	switch path.Ext(name) {
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".html":
		return "text/html; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".json", ".map":
		return "application/json"
	case ".wasm":
		return "application/wasm"
	case ".txt", ".md", "":
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}

// AssetBase is the path, under the server's root, of the current assets:
// AssetPrefix, the tree's hash and a slash.
func (h *Handler) AssetBase() string { return AssetPrefix + h.hash + "/" }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header(), r.Host)
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, PagePrefix):
		h.servePage(w, r, strings.TrimPrefix(p, PagePrefix))
	case p == SendPath:
		if !allowGet(w, r) {
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		write(w, r, h.page)
	case strings.HasPrefix(p, AssetPrefix):
		h.serveAsset(w, r, strings.TrimPrefix(p, AssetPrefix))
	case h.next != nil:
		h.next.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

// setSecurityHeaders: the page runs only its own scripts and styles,
// talks only to its own server, cannot be framed, and sends no referrer
// (its URL names the room).
func setSecurityHeaders(hd http.Header, host string) {
	hd.Set("Content-Security-Policy", CSP(host))
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
}

// CSP is the Content-Security-Policy of every response to a request for
// host (the Host header).
//
// connect-src: 'self' covers the WebSocket at the page's own origin in
// browsers that follow CSP level 3 (ws: and wss: for http: and https:),
// which is what works behind a proxy that terminates TLS or rewrites the
// Host header, since the browser matches against the origin it sees. The
// explicit ws:// and wss:// sources of host are for browsers whose 'self'
// does not cover WebSockets; they are left out when host is not a plain
// host[:port], so a crafted Host header cannot add sources or directives.
func CSP(host string) string {
	connect := "'self'"
	if plainHost(host) {
		connect += " ws://" + host + " wss://" + host
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
		"connect-src " + connect + "; worker-src 'self'; " +
		"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

// plainHost reports whether h is a host name, an IPv4 address or a
// bracketed IPv6 address, with an optional port: nothing a CSP source
// list could read as another source or directive.
func plainHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(".-:[]", c) >= 0) {
			return false
		}
	}
	return true
}

func allowGet(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

// pageData is what index.html is filled with.
type pageData struct {
	Assets string // relative URL of the asset folder, from /r/ROOM
}

// servePage answers /r/ROOM with the page. The page reads the room from
// its URL; the password stays in the fragment, which the browser never
// sends. A room ID typed with capitals or spaces is redirected to its
// normal form; anything else that is not a room ID is not found.
func (h *Handler) servePage(w http.ResponseWriter, r *http.Request, id string) {
	if !room.ValidRoomID(id) {
		if n := room.NormalizeRoomID(id); room.ValidRoomID(n) && !strings.Contains(id, "/") {
			// Relative, so it holds behind a proxy that serves us under a
			// path; the browser keeps the fragment.
			// (http.Redirect would make it absolute.)
			w.Header().Set("Location", n)
			w.WriteHeader(http.StatusMovedPermanently)
			return
		}
		http.NotFound(w, r)
		return
	}
	if !allowGet(w, r) {
		return
	}
	// The page is small, and its URL names the room: nobody keeps it,
	// and a new build's page is never mixed with old assets.
	w.Header().Set("Cache-Control", "no-store")
	write(w, r, h.page)
}

// serveAsset answers AssetPrefix + HASH/NAME. Only the current hash
// is served, with caching for good: a page from an older build asks for
// an older hash, and must not get newer files under it.
func (h *Handler) serveAsset(w http.ResponseWriter, r *http.Request, rest string) {
	hash, name, ok := strings.Cut(rest, "/")
	a := h.assets[name]
	if !ok || hash != h.hash || a == nil {
		http.NotFound(w, r)
		return
	}
	if !allowGet(w, r) {
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	w.Header().Set("ETag", a.etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	write(w, r, a)
}

// etagMatch: weak comparison, as If-None-Match uses.
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}

func write(w http.ResponseWriter, r *http.Request, a *asset) {
	hd := w.Header()
	hd.Set("Content-Type", a.ctype)
	body := a.plain
	if a.gz != nil {
		hd.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			hd.Set("Content-Encoding", "gzip")
			body = a.gz
		}
	}
	hd.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// acceptsGzip reads Accept-Encoding: gzip listed and not refused with q=0.
func acceptsGzip(ae string) bool {
	for _, part := range strings.Split(ae, ",") {
		coding, params, _ := strings.Cut(part, ";")
		if strings.TrimSpace(strings.ToLower(coding)) != "gzip" {
			continue
		}
		q, ok := strings.CutPrefix(strings.ReplaceAll(strings.ToLower(params), " ", ""), "q=")
		if !ok {
			return true
		}
		v, err := strconv.ParseFloat(q, 64)
		return err == nil && v > 0
	}
	return false
}
