package peer_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/p2pxfer/p2pxfer/chunker"
	"github.com/p2pxfer/p2pxfer/pake"
	"github.com/p2pxfer/p2pxfer/peer"
	"github.com/p2pxfer/p2pxfer/peer/lane"
	"github.com/p2pxfer/p2pxfer/room"
	"github.com/p2pxfer/p2pxfer/signalclient"
	"github.com/p2pxfer/p2pxfer/sigserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// noneOutlive fails t if, once its cleanups have run (engines closed,
// transfers returned), a goroutine of pion's or of ours is still there:
// TestMain's check would only see it at the end, if at all, and a
// goroutine left from one test runs under the next (a pion peer
// connection closed by pion itself once lingered so, pinging).
func noneOutlive(t *testing.T) {
	t.Cleanup(func() {
		// Goroutines that have signalled their end return at once; 200 ms
		// is ample for that and short of what a close in the background
		// takes (SCTP's abort alone waits 2 x 200 ms).
		deadline := time.Now().Add(200 * time.Millisecond)
		left := ours()
		for len(left) > 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
			left = ours()
		}
		if len(left) > 0 {
			t.Errorf("%d goroutines outlive the test:\n\n%s", len(left), strings.Join(left, "\n\n"))
		}
	})
}

// ours returns the stacks of goroutines running pion's code or this
// module's, the tests' own aside.
func ours() []string {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "testing.tRunner(") || strings.Contains(g, "testing.(*M).Run(") || strings.Contains(g, "runtime.Stack(") {
			continue
		}
		if strings.Contains(g, "github.com/pion/") || strings.Contains(g, "github.com/p2pxfer/p2pxfer/") {
			out = append(out, g)
		}
	}
	return out
}

// loopback keeps every packet of these tests on 127.0.0.1: no STUN, no
// mDNS, loopback candidates only.
func loopback() peer.Config {
	return peer.Config{
		Transport:        lane.Config{Loopback: true, Interfaces: []string{"lo"}, ConnectTimeout: 20 * time.Second},
		HandshakeTimeout: 10 * time.Second,
	}
}

type rig struct {
	t    *testing.T
	srv  *sigserver.Server
	http *httptest.Server
	url  string
}

func newRig(t *testing.T) *rig {
	noneOutlive(t)
	// Rooms outlive their host: the swarm goes on after the sender left.
	srv := sigserver.New(sigserver.Config{KeepRoomWithoutHost: true})
	hs := httptest.NewServer(srv)
	r := &rig{t: t, srv: srv, http: hs, url: "ws" + hs.URL[len("http"):] + "/ws"}
	t.Cleanup(func() {
		_ = srv.Close()
		hs.Close()
	})
	return r
}

func (r *rig) dial(ctx context.Context) *signalclient.Conn {
	c, err := signalclient.Dial(ctx, r.url, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = c.Close() })
	return c
}

func engine(t *testing.T) *peer.Engine {
	return engineWith(t, lane.Config{LoopbackAs: lane.LoopbackNAT})
}

