package cmd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/p2pxfer/p2pxfer/chunker"
	"github.com/p2pxfer/p2pxfer/peer"
	"github.com/p2pxfer/p2pxfer/room"
)

func recvCommand(env Env) *cli.Command {
	return &cli.Command{
		Name:      "recv",
		Usage:     "receive the files offered in a room",
		ArgsUsage: "ROOMID",
		Description: "Asks for the password (or reads P2PXFER_PASSWORD or --password-file), joins the\n" +
			"room, shows what is offered and downloads it, verifying every chunk. Interrupted\n" +
			"downloads resume when the same command is run again.",
		Flags: append(commonFlags(),
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Value: ".", Usage: "write the files into `DIR`"},
			&cli.BoolFlag{Name: "force", Usage: "replace files that already exist in DIR"},
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
		return usagef("%q is not a room ID: room IDs are %d letters and digits, like the sender printed", c.Args().First(), room.RoomIDLen)
	}
	url := signalURL(env, c.String("signal"))
	if url == "" {
		return usagef("no signalling server: pass --signal URL as the sender printed, or set P2PXFER_SIGNAL")
	}
	out := c.String("out")
	if st, err := os.Stat(out); err != nil || !st.IsDir() {
		return usagef("--out %s is not a directory", quoteName(out))
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

	eng, err := newEngine(env, peerConfig(env, c, log))
	if err != nil {
		return err
	}
	defer eng.Close()
	conn, err := dial(ctx, url, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	self, host, err := conn.Join(ctx, roomID)
	if err != nil {
		return fmt.Errorf("join room %s: %w", roomID, err)
	}
	fmt.Fprintf(env.Stderr, "joined room %s; checking the password with the sender...\n", roomID)

	var (
		w     *chunker.Writer
		m     *chunker.Manifest
		ui    = newBars(env)
		start = time.Now()
	)
	defer ui.close()
	defer func() {
		if w != nil {
			_ = w.Close()
		}
	}()
	err = eng.Receive(ctx, conn, peer.ReceiveOptions{
		Room: roomID, Self: self, Host: host, Password: password,
		OnConnected: func() { ui.println("password confirmed; connected to the sender") },
		Open: func(man *chunker.Manifest) (*chunker.Writer, error) {
			m = man
			fmt.Fprintf(env.Stdout, "Receiving %d file(s), %s:\n", len(m.Files), humanBytes(m.TotalSize()))
			for _, f := range m.Files {
				fmt.Fprintf(env.Stdout, "  %s  %s\n", quoteName(f.Name), humanBytes(f.Size))
			}
			var err error
			w, err = chunker.CreateWriter(out, m, chunker.WriterOptions{Force: c.Bool("force")})
			if err != nil {
				return nil, err
			}
			if v := w.Verified(); v > 0 {
				ui.println("resuming: %s already verified", humanBytes(v))
			}
			ui.add("recv", "receiving", m.TotalSize())
			return w, nil
		},
		OnProgress: func(done, total int64) { ui.set("recv", done) },
	})
	ui.remove("recv", err == nil)
	if err != nil {
		if errors.Is(err, chunker.ErrExists) || errors.Is(err, chunker.ErrNoSpace) {
			return err
		}
		if w != nil && !errors.Is(err, chunker.ErrFileHash) {
			fmt.Fprintln(env.Stderr, "the partial download is kept; run the same command again to resume")
		}
		return err
	}
	secs := time.Since(start).Seconds()
	fmt.Fprintf(env.Stdout, "Received and verified %s in %.1fs (%.1f MB/s):\n", humanBytes(m.TotalSize()), secs, float64(m.TotalSize())/1e6/secs)
	for _, f := range m.Files {
		fmt.Fprintf(env.Stdout, "  %s\n", quoteName(filepath.Join(out, filepath.FromSlash(f.Name))))
	}
	return nil
}
