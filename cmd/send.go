package cmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/p2pxfer/p2pxfer/browser"
	"github.com/p2pxfer/p2pxfer/chunker"
	"github.com/p2pxfer/p2pxfer/discovery"
	"github.com/p2pxfer/p2pxfer/pake"
	"github.com/p2pxfer/p2pxfer/peer"
	"github.com/p2pxfer/p2pxfer/room"
	"github.com/p2pxfer/p2pxfer/signalclient"
	"github.com/p2pxfer/p2pxfer/sigserver"
)

func sendCommand(env Env) *cli.Command {
	return &cli.Command{
		Name:      "send",
		Usage:     "offer files and folders in a password-protected room until Ctrl-C",
		ArgsUsage: "FILE|FOLDER...",
		Description: "Hashes the files (a folder is sent whole, with its empty folders; symbolic links\n" +
			"and special files inside it are skipped with a warning), opens a room on the signalling server and prints the room ID,\n" +
			"the password, the command to run on the receiving side and a link to the room's page for a browser\n" +
			"there (with --qr, as a QR code too). With no --signal and no\n" +
			"P2PXFER_SIGNAL it runs its own signalling server, so nothing else is needed on a LAN.",
		Flags: append(commonFlags(),
			&cli.StringFlag{Name: "listen", Value: ":0", Usage: "`ADDR` for the embedded signalling server (when no --signal)"},
			&cli.IntFlag{Name: "max-receivers", Usage: "stop after `N` receivers have finished (0: until Ctrl-C)"},
			&cli.IntFlag{Name: "max-failures", Value: 10, Usage: "close the room after `N` wrong passwords"},
			&cli.IntFlag{Name: "max-uploads", Value: 4, Usage: "serve at most `N` receivers at once; more wait in a queue, or fetch from seeds"},
			&cli.StringFlag{Name: "fec", Value: defaultFEC, Usage: "Reed-Solomon stripes `K+M` (any K of K+M pieces rebuild a stripe), or off"},
			&cli.BoolFlag{Name: "qr", Usage: "also print the browser link as a QR code"},
			&cli.IntFlag{Name: "chunk-size", Usage: "chunk size in `BYTES` (default: chosen from the total size)", Hidden: true},
		),
		Action: func(c *cli.Context) error { return runSend(c, env) },
	}
}

