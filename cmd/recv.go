package cmd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/p2pxfer/p2pxfer/chunker"
	"github.com/p2pxfer/p2pxfer/discovery"
	"github.com/p2pxfer/p2pxfer/pake"
	"github.com/p2pxfer/p2pxfer/peer"
	"github.com/p2pxfer/p2pxfer/room"
	"github.com/p2pxfer/p2pxfer/signalclient"
)

func recvCommand(env Env) *cli.Command {
	return &cli.Command{
		Name:      "recv",
		Usage:     "receive the files offered in a room",
		ArgsUsage: "ROOMID",
		Description: "Asks for the password (or reads P2PXFER_PASSWORD or --password-file), joins the\n" +
			"room, shows what is offered and downloads it, verifying every chunk. Interrupted\n" +
			"downloads resume when the same command is run again. While downloading it passes\n" +
			"verified pieces on to other receivers, and once complete it stays as a seed until\n" +
			"nobody has fetched from it for --seed-idle, the room is gone, --seed-time has\n" +
			"passed or Ctrl-C, unless --no-seed. DIR is created if missing; files already in\n" +
			"DIR with the same contents are kept as received.",
		Flags: append(commonFlags(),
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Value: ".", Usage: "write the files into `DIR` (created if missing)"},
			&cli.BoolFlag{Name: "force", Usage: "replace files that already exist in DIR"},
			&cli.BoolFlag{Name: "no-seed", Usage: "exit as soon as the files are complete, serve nobody"},
			&cli.DurationFlag{Name: "seed-time", Usage: "once complete, seed for at most `DURATION` (0: no limit)"},
			&cli.DurationFlag{Name: "seed-idle", Value: peer.DefaultSeedIdle, Usage: "stop seeding once nobody has fetched from us for `DURATION` (0: no limit)"},
			&cli.IntFlag{Name: "max-uploads", Value: 4, Usage: "serve at most `N` peers at once while downloading and seeding"},
			&cli.IntFlag{Name: "max-sources", Value: 4, Usage: "download from up to `N` peers at once"},
		),
		Action: func(c *cli.Context) error { return runRecv(c, env) },
	}
}