// engineWith makes an engine whose transport has tc's lanes, kind of
// path and test knobs. Unless told otherwise, tests take loopback for a
// path through NATs, where peer lanes open, so that they cover the
// transfer over lanes too.
func engineWith(t *testing.T, tc lane.Config) *peer.Engine {
	cfg := loopback()
	tc.Loopback, tc.Interfaces, tc.ConnectTimeout = cfg.Transport.Loopback, cfg.Transport.Interfaces, cfg.Transport.ConnectTimeout
	cfg.Transport = tc
	e, err := peer.NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func writeFiles(t *testing.T, sizes map[string]int) (dir string, paths []string) {
	dir = t.TempDir()
	for name, n := range sizes {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return dir, paths
}

type sender struct {
	room, self string
	done       chan error
	cancel     context.CancelFunc // makes the sender leave
	mu         sync.Mutex
	events     []peer.Event
	swarm      chan struct{} // closed at EventSwarmComplete
}

func (s *sender) kinds() map[peer.EventKind]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := map[peer.EventKind]int{}
	for _, e := range s.events {
		n[e.Kind]++
	}
	return n
}

// startSender opens a room and serves paths in it; hook, if not nil, puts
// a man in the middle of the sender's signalling.
func startSender(ctx context.Context, t *testing.T, r *rig, paths []string, chunkSize int, opts peer.ServeOptions, hook func(*signalclient.Conn) peer.Signaller) *sender {
	t.Helper()
	return startSenderFrom(ctx, t, r, openSource(ctx, t, paths, chunkSize, chunker.FEC{}), opts, hook)
}

func openSource(ctx context.Context, t *testing.T, paths []string, chunkSize int, fec chunker.FEC) *chunker.Source {
	t.Helper()
	src, err := chunker.OpenSourceFEC(ctx, paths, chunkSize, fec, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	return src
}

// senderOpts are what a test may change about the room itself.
type senderOpts struct {
	slots       int
	transport   *lane.Config      // the engine's, if not engine's default
	registerKey ed25519.PublicKey // registered at create instead of the signer's
}

func startSenderFrom(ctx context.Context, t *testing.T, r *rig, src peer.Source, opts peer.ServeOptions, hook func(*signalclient.Conn) peer.Signaller) *sender {
	t.Helper()
	return startSenderWith(ctx, t, r, src, opts, senderOpts{}, hook)
}

func startSenderWith(ctx context.Context, t *testing.T, r *rig, src peer.Source, opts peer.ServeOptions, so senderOpts, hook func(*signalclient.Conn) peer.Signaller) *sender {
	t.Helper()
	pub, priv, err := peer.NewManifestKey()
	if err != nil {
		t.Fatal(err)
	}
	if so.registerKey != nil {
		pub = so.registerKey
	}
	if opts.Signer == nil {
		opts.Signer = priv
	}
	conn := r.dial(ctx)
	roomID, self, err := conn.CreateWith(ctx, signalclient.CreateOptions{Slots: so.slots, Key: pub})
	if err != nil {
		t.Fatal(err)
	}
	var sig peer.Signaller = conn
	if hook != nil {
		sig = hook(conn)
	}
	sctx, cancel := context.WithCancel(ctx)
	s := &sender{room: roomID, self: self, done: make(chan error, 1), cancel: cancel, swarm: make(chan struct{})}
	opts.Room, opts.Self = roomID, self
	opts.OnEvent = func(e peer.Event) {
		s.mu.Lock()
		s.events = append(s.events, e)
		s.mu.Unlock()
		if e.Kind == peer.EventSwarmComplete {
			close(s.swarm)
		}
	}
	eng := engine(t)
	if so.transport != nil {
		eng = engineWith(t, *so.transport)
	}
	go func() {
		err := eng.Serve(sctx, sig, src, opts)
		_ = conn.Close() // leave the room, as the CLI does
		s.done <- err
	}()
	return s
}

// receiver is one Receive run; tweak adjusts its options.
type receiver struct {
	self     string
	out      string
	err      chan error
	complete chan struct{}
	mu       sync.Mutex
	sources  []peer.SourceEvent
	queued   []int
}

func (rc *receiver) events() ([]peer.SourceEvent, []int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]peer.SourceEvent(nil), rc.sources...), append([]int(nil), rc.queued...)
}

// startReceiver joins s's room and runs Receive in the background until
// ctx ends (when it seeds) or it is done.
func startReceiver(ctx context.Context, t *testing.T, r *rig, roomID, password string, tweak func(self string, o *peer.ReceiveOptions)) *receiver {
	t.Helper()
	return startReceiverOn(ctx, t, r, engine(t), roomID, password, tweak, nil)
}

// startReceiverOn is startReceiver with the engine eng.
// wrap, if not nil, stands between Receive and its signalling connection.
func startReceiverOn(ctx context.Context, t *testing.T, r *rig, eng *peer.Engine, roomID, password string, tweak func(self string, o *peer.ReceiveOptions),
	wrap func(peer.Signaller) peer.Signaller) *receiver {
	t.Helper()
	conn := r.dial(ctx)
	j, err := conn.JoinInfo(ctx, roomID)
	rc := &receiver{out: t.TempDir(), err: make(chan error, 1), complete: make(chan struct{})}
	if err != nil {
		rc.err <- err
		return rc
	}
	rc.self = j.Self
	var w *chunker.Writer
	opts := peer.ReceiveOptions{
		Room: roomID, Self: j.Self, Host: j.Host, Key: j.Key, Password: password,
		Open: func(m *chunker.Manifest) (*chunker.Writer, error) {
			var err error
			w, err = chunker.CreateWriter(rc.out, m, chunker.WriterOptions{})
			return w, err
		},
		OnComplete: func() { close(rc.complete) },
		OnSource: func(e peer.SourceEvent) {
			rc.mu.Lock()
			rc.sources = append(rc.sources, e)
			rc.mu.Unlock()
		},
		OnQueued: func(pos int) {
			rc.mu.Lock()
			rc.queued = append(rc.queued, pos)
			rc.mu.Unlock()
		},
	}
	peer.SetQuickPacing(&opts)
	if tweak != nil {
		tweak(j.Self, &opts)
	}
	var sig peer.Signaller = conn
	if wrap != nil {
		sig = wrap(conn)
	}
	go func() {
		err := eng.Receive(ctx, sig, opts)
		if w != nil {
			_ = w.Close()
		}
		_ = conn.Close()
		rc.err <- err
	}()
	return rc
}

