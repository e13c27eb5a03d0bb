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

// TestBrowserSendsFolderToRecv: a folder with subfolders picked on the
// page that `p2pxfer signal` serves at /send goes out under its own name,
// as `send DIR` sends it; `p2pxfer recv` recreates the tree byte for byte.
func TestBrowserSendsFolderToRecv(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	url, sr := signalServerRun(ctx, t)
	m := regexp.MustCompile(`send from a browser at (http://\S+/send)\n`).FindStringSubmatch(sr.stdout.String())
	if m == nil {
		t.Fatalf("signal does not say where the page that sends is:\n%s", sr.stdout.String())
	}
	root := filepath.Join(t.TempDir(), "docs")
	for _, d := range []string{"docs", "docs/sub", "docs/sub/deeper"} {
		if err := os.MkdirAll(filepath.Join(filepath.Dir(root), d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][]byte{
		"docs/a.txt":            randomFile(t, root, "a.txt", 1000),
		"docs/sub/b.bin":        randomFile(t, filepath.Join(root, "sub"), "b.bin", 300<<10),
		"docs/sub/deeper/c.bin": randomFile(t, filepath.Join(root, "sub", "deeper"), "c.bin", 1),
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
	if err := p.SetInputFiles(ctx, "#pick-folder", root); err != nil {
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
	got := 0
	err = filepath.WalkDir(out, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(out, path)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if w, ok := want[filepath.ToSlash(rel)]; !ok || !bytes.Equal(data, w) {
			t.Errorf("recv wrote %s (%d bytes), which the page did not send so", rel, len(data))
		}
		got++
		return nil
	})
	if err != nil || got != len(want) {
		t.Errorf("recv wrote %d files (%v), want %d:\n%s", got, err, len(want), rcv.stdout.String())
	}
}

// TestSendDirToBrowser: `p2pxfer send DIR` and the browser link it
// prints: the page lists each file by its path under the folder's name,
// and a file saved on its own is named by that whole path
// ("docs - sub - b.bin"), byte for byte.
func TestSendDirToBrowser(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	root := filepath.Join(t.TempDir(), "docs")
	if err := os.MkdirAll(filepath.Join(root, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{
		"docs - a.txt":       randomFile(t, root, "a.txt", 1000),
		"docs - sub - b.bin": randomFile(t, filepath.Join(root, "sub"), "b.bin", 300<<10),
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	snd := start(sctx, nil, "send", root)
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
	p.Allow("Cross-Origin-Opener-Policy header has been ignored")
	if err := p.Navigate(ctx, m[1]); err != nil {
		t.Fatal(err)
	}
	const status = `document.getElementById("status").textContent`
	if err := p.WaitFor(ctx, `document.body.dataset.state === "done" || document.body.dataset.state === "error"`, status); err != nil {
		t.Fatal(err)
	}
	var names []string
	if err := p.Eval(ctx, `[...document.querySelectorAll("#file-list .name")].map((e) => e.textContent)`, &names); err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, "|") != "docs/a.txt|docs/sub/b.bin" {
		t.Errorf("the page lists %q", names)
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
