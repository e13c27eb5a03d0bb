package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/p2pxfer/p2pxfer/chunker"
	"github.com/p2pxfer/p2pxfer/peer"
	"github.com/p2pxfer/p2pxfer/peer/lane"
	"github.com/p2pxfer/p2pxfer/signalclient"
	"github.com/p2pxfer/p2pxfer/sigserver"
)

// TestMain doubles as the p2pxfer program: with P2PXFER_TEST_MAIN=1 the test
// binary runs the command line in os.Args[1:] instead of the tests, so tests
// can run (and kill) real p2pxfer processes without building one. It is
// checked before the testing package parses any flag.
func TestMain(m *testing.M) {
	if os.Getenv("P2PXFER_TEST_MAIN") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := Run(ctx, OSEnv(), append([]string{"p2pxfer"}, os.Args[1:]...))
		stop()
		os.Exit(code)
	}
	// The NAT lab tests (t.Parallel) wait on the network far more than
	// they compute: let more of them overlap than GOMAXPROCS, the default,
	// unless -parallel says otherwise.
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", "8")
	}
	goleak.VerifyTestMain(m)
}

// syncBuffer is a bytes.Buffer the command may write while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type run struct {
	stdout, stderr syncBuffer
	code           chan int
}

// start runs the app in-process with loopback-only WebRTC and the given
// environment variables.
func start(ctx context.Context, vars map[string]string, args ...string) *run {
	return startWith(ctx, vars, nil, args...)
}

// startWith is start with a chance to adjust the Env (for ReadPassword, say)
// before the command runs.
func startWith(ctx context.Context, vars map[string]string, adjust func(*Env), args ...string) *run {
	r := &run{code: make(chan int, 1)}
	env := Env{
		Stdin:  strings.NewReader(""),
		Stdout: &r.stdout, Stderr: &r.stderr,
		Getenv: func(k string) string { return vars[k] },
		PeerConfig: func(c *peer.Config) {
			c.Transport.Loopback, c.Transport.Interfaces, c.Transport.STUN = true, []string{"lo"}, nil
		},
	}
	if adjust != nil {
		adjust(&env)
	}
	go func() { r.code <- Run(ctx, env, append([]string{"p2pxfer"}, args...)) }()
	return r
}

func (r *run) wait(t *testing.T) int {
	t.Helper()
	select {
	case c := <-r.code:
		return c
	case <-time.After(60 * time.Second):
		t.Fatalf("command did not end; stderr:\n%s", r.stderr.String())
		return -1
	}
}

var (
	roomRE   = regexp.MustCompile(`Room:\s+(\S+)`)
	passRE   = regexp.MustCompile(`Password:\s+(\S+)`)
	signalRE = regexp.MustCompile(`--signal (\S+)`)
)

// offer waits for a running send to print its room, password and URL.
func (r *run) offer(t *testing.T) (roomID, password, url string) {
	t.Helper()
	var out string
	var m []string
	printed := eventually(30*time.Second, func() bool {
		out = r.stdout.String()
		if m = signalRE.FindStringSubmatch(out); m != nil {
			return true
		}
		if c, done := r.exited(); done {
			t.Fatalf("send exited with %d:\n%s\n%s", c, out, r.stderr.String())
		}
		return false
	})
	if !printed {
		t.Fatalf("send printed no offer:\n%s", r.stderr.String())
	}
	return roomRE.FindStringSubmatch(out)[1], passRE.FindStringSubmatch(out)[1], m[1]
}

