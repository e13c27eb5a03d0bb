package lane

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pipeSignal is one end of two Signals joined in memory, as the PAKE
// session joins two peers; rewrite, if set, changes what it sends.
type pipeSignal struct {
	out      chan<- []byte
	in       <-chan []byte
	rewrite  func([]byte) []byte
	tampered bool // Recv fails as on a frame that does not authenticate
}

func signalPair() (a, b *pipeSignal) {
	ab, ba := make(chan []byte, 256), make(chan []byte, 256)
	return &pipeSignal{out: ab, in: ba}, &pipeSignal{out: ba, in: ab}
}

func (p *pipeSignal) Send(ctx context.Context, msg []byte) error {
	msg = bytes.Clone(msg)
	if p.rewrite != nil {
		msg = p.rewrite(msg)
	}
	select {
	case p.out <- msg:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *pipeSignal) Recv(ctx context.Context) ([]byte, error) {
	if p.tampered {
		return nil, fmt.Errorf("%w: test", ErrTampered)
	}
	select {
	case b := <-p.in:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// newTransport makes a Transport on loopback only, as cfg says otherwise.
func newTransport(t *testing.T, cfg Config) *Transport {
	t.Helper()
	cfg.Loopback, cfg.Interfaces = true, []string{"lo"}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 20 * time.Second
	}
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// connect dials from a Transport of dcfg to one of acfg, with the
// accepting end's info; the errors are Dial's and Accept's.
func connect(ctx context.Context, t *testing.T, dcfg, acfg Config, info []byte, dsig, asig *pipeSignal) (d, a *Conn, derr, aerr error) {
	t.Helper()
	dt, at := newTransport(t, dcfg), newTransport(t, acfg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		a, aerr = at.Accept(ctx, asig, Options{Label: testLabel, Info: info})
	}()
	d, derr = dt.Dial(ctx, dsig, Options{Label: testLabel})
	<-done
	return d, a, derr, aerr
}

// TestDialAccept: the first channel carries messages both ways, the
// accepting end's info reaches the dialer, and Close ends reads.
func TestDialAccept(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsig, asig := signalPair()
	d, a, derr, aerr := connect(ctx, t, Config{Lanes: 1, NoRide: true}, Config{Lanes: 1, NoRide: true}, []byte("sender key"), dsig, asig)
	if derr != nil || aerr != nil {
		t.Fatalf("Dial %v, Accept %v", derr, aerr)
	}
	defer a.Close()
	if got := string(d.Info()); got != "sender key" {
		t.Fatalf("info %q", got)
	}
	if d.Path().Kind != PathOneHost || a.Path().Kind != PathOneHost {
		t.Fatalf("paths %v and %v over loopback", d.Path(), a.Path())
	}
	if a.Info() != nil || d.Set() != nil {
		t.Fatal("an accepting end with the other's info, or a dialer with a Set")
	}
	if _, err := d.Channel().Write([]byte("want")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, MaxMessage)
	if n, err := a.Channel().Read(buf); err != nil || string(buf[:n]) != "want" {
		t.Fatalf("accepting end read %q, %v", buf[:n], err)
	}
	if err := a.Set().First().Write(ctx, []byte("data")); err != nil {
		t.Fatal(err)
	}
	if n, err := d.Channel().Read(buf); err != nil || string(buf[:n]) != "data" {
		t.Fatalf("dialer read %q, %v", buf[:n], err)
	}
	// Lanes 1 and no ride lanes: More has nothing to open.
	if err := d.More(ctx, func(context.Context, Channel) error { t.Error("a lane"); return nil }); err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		_, err := d.Channel().Read(buf)
		read <- err
	}()
	d.Close()
	d.Close() // again: nothing happens
	select {
	case err := <-read:
		if err == nil {
			t.Fatal("read a message after Close")
		}
	case <-ctx.Done():
		t.Fatal("Close did not end a blocked Read")
	}
}

// TestVersionMismatch: an end that gets a message of another version
// refuses it with ErrVersion and says why in a bye, which an older peer
// prints; a message without a version, from a peer that predates them,
// is refused the same way.
func TestVersionMismatch(t *testing.T) {
	current := fmt.Sprintf(`"v":%d,`, Version)
	for _, c := range []struct {
		name    string
		rewrite func([]byte) []byte
	}{
		{"older", func(b []byte) []byte { return bytes.Replace(b, []byte(current), []byte(`"v":1,`), 1) }},
		{"without", func(b []byte) []byte { return bytes.Replace(b, []byte(current), nil, 1) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			dsig, asig := signalPair()
			dsig.rewrite = c.rewrite
			_, _, derr, aerr := connect(ctx, t, Config{}, Config{}, nil, dsig, asig)
			if !errors.Is(aerr, ErrVersion) {
				t.Fatalf("Accept: %v, want ErrVersion", aerr)
			}
			if !errors.Is(derr, ErrRemote) || !strings.Contains(derr.Error(), "same p2pxfer version") {
				t.Fatalf("Dial: %v, want the other end's word that versions differ", derr)
			}
		})
	}
}

// TestLanes: through NAT a dialer opens a ride lane on the first
// connection's pair, and every message goes on it, also where an end
// allows only one connection (a ride lane adds none); where the accepting
// end cannot ride, as many connections as both ends allow, over which it
// spreads messages, and ends that allow one transfer over it. On
// one host (loopback seen as it is) the
// dialer opens one direct lane instead, and every message goes on it.
// Between two hosts on a long path it opens one direct lane too, and
// messages go only on it; where it does not connect, a ride lane, and
// where the accepting end can open neither, peer lanes.
// laneCase is one of TestLanes's: both ends' lane counts, the path, and
// the lanes that must carry messages.
type laneCase struct {
	name           string
	dlanes, alanes int
	path           LoopbackPath
	noDirect       bool  // the accepting end cannot open a direct or ride lane
	unreachable    bool  // its direct lanes do not connect
	want           []int // the lanes that carry messages
}

var laneCases = []laneCase{
	// Through NAT: a ride lane on the first connection's pair.
	{"both two", 2, 2, LoopbackNAT, false, false, []int{1}},
	{"accepter one", 2, 1, LoopbackNAT, false, false, []int{1}},
	{"dialer one", 1, 2, LoopbackNAT, false, false, []int{1}},
	{"both one", 1, 1, LoopbackNAT, false, false, []int{1}},
	{"three of four", 3, 4, LoopbackNAT, false, false, []int{1}},
	// The accepting end cannot ride: peer lanes, as many as both
	// allow.
	{"no ride, both two", 2, 2, LoopbackNAT, true, false, []int{0, 1}},
	{"no ride, three of four", 3, 4, LoopbackNAT, true, false, []int{0, 1, 2}},
	{"no ride, both one", 1, 1, LoopbackNAT, true, false, []int{0}},
	// The accepting end, which would take three peer connections, is
	// asked for one direct lane instead.
	{"one host", 3, 3, LoopbackOneHost, false, false, []int{1}},
	// One connection only: no direct lane, but a ride lane on its pair.
	{"one host, accepter one", 3, 1, LoopbackOneHost, false, false, []int{1}},
	// It says it opens none, and all goes on the first connection.
	{"one host, no direct lane", 3, 3, LoopbackOneHost, true, false, []int{0}},
	// A firewall lets only ICE's pair through: a ride lane on it.
	{"one host, unreachable", 3, 3, LoopbackOneHost, false, true, []int{1}},
	// Asked for three direct lanes, the accepting end opens the two it
	// allows.
	{"hosts", 3, 2, LoopbackHosts, false, false, []int{1}},
	{"hosts, three", 3, 3, LoopbackHosts, false, false, []int{1}},
	// It can open neither: peer lanes instead. None connects (a
	// firewall): a ride lane.
	{"hosts, no direct lane", 3, 3, LoopbackHosts, true, false, []int{0, 1, 2}},
	{"hosts, unreachable", 3, 3, LoopbackHosts, false, true, []int{1}},
}

func TestLanes(t *testing.T) {
	for _, c := range laneCases {
		t.Run(c.name, func(t *testing.T) { runLaneCase(t, c, 0) })
	}
}

// TestLanesOvertaken: the dialer asks for its lanes as soon as its first
// channel opens, and on a path where signalling is quicker than the
// connection the word reaches the accepting end before its own channel
// opens. Every kind of lane still opens.
func TestLanesOvertaken(t *testing.T) {
	for _, c := range laneCases {
		switch c.name {
		case "both one", "both two", "no ride, both two", "one host", "hosts", "hosts, no direct lane":
			t.Run(c.name, func(t *testing.T) { runLaneCase(t, c, 300*time.Millisecond) })
		}
	}
}

// runLaneCase connects two ends as c has them, the accepting end taking
// its first channel for open lateOpen after it does, and checks which
// lanes carry pieces.
func runLaneCase(t *testing.T, c laneCase, lateOpen time.Duration) {
	if c.path == LoopbackHosts && !probeSupported {
		t.Skip("no direct lanes between hosts on this system")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dcfg := Config{Lanes: c.dlanes, LoopbackAs: c.path}
	acfg := Config{Lanes: c.alanes, LoopbackAs: c.path, NoDirect: c.noDirect, NoRide: c.noDirect, DirectUnreachable: c.unreachable, SettleFirst: true,
		lateOpen: lateOpen}
	if c.unreachable {
		// Nothing connects, however long either end waits.
		dcfg.DirectTimeout, acfg.DirectTimeout = 500*time.Millisecond, 500*time.Millisecond
	}
	// The dialer's lanes open as soon as Dial returns, as package peer
	// has it: Accept may not have returned yet.
	dsig, asig := signalPair()
	dt, at := newTransport(t, dcfg), newTransport(t, acfg)
	var a *Conn
	var aerr error
	acceptedc := make(chan struct{})
	go func() {
		defer close(acceptedc)
		a, aerr = at.Accept(ctx, asig, Options{Label: testLabel})
	}()
	accepted := func() (*Conn, error) {
		<-acceptedc
		return a, aerr
	}
	defer func() {
		if a, _ := accepted(); a != nil {
			a.Close()
		}
	}()
	d, err := dt.Dial(ctx, dsig, Options{Label: testLabel})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer d.Close()
	got := carryPieces(ctx, t, d, accepted, 16)
	for lane := range got {
		if !slices.Contains(c.want, lane) {
			t.Fatalf("pieces per lane %v: want lanes %v only", got, c.want)
		}
	}
	// Every lane carries pieces: none is sent before all are open, each
	// goes to the lane with the least waiting, and lanes that tie (all
	// drained, on a busy machine) take turns.
	if last := c.want[len(c.want)-1]; got[last] == 0 {
		t.Fatalf("pieces per lane %v: lane %d unused", got, last)
	}
	t.Logf("pieces per lane: %v", got)
}

// carryPieces has the accepting end (once accepted returns it) send n
// pieces of four full messages each, each piece whole on the lane
// Set.Pick gives, and d's end read them from its channels and lanes; it
// checks that every piece arrives once and intact, and returns how many
// went on each lane.
func carryPieces(ctx context.Context, t *testing.T, d *Conn, accepted func() (*Conn, error), n int) map[int]int {
	t.Helper()
	const perPiece = 4
	msg := func(piece, k int) []byte {
		b := make([]byte, MaxMessage)
		binary.BigEndian.PutUint32(b, uint32(piece))
		binary.BigEndian.PutUint32(b[4:], uint32(k))
		for i := 8; i < len(b); i += 8 {
			binary.BigEndian.PutUint64(b[i:], uint64(piece*perPiece+k)*0x9e3779b97f4a7c15+uint64(i))
		}
		return b
	}
	type arrival struct {
		piece, k int
		ok       bool
	}
	arrived := make(chan arrival, n*perPiece)
	read := func(ctx context.Context, ch Channel) error {
		buf := make([]byte, MaxMessage)
		for {
			m, err := ch.Read(buf)
			if err != nil {
				return err
			}
			p, k := int(binary.BigEndian.Uint32(buf)), int(binary.BigEndian.Uint32(buf[4:]))
			select {
			case arrived <- arrival{p, k, p < n && k < perPiece && bytes.Equal(buf[:m], msg(p, k))}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	rctx, stop := context.WithCancel(ctx)
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		_ = read(rctx, d.Channel())
	}()
	moreErr := make(chan error, 1)
	go func() {
		defer readers.Done()
		moreErr <- d.More(rctx, read)
	}()
	defer func() {
		stop()
		d.Close()
		readers.Wait()
		if err := <-moreErr; err != nil {
			t.Errorf("More: %v", err)
		}
	}()

	perLane := map[int]int{}
	sent := make(chan error, 1)
	go func() {
		a, err := accepted()
		if err != nil {
			sent <- fmt.Errorf("Accept: %w", err)
			return
		}
		if err := a.Set().First().Write(ctx, msg(0, 0)); err != nil {
			sent <- err
			return
		}
		for p := 1; p < n; p++ {
			ln, err := a.Set().Pick(ctx)
			if err != nil {
				sent <- err
				return
			}
			perLane[ln.Index()]++
			for k := range perPiece {
				if err := ln.Write(ctx, msg(p, k)); err != nil {
					sent <- err
					return
				}
			}
		}
		sent <- nil
	}()
	seen := map[[2]int]bool{}
	for len(seen) < 1+(n-1)*perPiece {
		select {
		case m := <-arrived:
			if !m.ok || seen[[2]int{m.piece, m.k}] {
				t.Fatalf("piece %d, message %d: corrupt or twice", m.piece, m.k)
			}
			seen[[2]int{m.piece, m.k}] = true
		case err := <-sent:
			if err != nil {
				t.Fatal(err)
			}
			sent <- nil // all written; the rest is on its way
		case <-ctx.Done():
			t.Fatalf("%d of %d messages arrived", len(seen), 1+(n-1)*perPiece)
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	return perLane
}

func TestConnectError(t *testing.T) {
	e := &ConnectError{Why: "ICE failed", Ours: []string{"host", "srflx"}, Theirs: []string{"host"}}
	if got, want := e.Error(), "could not connect to peer: ICE failed; addresses tried: local, public (through NAT) here, local there; no relay"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(e, ErrConnect) || e.Relayed() {
		t.Error("a ConnectError without relay candidates")
	}
	if e.Theirs = append(e.Theirs, "relay"); !e.Relayed() || strings.Contains(e.Error(), "no relay") {
		t.Errorf("a ConnectError with a relay: %v", e)
	}
	if got := candidateType("candidate:1 1 udp 2130706431 198.51.100.7 40000 typ srflx raddr 10.1.0.2 rport 40000"); got != "srflx" {
		t.Errorf("candidateType = %q", got)
	}
}

// A peer no path reaches is given up on well within 30 s.
func TestDefaultConnectTimeout(t *testing.T) {
	if DefaultConnectTimeout > 15*time.Second {
		t.Fatalf("DefaultConnectTimeout %v", DefaultConnectTimeout)
	}
}

// TestGrowthStep: toward a dialer that opens one connection in all and
// cannot ride it (as every browser), the accepting end's SCTP grows its
// window by one packet per round trip; toward one that may open lanes or
// ride (whose SCTP then carries little), by sctpCwndCAStep. The dialer's
// own connection keeps sctpCwndCAStep either way.
func TestGrowthStep(t *testing.T) {
	for _, c := range []struct {
		name   string
		lanes  int
		noRide bool
		want   uint32
	}{
		{"one connection, no ride lane (a browser)", 1, true, sctpCwndCAStepOne},
		{"one connection that rides", 1, false, sctpCwndCAStep},
		{"lanes", 0, false, sctpCwndCAStep},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			dsig, asig := signalPair()
			d, a, derr, aerr := connect(ctx, t, Config{Lanes: c.lanes, NoRide: c.noRide}, Config{}, nil, dsig, asig)
			if derr != nil || aerr != nil {
				t.Fatalf("Dial %v, Accept %v", derr, aerr)
			}
			defer a.Close()
			defer d.Close()
			if a.caStep != c.want || d.caStep != sctpCwndCAStep {
				t.Fatalf("growth step: accepter %d, dialer %d; want %d and %d", a.caStep, d.caStep, c.want, sctpCwndCAStep)
			}
		})
	}
}
