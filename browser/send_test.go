package browser_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/p2pxfer/p2pxfer/browser"
	"github.com/p2pxfer/p2pxfer/internal/chromium"
	"github.com/p2pxfer/p2pxfer/signalclient"
	"github.com/p2pxfer/p2pxfer/sigserver"
)

// TestBrowserSendsAfterLongHashing: the server drops a connection that
// opens no room within its handshake timeout (10 s by default), and
// hashing takes as long as the files are large, so the page that sends
// connects only once its files are hashed. Here the timeout is shorter
// than hashing 24 MB takes in the page; the room opens all the same.
func TestBrowserSendsAfterLongHashing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st := newSiteWith(t, sigserver.Config{HandshakeTimeout: 300 * time.Millisecond})
	paths, _ := files(t, map[string]int{"big.bin": 24 << 20})
	b := chromium.Start(t)
	p := openPage(ctx, t, b, st.ts.URL+browser.SendPath)
	if err := p.WaitFor(ctx, `document.body.dataset.state === "pick"`, status); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.SetInputFiles(ctx, "#pick", paths...); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(ctx, `document.body.dataset.state === "sending" || document.body.dataset.state === "error"`, status); err != nil {
		t.Fatal(err)
	}
	var state, text, roomID string
	_ = p.Eval(ctx, `document.body.dataset.state`, &state)
	_ = p.Eval(ctx, status, &text)
	_ = p.Eval(ctx, `document.body.dataset.room ?? ""`, &roomID)
	if state != "sending" || roomID == "" {
		t.Fatalf("after %v of hashing the page says %q", time.Since(start).Round(time.Millisecond), text)
	}
	// The room is there for a receiver.
	conn, err := signalclient.Dial(ctx, st.ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.JoinInfo(ctx, roomID); err != nil {
		t.Fatalf("joining the page's room: %v", err)
	}
	if !strings.Contains(text, roomID) {
		t.Errorf("the page says %q, without its room %s", text, roomID)
	}
	t.Logf("hashed and opened the room in %v", time.Since(start).Round(time.Millisecond))
}