// receive runs one receiver that does not seed, to the end.
func receive(ctx context.Context, t *testing.T, r *rig, s *sender, password, out string) error {
	rc := startReceiver(ctx, t, r, s.room, password, func(_ string, o *peer.ReceiveOptions) {
		o.Open = func(m *chunker.Manifest) (*chunker.Writer, error) {
			w, err := chunker.CreateWriter(out, m, chunker.WriterOptions{})
			if err == nil {
				t.Cleanup(func() { _ = w.Close() })
			}
			return w, err
		}
	})
	return <-rc.err
}

func sameFiles(t *testing.T, srcDir, dstDir string, names ...string) {
	t.Helper()
	for _, n := range names {
		a, err := os.ReadFile(filepath.Join(srcDir, n))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dstDir, n))
		if err != nil {
			t.Fatalf("received file: %v", err)
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("%s differs: %d bytes sent, %d received", n, len(a), len(b))
		}
	}
	left, _ := filepath.Glob(filepath.Join(dstDir, "*.p2pxfer-*"))
	if len(left) > 0 {
		t.Fatalf("leftover files: %v", left)
	}
}

// TestTwoReceivers: one sender, two receivers at once, real pion on
// loopback; files of 0 bytes, 1 byte and a few MiB of odd size.
func TestTwoReceivers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := newRig(t)
	srcDir, paths := writeFiles(t, map[string]int{"empty": 0, "one": 1, "big.bin": 3<<20 + 12345})
	s := startSender(ctx, t, r, paths, 256<<10, peer.ServeOptions{Password: "correct-horse", MaxReceivers: 2}, nil)

	var wg sync.WaitGroup
	errs := make([]error, 2)
	outs := []string{t.TempDir(), t.TempDir()}
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = receive(ctx, t, r, s, "correct-horse", outs[i])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("receiver %d: %v", i, err)
		}
		sameFiles(t, srcDir, outs[i], "empty", "one", "big.bin")
	}
	if err := <-s.done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if k := s.kinds(); k[peer.EventFinished] != 2 || k[peer.EventConnected] != 2 {
		t.Fatalf("sender events: %v", k)
	}
	// Receivers that do not seed hold nothing for the swarm: the sender
	// must not say it may leave.
	if k := s.kinds(); k[peer.EventSwarmComplete] != 0 {
		t.Fatal("swarm complete announced with no seeding receiver")
	}
}

// TestWrongPassword: both sides learn it quickly, the sender counts it and
// closes the room after MaxFailures.
func TestWrongPassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := newRig(t)
	_, paths := writeFiles(t, map[string]int{"f": 1000})
	s := startSender(ctx, t, r, paths, chunker.DefaultChunkSize, peer.ServeOptions{Password: "right", MaxFailures: 2}, nil)
	for i := 0; i < 2; i++ {
		start := time.Now()
		err := receive(ctx, t, r, s, "wrong", t.TempDir())
		if !errors.Is(err, pake.ErrWrongPassword) {
			t.Fatalf("attempt %d: %v, want ErrWrongPassword", i, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("wrong password took %v to report", d)
		}
	}
	if err := <-s.done; !errors.Is(err, peer.ErrTooManyFailures) {
		t.Fatalf("Serve = %v, want ErrTooManyFailures", err)
	}
	err := receive(ctx, t, r, s, "right", t.TempDir())
	if !errors.Is(err, room.ErrRoomNotFound) && !errors.Is(err, room.ErrRoomClosed) && !errors.Is(err, room.ErrTooManyFailures) {
		t.Fatalf("join after close: %v", err)
	}
}

// tamperer flips a bit in every sealed frame the sender sends: what a
// signalling server would have to do to swap the DTLS fingerprint in the
// answer, since it cannot read it.
type tamperer struct {
	conn   *signalclient.Conn
	mu     sync.Mutex
	clear  bool // a frame showed SDP in the clear
	sealed int
}

func (tp *tamperer) Send(ctx context.Context, m *room.Message) error {
	if m.Type == room.TypeRelay {
		if bytes.Contains(m.Data, []byte("fingerprint")) || bytes.Contains(m.Data, []byte("candidate")) {
			tp.mu.Lock()
			tp.clear = true
			tp.mu.Unlock()
		}
		if k, err := pake.FrameKind(m.Data); err == nil && k == pake.KindSealed {
			d := bytes.Clone(m.Data)
			d[len(d)/2] ^= 0x01
			m = &room.Message{Type: m.Type, Peer: m.Peer, Data: d}
			tp.mu.Lock()
			tp.sealed++
			tp.mu.Unlock()
		}
	}
	return tp.conn.Send(ctx, m)
}