// randomFile writes n random bytes to dir/name and returns them.
func randomFile(t *testing.T, dir, name string, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, _ = newRandom().Read(b)
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSendRecv(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	src := t.TempDir()
	want := randomFile(t, src, "photo.jpg", 1<<20+77)
	// Both ends run on this host: each hears when their direct lane
	// opens and closes.
	var sendShared, recvShared sharedLog
	snd := startWith(ctx, nil, sendShared.adjust, "send", "-v", "--debug", "pion", "--listen", "127.0.0.1:0", "--max-receivers", "1", filepath.Join(src, "photo.jpg"))
	roomID, password, url := snd.offer(t)
	if len(password) < 11 {
		t.Fatalf("generated password %q too short", password)
	}
	out := t.TempDir()
	rcv := startWith(ctx, map[string]string{"P2PXFER_PASSWORD": password}, recvShared.adjust, "recv", "-v", "--no-seed", "--signal", url, "--out", out, roomID)
	if c := rcv.wait(t); c != ExitOK {
		t.Fatalf("recv exit %d:\n%s\n%s", c, rcv.stdout.String(), rcv.stderr.String())
	}
	// -v shows the path in a few lines, without pion's own.
	logs := rcv.stderr.String()
	for _, want := range []string{"connected to the sender: direct (on this host)", "msg=candidates ours=host theirs=host", `path="direct (on this host)"`, "direct lane open"} {
		if !strings.Contains(logs, want) {
			t.Errorf("recv -v does not say %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "pion=") {
		t.Errorf("recv -v shows pion's own diagnostics:\n%s", logs)
	}
	if !strings.Contains(snd.stderr.String(), "pion=ice") {
		t.Errorf("send -v --debug pion shows none of pion's diagnostics")
	}
	got, err := os.ReadFile(filepath.Join(out, "photo.jpg"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("received file differs (err %v)", err)
	}
	if c := snd.wait(t); c != ExitOK {
		t.Fatalf("send exit %d:\n%s", c, snd.stderr.String())
	}
	if !strings.Contains(rcv.stdout.String(), "photo.jpg") {
		t.Errorf("recv did not list the file:\n%s", rcv.stdout.String())
	}
	for side, l := range map[string]*sharedLog{"send": &sendShared, "recv": &recvShared} {
		if got := l.heard(); !slices.Equal(got, []bool{true, false}) {
			t.Errorf("%s: SharedCPUs heard %v, want [true false]", side, got)
		}
	}
}

// sharedLog records what Env.SharedCPUs is told.
type sharedLog struct {
	mu    sync.Mutex
	calls []bool
}

func (l *sharedLog) adjust(env *Env) {
	env.SharedCPUs = func(shared bool) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.calls = append(l.calls, shared)
	}
}

func (l *sharedLog) heard() []bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

func TestRecvErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	src := t.TempDir()
	randomFile(t, src, "a.txt", 5000)
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret-pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	snd := start(ctx, nil, "send", "--listen", "127.0.0.1:0", "--password-file", pwFile, filepath.Join(src, "a.txt"))
	roomID, password, url := snd.offer(t)
	if password != "(the" {
		t.Fatalf("a password from a file must not be printed, got %q", password)
	}

	t.Run("wrong password", func(t *testing.T) {
		r := start(ctx, map[string]string{"P2PXFER_PASSWORD": "nope"}, "recv", "--no-seed", "--signal", url, "--out", t.TempDir(), roomID)
		if c := r.wait(t); c != ExitWrongPassword {
			t.Fatalf("exit %d, want %d:\n%s", c, ExitWrongPassword, r.stderr.String())
		}
		if !strings.Contains(r.stderr.String(), "wrong password") {
			t.Fatalf("stderr does not say wrong password:\n%s", r.stderr.String())
		}
	})
	t.Run("unknown room", func(t *testing.T) {
		r := start(ctx, map[string]string{"P2PXFER_PASSWORD": "s3cret-pass"}, "recv", "--no-seed", "--signal", url, "--out", t.TempDir(), "zzzzzzzz")
		if c := r.wait(t); c != ExitNoRoom {
			t.Fatalf("exit %d, want %d:\n%s", c, ExitNoRoom, r.stderr.String())
		}
	})
	t.Run("existing file", func(t *testing.T) {
		out := t.TempDir()
		if err := os.WriteFile(filepath.Join(out, "a.txt"), []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
		r := start(ctx, nil, "recv", "--no-seed", "--signal", url, "--password-file", pwFile, "--out", out, roomID)
		if c := r.wait(t); c != ExitRefused {
			t.Fatalf("exit %d, want %d:\n%s", c, ExitRefused, r.stderr.String())
		}
		if b, _ := os.ReadFile(filepath.Join(out, "a.txt")); string(b) != "mine" {
			t.Fatal("existing file was overwritten")
		}
		if !strings.Contains(r.stderr.String(), "--force") {
			t.Fatalf("no hint about --force:\n%s", r.stderr.String())
		}
	})
	t.Run("force", func(t *testing.T) {
		out := t.TempDir()
		if err := os.WriteFile(filepath.Join(out, "a.txt"), []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
		r := start(ctx, nil, "recv", "--no-seed", "--signal", url, "--password-file", pwFile, "--force", "--out", out, roomID)
		if c := r.wait(t); c != ExitOK {
			t.Fatalf("exit %d:\n%s", c, r.stderr.String())
		}
		if b, _ := os.ReadFile(filepath.Join(out, "a.txt")); len(b) != 5000 {
			t.Fatal("--force did not replace the file")
		}
	})
	cancel()
	if c := snd.wait(t); c != ExitOK {
		t.Fatalf("send after Ctrl-C: exit %d:\n%s", c, snd.stderr.String())
	}
}

func TestUsageErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cases := []struct {
		name string
		vars map[string]string
		args []string
		want string
	}{
		{"send without files", nil, []string{"send"}, "at least one FILE"},
		{"send the root folder", nil, []string{"send", "/"}, "root directory"},
		{"send a missing file", nil, []string{"send", filepath.Join(dir, "nope")}, "no such file"},
		{"recv without room", nil, []string{"recv", "--no-seed", "--signal", "ws://127.0.0.1:1/ws"}, "ROOMID"},
		{"recv bad room", nil, []string{"recv", "--no-seed", "--signal", "ws://127.0.0.1:1/ws", "not/a/room"}, "not a room ID"},
		{"recv without password", nil, []string{"recv", "--no-seed", "--signal", "ws://127.0.0.1:1/ws", "abcdefgh"}, "P2PXFER_PASSWORD"},
		{"unknown flag", nil, []string{"recv", "--no-seed", "--password", "x", "abcdefgh"}, "password"},
		{"send too many lanes", nil, []string{"send", "--lanes", "5", "cmd_test.go"}, "--lanes 5: give 1 to 4"},
		{"recv no lanes", nil, []string{"recv", "--lanes", "0", "--no-seed", "--signal", "ws://127.0.0.1:1/ws", "abcdefgh"}, "--lanes 0"},
		{"send a relay as STUN", nil, []string{"send", "--stun", "turn:relay.example.org:3478", "cmd_test.go"}, "not a STUN server"},
		{"recv a bad STUN port", nil, []string{"recv", "--stun", "stun.example.org:x", "--no-seed", "--signal", "ws://127.0.0.1:1/ws", "abcdefgh"}, "not a STUN or TURN URL"},
		{"signal a bad relay port", nil, []string{"signal", "--turn", "--turn-port", "0"}, "--turn-port 0"},
		{"signal a bad public IP", nil, []string{"signal", "--turn", "--turn-public-ip", "relay.example.org"}, "not an IP address"},
		{"signal a short secret", nil, []string{"signal", "--turn", "--turn-secret", "short"}, "16 characters"},
		{"signal a bad deny", nil, []string{"signal", "--turn", "--turn-deny", "10.0.0.0"}, "CIDR"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := start(ctx, tc.vars, tc.args...)
			if c := r.wait(t); c != ExitUsage {
				t.Fatalf("exit %d, want %d:\n%s", c, ExitUsage, r.stderr.String())
			}
			if !strings.Contains(r.stderr.String(), tc.want) {
				t.Fatalf("stderr does not mention %q:\n%s", tc.want, r.stderr.String())
			}
		})
	}
}

func TestUnreachableServer(t *testing.T) {
	r := start(context.Background(), map[string]string{"P2PXFER_PASSWORD": "x"}, "recv", "--no-seed", "--signal", "ws://127.0.0.1:1/ws", "--out", t.TempDir(), "abcdefgh")
	if c := r.wait(t); c != ExitConnect {
		t.Fatalf("exit %d, want %d:\n%s", c, ExitConnect, r.stderr.String())
	}
}

// TestHostileNames: a sender that offers "../x" gets nothing written.
func TestHostileNames(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sigsrv := sigserver.New(sigserver.Config{})
	hs := httptest.NewServer(sigsrv)
	defer hs.Close()
	defer sigsrv.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"

	srcDir := t.TempDir()
	randomFile(t, srcDir, "x", 100)
	src, err := chunker.OpenSource(ctx, []string{filepath.Join(srcDir, "x")}, chunker.DefaultChunkSize, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	honest, err := chunker.EncodeManifest(src.Manifest())
	if err != nil {
		t.Fatal(err)
	}
	for _, evil := range []string{`../x`, `/etc/x`, `a/../../x`, "x\u001b[2J"} {
		t.Run(evil, func(t *testing.T) {
			quoted, _ := jsonString(evil)
			forged := bytes.Replace(honest, []byte(`"name":"x"`), []byte(`"name":`+quoted), 1)
			if bytes.Equal(forged, honest) {
				t.Fatal("could not forge the manifest")
			}
			conn, err := signalclient.Dial(ctx, url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			pub, priv, err := peer.NewManifestKey()
			if err != nil {
				t.Fatal(err)
			}
			roomID, self, err := conn.CreateWith(ctx, signalclient.CreateOptions{Key: pub})
			if err != nil {
				t.Fatal(err)
			}
			// Signed by the room's sender: the name check alone must refuse it.
			signed, err := peer.SignManifest(priv, roomID, forged)
			if err != nil {
				t.Fatal(err)
			}
			cfg := peer.Config{Transport: lane.Config{Loopback: true, Interfaces: []string{"lo"}}}
			eng, err := peer.NewEngine(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close()
			sctx, scancel := context.WithCancel(ctx)
			served := make(chan error, 1)
			go func() {
				served <- eng.Serve(sctx, conn, src, peer.ServeOptions{Room: roomID, Self: self, Password: "pw", Manifest: signed})
			}()
			parent := t.TempDir()
			out := filepath.Join(parent, "out")
			if err := os.Mkdir(out, 0o755); err != nil {
				t.Fatal(err)
			}
			r := start(ctx, map[string]string{"P2PXFER_PASSWORD": "pw"}, "recv", "--no-seed", "--signal", url, "--out", out, roomID)
			c := r.wait(t)
			scancel()
			<-served
			if c != ExitRefused {
				t.Fatalf("exit %d, want %d:\n%s", c, ExitRefused, r.stderr.String())
			}
			for _, d := range []string{parent, out} {
				if entries, _ := os.ReadDir(d); len(entries) != map[string]int{parent: 1, out: 0}[d] {
					t.Fatalf("%s holds %v after a hostile manifest", d, entries)
				}
			}
			if strings.ContainsRune(r.stderr.String()+r.stdout.String(), '\x1b') {
				t.Fatal("an escape sequence from the network reached the terminal")
			}
		})
	}
}

func jsonString(s string) (string, error) {
	b, err := json.Marshal(s)
	return string(b), err
}

// TestConfigFile: a team's signalling server comes from the configuration
// file when neither --signal nor P2PXFER_SIGNAL names one; a line that is
// not "key = value" of a known key is a usage error that says where.
func TestConfigFile(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	path := filepath.Join(home, "p2pxfer", "config")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	vars := map[string]string{"XDG_CONFIG_HOME": home, "P2PXFER_PASSWORD": "pw"}
	write("# our server\nsignal = ws://127.0.0.1:1/ws\n")
	r := start(ctx, vars, "recv", "--no-seed", "abcdefgh")
	if c := r.wait(t); c != ExitConnect || !strings.Contains(r.stderr.String(), "ws://127.0.0.1:1/ws") {
		t.Fatalf("exit %d, want %d through the configured server:\n%s", c, ExitConnect, r.stderr.String())
	}
	vars["P2PXFER_SIGNAL"] = "ws://127.0.0.1:2/ws" // the environment wins
	r = start(ctx, vars, "recv", "--no-seed", "abcdefgh")
	if c := r.wait(t); c != ExitConnect || !strings.Contains(r.stderr.String(), "ws://127.0.0.1:2/ws") {
		t.Fatalf("exit %d, want %d through P2PXFER_SIGNAL:\n%s", c, ExitConnect, r.stderr.String())
	}
	delete(vars, "P2PXFER_SIGNAL")
	write("signall = ws://x\n")
	r = start(ctx, vars, "recv", "--no-seed", "abcdefgh")
	if c := r.wait(t); c != ExitUsage || !strings.Contains(r.stderr.String(), path+":1") {
		t.Fatalf("exit %d, want %d naming the line:\n%s", c, ExitUsage, r.stderr.String())
	}
}
