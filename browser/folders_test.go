package browser_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/p2pxfer/p2pxfer/chunker"
	"github.com/p2pxfer/p2pxfer/internal/chromium"
	"github.com/p2pxfer/p2pxfer/peer"
	"github.com/p2pxfer/p2pxfer/signalclient"
)

// tree writes a folder named top in a temporary directory: files at the
// given slash paths (under top) of the given sizes, random, and the empty
// folders empty. It returns top's path and the SHA-256s by path, top
// included, as the manifest names them.
func tree(t *testing.T, top string, sizes map[string]int, empty ...string) (string, map[string]string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), top)
	sums := map[string]string{}
	for rel, n := range sizes {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, n)
		_, _ = rand.Read(b)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(b)
		sums[top+"/"+rel] = hex.EncodeToString(s[:])
	}
	for _, d := range empty {
		if err := os.MkdirAll(filepath.Join(root, filepath.FromSlash(d)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root, sums
}

// walkOPFS lists a folder of the page's private file system as path ->
// SHA-256 hex, folders as "path/" -> "".
const walkOPFS = `async function walk(d, prefix, out) {
	for await (const [name, h] of d.entries()) {
		const p = prefix + name;
		if (h.kind === "directory") {
			out[p + "/"] = "";
			await walk(h, p + "/", out);
		} else {
			const sum = new Uint8Array(await crypto.subtle.digest("SHA-256", await (await h.getFile()).arrayBuffer()));
			out[p] = [...sum].map((x) => x.toString(16).padStart(2, "0")).join("");
		}
	}
	return out;
}`

// TestBrowserReceivesFolder: `p2pxfer send DIR` (chunker.OpenTree, as
// the command opens a folder) offers a tree with subfolders and an empty
// folder; the page lists every file by its path, its Save links name a
// file by its whole path ("top - sub - b.bin"), and "Save all to a
// folder…" (given a folder of the private file system, as no automation
// can click the browser's folder picker) recreates the tree byte for
// byte. Saving again finds every file there: the page asks, and "keep
// theirs" leaves a changed file alone while "replace" puts the received
// one back. A path that climbs out is refused before anything is made.
func TestBrowserReceivesFolder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st := newSite(t)
	root, sums := tree(t, "top", map[string]int{
		"a.txt": 100, "z.txt": 1, "sub/b.bin": 300 << 10, "sub/deeper/c.bin": 70 << 10, "sub/deeper/a.txt": 5,
	}, "empty", "sub/nothing")
	src, err := chunker.OpenTree(ctx, []string{root}, chunker.TreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	snd := startSender(ctx, t, st, src)

	b := chromium.Start(t)
	p := openPage(ctx, t, b, st.ts.URL+"/r/"+snd.room+"#"+snd.password)
	if text := settled(ctx, t, p); !strings.HasPrefix(text, "Received") {
		t.Fatalf("the page says %q", text)
	}
	var shown struct{ Names, Saves []string }
	if err := p.Eval(ctx, `({names: [...document.querySelectorAll("#file-list .name")].map((e) => e.textContent),
		saves: [...document.querySelectorAll("a.save")].map((a) => a.download)})`, &shown); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range src.Manifest().Files {
		want = append(want, f.Name)
	}
	if !reflect.DeepEqual(shown.Names, want) {
		t.Errorf("the page lists %q, want %q", shown.Names, want)
	}
	if !strings.Contains(strings.Join(shown.Saves, "|"), "top - sub - deeper - c.bin") {
		t.Errorf("the Save links name the files %q, want each by its whole path", shown.Saves)
	}

	expect := map[string]string{"top/": "", "top/sub/": "", "top/sub/deeper/": "", "top/empty/": "", "top/sub/nothing/": ""}
	for k, v := range sums {
		expect[k] = v
	}
	saveInto := `(async () => {
		const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle("saved", {create: true});
		const r = await window.p2pxfer.saveAllTo(dir);
		` + walkOPFS + `
		return {r, tree: await walk(dir, "", {})};
	})()`
	type saved struct {
		R    struct{ Saved, Skipped int }
		Tree map[string]string
	}
	var got saved
	if err := p.Eval(ctx, saveInto, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Tree, expect) || got.R.Saved != len(sums) {
		var text string
		_ = p.Eval(ctx, status, &text)
		t.Fatalf("saved %+v into the folder:\n%v\nwant\n%v\nthe page says %q", got.R, got.Tree, expect, text)
	}

	// Again, with one file changed there since: the page asks first.
	again := func(choice string) saved {
		t.Helper()
		if err := p.Eval(ctx, `(async () => {
			const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle("saved");
			const w = await (await (await dir.getDirectoryHandle("top")).getFileHandle("a.txt")).createWritable();
			await w.write("mine");
			await w.close();
			window.saving = window.p2pxfer.saveAllTo(dir);
		})()`, nil); err != nil {
			t.Fatal(err)
		}
		if err := p.WaitFor(ctx, `document.body.dataset.asking === "replace"`, status); err != nil {
			t.Fatal(err)
		}
		var what string
		_ = p.Eval(ctx, `document.getElementById("replace-what").textContent`, &what)
		if !strings.Contains(what, "5 files") || !strings.Contains(what, "top/a.txt") {
			t.Errorf("the page asks %q", what)
		}
		var s saved
		if err := p.Eval(ctx, `(async () => {
			document.getElementById(`+jsString(choice)+`).click();
			const r = await window.saving;
			`+walkOPFS+`
			const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle("saved");
			return {r, tree: await walk(dir, "", {})};
		})()`, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	mine := sha256.Sum256([]byte("mine"))
	kept := again("replace-skip")
	if kept.Tree["top/a.txt"] != hex.EncodeToString(mine[:]) || kept.R.Skipped != 5 || kept.R.Saved != 0 {
		t.Errorf("keep theirs: %+v, top/a.txt %s", kept.R, kept.Tree["top/a.txt"])
	}
	replaced := again("replace-yes")
	if !reflect.DeepEqual(replaced.Tree, expect) || replaced.R.Saved != 5 {
		t.Errorf("replace: %+v\n%v", replaced.R, replaced.Tree)
	}

	// The save checks every path before it makes anything.
	var refused struct {
		Err  string
		Tree map[string]string
	}
	if err := p.Eval(ctx, `(async () => {
		const src = document.querySelector('script[type="module"]').src;
		const { saveToDirectory } = await import(new URL("js/folders.js", src));
		const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle("hostile", {create: true});
		const blob = async () => new Blob(["x"]);
		let err = "";
		for (const bad of ["sub/../../x", "/etc/x", "a//b", "./a", "a\\..\\b", "C:/x"]) {
			try {
				await saveToDirectory(dir, [{name: "first/ok.txt", blob}, {name: bad, blob}]);
				err += "saved " + bad + "; ";
			} catch (e) {
				err += e.name + "; ";
			}
		}
		`+walkOPFS+`
		return {err, tree: await walk(dir, "", {})};
	})()`, &refused); err != nil {
		t.Fatal(err)
	}
	if refused.Err != strings.Repeat("FolderError; ", 6) || len(refused.Tree) != 0 {
		t.Errorf("hostile paths: %s, and the folder holds %v", refused.Err, refused.Tree)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestBrowserSendsFolder: a folder picked on the page at /send (an input
// with webkitdirectory, given the folder as a user picks it) or dropped on
// it goes out with the relative paths `p2pxfer send DIR` gives it, in the
// same order, and when dropped with its empty folders; the CLI's receiver
// recreates the tree byte for byte.
func TestBrowserSendsFolder(t *testing.T) {
	t.Run("picked", func(t *testing.T) { sendsFolder(t, false) })
	t.Run("dropped", func(t *testing.T) { sendsFolder(t, true) })
}

func sendsFolder(t *testing.T, drop bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st := newSite(t)
	root, sums := tree(t, "photos", map[string]int{
		"b.jpg": 200 << 10, "a.jpg": 3, "2024/x.raw": 90 << 10, "2024/may/y.raw": 1, "aa/z.txt": 10,
	}, "empty", "2024/none")
	cli, err := chunker.OpenTree(ctx, []string{root}, chunker.TreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, f := range cli.Manifest().Files {
		order = append(order, f.Name)
	}
	// A picked folder's empty folders are not in the list a browser gives.
	var wantDirs []string
	if drop {
		wantDirs = cli.Manifest().Dirs
	}
	_ = cli.Close()

	b := chromium.Start(t)
	_, offer := sendFromPage(ctx, t, b, st, func(p *chromium.Page) error {
		if drop {
			return p.DropFiles(ctx, "#drop", root)
		}
		return p.SetInputFiles(ctx, "#pick-folder", root)
	})

	out := t.TempDir()
	var names, dirs []string
	err = cliReceive(ctx, t, st, offer.Room, offer.Password, out, func(_ *signalclient.Conn, o *peer.ReceiveOptions) {
		open := o.Open
		o.Open = func(m *chunker.Manifest) (*chunker.Writer, error) {
			for _, f := range m.Files {
				names = append(names, f.Name)
			}
			dirs = m.Dirs
			return open(m)
		}
	})
	if err != nil {
		t.Fatalf("the CLI receiver: %v", err)
	}
	if !reflect.DeepEqual(names, order) {
		t.Errorf("the page's manifest names %q, send DIR names %q", names, order)
	}
	if !reflect.DeepEqual(dirs, wantDirs) {
		t.Errorf("the page's manifest lists the empty folders %q, want %q", dirs, wantDirs)
	}
	for _, d := range wantDirs {
		if st, err := os.Stat(filepath.Join(out, filepath.FromSlash(d))); err != nil || !st.IsDir() {
			t.Errorf("the CLI receiver made no folder %s (%v)", d, err)
		}
	}
	got := map[string]string{}
	err = filepath.WalkDir(out, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(out, path)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		s := sha256.Sum256(data)
		got[filepath.ToSlash(rel)] = hex.EncodeToString(s[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, sums) {
		t.Errorf("the CLI receiver made\n%v\nwant\n%v", got, sums)
	}
}