func runRecv(c *cli.Context, env Env) error {
	ctx := c.Context
	if c.NArg() != 1 {
		return usagef("recv needs exactly one ROOMID (the sender printed it)")
	}
	roomID := room.NormalizeRoomID(c.Args().First())
	if !room.ValidRoomID(roomID) {
		return usagef("%s is not a room ID: room IDs are %d letters and digits, like the sender printed", quoteArg(c.Args().First()), room.RoomIDLen)
	}
	url, err := signalURL(env, c.String("signal"))
	if err != nil {
		return err
	}
	out := c.String("out")
	mkOut, err := checkOut(out)
	if err != nil {
		return err
	}
	if n := c.Int("max-uploads"); n < 1 || n > room.MaxSlots {
		return usagef("--max-uploads must be between 1 and %d", room.MaxSlots)
	}
	if n := c.Int("max-sources"); n < 1 || n > room.MaxWant {
		return usagef("--max-sources must be between 1 and %d", room.MaxWant)
	}
	if c.Duration("seed-time") < 0 || c.Duration("seed-idle") < 0 {
		return usagef("--seed-time and --seed-idle must not be negative")
	}
	if _, err := stunServers(c.StringSlice("stun")); err != nil {
		return err
	}
	if err := checkInterfaces(c.StringSlice("interface")); err != nil {
		return err
	}
	slots := c.Int("max-uploads")
	if c.Bool("no-seed") {
		slots = 0
	}
	password, err := passwordFrom(env, c.String("password-file"))
	if err != nil {
		return err
	}
	if password == "" {
		if env.ReadPassword == nil {
			return usagef("%v: set P2PXFER_PASSWORD or pass --password-file (no terminal to ask on)", errNoPassword)
		}
		if password, err = env.ReadPassword("Password: "); err != nil {
			return fmt.Errorf("read password: %w", err)
		}
		if password == "" {
			return usagef("%v given", errNoPassword)
		}
	}
	log := env.logger(logLevel(c))

	conn, j, err := joinRoom(ctx, env, url, roomID, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	fmt.Fprintf(env.Stderr, "joined room %s; looking for peers that have the files...\n", roomID)
	cfg, err := peerConfig(env, c, log, j.ICE)
	if err != nil {
		return err
	}
	eng, err := newEngine(env, cfg)
	if err != nil {
		return err
	}
	defer eng.Close()

	var (
		w        *chunker.Writer
		m        *chunker.Manifest
		ui       = newBars(env)
		start    = time.Now()
		took     time.Duration
		served   atomic.Int32 // OnEvent runs on the serving sessions' goroutines
		complete bool
		seeding  = slots > 0
		had      int64                      // bytes verified before this run: not moved now
		ended    atomic.Pointer[peer.Event] // why seeding ended
		// Sources connected now. While one serves us, a queue position is
		// only about extra sources asked for: not worth a word.
		sources = map[string]string{} // peer: its path, in a word
		lastPos int                   // queue position last shown
	)
	defer ui.close()
	defer func() {
		if w != nil {
			_ = w.Close()
		}
	}()
	err = eng.Receive(ctx, conn, peer.ReceiveOptions{
		Room: roomID, Self: j.Self, Host: j.Host, Key: j.Key, Password: password,
		MaxSources: c.Int("max-sources"), Slots: slots,
		SeedTime: c.Duration("seed-time"), SeedIdle: c.Duration("seed-idle"),
		OnSource: func(e peer.SourceEvent) {
			who := "peer " + e.Peer[:6]
			if e.Host {
				who = "the sender"
			}
			switch e.Kind {
			case peer.SourceConnected:
				sources[e.Peer] = e.Path.Short()
			case peer.SourceWithdrew:
				ui.println("%s no longer offers a file: %s", who, summary(e.Err))
				return
			default:
				delete(sources, e.Peer)
			}
			ui.describe("recv", "receiving"+pathsLabel(sources))
			switch e.Kind {
			case peer.SourceConnected:
				ui.println("password confirmed; connected to %s: %s", who, e.Path)
			case peer.SourceBanned:
				ui.println("dropped %s for the rest of the transfer: %v", who, e.Err)
			case peer.SourceLeft:
				if e.Err != nil && !complete {
					ui.println("lost %s (%v); its pieces go to the others", who, summary(e.Err))
				}
			}
		},
		OnQueued: func(pos int) {
			if len(sources) == 0 && pos != lastPos {
				ui.println("every upload slot is taken: waiting in the queue, position %d", pos)
			}
			lastPos = pos
		},
		OnNoSource: func(wait time.Duration) {
			lastPos = 0
			ui.println("nobody in the room has the pieces still missing now; waiting up to %v for a source", wait)
		},
		Open: func(man *chunker.Manifest) (*chunker.Writer, error) {
			m = man
			fmt.Fprintf(env.Stdout, "Receiving %s:\n", offerSummary(m))
			listOffer(env.Stdout, m, quoteName)
			if mkOut {
				// Only now: a wrong password or room leaves nothing behind.
				if err := os.MkdirAll(out, 0o755); err != nil {
					return nil, fmt.Errorf("create --out %s: %w", quoteName(out), rootCause(err))
				}
				ui.println("created %s", quoteName(out))
			}
			var err error
			w, err = chunker.CreateWriter(out, m, chunker.WriterOptions{Force: c.Bool("force"), KeepIdentical: true})
			if err != nil {
				return nil, err
			}
			had = w.Verified()
			switch kept := w.Kept(); {
			case len(kept) == len(m.Files):
				ui.println("all %d file(s) already in %s, identical (same SHA-256): nothing to download", len(kept), quoteName(out))
			case len(kept) > 0:
				ui.println("%d file(s) already in %s, identical (same SHA-256): kept", len(kept), quoteName(out))
				fallthrough
			default:
				if v := had - keptBytes(m, kept); v > 0 {
					ui.println("resuming: %s already verified", humanBytes(v))
				}
			}
			if had == m.TotalSize() {
				seeding = false // nor does peer seed: nothing was downloaded
			}
			ui.add("recv", "receiving"+pathsLabel(sources), m.TotalSize())
			return w, nil
		},
		OnProgress: func(done, total int64) { ui.set("recv", done) },
		OnComplete: func() {
			complete, took = true, time.Since(start)
			ui.remove("recv", true)
			printReceived(env, m, out, took, m.TotalSize()-had)
			if seeding {
				ui.println("seeding to the room until %s (--no-seed to skip)", seedUntil(c.Duration("seed-idle"), c.Duration("seed-time")))
			}
		},
		OnEvent: func(ev peer.Event) {
			switch ev.Kind {
			case peer.EventFinished:
				ui.println("seeding: %d peer(s) served", served.Add(1))
			case peer.EventSeedEnded:
				ended.Store(&ev)
			}
		},
	})
	if complete {
		if seeding {
			why := ""
			if ev := ended.Load(); ev != nil {
				why = seedEndWhy(*ev, c.Duration("seed-idle"), c.Duration("seed-time"))
			}
			fmt.Fprintf(env.Stderr, "stopped seeding%s; %d peer(s) served\n", why, served.Load())
		}
		return nil // the files are in place; ending the seeding is not a failure
	}
	ui.remove("recv", false)
	if err != nil && url == "" && errors.Is(err, pake.ErrWrongPassword) {
		err = fmt.Errorf("%w (%w)", err, errFoundOnLAN)
	}
	if err != nil {
		if errors.Is(err, chunker.ErrExists) || errors.Is(err, chunker.ErrNoSpace) || errors.Is(err, chunker.ErrInUse) {
			return err
		}
		if w != nil && !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, peer.ErrSourceChanged) { // their hints say so
			fmt.Fprintln(env.Stderr, keptHint(err))
		}
		return err
	}
	return nil
}