func (tp *tamperer) Recv(ctx context.Context) (*room.Message, error) { return tp.conn.Recv(ctx) }

func TestTamperedSignallingRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := newRig(t)
	_, paths := writeFiles(t, map[string]int{"f": 1000})
	tp := &tamperer{}
	s := startSender(ctx, t, r, paths, chunker.DefaultChunkSize, peer.ServeOptions{Password: "pw"},
		func(c *signalclient.Conn) peer.Signaller { tp.conn = c; return tp })
	out := t.TempDir()
	err := receive(ctx, t, r, s, "pw", out)
	if !errors.Is(err, peer.ErrTampered) {
		t.Fatalf("receive through tampering server = %v, want ErrTampered", err)
	}
	tp.mu.Lock()
	clear, sealed := tp.clear, tp.sealed
	tp.mu.Unlock()
	if clear {
		t.Fatal("the signalling server could read SDP or candidates")
	}
	if sealed == 0 {
		t.Fatal("no sealed frame went through the server")
	}
	if files, _ := os.ReadDir(out); len(files) != 0 {
		t.Fatalf("files written despite tampering: %v", files)
	}
	cancel()
	<-s.done
}

// corruptSource flips a bit in piece bad: a sender with a failing disk,
// or a lying one.
type corruptSource struct {
	*chunker.Source
	bad int
}

func (c *corruptSource) ReadPiece(i int, buf []byte) ([]byte, error) {
	b, err := c.Source.ReadPiece(i, buf)
	if err == nil && i == c.bad {
		b[len(b)/2] ^= 0x40
	}
	return b, err
}

// TestCorruptSenderBanned: one piece that fails verification bans its
// source for the transfer; with nobody else to ask, the receiver gives up
// with ErrCorrupt and puts nothing in place.
func TestCorruptSenderBanned(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := newRig(t)
	_, paths := writeFiles(t, map[string]int{"f": 3 * chunker.MinChunkSize})
	src := &corruptSource{Source: openSource(ctx, t, paths, chunker.MinChunkSize, chunker.FEC{}), bad: 1}
	s := startSenderFrom(ctx, t, r, src, peer.ServeOptions{Password: "pw"}, nil)
	out := t.TempDir()
	if err := receive(ctx, t, r, s, "pw", out); !errors.Is(err, peer.ErrCorrupt) {
		t.Fatalf("receive = %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(filepath.Join(out, "f")); !os.IsNotExist(err) {
		t.Fatalf("a file that failed verification was put in place (%v)", err)
	}
	cancel()
	<-s.done
}

func mustSign(t *testing.T, key ed25519.PrivateKey, manifest []byte) []byte {
	t.Helper()
	b, err := peer.SignManifest(key, "", manifest)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// eventually waits up to 20 s for cond, and fails the test saying what
// never happened if it does not come true.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20s", what)
		}
		time.Sleep(10 * time.Millisecond) // the poll interval
	}
}

func readDir(dir string) ([]string, error) {
	es, err := os.ReadDir(dir)
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names, err
}

// TestSilentSourceDropped: a source that connects and then sends nothing
// (a browser page's channel once stayed silent for good) is dropped
// after greetWait with ErrTimeout, and a new connection to it delivers
// the files.
func TestSilentSourceDropped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := newRig(t)
	srcDir, paths := writeFiles(t, map[string]int{"f.bin": 1<<20 + 7})
	var sessions atomic.Int32
	opts := peer.ServeOptions{Password: "correct-horse", MaxReceivers: 1}
	peer.SetMute(&opts, func(string) bool { return sessions.Add(1) == 1 })
	s := startSender(ctx, t, r, paths, 256<<10, opts, nil)
	rc := startReceiver(ctx, t, r, s.room, "correct-horse", nil)
	if err := <-rc.err; err != nil {
		t.Fatalf("Receive: %v", err)
	}
	sameFiles(t, srcDir, rc.out, "f.bin")
	if n := sessions.Load(); n != 2 {
		t.Fatalf("%d sessions at the sender, want the silent one and one more", n)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var timedOut bool
	for _, e := range rc.sources {
		timedOut = timedOut || (e.Kind == peer.SourceLeft && errors.Is(e.Err, peer.ErrTimeout))
	}
	if !timedOut {
		t.Fatalf("source events %+v: want the silent source dropped with ErrTimeout", rc.sources)
	}
}
