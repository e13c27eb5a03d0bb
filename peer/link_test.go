package peer

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/p2pxfer/p2pxfer/pake"
)

// TestRecvHandshake: waiting for a handshake frame, sealed frames of an
// earlier session with the same peer are passed over, not taken for a
// malformed answer; with nothing else, the wait times out.
func TestRecvHandshake(t *testing.T) {
	params := pake.Params{Room: "abcdefgh", Initiator: "r", Responder: "s"}
	ini, hello, err := pake.NewInitiator("pw", params)
	if err != nil {
		t.Fatal(err)
	}
	resp, reply, err := pake.Respond("pw", params, hello)
	if err != nil {
		t.Fatal(err)
	}
	_, confirm, err := ini.Finish(reply)
	if err != nil {
		t.Fatal(err)
	}
	old, err := resp.Finish(confirm)
	if err != nil {
		t.Fatal(err)
	}
	stale, err := old.Seal([]byte(`{"v":2,"t":"bye"}`))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l := newLink(nil, "s")
	l.deliver(stale)
	l.deliver(stale)
	l.deliver(reply)
	if got, err := l.recvHandshake(ctx, 5*time.Second); err != nil || !bytes.Equal(got, reply) {
		t.Fatalf("recvHandshake = %x, %v; want the reply", got, err)
	}
	l.deliver(stale)
	if _, err := l.recvHandshake(ctx, 50*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("with only a stale frame: %v, want ErrTimeout", err)
	}
}