// printReceived lists the files in place; the rate is that of the moved
// bytes, those not verified before this run.
func printReceived(env Env, m *chunker.Manifest, out string, took time.Duration, moved int64) {
	secs := took.Seconds()
	what := humanBytes(m.TotalSize())
	if isTree(m) {
		what = offerSummary(m)
	}
	switch {
	case moved == m.TotalSize():
		fmt.Fprintf(env.Stdout, "Received and verified %s in %.1fs (%.1f MB/s):\n", what, secs, float64(moved)/1e6/secs)
	case moved > 0:
		fmt.Fprintf(env.Stdout, "Received and verified %s in %.1fs (%.1f MB/s), %s of %s were already here:\n",
			humanBytes(moved), secs, float64(moved)/1e6/secs, humanBytes(m.TotalSize()-moved), what)
	default:
		fmt.Fprintf(env.Stdout, "Verified %s, all of it already here:\n", what)
	}
	listOffer(env.Stdout, m, func(name string) string {
		return quoteName(filepath.Join(out, filepath.FromSlash(name)))
	})
}

// errNotOnLAN: recv without a signalling server found no sender of the
// room on the LAN.
var errNotOnLAN = errors.New("no sender of this room answered on this network")

// errFoundOnLAN marks an error from a room found on the LAN, where any
// device can answer for a room: a wrong password there may be a right one
// given to an impostor.
var errFoundOnLAN = errors.New("room found on this network")

// discoverWait bounds the search for a sender's embedded server on the LAN.
const discoverWait = 2 * time.Second

