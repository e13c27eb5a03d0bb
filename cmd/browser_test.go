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
	snd := start(sctx, nil, "send", filepath.Join(src, "a.bin"), filepath.Join(src, "one.bin"))
	snd.sentOffer(t)
	m := linkRE.FindStringSubmatch(snd.stdout.String())
	if m == nil {
		t.Fatalf("send printed no browser link:\n%s", snd.stdout.String())
	}

	b := chromium.Start(t)
	dl := t.TempDir()
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
	if err := p.Navigate(ctx, m[1]); err != nil {
		t.Fatal(err)
	}
	const status = `document.getElementById("status").textContent`
	if err := p.WaitFor(ctx, `document.body.dataset.state === "done" || document.body.dataset.state === "error"`, status); err != nil {
		t.Fatal(err)
	}
	var text string
	_ = p.Eval(ctx, status, &text)
	if !strings.HasPrefix(text, "Received") {
		t.Fatalf("the page says %q", text)
	}
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
	url, sr := signalServerRun(ctx, t)
	m := regexp.MustCompile(`send from a browser at (http://\S+/send)\n`).FindStringSubmatch(sr.stdout.String())
	if m == nil {
		t.Fatalf("signal does not say where the page that sends is:\n%s", sr.stdout.String())
	}
	src := t.TempDir()
	want := map[string][]byte{
		"a.bin":   randomFile(t, src, "a.bin", 2<<20),
		"one.bin": randomFile(t, src, "one.bin", 1),
	}
	b := chromium.Start(t)
	p, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Navigate(ctx, m[1]); err != nil {
		t.Fatal(err)
	}
	const status = `document.getElementById("status").textContent`
	if err := p.WaitFor(ctx, `document.body.dataset.state === "pick"`, status); err != nil {
		t.Fatal(err)
	}
	if err := p.SetInputFiles(ctx, "#pick", filepath.Join(src, "a.bin"), filepath.Join(src, "one.bin")); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(ctx, `document.body.dataset.state === "sending" || document.body.dataset.state === "error"`, status); err != nil {
		t.Fatal(err)
	}
	var offer struct{ Room, Password string }
	if err := p.Eval(ctx, `({room: document.body.dataset.room, password: document.body.dataset.password})`, &offer); err != nil || offer.Room == "" {
		t.Fatalf("the page offers %+v (%v)", offer, err)
	}
	out := t.TempDir()
	rcv := start(ctx, map[string]string{"P2PXFER_PASSWORD": offer.Password}, "recv", "--signal", url, "--out", out, "--no-seed", offer.Room)
	if c := rcv.wait(t); c != ExitOK {
		t.Fatalf("recv exit %d:\n%s\n%s", c, rcv.stdout.String(), rcv.stderr.String())
	}
	for name, data := range want {
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: recv wrote %d bytes (%v), the page sent %d, or they differ", name, len(got), err, len(data))
		}
	}
	if err := p.WaitFor(ctx, `document.body.dataset.served === "1"`, status); err != nil {
		t.Error(err)
	}
}
