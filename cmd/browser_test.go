package cmd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/p2pxfer/p2pxfer/internal/chromium"
)

const pageStatus = `document.getElementById("status").textContent`

// sendWithLink starts `p2pxfer send` with args and returns it once it
// offers, with the browser link it prints.
func sendWithLink(ctx context.Context, t *testing.T, args ...string) (*run, string) {
	t.Helper()
	snd := start(ctx, nil, append([]string{"send"}, args...)...)
	snd.sentOffer(t)
	m := linkRE.FindStringSubmatch(snd.stdout.String())
	if m == nil {
		t.Fatalf("send printed no browser link:\n%s", snd.stdout.String())
	}
	return snd, m[1]
}

// receiveInPage opens link, as send prints it, in a new page of b that
// saves into dl, and waits until the page is done or has given up.
func receiveInPage(ctx context.Context, t *testing.T, b *chromium.Browser, dl, link string) *chromium.Page {
	t.Helper()
	if err := b.SetDownloadDir(ctx, dl); err != nil {
		t.Fatal(err)
	}
	p, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Chromium says so of the server's COOP header on an http origin
	// other than loopback; it changes nothing for the page.
	p.Allow("Cross-Origin-Opener-Policy header has been ignored")
	if err := p.Navigate(ctx, link); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(ctx, `document.body.dataset.state === "done" || document.body.dataset.state === "error"`, pageStatus); err != nil {
		t.Fatal(err)
	}
	return p
}

// saveFromPage clicks every Save link of p and checks that the files
// saved into dl are want's, by name, byte for byte.
func saveFromPage(ctx context.Context, t *testing.T, b *chromium.Browser, p *chromium.Page, dl string, want map[string][]byte) {
	t.Helper()
	if err := p.Eval(ctx, `document.querySelectorAll("a.save").forEach((a) => a.click())`, nil); err != nil {
		t.Fatal(err)
	}
	for name, data := range want {
		if _, err := b.WaitDownload(ctx, name); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dl, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: saved %d bytes (%v), sent %d, or they differ", name, len(got), err, len(data))
		}
	}
}

// sendPageURL runs `p2pxfer signal` and returns its URL and the address
// of the page that sends, as it prints it.
func sendPageURL(ctx context.Context, t *testing.T) (signal, page string) {
	t.Helper()
	url, sr := signalServerRun(ctx, t)
	m := regexp.MustCompile(`send from a browser at (http://\S+/send)\n`).FindStringSubmatch(sr.stdout.String())
	if m == nil {
		t.Fatalf("signal does not say where the page that sends is:\n%s", sr.stdout.String())
	}
	return url, m[1]
}

// offerFromPage opens page (the page that sends) in b, gives its input
// named by selector the paths, and returns the page once it offers them,
// with the room and password it offers.
func offerFromPage(ctx context.Context, t *testing.T, b *chromium.Browser, page, selector string, paths ...string) (p *chromium.Page, room, password string) {
	t.Helper()
	p, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Navigate(ctx, page); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(ctx, `document.body.dataset.state === "pick"`, pageStatus); err != nil {
		t.Fatal(err)
	}
	if err := p.SetInputFiles(ctx, selector, paths...); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(ctx, `document.body.dataset.state === "sending" || document.body.dataset.state === "error"`, pageStatus); err != nil {
		t.Fatal(err)
	}
	var offer struct{ Room, Password string }
	if err := p.Eval(ctx, `({room: document.body.dataset.room, password: document.body.dataset.password})`, &offer); err != nil || offer.Room == "" {
		t.Fatalf("the page offers %+v (%v)", offer, err)
	}
	return p, offer.Room, offer.Password
}

// recvFromPage runs `p2pxfer recv --no-seed` of room with password at
// the signalling server signal into a new folder, which it returns once
// recv exited cleanly, with recv's run.
func recvFromPage(ctx context.Context, t *testing.T, signal, room, password string) (string, *run) {
	t.Helper()
	out := t.TempDir()
	rcv := start(ctx, map[string]string{"P2PXFER_PASSWORD": password}, "recv", "--signal", signal, "--out", out, "--no-seed", room)
	if c := rcv.wait(t); c != ExitOK {
		t.Fatalf("recv exit %d:\n%s\n%s", c, rcv.stdout.String(), rcv.stderr.String())
	}
	return out, rcv
}

// TestSendToBrowser: `p2pxfer send` of two files, and the browser link it
// prints opened in real headless Chromium: the page receives both,
// verified, and its Save buttons give them back byte for byte; send stays
// serving until stopped, and exits cleanly. The link is on the LAN
// address, over plain http, as a recipient on another machine gets it.
func TestSendToBrowser(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	src := t.TempDir()
	want := map[string][]byte{
		"a.bin":   randomFile(t, src, "a.bin", 2<<20),
		"one.bin": randomFile(t, src, "one.bin", 1),
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	snd, link := sendWithLink(sctx, t, filepath.Join(src, "a.bin"), filepath.Join(src, "one.bin"))

	b := chromium.Start(t)
	dl := t.TempDir()
	p := receiveInPage(ctx, t, b, dl, link)
	var text string
	_ = p.Eval(ctx, pageStatus, &text)
	if !strings.HasPrefix(text, "Received") {
		t.Fatalf("the page says %q", text)
	}
	saveFromPage(ctx, t, b, p, dl, want)
	stop()
	if c := snd.wait(t); c != ExitOK {
		t.Fatalf("send exit %d:\n%s", c, snd.stderr.String())
	}
}

// TestBrowserSendToRecv: on the page that `p2pxfer signal` serves at
// /send, files picked in headless Chromium get a room and a password;
// `p2pxfer recv` with them verifies the page's signed manifest and every
// piece, and writes both files byte for byte.
func TestBrowserSendToRecv(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	url, page := sendPageURL(ctx, t)
	src := t.TempDir()
	want := map[string][]byte{
		"a.bin":   randomFile(t, src, "a.bin", 2<<20),
		"one.bin": randomFile(t, src, "one.bin", 1),
	}
	b := chromium.Start(t)
	p, room, password := offerFromPage(ctx, t, b, page, "#pick", filepath.Join(src, "a.bin"), filepath.Join(src, "one.bin"))
	out, _ := recvFromPage(ctx, t, url, room, password)
	for name, data := range want {
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: recv wrote %d bytes (%v), the page sent %d, or they differ", name, len(got), err, len(data))
		}
	}
	if err := p.WaitFor(ctx, `document.body.dataset.served === "1"`, pageStatus); err != nil {
		t.Error(err)
	}
}
