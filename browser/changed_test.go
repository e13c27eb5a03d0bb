package browser_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/p2pxfer/p2pxfer/chunker"
	"github.com/p2pxfer/p2pxfer/internal/chromium"
	"github.com/p2pxfer/p2pxfer/peer"
)

// changedSource plays a sender whose file 0 changed on its disk once from
// is set: reading any of its pieces fails as chunker.Source's does, so the
// sender withdraws the file with a 'C' frame and serves the rest.
type changedSource struct {
	peer.Source
	from *atomic.Bool
}

func (c *changedSource) ReadPiece(i int, buf []byte) ([]byte, error) {
	m := c.Manifest()
	if c.from.Load() && i < m.NumChunks() && m.Chunk(i).File == 0 {
		return nil, fmt.Errorf("%w: size 1 -> 2", chunker.ErrSourceChanged)
	}
	return c.Source.ReadPiece(i, buf)
}

// cliSeed runs the CLI's receiver into a temporary folder until it has
// every file; it then stays in the room as a seed until the test ends.
func cliSeed(ctx context.Context, t *testing.T, st *site, snd *sender) {
	t.Helper()
	conn, o, closeWriter := cliJoin(ctx, t, st, snd.room, snd.password, t.TempDir())
	complete := make(chan struct{})
	o.Slots = 2
	o.OnComplete = func() { close(complete) }
	seedCtx, stopSeed := context.WithCancel(ctx)
	seedDone := make(chan error, 1)
	// On the test's goroutine: engine may call t.Fatal, and the Close it
	// registers must come after the seed's Receive has returned (the
	// seed's cleanup, registered later, runs first).
	eng := engine(t)
	go func() {
		seedDone <- eng.Receive(seedCtx, conn, o)
	}()
	t.Cleanup(func() {
		stopSeed()
		<-seedDone
		closeWriter()
		_ = conn.Close()
	})
	select {
	case <-complete:
	case <-ctx.Done():
		t.Fatal("the CLI receiver did not complete")
	}
}

// TestBrowserWithdrawnFileFromSeed: the sender's first file changes on
// its disk after a CLI receiver got everything and stayed as a seed. The
// page asks the sender for pieces of it, hears its 'C' and asks the seed
// for them at once: it receives both files byte for byte well before its
// stall bound (30 s) would have given up on the sender for the pieces it
// still owed.
func TestBrowserWithdrawnFileFromSeed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st := newSite(t)
	paths, sums := files(t, map[string]int{"a.bin": 4 << 20, "b.bin": 256 << 10})
	sort.Strings(paths) // a.bin is file 0: the page asks for it first
	var changed atomic.Bool
	snd := startSender(ctx, t, st, &changedSource{Source: openSource(ctx, t, paths), from: &changed})
	begin := time.Now()
	cliSeed(ctx, t, st, snd)
	t.Logf("seed complete after %v", time.Since(begin))
	changed.Store(true)

	b, dl := savingBrowser(ctx, t)
	// Well short of the page's stall bound, which would mend it too, late.
	pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
	defer pcancel()
	p := openPage(pctx, t, b, st.ts.URL+"/r/"+snd.room+"#"+snd.password)
	begin = time.Now()
	if text := settled(pctx, t, p); !strings.HasPrefix(text, "Received") {
		t.Fatalf("the page says %q", text)
	}
	t.Logf("the page received in %v", time.Since(begin))
	if n, _ := snd.count(peer.EventWithdrawn); n == 0 {
		t.Fatal("the sender was never asked for the changed file: the test proves nothing")
	}
	savesAsSent(ctx, t, b, p, dl, sums)
}

// TestBrowserWithdrawnFileNoSource: with nobody else holding the file
// that changed on the sender's disk, the page does not wait for ever: it
// gets the other file, then, once the server says nobody else offers
// anything, says which file changed and what helps.
func TestBrowserWithdrawnFileNoSource(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	st := newSite(t)
	paths, _ := files(t, map[string]int{"a.bin": 1 << 20, "b.bin": 100 << 10})
	sort.Strings(paths)
	var changed atomic.Bool
	changed.Store(true)
	snd := startSender(ctx, t, st, &changedSource{Source: openSource(ctx, t, paths), from: &changed})
	b := chromium.Start(t)
	// Well short of the page's bound on waiting for a source that might
	// have it (30 s): the server's word that nobody else offers ends it.
	pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
	defer pcancel()
	p := openPage(pctx, t, b, st.ts.URL+"/r/"+snd.room+"#"+snd.password)
	begin := time.Now()
	text := settled(pctx, t, p)
	var code string
	_ = p.Eval(ctx, `document.body.dataset.error`, &code)
	if code != "changed" || !strings.Contains(text, "a.bin changed on the sender's disk") {
		t.Fatalf("the page says %q (error %q), want it to say a.bin changed", text, code)
	}
	var verified int
	if err := p.Eval(ctx, `Number(document.body.dataset.verified)`, &verified); err != nil || verified != 100<<10 {
		t.Errorf("verified %d bytes, want b.bin's %d (%v)", verified, 100<<10, err)
	}
	t.Logf("the page gave up after %v", time.Since(begin).Round(time.Millisecond))
}
