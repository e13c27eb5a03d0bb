package cmd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
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
	url, page := sendPageURL(ctx, t)
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
	_, room, password := offerFromPage(ctx, t, b, page, "#pick-folder", root)
	out, rcv := recvFromPage(ctx, t, url, room, password)
	got := 0
	err := filepath.WalkDir(out, func(path string, d os.DirEntry, err error) error {
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
	snd, link := sendWithLink(sctx, t, root)
	b := chromium.Start(t)
	dl := t.TempDir()
	p := receiveInPage(ctx, t, b, dl, link)
	var names []string
	if err := p.Eval(ctx, `[...document.querySelectorAll("#file-list .name")].map((e) => e.textContent)`, &names); err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, "|") != "docs/a.txt|docs/sub/b.bin" {
		t.Errorf("the page lists %q", names)
	}
	saveFromPage(ctx, t, b, p, dl, want)
	stop()
	if c := snd.wait(t); c != ExitOK {
		t.Fatalf("send exit %d:\n%s", c, snd.stderr.String())
	}
}
