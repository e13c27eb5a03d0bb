package browser_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2pxfer/p2pxfer/browser"
	"github.com/p2pxfer/p2pxfer/internal/chromium"
	"github.com/p2pxfer/p2pxfer/pake"
	"github.com/p2pxfer/p2pxfer/peer"
	"github.com/p2pxfer/p2pxfer/room"
	"github.com/p2pxfer/p2pxfer/signalclient"
	"github.com/p2pxfer/p2pxfer/sigserver"
)

// pageOffer is what the page that sends offers: its room, its password
// and the link to both.
type pageOffer struct{ Room, Password, Link string }

// sendFromPage opens the page that sends in b, has pick give it files
// once it is ready for them, and returns the page and its offer once it
// sends them.
func sendFromPage(ctx context.Context, t *testing.T, b *chromium.Browser, st *site, pick func(p *chromium.Page) error) (*chromium.Page, pageOffer) {
	t.Helper()
	p := openPage(ctx, t, b, st.ts.URL+browser.SendPath)
	if err := p.WaitFor(ctx, `document.body.dataset.state === "pick"`, status); err != nil {
		t.Fatal(err)
	}
	if err := pick(p); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(ctx, `document.body.dataset.state === "sending" || document.body.dataset.state === "error"`, status); err != nil {
		t.Fatal(err)
	}
	var offer pageOffer
	if err := p.Eval(ctx, `({room: document.body.dataset.room, password: document.body.dataset.password, link: document.getElementById("offer-link").href})`, &offer); err != nil || offer.Room == "" {
		var text string
		_ = p.Eval(ctx, status, &text)
		t.Fatalf("the page offers %+v (%v); it says %q", offer, err, text)
	}
	return p, offer
}

// TestBrowserSendsAfterLongHashing: the server drops a connection that
// opens no room within its handshake timeout (10 s by default), and
// hashing takes as long as the files are large, so the page that sends
// connects only once its files are hashed. Here the timeout is shorter
// than hashing 24 MB takes in the page; the room opens all the same. And
// a wrong password at the room is counted on the page, as send prints it.
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
	j, err := conn.JoinInfo(ctx, roomID)
	if err != nil {
		t.Fatalf("joining the page's room: %v", err)
	}
	if !strings.Contains(text, roomID) {
		t.Errorf("the page says %q, without its room %s", text, roomID)
	}
	// A wrong guess: the page has it counted and says so, as send prints
	// each.
	_, hello, err := pake.NewInitiator("wrong-guess", pake.Params{Room: roomID, Initiator: j.Self, Responder: j.Host})
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Send(ctx, &room.Message{Type: room.TypeRelay, Peer: j.Host, Data: hello}); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := conn.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Type == room.TypeRelay {
			break
		}
	}
	_ = conn.Close()
	if err := p.WaitFor(ctx, `document.body.dataset.failures === "1"`, status); err != nil {
		t.Fatal(err)
	}
	_ = p.Eval(ctx, status, &text)
	if !strings.Contains(text, "1 failed password attempt in room "+roomID+": it closes at 10") {
		t.Errorf("after a wrong password the page says %q", text)
	}
	t.Logf("hashed and opened the room in %v", time.Since(start).Round(time.Millisecond))
}

// TestBrowserSendsThroughSignallingLoss: once a receiver is past the
// password, its transfer runs over its own connection; the signalling
// server going away (here it closes every socket at the receiver's first
// piece) stops new receivers, not this one, as a CLI sender serves on.
// Nor does the receiver's own signalling going (the page hears it left).
func TestBrowserSendsThroughSignallingLoss(t *testing.T) {
	t.Run("server gone", func(t *testing.T) { sendThroughLoss(t, true) })
	t.Run("receiver's signalling gone", func(t *testing.T) { sendThroughLoss(t, false) })
}

func sendThroughLoss(t *testing.T, server bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st := newSite(t)
	paths, sums := files(t, map[string]int{"a.bin": 4 << 20})
	b := chromium.Start(t)
	p, offer := sendFromPage(ctx, t, b, st, func(p *chromium.Page) error { return p.SetInputFiles(ctx, "#pick", paths...) })
	out := t.TempDir()
	var once sync.Once
	err := cliReceive(ctx, t, st, offer.Room, offer.Password, out, func(conn *signalclient.Conn, o *peer.ReceiveOptions) {
		o.OnProgress = func(done, total int64) {
			if done > 0 && done < total {
				once.Do(func() {
					if server {
						_ = st.sig.Close()
					} else {
						_ = conn.Close()
					}
				})
			}
		}
	})
	var fired bool
	once.Do(func() { fired = true })
	if fired {
		t.Fatal("the transfer never was under way to lose the signalling in")
	}
	if err != nil {
		t.Fatalf("the CLI receiver, its signalling gone mid-transfer: %v", err)
	}
	sameFiles(t, out, sums)
	if err := p.WaitFor(ctx, `document.body.dataset.served === "1"`, status); err != nil {
		t.Error(err)
	}
}

// TestBrowserSendWithdrawsChangedFile: a picked file that changes on disk
// after it was hashed cannot be read by the page any more (the browser
// refuses a modified file); the page says so with 'C' and serves the
// others, so the CLI receiver reports that file as changed at the sender
// instead of taking the sender for broken, as with a CLI sender.
func TestBrowserSendWithdrawsChangedFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st := newSite(t)
	paths, _ := files(t, map[string]int{"a.bin": 1 << 20, "b.bin": 1 << 20})
	b := chromium.Start(t)
	_, offer := sendFromPage(ctx, t, b, st, func(p *chromium.Page) error { return p.SetInputFiles(ctx, "#pick", paths...) })
	changed := ""
	for _, path := range paths {
		if filepath.Base(path) == "b.bin" {
			changed = path
		}
	}
	if err := os.WriteFile(changed, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(changed, later, later); err != nil {
		t.Fatal(err)
	}
	err := cliReceive(ctx, t, st, offer.Room, offer.Password, t.TempDir(), nil)
	var ce *peer.ChangedError
	if !errors.As(err, &ce) || ce.File != "b.bin" || !ce.Sender {
		t.Fatalf("the CLI receiver: %v, want b.bin changed on the sender's disk", err)
	}
}