// joinRoom joins roomID through the signalling server at url; with no url,
// through the sender's embedded server, found on the LAN.
func joinRoom(ctx context.Context, env Env, url, roomID string, log *slog.Logger) (*signalclient.Conn, signalclient.JoinResult, error) {
	urls := []string{url}
	if url == "" {
		fmt.Fprintf(env.Stderr, "looking for room %s on this network...\n", roomID)
		fctx, cancel := context.WithTimeout(ctx, discoverWait)
		found, err := discovery.Find(fctx, roomID, log.With("component", "mdns"))
		cancel()
		if ctx.Err() != nil {
			return nil, signalclient.JoinResult{}, ctx.Err()
		}
		if len(found) == 0 {
			why := ""
			if err != nil {
				why = fmt.Sprintf(" (%v)", err)
			}
			return nil, signalclient.JoinResult{}, fmt.Errorf("room %s: %w%s", roomID, errNotOnLAN, why)
		}
		urls = found
	}
	var last error
	for _, u := range urls {
		conn, err := dial(ctx, u, log)
		if err != nil {
			last = err
			continue
		}
		j, err := conn.JoinInfo(ctx, roomID)
		if err != nil {
			_ = conn.Close()
			last = fmt.Errorf("join room %s: %w", roomID, err)
			continue
		}
		return conn, j, nil
	}
	return nil, signalclient.JoinResult{}, last
}

// pathsLabel names the paths of the sources a download uses now, for its
// progress bar: " (LAN)", " (relayed, LAN)".
func pathsLabel(sources map[string]string) string {
	var paths []string
	for _, p := range sources {
		if !slices.Contains(paths, p) {
			paths = append(paths, p)
		}
	}
	if len(paths) == 0 {
		return ""
	}
	slices.Sort(paths)
	return " (" + strings.Join(paths, ", ") + ")"
}

// checkOut refuses an --out that cannot become a directory, and reports
// whether it is missing (recv creates it once the files are known). An
// ancestor that is a file refuses it too, now rather than after the
// handshake.
func checkOut(out string) (missing bool, err error) {
	for p := out; ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		switch {
		case err == nil && st.IsDir():
			return p != out, nil
		case err == nil && p == out:
			return false, usagef("--out %s is a file, not a directory", quoteName(out))
		case err == nil:
			return false, usagef("--out %s cannot be created: %s is a file", quoteName(out), quoteName(p))
		case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR): // ENOTDIR: a file on the way
			return false, usagef("--out %s: %v", quoteName(out), rootCause(err))
		}
		if filepath.Dir(p) == p {
			return true, nil
		}
	}
}

// keptBytes is the size of the files KeepIdentical found in place.
func keptBytes(m *chunker.Manifest, kept []int) int64 {
	var n int64
	for _, fi := range kept {
		n += m.Files[fi].Size
	}
	return n
}

// seedUntil says when seeding ends by itself (peer/seed.go), for the
// line printed when it starts.
func seedUntil(idle, max time.Duration) string {
	var parts []string
	if idle > 0 {
		parts = append(parts, "nobody has fetched from us for "+idle.String())
	}
	parts = append(parts, "the room is gone")
	if max > 0 {
		parts = append(parts, max.String()+" have passed")
	}
	return strings.Join(parts, ", ") + ", or Ctrl-C"
}

// seedEndWhy says why seeding ended, for the closing line.
func seedEndWhy(ev peer.Event, idle, max time.Duration) string {
	switch ev.Reason {
	case peer.SeedEndIdle:
		return " (nobody fetched from us for " + idle.String() + ")"
	case peer.SeedEndTime:
		return " (--seed-time " + max.String() + " passed)"
	case peer.SeedEndRoomGone:
		// Closed, or the connection to the server lost (the sender's
		// embedded server stopped with it): the latter's error is the
		// WebSocket's, not words for the user.
		why := "the signalling server went away"
		if errors.Is(ev.Err, room.ErrRoomClosed) || errors.Is(ev.Err, room.ErrRoomNotFound) || errors.Is(ev.Err, room.ErrTooManyFailures) {
			why = summary(ev.Err)
		}
		return " (the room is gone: " + why + ")"
	case peer.SeedEndRefused:
		// Our own limit, not the room's: the sender's room may be open.
		return " (too many wrong passwords were tried at us)"
	}
	return ""
}
