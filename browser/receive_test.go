package browser_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/p2pxfer/p2pxfer/browser"
	"github.com/p2pxfer/p2pxfer/chunker"
	"github.com/p2pxfer/p2pxfer/internal/chromium"
	"github.com/p2pxfer/p2pxfer/peer"
	"github.com/p2pxfer/p2pxfer/peer/lane"
	"github.com/p2pxfer/p2pxfer/room"
	"github.com/p2pxfer/p2pxfer/signalclient"
	"github.com/p2pxfer/p2pxfer/sigserver"
)

// site is a signalling server with the page mounted, as `p2pxfer signal`
// and send's embedded server run it.
type site struct {
	sig *sigserver.Server
	ts  *httptest.Server
	ws  string
}

func newSite(t *testing.T) *site {
	t.Helper()
	return newSiteWith(t, sigserver.Config{})
}

func newSiteWith(t *testing.T, cfg sigserver.Config) *site {
	t.Helper()
	noneOutlive(t)
	sig := sigserver.New(cfg)
	h, err := browser.New(sig)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(func() {
		_ = sig.Close()
		ts.Close()
	})
	return &site{sig: sig, ts: ts, ws: "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws"}
}

// engine is a sender's or CLI receiver's engine whose candidates are all
// on loopback, where the browser's are too.
func engine(t *testing.T) *peer.Engine {
	t.Helper()
	peersOutlive(t)
	e, err := peer.NewEngine(peer.Config{
		Transport:        lane.Config{Loopback: true, Interfaces: []string{"lo"}, ConnectTimeout: 15 * time.Second},
		HandshakeTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// cliJoin joins roomID as the CLI's receiver (the engine `p2pxfer recv`
// runs) does, and returns its signalling connection and the options for
// Receive with password, whose Open writes into out. The caller closes
// the connection, and the writer with closeWriter once Receive returned.
func cliJoin(ctx context.Context, t *testing.T, st *site, roomID, password, out string) (conn *signalclient.Conn, o peer.ReceiveOptions, closeWriter func()) {
	t.Helper()
	conn, err := signalclient.Dial(ctx, st.ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	j, err := conn.JoinInfo(ctx, roomID)
	if err != nil {
		_ = conn.Close()
		t.Fatalf("joining room %s: %v", roomID, err)
	}
	var w *chunker.Writer
	o = peer.ReceiveOptions{
		Room: roomID, Self: j.Self, Host: j.Host, Key: j.Key, Password: password,
		Open: func(m *chunker.Manifest) (*chunker.Writer, error) {
			var err error
			w, err = chunker.CreateWriter(out, m, chunker.WriterOptions{})
			return w, err
		},
	}
	return conn, o, func() {
		if w != nil {
			_ = w.Close()
		}
	}
}

// cliReceive runs the CLI's receiver in roomID with password into out
// until Receive returns, then closes its writer and its signalling
// connection. more, if not nil, adds to the options before Receive:
// callbacks (conn is the receiver's own signalling), or an Open that
// wraps the one given.
func cliReceive(ctx context.Context, t *testing.T, st *site, roomID, password, out string, more func(conn *signalclient.Conn, o *peer.ReceiveOptions)) error {
	t.Helper()
	conn, o, closeWriter := cliJoin(ctx, t, st, roomID, password, out)
	defer conn.Close()
	if more != nil {
		more(conn, &o)
	}
	err := engine(t).Receive(ctx, conn, o)
	closeWriter()
	return err
}

// files writes random files of the given sizes and returns their paths
// and SHA-256s by name.
func files(t *testing.T, sizes map[string]int) ([]string, map[string][32]byte) {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	sums := map[string][32]byte{}
	for name, n := range sizes {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
		sums[name] = sha256.Sum256(b)
	}
	return paths, sums
}

// corruptSource plays a hostile sender: piece bad (every piece if bad is
// negative) is served with one bit flipped.
type corruptSource struct {
	peer.Source
	bad  int
	from *atomic.Bool // if not nil, only once it is set
}

func (c *corruptSource) ReadPiece(i int, buf []byte) ([]byte, error) {
	b, err := c.Source.ReadPiece(i, buf)
	if err == nil && (i == c.bad || c.bad < 0) && (c.from == nil || c.from.Load()) {
		b[len(b)/2] ^= 0x40
	}
	return b, err
}

// sender is an in-process `p2pxfer send`: the same engine, source and
// signing key as the command's.
type sender struct {
	room     string
	password string
	done     chan error
	cancel   context.CancelFunc
	conn     *signalclient.Conn
	mu       sync.Mutex
	events   []peer.Event
}

func (s *sender) finished() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.events {
		if e.Kind == peer.EventFinished {
			n++
		}
	}
	return n
}

// count is how many events of kind the sender saw, and how many of them
// had Seeding set.
func (s *sender) count(kind peer.EventKind) (n, seeding int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.events {
		if e.Kind == kind {
			n++
			if e.Seeding {
				seeding++
			}
		}
	}
	return n, seeding
}

func startSender(ctx context.Context, t *testing.T, st *site, src peer.Source) *sender {
	t.Helper()
	return startSenderOn(ctx, t, st, src, engine(t))
}

// startSenderOn is startSender with the engine eng.
func startSenderOn(ctx context.Context, t *testing.T, st *site, src peer.Source, eng *peer.Engine) *sender {
	t.Helper()
	return startSenderVia(ctx, t, st, src, eng, nil)
}

// startSenderVia is startSenderOn with wrap, if not nil, between the
// sender and its signalling connection.
func startSenderVia(ctx context.Context, t *testing.T, st *site, src peer.Source, eng *peer.Engine, wrap func(*signalclient.Conn) peer.Signaller) *sender {
	t.Helper()
	pub, priv, err := peer.NewManifestKey()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := signalclient.Dial(ctx, st.ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	roomID, self, err := conn.CreateWith(ctx, signalclient.CreateOptions{Key: pub})
	if err != nil {
		t.Fatal(err)
	}
	s := &sender{room: roomID, password: "k7m2x-pq9fd", done: make(chan error, 1), conn: conn}
	sctx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	go func() {
		var sig peer.Signaller = conn
		if wrap != nil {
			sig = wrap(conn)
		}
		s.done <- eng.Serve(sctx, sig, src, peer.ServeOptions{
			Room: roomID, Self: self, Password: s.password, Signer: priv,
			OnEvent: func(e peer.Event) {
				s.mu.Lock()
				s.events = append(s.events, e)
				s.mu.Unlock()
			},
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	return s
}

func openSource(ctx context.Context, t *testing.T, paths []string) *chunker.Source {
	t.Helper()
	src, err := chunker.OpenSource(ctx, paths, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	return src
}

const status = `document.getElementById("status").textContent`

// openPage opens url in a new page of b.
func openPage(ctx context.Context, t *testing.T, b *chromium.Browser, url string) *chromium.Page {
	t.Helper()
	p, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Navigate(ctx, url); err != nil {
		t.Fatal(err)
	}
	return p
}

// settled waits until the page has received everything or given up, and
// returns what its status line says.
func settled(ctx context.Context, t *testing.T, p *chromium.Page) string {
	t.Helper()
	if err := p.WaitFor(ctx, `document.body.dataset.state === "done" || document.body.dataset.state === "error"`, status); err != nil {
		t.Fatal(err)
	}
	var text string
	_ = p.Eval(ctx, status, &text)
	return text
}

// saveAll clicks every Save link of the page and returns the saved
// files' SHA-256s by name.
func saveAll(ctx context.Context, t *testing.T, b *chromium.Browser, p *chromium.Page, dir string, names []string) map[string][32]byte {
	t.Helper()
	if err := p.Eval(ctx, `document.querySelectorAll("a.save").forEach((a) => a.click())`, nil); err != nil {
		t.Fatal(err)
	}
	got := map[string][32]byte{}
	for _, name := range names {
		if _, err := b.WaitDownload(ctx, name); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		got[name] = sha256.Sum256(data)
	}
	return got
}

// savingBrowser starts Chromium saving downloads into a new folder, and
// returns both.
func savingBrowser(ctx context.Context, t *testing.T) (*chromium.Browser, string) {
	t.Helper()
	b := chromium.Start(t)
	dl := t.TempDir()
	if err := b.SetDownloadDir(ctx, dl); err != nil {
		t.Fatal(err)
	}
	return b, dl
}

// savesAsSent clicks every Save link of the page and checks that it
// saves each file of sums, by name, with the SHA-256 it was sent with.
func savesAsSent(ctx context.Context, t *testing.T, b *chromium.Browser, p *chromium.Page, dl string, sums map[string][32]byte) {
	t.Helper()
	names := make([]string, 0, len(sums))
	for name := range sums {
		names = append(names, name)
	}
	got := saveAll(ctx, t, b, p, dl, names)
	for name, sum := range sums {
		if got[name] != sum {
			t.Errorf("%s: saved SHA-256 %x, sent %x", name, got[name], sum)
		}
	}
}

// sameFiles checks that the CLI receiver wrote each file of sums into
// out, by name, with the SHA-256 the page had.
func sameFiles(t *testing.T, out string, sums map[string][32]byte) {
	t.Helper()
	for name, sum := range sums {
		data, err := os.ReadFile(filepath.Join(out, name))
		if err != nil || sha256.Sum256(data) != sum {
			t.Errorf("%s from the page differs (%v)", name, err)
		}
	}
}

// TestBrowserReceives: an in-process sender (what `p2pxfer send` runs)
// offers two files, 20 MB and 1 byte, in a room on a real signalling
// server; the page in real headless Chromium joins with the password in
// its fragment, runs CPace, the sealed offer and answer, and the data
// channel protocol, verifies every piece into its private storage, and
// its Save links give back both files byte for byte. The sender counts
// the page as a finished receiver; the tab title says Received.
func TestBrowserReceives(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st := newSite(t)
	paths, sums := files(t, map[string]int{"big.bin": 20 << 20, "one.bin": 1})
	snd := startSender(ctx, t, st, openSource(ctx, t, paths))

	b, dl := savingBrowser(ctx, t)
	p, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	if err := p.Navigate(ctx, st.ts.URL+"/r/"+snd.room+"#"+snd.password); err != nil {
		t.Fatal(err)
	}
	text := settled(ctx, t, p)
	var state, title, path string
	_ = p.Eval(ctx, `document.body.dataset.state`, &state)
	if state != "done" {
		t.Fatalf("the page says %q (%s)", text, state)
	}
	var marks struct{ Manifest, Done string }
	_ = p.Eval(ctx, `({manifest: document.body.dataset.manifestAt, done: document.body.dataset.doneAt})`, &marks)
	t.Logf("received 20 MB + 1 B %v after navigating; manifest at %s ms, done at %s ms of the page's clock", time.Since(begin).Round(time.Millisecond), marks.Manifest, marks.Done)
	if err := p.Eval(ctx, `document.title`, &title); err != nil || !strings.HasPrefix(title, "Received") {
		t.Errorf("title %q (%v), want Received — p2pxfer", title, err)
	}
	if err := p.Eval(ctx, `document.body.dataset.path`, &path); err != nil || path != "direct" {
		t.Errorf("path %q (%v), want direct", path, err)
	}
	savesAsSent(ctx, t, b, p, dl, sums)
	// Once saved, the files can be taken out of the browser's storage.
	if err := p.Eval(ctx, `document.getElementById("forget").click()`, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(ctx, `document.body.dataset.state === "forgotten"`, status); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := p.Eval(ctx, `(async () => {
		const top = await (await navigator.storage.getDirectory()).getDirectoryHandle("p2pxfer");
		let n = 0;
		for await (const _ of top.keys()) n++;
		return n;
	})()`, &left); err != nil || left != 0 {
		t.Errorf("%d transfers left in the page's storage after Remove (%v)", left, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for snd.finished() != 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := snd.finished(); n != 1 {
		t.Errorf("the sender saw %d receivers finish, want the page", n)
	}
}

// TestBrowserWrongPassword: a wrong password in the page's fragment is
// said in plain words, and the page asks for the password again; the
// right one then receives the file.
func TestBrowserWrongPassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	st := newSite(t)
	paths, _ := files(t, map[string]int{"a.txt": 1000})
	snd := startSender(ctx, t, st, openSource(ctx, t, paths))
	b := chromium.Start(t)
	p := openPage(ctx, t, b, st.ts.URL+"/r/"+snd.room+"#k7m2x-pq9fe")
	if err := p.WaitFor(ctx, `document.body.dataset.state === "password" || document.body.dataset.state === "error" || document.body.dataset.state === "done"`, status); err != nil {
		t.Fatal(err)
	}
	var text string
	if err := p.Eval(ctx, status, &text); err != nil || !strings.HasPrefix(text, "Wrong password") {
		t.Fatalf("the page says %q (%v), want it to say the password is wrong", text, err)
	}
	if err := p.Eval(ctx, `document.getElementById("password").value = "`+snd.password+`"; document.getElementById("password-form").requestSubmit()`, nil); err != nil {
		t.Fatal(err)
	}
	if text = settled(ctx, t, p); !strings.HasPrefix(text, "Received") {
		t.Fatalf("after the right password the page says %q", text)
	}
}

// TestBrowserRefusesCorruptPiece: a sender that serves one piece with a
// bit flipped is dropped at that piece: nothing of it is kept, no file is
// offered to save, and the page says why in plain words.
func TestBrowserRefusesCorruptPiece(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	st := newSite(t)
	paths, _ := files(t, map[string]int{"a.bin": 1 << 20})
	src := openSource(ctx, t, paths)
	bad := src.Manifest().NumChunks() / 2
	snd := startSender(ctx, t, st, &corruptSource{Source: src, bad: bad})
	b := chromium.Start(t)
	p := openPage(ctx, t, b, st.ts.URL+"/r/"+snd.room+"#"+snd.password)
	text := settled(ctx, t, p)
	var code string
	_ = p.Eval(ctx, `document.body.dataset.error`, &code)
	if code != "corrupt" || !strings.Contains(text, "failed verification") {
		t.Fatalf("the page says %q (error %q), want the corrupt piece refused", text, code)
	}
	var saves int
	if err := p.Eval(ctx, `document.querySelectorAll("a.save").length`, &saves); err != nil || saves != 0 {
		t.Errorf("%d files offered to save after a corrupt piece (%v)", saves, err)
	}
	var kept bool
	// The piece's place in the private file system holds no byte of it.
	if err := p.Eval(ctx, `(async () => {
		const root = await navigator.storage.getDirectory();
		for await (const [, top] of root.entries()) for await (const [, d] of top.entries()) {
			const f = await (await d.getFileHandle("0")).getFile();
			const b = new Uint8Array(await f.slice(`+strconv.Itoa(bad*src.Manifest().ChunkSize)+`, `+strconv.Itoa((bad+1)*src.Manifest().ChunkSize)+`).arrayBuffer());
			return b.some((x) => x !== 0);
		}
		return false;
	})()`, &kept); err != nil || kept {
		t.Errorf("the corrupt piece's bytes are in the page's storage (%v)", err)
	}
}

// TestBrowserReceiveThroughput measures, with P2PXFER_BROWSER_BENCH=1
// (P2PXFER_BROWSER_BENCH_MB sets the size, 200 by default), the page's
// receive rate on loopback and Chromium's CPU time for it, against an
// in-process CLI receiver (peer.Engine.Receive, as `p2pxfer recv` runs
// it) from the same sender in the same run. It asserts nothing about
// speed: the numbers are for docs/.
func TestBrowserReceiveThroughput(t *testing.T) {
	if os.Getenv("P2PXFER_BROWSER_BENCH") == "" {
		t.Skip("set P2PXFER_BROWSER_BENCH=1 to measure the page's receive rate")
	}
	mb := 200
	if v, err := strconv.Atoi(os.Getenv("P2PXFER_BROWSER_BENCH_MB")); err == nil && v > 0 {
		mb = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	st := newSite(t)
	paths, sums := files(t, map[string]int{"big.bin": mb << 20})
	src := openSource(ctx, t, paths)
	snd := startSender(ctx, t, st, src)
	size := float64(mb << 20)

	b := chromium.Start(t)
	p := openPage(ctx, t, b, st.ts.URL+"/r/"+snd.room+"#"+snd.password)
	if err := p.WaitFor(ctx, `document.body.dataset.manifestAt`, status); err != nil {
		t.Fatal(err)
	}
	cpu0, _ := b.CPU()
	begin := time.Now()
	if err := p.WaitFor(ctx, `document.body.dataset.state === "done" || document.body.dataset.state === "error"`, status); err != nil {
		t.Fatal(err)
	}
	took := time.Since(begin)
	cpu1, _ := b.CPU()
	var text string
	_ = p.Eval(ctx, status, &text)
	if !strings.HasPrefix(text, "Received") {
		t.Fatalf("the page says %q", text)
	}
	var marks struct{ Manifest, Done string }
	_ = p.Eval(ctx, `({manifest: document.body.dataset.manifestAt, done: document.body.dataset.doneAt})`, &marks)
	m, _ := strconv.Atoi(marks.Manifest)
	d, _ := strconv.Atoi(marks.Done)
	pageSecs := float64(d-m) / 1000
	cpu := cpu1 - cpu0
	t.Logf("browser: %d MiB in %.2f s from the manifest (page clock): %.1f MiB/s; Chromium CPU %.2f s (%.2f s per GiB)",
		mb, pageSecs, size/(1<<20)/pageSecs, cpu.Seconds(), cpu.Seconds()/(size/(1<<30)))
	t.Logf("browser: %.2f s by the test's clock", took.Seconds())
	idle0, _ := b.CPU()
	time.Sleep(3 * time.Second)
	idle1, _ := b.CPU()
	t.Logf("browser: %.2f s of CPU in 3 s idle after the download", (idle1 - idle0).Seconds())

	// The CLI's receiver, from the same sender.
	out := t.TempDir()
	var first time.Time
	err := cliReceive(ctx, t, st, snd.room, snd.password, out, func(_ *signalclient.Conn, o *peer.ReceiveOptions) {
		open := o.Open
		o.Open = func(m *chunker.Manifest) (*chunker.Writer, error) {
			first = time.Now()
			return open(m)
		}
	})
	cliSecs := time.Since(first).Seconds()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(out, "big.bin"))
	if err != nil || sha256.Sum256(data) != sums["big.bin"] {
		t.Fatalf("the CLI receiver's file differs (%v)", err)
	}
	t.Logf("CLI recv (in-process engine): %d MiB in %.2f s from the manifest: %.1f MiB/s", mb, cliSecs, size/(1<<20)/cliSecs)
}

// reloadMidway waits until the page p has verified more than a quarter
// of size bytes and, settle later, reloads it; once the reloaded page has
// received everything it returns how much was verified before the reload
// and how much the page resumed with (0 where it says nothing).
func reloadMidway(ctx context.Context, t *testing.T, p *chromium.Page, size int, settle time.Duration) (before, resumed int) {
	t.Helper()
	if err := p.WaitFor(ctx, `Number(document.body.dataset.verified) > `+strconv.Itoa(size/4)+` || document.body.dataset.state === "error"`, status); err != nil {
		t.Fatal(err)
	}
	time.Sleep(settle)
	if err := p.Eval(ctx, `Number(document.body.dataset.verified)`, &before); err != nil || before >= size {
		t.Fatalf("verified %d of %d before the reload (%v): too late to test a resume", before, size, err)
	}
	if err := p.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if text := settled(ctx, t, p); !strings.HasPrefix(text, "Received") {
		t.Fatalf("after the reload the page says %q", text)
	}
	if err := p.Eval(ctx, `Number(document.body.dataset.resumed)`, &resumed); err != nil {
		t.Errorf("the reloaded page says nothing of what it resumed with: %v", err)
	}
	return before, resumed
}

// TestBrowserResumesAfterReload: a tab reloaded in the middle of a
// download resumes from what its private storage holds (the page says
// how much), fetches only the rest, and saves the file byte for byte.
func TestBrowserResumesAfterReload(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st := newSite(t)
	const size = 6 << 20
	paths, sums := files(t, map[string]int{"big.bin": size})
	snd := startSender(ctx, t, st, openSource(ctx, t, paths))
	b, dl := savingBrowser(ctx, t)
	p := openPage(ctx, t, b, st.ts.URL+"/r/"+snd.room+"#"+snd.password)
	// The state is saved a moment after the chunks it lists.
	before, resumed := reloadMidway(ctx, t, p, size, 400*time.Millisecond)
	if resumed < before/2 || resumed >= size {
		t.Errorf("resumed with %d bytes, had %d verified before the reload", resumed, before)
	}
	t.Logf("verified %d bytes before the reload, resumed with %d", before, resumed)
	savesAsSent(ctx, t, b, p, dl, sums)
}

// TestBrowserReceivesManyFiles: more files than the page's store keeps
// open at once, an empty one among them, all arrive whole: the test
// hashes what the page's private storage holds for each.
func TestBrowserReceivesManyFiles(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	st := newSite(t)
	sizes := map[string]int{"empty.txt": 0}
	for i := range 45 {
		sizes["f"+strconv.Itoa(i)+".bin"] = 1000 + i*700
	}
	paths, sums := files(t, sizes)
	src := openSource(ctx, t, paths)
	snd := startSender(ctx, t, st, src)
	b := chromium.Start(t)
	p := openPage(ctx, t, b, st.ts.URL+"/r/"+snd.room+"#"+snd.password)
	text := settled(ctx, t, p)
	if !strings.HasPrefix(text, "Received") {
		t.Fatalf("the page says %q", text)
	}
	var got []string
	if err := p.Eval(ctx, `(async () => {
		const hex = (b) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, "0")).join("");
		const root = await navigator.storage.getDirectory();
		const top = await root.getDirectoryHandle("p2pxfer");
		const out = [];
		for await (const [, d] of top.entries()) {
			for (let i = 0; ; i++) {
				let f;
				try { f = await (await d.getFileHandle(String(i))).getFile(); } catch { break; }
				out.push(hex(await crypto.subtle.digest("SHA-256", await f.arrayBuffer())));
			}
		}
		return out;
	})()`, &got); err != nil {
		t.Fatal(err)
	}
	m := src.Manifest()
	if len(got) != len(m.Files) {
		t.Fatalf("the page's storage holds %d files, the manifest %d", len(got), len(m.Files))
	}
	for i, f := range m.Files {
		want := sums[f.Name]
		if got[i] != hex.EncodeToString(want[:]) {
			t.Errorf("%s: stored SHA-256 %s, sent %x", f.Name, got[i], want)
		}
	}
	var saves int
	if err := p.Eval(ctx, `document.querySelectorAll("a.save").length`, &saves); err != nil || saves != len(m.Files) {
		t.Errorf("%d Save links for %d files (%v)", saves, len(m.Files), err)
	}
}

// TestBrowserReceivesOverPlainHTTP: the link send prints on a LAN is
// plain http to another machine's address, where the page is no secure
// context and has no private file system; it still receives, verifying
// every chunk, into IndexedDB, says that a reload resumes, saves the
// files byte for byte, and then removes its stored copy.
func TestBrowserReceivesOverPlainHTTP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	st := newLANSite(t)
	paths, sums := files(t, map[string]int{"a.bin": 1 << 20, "one.bin": 1})
	src := openSource(ctx, t, paths)
	chunks := 0
	for _, f := range src.Manifest().Files {
		chunks += len(f.Chunks)
	}
	snd := startSender(ctx, t, st, src)
	b, dl := savingBrowser(ctx, t)
	p := openInsecurePage(ctx, t, b, st.ts.URL+"/r/"+snd.room+"#"+snd.password)
	text := settled(ctx, t, p)
	var note string
	if !strings.HasPrefix(text, "Received") {
		t.Fatalf("the page says %q", text)
	}
	if err := p.Eval(ctx, `document.getElementById("note").hidden ? "" : document.getElementById("note").textContent`, &note); err != nil || !strings.Contains(note, "a reload resumes") {
		t.Errorf("the page does not say a reload resumes: %q (%v)", note, err)
	}
	if n := idbRecords(ctx, t, p); n["chunks"] != chunks || n["held"] != chunks || n["transfers"] != 1 {
		t.Errorf("before saving, the page's IndexedDB holds %v, want the %d chunks, their marks and the download", n, chunks)
	}
	savesAsSent(ctx, t, b, p, dl, sums)
	if err := p.WaitFor(ctx, `document.body.dataset.forgotten === "1"`, status); err != nil {
		t.Fatal(err)
	}
	if n := idbRecords(ctx, t, p); n["chunks"] != 0 || n["held"] != 0 || n["transfers"] != 0 {
		t.Errorf("once every file was saved, the page's IndexedDB still holds %v", n)
	}
}

// TestBrowserSaysStorageIsFull: a page that is no secure context whose
// site storage (IndexedDB) is full says so in plain words, with how much
// the files need; once there is room again, a reload resumes with what
// was stored and the file is saved byte for byte.
func TestBrowserSaysStorageIsFull(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st := newLANSite(t)
	const size = 3 << 20
	paths, sums := files(t, map[string]int{"big.bin": size})
	snd := startSender(ctx, t, st, openSource(ctx, t, paths))
	b, dl := savingBrowser(ctx, t)
	p, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.Allow("Cross-Origin-Opener-Policy header has been ignored")
	// As if the disk had 1 MB left for the site.
	if err := p.Call(ctx, "Storage.overrideQuotaForOrigin", map[string]any{"origin": st.ts.URL, "quotaSize": 1 << 20}, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Navigate(ctx, st.ts.URL+"/r/"+snd.room+"#"+snd.password); err != nil {
		t.Fatal(err)
	}
	text := settled(ctx, t, p)
	if !strings.Contains(text, "storage for this page is full") || !strings.Contains(text, "the files need 3.1 MB") || !strings.Contains(text, "reload the page") {
		t.Fatalf("with the site's storage full the page says %q", text)
	}
	if err := p.Call(ctx, "Storage.overrideQuotaForOrigin", map[string]any{"origin": st.ts.URL}, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if text := settled(ctx, t, p); !strings.HasPrefix(text, "Received") {
		t.Fatalf("after the reload with room again the page says %q", text)
	}
	var resumed int
	if err := p.Eval(ctx, `Number(document.body.dataset.resumed)`, &resumed); err != nil || resumed == 0 || resumed >= size {
		t.Errorf("resumed with %d bytes of %d (%v): want what fitted before", resumed, size, err)
	}
	savesAsSent(ctx, t, b, p, dl, sums)
}

// TestBrowserWithoutIndexedDB: where a page that is no secure context
// gets no IndexedDB either (some private windows), it receives into
// memory, says that a reload starts over, and saves byte for byte.
func TestBrowserWithoutIndexedDB(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	st := newLANSite(t)
	paths, sums := files(t, map[string]int{"a.bin": 1 << 20})
	snd := startSender(ctx, t, st, openSource(ctx, t, paths))
	b, dl := savingBrowser(ctx, t)
	p, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.Allow("Cross-Origin-Opener-Policy header has been ignored")
	if err := p.Call(ctx, "Page.addScriptToEvaluateOnNewDocument", map[string]any{"source": `Object.defineProperty(globalThis, "indexedDB", { value: undefined })`}, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Navigate(ctx, st.ts.URL+"/r/"+snd.room+"#"+snd.password); err != nil {
		t.Fatal(err)
	}
	if text := settled(ctx, t, p); !strings.HasPrefix(text, "Received") {
		t.Fatalf("the page says %q", text)
	}
	var note string
	if err := p.Eval(ctx, `document.getElementById("note").textContent`, &note); err != nil || !strings.Contains(note, "a reload starts over") {
		t.Errorf("without IndexedDB the page says %q of its storage (%v), want that a reload starts over", note, err)
	}
	savesAsSent(ctx, t, b, p, dl, sums)
}

// newLANSite is newSite on an address of this machine other than
// loopback, where a page is no secure context (the test is skipped
// without one).
func newLANSite(t *testing.T) *site {
	t.Helper()
	ip := lanAddr(t)
	sig := sigserver.New(sigserver.Config{})
	h, err := browser.New(sig)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(h)
	ts.Listener = ln
	ts.Start()
	t.Cleanup(func() {
		_ = sig.Close()
		ts.Close()
	})
	return &site{sig: sig, ts: ts, ws: "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws"}
}

// openInsecurePage is openPage for a newLANSite's url, checking that the
// page is no secure context.
func openInsecurePage(ctx context.Context, t *testing.T, b *chromium.Browser, url string) *chromium.Page {
	t.Helper()
	p, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Chromium says so of the server's COOP header on any http origin
	// but loopback; it changes nothing for the page.
	p.Allow("Cross-Origin-Opener-Policy header has been ignored")
	if err := p.Navigate(ctx, url); err != nil {
		t.Fatal(err)
	}
	var secure bool
	if err := p.Eval(ctx, `isSecureContext`, &secure); err != nil || secure {
		t.Fatalf("the page at %s is a secure context (%v): this test needs one that is not", url, err)
	}
	return p
}

// idbRecords counts the records in each store of the page's IndexedDB
// (js/db.js).
func idbRecords(ctx context.Context, t *testing.T, p *chromium.Page) map[string]int {
	t.Helper()
	n := map[string]int{}
	if err := p.Eval(ctx, idbOpen+`.then((db) => new Promise((resolve, reject) => {
		const tx = db.transaction(["chunks", "held", "transfers"]);
		const out = {};
		for (const s of ["chunks", "held", "transfers"]) tx.objectStore(s).count().onsuccess = (ev) => { out[s] = ev.target.result; };
		tx.oncomplete = () => { db.close(); resolve(out); };
		tx.onabort = () => reject(tx.error);
	}))`, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// idbOpen is a promise of the page's IndexedDB database.
const idbOpen = `new Promise((resolve, reject) => {
	const r = indexedDB.open("p2pxfer");
	r.onsuccess = () => resolve(r.result);
	r.onerror = () => reject(r.error);
})`

// TestBrowserResumesOverPlainHTTP: a page that is no secure context (the
// LAN link) keeps verified chunks in IndexedDB; reloaded in the middle
// of a download it resumes with at least everything it had verified,
// fetches only the rest, and saves the file byte for byte.
func TestBrowserResumesOverPlainHTTP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st := newLANSite(t)
	const size = 6 << 20
	paths, sums := files(t, map[string]int{"big.bin": size})
	snd := startSender(ctx, t, st, openSource(ctx, t, paths))
	b, dl := savingBrowser(ctx, t)
	p := openInsecurePage(ctx, t, b, st.ts.URL+"/r/"+snd.room+"#"+snd.password)
	// A chunk counts as verified once its transaction committed: no
	// wait is needed for what the reload finds.
	before, resumed := reloadMidway(ctx, t, p, size, 0)
	if resumed < before || resumed >= size {
		t.Errorf("resumed with %d bytes, had %d verified before the reload", resumed, before)
	}
	t.Logf("verified %d bytes before the reload, resumed with %d, fetched %d after it", before, resumed, size-resumed)
	var note string
	if err := p.Eval(ctx, `document.getElementById("note").textContent`, &note); err != nil || !strings.Contains(note, "a reload resumes") {
		t.Errorf("after the reload the page says %q of its storage (%v), want that a reload resumes", note, err)
	}
	savesAsSent(ctx, t, b, p, dl, sums)
}

// TestBrowserDistrustsStoredChunks: records in the page's IndexedDB that
// are marked held but are not the chunk any more (one overwritten with
// other bytes of its size, one gone, one cut short) are found when the
// reloaded page reads back and verifies what it holds: it resumes
// without them, fetches them again, and saves the file byte for byte.
// Opening, it also removes other downloads' records: one untouched for 8
// days, and beyond the 3 most recent others one idle for 23 minutes.
func TestBrowserDistrustsStoredChunks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st := newLANSite(t)
	const size = 2 << 20
	paths, sums := files(t, map[string]int{"big.bin": size})
	src := openSource(ctx, t, paths)
	cs := src.Manifest().ChunkSize
	chunks := size / cs
	snd := startSender(ctx, t, st, src)
	b, dl := savingBrowser(ctx, t)
	p := openInsecurePage(ctx, t, b, st.ts.URL+"/r/"+snd.room+"#"+snd.password)
	if text := settled(ctx, t, p); !strings.HasPrefix(text, "Received") {
		t.Fatalf("the page says %q", text)
	}
	if n := idbRecords(ctx, t, p); n["chunks"] != chunks || n["held"] != chunks {
		t.Fatalf("the page's IndexedDB holds %v, want %d chunks", n, chunks)
	}
	if err := p.Eval(ctx, idbOpen+`.then((db) => new Promise((resolve, reject) => {
		const tx = db.transaction("chunks", "readwrite");
		const st = tx.objectStore("chunks");
		st.getAllKeys().onsuccess = (ev) => {
			const k = ev.target.result;
			st.put(new Blob([new Uint8Array(`+strconv.Itoa(cs)+`).fill(7)]), k[1]);
			st.delete(k[3]);
			st.put(new Blob([new Uint8Array(1000)]), k[5]);
		};
		tx.oncomplete = () => { db.close(); resolve(); };
		tx.onabort = () => reject(tx.error);
	}))`, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Eval(ctx, idbOpen+`.then((db) => new Promise((resolve, reject) => {
		const tx = db.transaction(["chunks", "held", "transfers"], "readwrite");
		const old = (name, minutes) => {
			tx.objectStore("transfers").put({ digest: name, touched: Date.now() - minutes * 60000, total: 3 });
			tx.objectStore("chunks").put(new Blob(["abc"]), [name, 0]);
			tx.objectStore("held").put(3, [name, 0]);
		};
		old("aged", 8 * 24 * 60);
		for (const m of [20, 21, 22, 23]) old("idle" + m, m);
		tx.oncomplete = () => { db.close(); resolve(); };
		tx.onabort = () => reject(tx.error);
	}))`, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if text := settled(ctx, t, p); !strings.HasPrefix(text, "Received") {
		t.Fatalf("after the reload the page says %q", text)
	}
	var kept []string
	if err := p.Eval(ctx, idbOpen+`.then((db) => new Promise((resolve, reject) => {
		const tx = db.transaction(["chunks", "held", "transfers"]);
		const out = [];
		tx.objectStore("transfers").getAllKeys().onsuccess = (ev) => out.push(...ev.target.result.filter((k) => k.length < 64));
		for (const s of ["chunks", "held"]) tx.objectStore(s).getAllKeys().onsuccess = (ev) => out.push(...ev.target.result.filter((k) => k[0].length < 64).map((k) => s + ":" + k[0]));
		tx.oncomplete = () => { db.close(); resolve(out.sort()); };
		tx.onabort = () => reject(tx.error);
	}))`, &kept); err != nil {
		t.Fatal(err)
	}
	if want := "chunks:idle20 chunks:idle21 chunks:idle22 held:idle20 held:idle21 held:idle22 idle20 idle21 idle22"; strings.Join(kept, " ") != want {
		t.Errorf("other downloads' records kept: %q, want %q", strings.Join(kept, " "), want)
	}
	var resumed int
	if err := p.Eval(ctx, `Number(document.body.dataset.resumed)`, &resumed); err != nil || resumed != size-3*cs {
		t.Errorf("resumed with %d bytes, want %d: all but the 3 spoilt chunks (%v)", resumed, size-3*cs, err)
	}
	savesAsSent(ctx, t, b, p, dl, sums)
}

// lanAddr is an IPv4 address of this machine other than loopback, where
// a page is no secure context; the test is skipped without one.
func lanAddr(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("no interface addresses: %v", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	t.Skip("no IPv4 address besides loopback: cannot open the page outside a secure context")
	return ""
}

// TestBrowserCorruptPieceMendedBySeed: the sender turns hostile (a bit
// flipped in every piece) after a CLI receiver got everything and
// stayed as a seed; the page drops the sender at the bad piece and
// completes from the seed, byte for byte.
func TestBrowserCorruptPieceMendedBySeed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	st := newSite(t)
	paths, sums := files(t, map[string]int{"a.bin": 2 << 20})
	src := openSource(ctx, t, paths)
	var hostile atomic.Bool
	snd := startSender(ctx, t, st, &corruptSource{Source: src, bad: -1, from: &hostile})

	// The seed: the CLI's receiver, which stays in the room once complete.
	cliSeed(ctx, t, st, snd)
	hostile.Store(true)

	b, dl := savingBrowser(ctx, t)
	p := openPage(ctx, t, b, st.ts.URL+"/r/"+snd.room+"#"+snd.password)
	text := settled(ctx, t, p)
	if !strings.HasPrefix(text, "Received") {
		t.Fatalf("the page says %q", text)
	}
	var banned bool
	if err := p.Eval(ctx, `document.body.dataset.banned === "1"`, &banned); err != nil || !banned {
		t.Errorf("the page did not drop the hostile sender (%v)", err)
	}
	savesAsSent(ctx, t, b, p, dl, sums)
}

// candidateDropper stands between a sender and its signalling server as
// a hostile relay that drops ICE candidates both ways, so that neither end
// learns an address of the other. Sealed frames cannot be read, so it
// goes by order and size: the receiver's sealed frames after its offer
// (its first) are dropped, and the sender's after its answer, except
// short ones (a bye, which says why the sender gave up, is far shorter
// than a candidate).
type candidateDropper struct {
	*signalclient.Conn
	mu           sync.Mutex
	fromReceiver int
	toReceiver   int
}

const sealedKind = 4 // pake's KindSealed, the first byte of a sealed frame

func (c *candidateDropper) Send(ctx context.Context, m *room.Message) error {
	if m.Type == room.TypeRelay && len(m.Data) > 0 && m.Data[0] == sealedKind {
		c.mu.Lock()
		c.toReceiver++
		n := c.toReceiver
		c.mu.Unlock()
		if n > 1 && len(m.Data) > 100 {
			return nil
		}
	}
	return c.Conn.Send(ctx, m)
}

func (c *candidateDropper) Recv(ctx context.Context) (*room.Message, error) {
	for {
		m, err := c.Conn.Recv(ctx)
		if err != nil || m.Type != room.TypeRelay || len(m.Data) == 0 || m.Data[0] != sealedKind {
			return m, err
		}
		c.mu.Lock()
		c.fromReceiver++
		n := c.fromReceiver
		c.mu.Unlock()
		if n == 1 {
			return m, nil
		}
	}
}

// TestBrowserNoPath: with every ICE candidate dropped on the way (a
// hostile relay), the sender finds no path within its connect timeout and
// says so; the page says in plain words that no network path was found,
// and what helps.
func TestBrowserNoPath(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	st := newSite(t)
	paths, _ := files(t, map[string]int{"a.bin": 1000})
	peersOutlive(t)
	eng, err := peer.NewEngine(peer.Config{
		Transport:        lane.Config{Loopback: true, Interfaces: []string{"lo"}, ConnectTimeout: 3 * time.Second},
		HandshakeTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	snd := startSenderVia(ctx, t, st, openSource(ctx, t, paths), eng, func(c *signalclient.Conn) peer.Signaller { return &candidateDropper{Conn: c} })
	b := chromium.Start(t)
	p := openPage(ctx, t, b, st.ts.URL+"/r/"+snd.room+"#"+snd.password)
	text := settled(ctx, t, p)
	var code string
	_ = p.Eval(ctx, `document.body.dataset.error`, &code)
	if code != "no_path" || !strings.Contains(text, "network path") || !strings.Contains(text, "--turn") {
		t.Fatalf("the page says %q (error %q), want no path in plain words", text, code)
	}
	t.Logf("the page says %q", text)
}

// TestBrowserSeeds: once the page has every file it stays in the room as
// a seed; the sender leaves, and a CLI receiver that joins later gets the
// files from the page, byte for byte.
func TestBrowserSeeds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st := newSiteWith(t, sigserver.Config{KeepRoomWithoutHost: true})
	paths, sums := files(t, map[string]int{"a.bin": 2 << 20, "one.bin": 1})
	snd := startSender(ctx, t, st, openSource(ctx, t, paths))
	b := chromium.Start(t)
	p := openPage(ctx, t, b, st.ts.URL+"/r/"+snd.room+"#"+snd.password)
	text := settled(ctx, t, p)
	if !strings.HasPrefix(text, "Received") {
		t.Fatalf("the page says %q", text)
	}
	// The sender heard that the page stays as a seed, and counts it for
	// the swarm's full copy.
	deadline := time.Now().Add(5 * time.Second)
	for n, _ := snd.count(peer.EventSwarmComplete); n == 0 && time.Now().Before(deadline); n, _ = snd.count(peer.EventSwarmComplete) {
		time.Sleep(20 * time.Millisecond)
	}
	if n, seeding := snd.count(peer.EventFinished); n != 1 || seeding != 1 {
		t.Errorf("the sender saw %d receivers finish, %d of them seeding; want the page, seeding", n, seeding)
	}
	if n, _ := snd.count(peer.EventSwarmComplete); n != 1 {
		t.Errorf("the sender did not hear that the swarm holds a full copy")
	}
	snd.cancel()
	<-snd.done
	snd.done <- nil // for the cleanup
	_ = snd.conn.Close()

	out := t.TempDir()
	var sources []peer.SourceEvent
	err := cliReceive(ctx, t, st, snd.room, snd.password, out, func(_ *signalclient.Conn, o *peer.ReceiveOptions) {
		o.OnSource = func(e peer.SourceEvent) { sources = append(sources, e) }
	})
	if err != nil {
		t.Fatalf("the CLI receiver, with the page as the only source: %v", err)
	}
	sameFiles(t, out, sums)
	fromPage, fromHost := false, false
	for _, e := range sources {
		if e.Kind == peer.SourceConnected {
			fromPage = fromPage || !e.Host
			fromHost = fromHost || e.Host
		}
	}
	if !fromPage || fromHost {
		t.Errorf("the CLI receiver's sources: %+v, want the page alone", sources)
	}
	if err := p.WaitFor(ctx, `document.body.dataset.served === "1"`, `document.getElementById("seeding").textContent`); err != nil {
		t.Error(err)
	}
}

// TestBrowserSends: files picked on the page at /send are hashed and
// signed in the page, which opens a room and prints its link and
// password; a CLI receiver (the engine `p2pxfer recv` runs) joins, checks
// the page's manifest signature against the key the server handed out,
// and gets both files byte for byte from the tab; then another tab opens
// the link and saves them too.
func TestBrowserSends(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st := newSite(t)
	paths, sums := files(t, map[string]int{"a.bin": 3 << 20, "one.bin": 1})
	b := chromium.Start(t)
	p, offer := sendFromPage(ctx, t, b, st, func(p *chromium.Page) error { return p.SetInputFiles(ctx, "#pick", paths...) })
	if want := st.ts.URL + "/r/" + offer.Room + "#" + offer.Password; offer.Link != want {
		t.Errorf("the page's link %s, want %s", offer.Link, want)
	}

	out := t.TempDir()
	if err := cliReceive(ctx, t, st, offer.Room, offer.Password, out, nil); err != nil {
		t.Fatalf("the CLI receiver: %v", err)
	}
	sameFiles(t, out, sums)
	if err := p.WaitFor(ctx, `document.body.dataset.served === "1"`, status); err != nil {
		t.Error(err)
	}

	// Another tab downloads from the sending tab too, through its link.
	dl := t.TempDir()
	if err := b.SetDownloadDir(ctx, dl); err != nil {
		t.Fatal(err)
	}
	p2 := openPage(ctx, t, b, offer.Link)
	text := settled(ctx, t, p2)
	if !strings.HasPrefix(text, "Received") {
		t.Fatalf("the receiving tab says %q", text)
	}
	got := saveAll(ctx, t, b, p2, dl, []string{"a.bin", "one.bin"})
	for name, sum := range sums {
		if got[name] != sum {
			t.Errorf("%s: the receiving tab saved SHA-256 %x, sent %x", name, got[name], sum)
		}
	}
}
