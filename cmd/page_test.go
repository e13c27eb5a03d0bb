package cmd

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var linkRE = regexp.MustCompile(`(?m)^  (https?://\S+/r/\S+)$`)

// fetchPage gets a room's page as a browser would, fragment left out,
// and checks it is the page, with its policy.
func fetchPage(t *testing.T, link string) {
	t.Helper()
	u, _, _ := strings.Cut(link, "#")
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("the link's page: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") ||
		!strings.Contains(string(body), "app.js") {
		t.Fatalf("the link's page: %s %v\n%s", resp.Status, resp.Header, body)
	}
}

// TestSendBrowserLink: send prints, beside the recv command, a link to
// the room's page on its embedded server, at the address it gives recv
// (a LAN one), with the generated password in the fragment; the page is
// served there, and --qr draws the same link as a QR code.
func TestSendBrowserLink(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src := t.TempDir()
	randomFile(t, src, "a.txt", 1000)
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	snd := start(sctx, nil, "send", "--qr", filepath.Join(src, "a.txt"))
	roomID, password := snd.sentOffer(t)
	out := snd.stdout.String()
	sig := signalRE.FindStringSubmatch(out)[1]
	m := linkRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("send printed no browser link:\n%s", out)
	}
	link := m[1]
	want := "http://" + strings.TrimSuffix(strings.TrimPrefix(sig, "ws://"), "/ws") + "/r/" + roomID + "#" + password
	if link != want {
		t.Errorf("browser link %s, want %s (beside --signal %s)", link, want, sig)
	}
	fetchPage(t, link)
	if got := decodeQR(t, out); got != link {
		t.Errorf("the QR code says %q, want the link %q", got, link)
	}
	stop()
	if c := snd.wait(t); c != ExitOK {
		t.Fatalf("send exit %d:\n%s", c, snd.stderr.String())
	}
}

// TestSendBrowserLinkSignal: with --signal, the link is on that server,
// whose page is served beside its WebSocket; a password the user set is
// not printed, so the link has no fragment and the page asks for it.
func TestSendBrowserLinkSignal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url, sr := signalServerRun(ctx, t)
	if !strings.Contains(sr.stdout.String(), "browser page of a room at http://127.0.0.1:") {
		t.Errorf("signal does not say where the pages are:\n%s", sr.stdout.String())
	}
	if m := regexp.MustCompile(`send from a browser at (http://\S+/send)\n`).FindStringSubmatch(sr.stdout.String()); m == nil {
		t.Errorf("signal does not say where the page that sends is:\n%s", sr.stdout.String())
	} else {
		fetchPage(t, m[1])
	}
	src := t.TempDir()
	randomFile(t, src, "a.txt", 1000)
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	snd := start(sctx, map[string]string{"P2PXFER_PASSWORD": "secret pw"}, "send", "--signal", url, filepath.Join(src, "a.txt"))
	roomID, _ := snd.sentOffer(t)
	out := snd.stdout.String()
	m := linkRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("send printed no browser link:\n%s", out)
	}
	want := "http://" + strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/ws") + "/r/" + roomID
	if m[1] != want {
		t.Errorf("browser link %s, want %s", m[1], want)
	}
	if strings.Contains(out, "secret") || strings.Contains(out, "\x1b[") {
		t.Errorf("send printed the password or a QR code unasked:\n%s", out)
	}
	fetchPage(t, m[1])
	stop()
	if c := snd.wait(t); c != ExitOK {
		t.Fatalf("send exit %d:\n%s", c, snd.stderr.String())
	}
}

// TestPageURL: the page is beside the server's WebSocket endpoint, over
// http for ws and https for wss, whatever path a proxy serves it under.
func TestPageURL(t *testing.T) {
	for _, c := range []struct {
		signal, pw string
		generated  bool
		want       string
	}{
		{"ws://192.168.1.20:40123/ws", "k7m2x-pq9fd", true, "http://192.168.1.20:40123/r/abcd2345#k7m2x-pq9fd"},
		{"wss://example.com/ws", "k7m2x-pq9fd", true, "https://example.com/r/abcd2345#k7m2x-pq9fd"},
		{"wss://example.com/p2pxfer/ws", "k7m2x-pq9fd", true, "https://example.com/p2pxfer/r/abcd2345#k7m2x-pq9fd"},
		{"https://u:p@example.com:8443/ws?x=1", "k7m2x-pq9fd", true, "https://example.com:8443/r/abcd2345#k7m2x-pq9fd"},
		{"http://[2001:db8::1]:8080", "mine", false, "http://[2001:db8::1]:8080/r/abcd2345"},
		{"ws://example.com/ws", "mine", false, "http://example.com/r/abcd2345"},
	} {
		if got := pageURL(c.signal, "abcd2345", c.pw, c.generated); got != c.want {
			t.Errorf("pageURL(%s) = %s, want %s", c.signal, got, c.want)
		}
	}
}
