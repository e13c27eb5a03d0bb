package lane

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/p2pxfer/p2pxfer/internal/pionlog"
	"github.com/p2pxfer/p2pxfer/peer/lane/bulk"
)

// testTransport is a Transport without sockets of its own, enough for
// direct lanes.
func testTransport() *Transport {
	log := slog.New(slog.DiscardHandler)
	return &Transport{cfg: Config{UDPBufferSize: 1 << 20, DirectTimeout: DefaultDirectTimeout}, log: log, lf: &pionlog.Factory{Log: log}}
}

const testLabel = "test/1"

// connectPair connects a direct lane between two ends on this host; each
// end is told the other's port, and the fingerprint tamper returns.
func connectPair(t *testing.T, ctx context.Context, tamper func(fp []byte) []byte) (client, server *directLane, cerr, serr error) {
	t.Helper()
	c, s := endPair(t, loopbackPath)
	return connectEnds(ctx, c, s, s.port(), c.port(), tamper(c.fp[:]))
}

// connectEnds connects a downloader's end c, sending to cport, and a
// source's end s, sending to sport, which takes cfp as c's certificate.
func connectEnds(ctx context.Context, c, s *directEnd, cport, sport uint16, cfp []byte) (client, server *directLane, cerr, serr error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		server, serr = s.connect(ctx, false, sport, cfp)
	}()
	client, cerr = c.connect(ctx, true, cport, s.fp[:])
	<-done
	return client, server, cerr, serr
}

// carries checks that size random bytes the source's end writes arrive
// intact at the downloader's.
func carries(t *testing.T, client, server *directLane, size int) {
	t.Helper()
	want := make([]byte, size)
	_, _ = rand.Read(want)
	go func() {
		for off := 0; off < len(want); off += MaxMessage {
			if _, err := server.ep.Write(want[off:min(off+MaxMessage, len(want))]); err != nil {
				return
			}
		}
	}()
	got := make([]byte, 0, len(want))
	buf := make([]byte, MaxMessage)
	_ = client.ep.SetReadDeadline(time.Now().Add(20 * time.Second))
	for len(got) < len(want) {
		n, err := client.ep.Read(buf)
		if err != nil {
			t.Fatalf("read after %d bytes: %v", len(got), err)
		}
		got = append(got, buf[:n]...)
	}
	_ = client.ep.SetReadDeadline(time.Time{}) // ends its timer goroutine
	if !bytes.Equal(got, want) {
		t.Fatal("data differs")
	}
}

// endPair makes a downloader's and a source's end on path.
func endPair(t *testing.T, path directPath) (client, server *directEnd) {
	t.Helper()
	tr := testTransport()
	c, err := tr.newDirectEnds(path, 1, testLabel)
	if err != nil {
		t.Fatal(err)
	}
	s, err := tr.newDirectEnds(path, 1, testLabel)
	if err != nil {
		closeEnds(c)
		t.Fatal(err)
	}
	return c[0], s[0]
}

// TestDirectLane: a direct lane carries data intact in packets of
// directMTU bytes, the size that is its reason to exist.
func TestDirectLane(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, server, cerr, serr := connectPair(t, ctx, func(fp []byte) []byte { return fp })
	if cerr != nil || serr != nil {
		t.Fatalf("connect: client %v, server %v", cerr, serr)
	}
	defer client.close()
	defer server.close()

	const size = 4 << 20
	carries(t, client, server, size)
	st := server.ep.Stats()
	if st.BytesSent < size {
		t.Fatalf("the stream sent %d bytes", st.BytesSent)
	}
	// Packets as large as the record a DTLS lane sent: directMTU of
	// payload and framing each, give or take a partly filled one.
	perPacket := directMTU + dtlsOverhead - bulk.Overhead - 11
	if most := uint64(size*101/100/perPacket + 64); st.PacketsSent > most {
		t.Fatalf("%d packets for %d bytes: packets smaller than directMTU", st.PacketsSent, size)
	}
}

// TestDirectLanePinned: an end whose certificate is not the one signalled
// is refused, and the lane does not open.
func TestDirectLanePinned(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, server, cerr, serr := connectPair(t, ctx, func(fp []byte) []byte {
		bad := bytes.Clone(fp)
		bad[0] ^= 1
		return bad
	})
	if client != nil {
		client.close()
	}
	if server != nil {
		server.close()
	}
	if serr == nil {
		t.Fatal("server accepted a client with another certificate")
	}
	if cerr == nil {
		t.Fatal("client connected though the server refused it")
	}
	if errors.Is(cerr, io.EOF) && errors.Is(serr, io.EOF) {
		t.Fatalf("errors say nothing: %v / %v", cerr, serr)
	}
}

