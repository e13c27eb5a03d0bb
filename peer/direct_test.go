package peer

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

func testEngine() *Engine {
	return &Engine{cfg: Config{UDPBufferSize: 1 << 20}, lf: &slogFactory{log: slog.New(slog.DiscardHandler)}}
}

// connectPair connects a direct lane between two ends on this host; each
// end is told the other's port, and the fingerprint tamper returns.
func connectPair(t *testing.T, ctx context.Context, tamper func(fp []byte) []byte) (client, server *directLane, cerr, serr error) {
	t.Helper()
	e := testEngine()
	c, err := e.newDirectEnd()
	if err != nil {
		t.Fatal(err)
	}
	s, err := e.newDirectEnd()
	if err != nil {
		c.close()
		t.Fatal(err)
	}
	cw, sw := c.wire(), s.wire()
	cw.Fingerprint = tamper(cw.Fingerprint)
	done := make(chan struct{})
	go func() {
		defer close(done)
		server, serr = s.connect(ctx, false, cw)
	}()
	client, cerr = c.connect(ctx, true, sw)
	<-done
	return client, server, cerr, serr
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
	if got := server.assoc.MTU(); got != directMTU {
		t.Fatalf("SCTP MTU %d, want %d", got, directMTU)
	}
	if got := server.dc.Config.Label; got != DataChannelLabel {
		t.Fatalf("label %q", got)
	}

	want := make([]byte, 4<<20)
	_, _ = rand.Read(want)
	go func() {
		for off := 0; off < len(want); off += maxFrame {
			if _, err := server.dc.Write(want[off:min(off+maxFrame, len(want))]); err != nil {
				return
			}
		}
	}()
	got := make([]byte, 0, len(want))
	buf := make([]byte, maxFrame)
	_ = client.dc.SetReadDeadline(time.Now().Add(20 * time.Second))
	for len(got) < len(want) {
		n, err := client.dc.Read(buf)
		if err != nil {
			t.Fatalf("read after %d bytes: %v", len(got), err)
		}
		got = append(got, buf[:n]...)
	}
	_ = client.dc.SetReadDeadline(time.Time{}) // ends its timer goroutine
	if !bytes.Equal(got, want) {
		t.Fatal("data differs")
	}
	if st := server.assoc.BytesSent(); st < uint64(len(want)) {
		t.Fatalf("association sent %d bytes", st)
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
