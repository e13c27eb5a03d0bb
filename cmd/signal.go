package cmd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/p2pxfer/p2pxfer/sigserver"
)

func signalCommand(env Env) *cli.Command {
	return &cli.Command{
		Name:  "signal",
		Usage: "run a signalling server (WebSocket at /ws, health at /healthz)",
		Description: "Routes handshake messages between the peers of a room. It never sees the\n" +
			"password, the file names or the data: everything it relays is end-to-end sealed.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Value: "0.0.0.0", Usage: "listen `ADDRESS`"},
			&cli.IntFlag{Name: "port", Value: 8080, Usage: "listen `PORT` (0 picks a free one)"},
			&cli.BoolFlag{Name: "trust-forwarded-for", Usage: "take client IPs from X-Forwarded-For (behind a reverse proxy)"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "debug logs"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return usagef("signal takes no arguments")
			}
			port := c.Int("port")
			if port < 0 || port > 65535 {
				return usagef("--port %d is not a TCP port", port)
			}
			level := slog.LevelInfo
			if c.Bool("verbose") {
				level = slog.LevelDebug
			}
			log := env.logger(level)
			ln, err := net.Listen("tcp", net.JoinHostPort(c.String("addr"), strconv.Itoa(port)))
			if err != nil {
				return fmt.Errorf("listen: %w", err)
			}
			srv := sigserver.New(sigserver.Config{Logger: log, TrustForwardedFor: c.Bool("trust-forwarded-for"),
				// Rooms are swarms: seeds go on serving after the sender left.
				KeepRoomWithoutHost: true})
			hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
			fmt.Fprintf(env.Stdout, "signalling server listening on ws://%s/ws\n", ln.Addr())
			log.Info("listening", "addr", ln.Addr().String())
			errc := make(chan error, 1)
			go func() { errc <- hs.Serve(ln) }()
			select {
			case err := <-errc:
				_ = srv.Close()
				return fmt.Errorf("serve: %w", err)
			case <-c.Context.Done():
			}
			log.Info("shutting down")
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Close() // hijacked WebSockets are not Shutdown's business
			if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("shutdown: %w", err)
			}
			<-errc
			return nil
		},
	}
}