func runSend(c *cli.Context, env Env) error {
	ctx := c.Context
	if c.NArg() == 0 {
		return usagef("send needs at least one FILE or FOLDER")
	}
	if n := c.Int("max-failures"); n < 1 || n > room.MaxFailures {
		// The room carries the limit to the signalling server, which
		// takes no more.
		return usagef("--max-failures must be between 1 and %d", room.MaxFailures)
	}
	if c.Int("max-receivers") < 0 {
		return usagef("--max-receivers must not be negative")
	}
	if n := c.Int("max-uploads"); n < 1 || n > room.MaxSlots {
		return usagef("--max-uploads must be between 1 and %d", room.MaxSlots)
	}
	fec, err := chunker.ParseFEC(c.String("fec"))
	if err != nil {
		return usagef("--fec: %v", err)
	}
	if _, err := stunServers(c.StringSlice("stun")); err != nil {
		return err
	}
	if err := checkInterfaces(c.StringSlice("interface")); err != nil {
		return err
	}
	log := env.logger(logLevel(c))
	password, err := passwordFrom(env, c.String("password-file"))
	if err != nil {
		return err
	}
	generated := password == ""
	if generated {
		if password, err = room.NewPassword(); err != nil {
			return err
		}
	}

	for _, p := range c.Args().Slice() {
		if _, err := os.Stat(p); err != nil {
			return usagef("%v", err)
		}
	}
	ui := &sendUI{bars: newBars(env)}
	defer ui.bars.close()
	for _, a := range c.Args().Slice() {
		if abs, err := filepath.Abs(a); err == nil && filepath.Dir(abs) == abs {
			return usagef("cannot send %s: the root directory has no name to send it under (send the folders in it)", quoteName(a))
		}
	}
	sk := &skipped{w: env.Stderr}
	hashing := false
	src, err := chunker.OpenTree(ctx, c.Args().Slice(), chunker.TreeOptions{
		ChunkSize: c.Int("chunk-size"), FEC: fec, OnSkip: sk.add,
		Progress: func(done, total int64) {
			if !hashing {
				hashing = true
				sk.end()
				ui.bars.add("hash", "hashing", total)
			}
			ui.bars.set("hash", done)
		},
	})
	sk.end()
	if hashing {
		ui.bars.remove("hash", false)
	}
	switch {
	case errors.Is(err, chunker.ErrDuplicateName):
		return usagef("%s: send the folder that holds them instead, or rename one", summary(err))
	case errors.Is(err, chunker.ErrBadName):
		// Our own file's name, not a peer's: rather than the hint for a
		// hostile sender, say what helps.
		err = unsendable(err, c.Args().Slice())
	case errors.Is(err, chunker.ErrNotRegular):
		return usagef("%s", summary(err))
	}
	if err != nil {
		return err
	}
	defer src.Close()

	url, err := signalURL(env, c.String("signal"))
	if err != nil {
		return err
	}
	publicURL := url
	ui.embedded = url == ""
	var emb *embedded
	if url == "" {
		if emb, err = startEmbedded(ctx, c.String("listen"), log); err != nil {
			return err
		}
		defer emb.stop()
		url, publicURL = emb.local, emb.public
	}
	conn, err := dial(ctx, url, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	pub, signer, err := peer.NewManifestKey()
	if err != nil {
		return err
	}
	created, err := conn.CreateInfo(ctx, signalclient.CreateOptions{
		Slots: c.Int("max-uploads"), Key: pub,
		// Seeds report their failed handshakes; the server closes the room
		// at the same limit the sender applies to its own.
		MaxFailures: c.Int("max-failures"),
	})
	if err != nil {
		return fmt.Errorf("create room: %w", err)
	}
	roomID, self := created.Room, created.Self

	cfg, err := peerConfig(env, c, log, created.ICE)
	if err != nil {
		return err
	}
	eng, err := newEngine(env, cfg)
	if err != nil {
		return err
	}
	defer eng.Close()

	// On a LAN the receiver finds the embedded server by itself.
	discoverable := false
	if emb != nil && emb.lan {
		if a, err := discovery.Announce(roomID, emb.port, log.With("component", "mdns")); err != nil {
			log.Info("not announced on the LAN", "err", err)
		} else {
			defer a.Close()
			discoverable = true
		}
	}
	link := pageURL(publicURL, roomID, password, generated)
	if err := printOffer(env, src.Manifest(), roomID, password, generated, publicURL, link, c.Bool("qr"), discoverable, mirroredFlags(c)); err != nil {
		return err
	}
	err = eng.Serve(ctx, conn, src, peer.ServeOptions{
		Room: roomID, Self: self, Password: password, Signer: signer,
		MaxFailures:  c.Int("max-failures"),
		MaxReceivers: c.Int("max-receivers"),
		OnEvent:      ui.event,
	})
	ui.bars.close()
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		fmt.Fprintf(env.Stderr, "stopped; %d receiver(s) finished\n", ui.finishedCount())
		return nil // Ctrl-C is how a sender is meant to stop
	}
	if err == nil {
		fmt.Fprintf(env.Stderr, "done; %d receiver(s) finished\n", ui.finishedCount())
	}
	return err
}

// defaultFEC is --fec's default: 20 % parity lets a stripe be rebuilt with
// any two of its ten pieces missing, e.g. after the sender left.
const defaultFEC = "8+2"

// errUnsendableName: a file to send has a name receivers refuse.
var errUnsendableName = errors.New("receivers refuse such names")

// unsendableError says which file to send has a name receivers refuse,
// and why, in the user's words: the path as given, escaped.
type unsendableError struct {
	path, reason string
	err          error // chunker's, wrapping chunker.ErrBadName
}

func (e *unsendableError) Error() string {
	if e.path == "" {
		return fmt.Sprintf("cannot send: %s (%v)", e.reason, errUnsendableName)
	}
	return fmt.Sprintf("cannot send %s: %s (%v)", quoteName(e.path), e.reason, errUnsendableName)
}

func (e *unsendableError) Unwrap() []error { return []error{errUnsendableName, e.err} }