// TestAwaitDirect: a dialer waiting for the accepting end's direct lanes
// passes over the first connection's late candidates, takes "none" for
// an answer, and refuses anything else.
func TestAwaitDirect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	end := &wireDirect{Port: 4242, Fingerprint: bytes.Repeat([]byte{7}, 32)}
	for _, c := range []struct {
		name string
		msgs []*signalMsg
		want *wireDirect
		err  error
	}{
		{"late candidates first", []*signalMsg{{T: sigCand, Cand: &wireCand{Candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host"}}, {T: sigDirect, Direct: end}}, end, nil},
		{"none", []*signalMsg{{T: sigLanes, Lanes: 1}}, nil, nil},
		{"bye", []*signalMsg{{T: sigBye, Why: "x"}}, nil, nil},
		{"an offer", []*signalMsg{{T: sigOffer, SDP: "v=0"}}, nil, ErrProtocol},
		{"another version", []*signalMsg{{V: Version + 1, T: sigDirect, Direct: end}}, nil, ErrVersion},
		{"silence", nil, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			sig, other := signalPair()
			for _, m := range c.msgs {
				b, _ := json.Marshal(m) // as another version sends it
				if m.V == 0 {
					b, _ = encodeSignal(m)
				}
				if err := other.Send(ctx, b); err != nil {
					t.Fatal(err)
				}
			}
			tr := testTransport()
			tr.cfg.DirectTimeout = 200 * time.Millisecond
			conn := tr.newConn(sig, Options{Label: testLabel})
			defer conn.Close()
			got, err := conn.awaitDirect(ctx)
			if !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
				t.Fatalf("error %v, want %v", err, c.err)
			}
			if (got == nil) != (c.want == nil) || got != nil && (got.Port != c.want.Port || !bytes.Equal(got.Fingerprint, c.want.Fingerprint)) {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
	// A message that fails authentication is an error too.
	sig, _ := signalPair()
	sig.tampered = true
	conn := testTransport().newConn(sig, Options{Label: testLabel})
	defer conn.Close()
	if _, err := conn.awaitDirect(ctx); !errors.Is(err, ErrTampered) {
		t.Fatalf("tampered message: %v", err)
	}
}

// TestDirectWindow: a long path gets a window that holds its
// bandwidth-delay product; a short one less memory.
func TestDirectWindow(t *testing.T) {
	if short, long := directWindow(300*time.Microsecond), directWindow(50*time.Millisecond); short >= long || long < 25e6/20 {
		t.Errorf("windows %d (LAN) and %d (50 ms)", short, long)
	}
}

// TestSharedCPUs: Config.SharedCPUs hears when the first direct lane to a
// peer on this host opens and when the last one closes, and nothing of
// lanes between hosts.
func TestSharedCPUs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var (
		mu    sync.Mutex
		calls []bool
	)
	heard := func() []bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(calls)
	}
	for _, c := range []struct {
		name string
		path directPath
		want []bool // heard after both ends opened, after one closed, after both
	}{
		{"one host", loopbackPath, []bool{true, true, true, false}},
		{"between hosts", directPath{local: loopbackPath.local, remote: loopbackPath.remote, probe: true}, []bool{}},
	} {
		calls = nil
		tr := testTransport()
		tr.cfg.SharedCPUs = func(shared bool) {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, shared)
		}
		ce, err := tr.newDirectEnds(c.path, 1, testLabel)
		if err != nil {
			t.Fatal(err)
		}
		se, err := tr.newDirectEnds(c.path, 1, testLabel)
		if err != nil {
			closeEnds(ce)
			t.Fatal(err)
		}
		client, server, cerr, serr := connectEnds(ctx, ce[0], se[0], se[0].port(), ce[0].port(), ce[0].fp[:])
		if cerr != nil || serr != nil {
			t.Fatalf("%s: connect: client %v, server %v", c.name, cerr, serr)
		}
		got := heard()
		client.close()
		client.close() // a second close changes nothing
		got = append(got, heard()...)
		server.close()
		got = append(got, heard()...)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: heard %v, want %v", c.name, got, c.want)
		}
	}
}