// unsendable turns chunker's refusal of a name into an unsendableError,
// naming the argument whose base name is refused when there is one.
func unsendable(err error, args []string) error {
	e := &unsendableError{reason: err.Error(), err: err}
	if i := strings.Index(e.reason, chunker.ErrBadName.Error()); i >= 0 {
		e.reason = e.reason[i:]
	}
	for _, a := range args {
		if chunker.CheckName(filepath.Base(a)) != nil {
			e.path = a
			break
		}
	}
	return e
}

// mirroredFlags are the flags of send that the receiver must give too,
// with a space after each, for the recv command printOffer shows. Only
// --loopback: without it the receiver offers no loopback address, which
// two ends on one host (where --loopback is for) may need to connect.
// The others are this machine's own (--interface, --stun, --password-file)
// or agreed on the way (--lanes: the smaller count wins).
func mirroredFlags(c *cli.Context) string {
	if c.Bool("loopback") {
		return "--loopback "
	}
	return ""
}

// printOffer shows what is offered and how to receive it: the recv
// command and the browser link (link; with qr, as a QR code too).
func printOffer(env Env, m *chunker.Manifest, roomID, password string, generated bool, url, link string, qr, discoverable bool, flags string) error {
	out := env.Stdout
	fmt.Fprintf(out, "Sending %s:\n", offerSummary(m))
	listOffer(out, m, quoteName)
	fmt.Fprintf(out, "\nRoom:     %s\n", roomID)
	if generated {
		fmt.Fprintf(out, "Password: %s\n", password)
	} else {
		fmt.Fprintf(out, "Password: (the one you set)\n")
	}
	if discoverable {
		fmt.Fprintf(out, "\nOn the receiving machine run:\n  p2pxfer recv %s%s\n", flags, roomID)
		fmt.Fprintf(out, "or, from another network that reaches this one:\n  p2pxfer recv %s--signal %s %s\n", flags, url, roomID)
	} else {
		// Always spelled out: the other side rarely shares our environment.
		fmt.Fprintf(out, "\nOn the receiving machine run:\n  p2pxfer recv %s--signal %s %s\n", flags, url, roomID)
	}
	if generated {
		fmt.Fprintf(out, "and type the password when asked. Or open this link in a browser (it holds the password):\n  %s\n", link)
	} else {
		fmt.Fprintf(out, "and type the password when asked. Or open this link in a browser and type it there:\n  %s\n", link)
	}
	if qr {
		if err := printQR(out, link); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "Ctrl-C stops sending.\n\n")
	return nil
}

// pageURL is the browser page of roomID on the signalling server at
// signal: /r/ROOMID beside the server's /ws, over http for ws and https
// for wss. A generated password goes in the fragment, which browsers
// never send to the server; one the user set is not printed, so the
// page asks for it.
func pageURL(signal, roomID, password string, generated bool) string {
	u, err := url.Parse(signal)
	if err != nil {
		// checkSignalURL let it through; cannot happen.
		return signal
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	}
	dir := path.Dir(u.Path)
	if !strings.HasPrefix(dir, "/") {
		dir = "/" + dir
	}
	u.Path, u.RawPath = path.Join(dir, "r", roomID), ""
	u.User, u.RawQuery, u.Fragment, u.RawFragment = nil, "", "", ""
	if generated {
		u.Fragment = password
	}
	return u.String()
}

// embedded is a signalling server running in this process.
type embedded struct {
	stop          func()
	local, public string // the URL to reach it locally, and the one to print for others
	port          int
	lan           bool // it listens on every address, so the LAN reaches it
}

// startEmbedded runs a signalling server in this process.
func startEmbedded(ctx context.Context, listen string, log *slog.Logger) (*embedded, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, usagef("embedded signalling server: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	host, _, _ := net.SplitHostPort(listen)
	publicHost := host
	localHost := host
	all := false
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		publicHost = lanAddress()
		localHost = "127.0.0.1"
		all = true
	}
	sig := sigserver.New(sigserver.Config{Logger: log.With("component", "signal"), KeepRoomWithoutHost: true})
	page, err := browser.New(sig)
	if err != nil {
		_ = sig.Close()
		_ = ln.Close()
		return nil, err
	}
	hs := &http.Server{Handler: page, ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = hs.Serve(ln)
	}()
	stop := func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = sig.Close()
		_ = hs.Shutdown(sctx)
		wg.Wait()
	}
	hp := func(h string) string { return "ws://" + net.JoinHostPort(h, strconv.Itoa(port)) + "/ws" }
	return &embedded{stop: stop, local: hp(localHost), public: hp(publicHost), port: port, lan: all}, nil
}

// lanAddress guesses the address other machines on the LAN reach us at:
// the first private IPv4 address of an up, non-loopback interface, then a
// global IPv4 one, then an IPv6 one (unique local, then global) for a LAN
// without IPv4. It only looks at interfaces; it sends nothing.
func lanAddress() string {
	ifaces, _ := net.Interfaces()
	var addrs []netip.Addr
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		as, _ := ifc.Addrs()
		for _, a := range as {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
					addrs = append(addrs, ip.Unmap())
				}
			}
		}
	}
	return bestLANAddress(addrs)
}

// bestLANAddress picks from addrs as lanAddress says; 127.0.0.1 when
// none will do.
func bestLANAddress(addrs []netip.Addr) string {
	for _, good := range []func(netip.Addr) bool{
		func(a netip.Addr) bool { return a.Is4() && a.IsPrivate() },
		func(a netip.Addr) bool { return a.Is4() && a.IsGlobalUnicast() },
		func(a netip.Addr) bool { return a.Is6() && a.IsPrivate() },
		func(a netip.Addr) bool { return a.Is6() && a.IsGlobalUnicast() },
	} {
		for _, a := range addrs {
			if good(a) {
				return a.String()
			}
		}
	}
	return "127.0.0.1"
}

func dial(ctx context.Context, url string, log *slog.Logger) (*signalclient.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := signalclient.Dial(dctx, url, &signalclient.Options{Logger: log})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w at %s: %v", errUnreachable, url, rootCause(err))
	}
	return conn, nil
}

// rootCause is the innermost error of a chain: for a failed dial, what the
// network said ("connection refused"), without every layer's prefix.
func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

// sendUI turns the events of all receivers into messages and one progress
// bar each.
type sendUI struct {
	bars     *bars
	embedded bool // the receivers find each other through our embedded server
	mu       sync.Mutex
	finished int
}

func (u *sendUI) event(ev peer.Event) {
	who := "receiver " + ev.Peer[:min(6, len(ev.Peer))]
	switch ev.Kind {
	case peer.EventConnected:
		u.bars.println("%s connected: %s", who, ev.Path)
		u.bars.add(ev.Peer, who+" ("+ev.Path.Short()+")", ev.Total)
	case peer.EventProgress:
		u.bars.set(ev.Peer, ev.Done)
	case peer.EventFinished:
		u.mu.Lock()
		u.finished++
		n := u.finished
		u.mu.Unlock()
		u.bars.remove(ev.Peer, true)
		seeds := ""
		if ev.Seeding {
			seeds = ", now seeding"
		}
		u.bars.println("%s finished and verified everything%s (%d so far)", who, seeds, n)
	case peer.EventSwarmComplete:
		if u.embedded {
			u.bars.println("the swarm now holds a full copy; keep this running until the receivers finish: they find each other through its signalling server (use 'p2pxfer signal' and --signal to be free to quit)")
		} else {
			u.bars.println("the swarm now holds a full copy: you may quit (Ctrl-C), the seeds serve the rest")
		}
	case peer.EventWithdrawn:
		name := "a file"
		if ch := (*peer.ChangedError)(nil); errors.As(ev.Err, &ch) {
			name = quoteName(ch.File)
		}
		u.bars.println("%s changed on disk since it was hashed: no longer offered; receivers keep what they verified, and a new send of the files gives them the rest", name)
	case peer.EventFailed:
		u.bars.remove(ev.Peer, false)
		if errors.Is(ev.Err, pake.ErrWrongPassword) {
			u.bars.println("%s: wrong password (%d failed attempt(s))", who, ev.Failures)
		} else {
			u.bars.println("%s: %v", who, ev.Err)
		}
	}
}

func (u *sendUI) finishedCount() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.finished
}
