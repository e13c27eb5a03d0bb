package cmd

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/p2pxfer/p2pxfer/browser"
	"github.com/p2pxfer/p2pxfer/relay"
	"github.com/p2pxfer/p2pxfer/room"
	"github.com/p2pxfer/p2pxfer/sigserver"
)

func signalCommand(env Env) *cli.Command {
	return &cli.Command{
		Name:  "signal",
		Usage: "run a signalling server (WebSocket at /ws, health at /healthz, a room's browser page at /r/ROOMID, a page that sends at /send), and with --turn a relay",
		Description: "Routes handshake messages between the peers of a room. It never sees the\n" +
			"password, the file names or the data: everything it relays is end-to-end sealed.\n" +
			"With --turn it also runs a TURN relay on the same host (UDP and TCP), which it\n" +
			"offers to room members, with credentials that die with their room, for peers no\n" +
			"direct path joins. Relayed data stays end-to-end encrypted.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Value: "0.0.0.0", Usage: "listen `ADDRESS`"},
			&cli.IntFlag{Name: "port", Value: 8080, Usage: "listen `PORT` (0 picks a free one)"},
			&cli.BoolFlag{Name: "trust-forwarded-for", Usage: "take client IPs from X-Forwarded-For (behind a reverse proxy)"},
			&cli.IntFlag{Name: "max-conns", Value: sigserver.DefaultMaxConns, Usage: "`N` WebSocket connections at most"},
			&cli.IntFlag{Name: "max-conns-per-ip", Value: sigserver.DefaultMaxConnsPerIP, Usage: "`N` connections at most from one address (an IPv6 /64), so one cannot fill the server"},
			&cli.BoolFlag{Name: "turn", Usage: "also run a TURN relay (and STUN) for room members"},
			&cli.IntFlag{Name: "turn-port", Value: 3478, Usage: "UDP and TCP `PORT` of the relay"},
			&cli.StringSliceFlag{Name: "turn-public-ip", Usage: "`IP` the relay is reached at, when not the listen address (behind a 1:1 NAT); one per family"},
			&cli.StringFlag{Name: "turn-secret", EnvVars: []string{"P2PXFER_TURN_SECRET"}, Usage: "`SECRET` of the relay's credentials, to share them between restarts (default: random)"},
			&cli.DurationFlag{Name: "turn-ttl", Value: 12 * time.Hour, Usage: "credentials expire after `DURATION`, and with their room"},
			&cli.IntFlag{Name: "turn-allocations", Value: relay.DefaultMaxAllocations, Usage: "`N` relayed addresses at most per room member"},
			&cli.IntFlag{Name: "turn-rate", Usage: "bound each room member's relayed traffic to `MBIT` Mbit/s (0: no bound)"},
			&cli.StringSliceFlag{Name: "turn-deny", Usage: "never relay to `CIDR` (repeatable), beyond loopback, link-local and this host's own addresses"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "debug logs"},
		},
		Action: func(c *cli.Context) error { return runSignal(c, env) },
	}
}

func runSignal(c *cli.Context, env Env) error {
	if c.NArg() != 0 {
		return usagef("signal takes no arguments")
	}
	port := c.Int("port")
	if port < 0 || port > 65535 {
		return usagef("--port %d is not a TCP port", port)
	}
	maxConns, perIP := c.Int("max-conns"), c.Int("max-conns-per-ip")
	if maxConns < 1 || perIP < 1 {
		return usagef("--max-conns and --max-conns-per-ip must be at least 1")
	}
	if perIP > maxConns {
		return usagef("--max-conns-per-ip %d is over --max-conns %d", perIP, maxConns)
	}
	level := slog.LevelInfo
	if c.Bool("verbose") {
		level = slog.LevelDebug
	}
	log := env.logger(level)
	var tc *turnConfig
	if c.Bool("turn") {
		var err error
		if tc, err = turnFlags(c); err != nil {
			return err
		}
	}
	// A descriptor per connection, and some to spare for the listener,
	// the relay and the rest.
	want := uint64(maxConns) + 256
	if got, err := raiseFileLimit(want); err != nil || got < want {
		log.Warn("the open-file limit is under what --max-conns needs: connections may fail with \"too many open files\"; raise it (ulimit -n) or lower --max-conns",
			"limit", got, "needed", want, "err", err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(c.String("addr"), strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	cfg := sigserver.Config{Logger: log, TrustForwardedFor: c.Bool("trust-forwarded-for"),
		MaxConns: maxConns, MaxConnsPerIP: perIP,
		// Rooms are swarms: seeds go on serving after the sender left.
		KeepRoomWithoutHost: true}
	if tc != nil {
		cfg.ICE = tc.offer
	}
	srv := sigserver.New(cfg)
	if tc != nil {
		// A member's credentials are good while its room exists.
		rl, err := startRelay(c.String("addr"), tc, func(id string) bool {
			roomID, _, _ := strings.Cut(id, ".")
			return srv.RoomOpen(roomID)
		}, log)
		if err != nil {
			_ = srv.Close()
			_ = ln.Close()
			return err
		}
		defer rl.Close()
		ips := make([]string, 0, 2)
		for _, ip := range rl.RelayIPs() {
			ips = append(ips, ip.String())
		}
		fmt.Fprintf(env.Stdout, "TURN relay on port %d (UDP and TCP), relaying from %s\n", tc.port, strings.Join(ips, " and "))
	}
	page, err := browser.New(srv)
	if err != nil {
		_ = srv.Close()
		_ = ln.Close()
		return err
	}
	hs := &http.Server{Handler: page, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(env.Stdout, "signalling server listening on ws://%s/ws\n", ln.Addr())
	fmt.Fprintf(env.Stdout, "browser page of a room at http://%s/r/ROOMID\n", ln.Addr())
	fmt.Fprintf(env.Stdout, "send from a browser at http://%s%s\n", ln.Addr(), browser.SendPath)
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
}

// turnConfig is what the --turn flags ask of the relay.
type turnConfig struct {
	port   int
	public []netip.Addr
	secret []byte
	ttl    time.Duration
	allocs int
	rate   int64 // bytes per second
	deny   []netip.Prefix
	now    func() time.Time
}

func turnFlags(c *cli.Context) (*turnConfig, error) {
	tc := &turnConfig{port: c.Int("turn-port"), ttl: c.Duration("turn-ttl"), allocs: c.Int("turn-allocations"), now: time.Now}
	if tc.port < 1 || tc.port > 65535 {
		return nil, usagef("--turn-port %d is not a port", tc.port)
	}
	if tc.ttl < time.Minute {
		return nil, usagef("--turn-ttl %v: at least a minute", tc.ttl)
	}
	if tc.allocs < 1 {
		return nil, usagef("--turn-allocations must be at least 1")
	}
	if r := c.Int("turn-rate"); r < 0 {
		return nil, usagef("--turn-rate must not be negative")
	} else {
		tc.rate = int64(r) * 1e6 / 8
	}
	for _, s := range c.StringSlice("turn-public-ip") {
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.IsUnspecified() {
			return nil, usagef("--turn-public-ip %q is not an IP address", s)
		}
		tc.public = append(tc.public, ip.Unmap())
	}
	for _, s := range c.StringSlice("turn-deny") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, usagef("--turn-deny %q is not a CIDR prefix (like 10.0.0.0/8)", s)
		}
		tc.deny = append(tc.deny, p.Masked())
	}
	if s := c.String("turn-secret"); s != "" {
		if len(s) < 16 {
			return nil, usagef("--turn-secret must have at least 16 characters")
		}
		tc.secret = []byte(s)
	} else {
		tc.secret = make([]byte, 32)
		_, _ = rand.Read(tc.secret)
	}
	return tc, nil
}

// startRelay opens the relay's sockets, UDP and TCP, on addr (both
// families when addr is unspecified), and starts it.
func startRelay(addr string, tc *turnConfig, valid func(id string) bool, log *slog.Logger) (*relay.Server, error) {
	var nets []string
	if ip, err := netip.ParseAddr(addr); addr == "" || err == nil && ip.IsUnspecified() {
		nets = []string{"4", "6"}
	} else {
		nets = []string{""}
	}
	var pcs []net.PacketConn
	var lns []net.Listener
	closeAll := func() {
		for _, pc := range pcs {
			_ = pc.Close()
		}
		for _, ln := range lns {
			_ = ln.Close()
		}
	}
	for _, fam := range nets {
		host := addr
		if fam == "6" {
			host = "::"
		}
		hp := net.JoinHostPort(host, strconv.Itoa(tc.port))
		pc, err := net.ListenPacket("udp"+fam, hp)
		if err != nil && fam == "6" {
			log.Info("no IPv6 for the relay", "err", err)
			continue
		}
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("relay: listen: %w", err)
		}
		pcs = append(pcs, pc)
		ln, err := net.Listen("tcp"+fam, hp)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("relay: listen: %w", err)
		}
		lns = append(lns, ln)
	}
	rl, err := relay.New(relay.Config{
		Secret: tc.secret, RelayIPs: tc.public, Valid: valid, Deny: tc.deny,
		MaxAllocations: tc.allocs, Rate: tc.rate, Logger: log.With("component", "relay"),
	}, pcs, lns)
	if err != nil {
		closeAll()
		return nil, err
	}
	return rl, nil
}

// offer is sigserver.Config.ICE: the relay's STUN and TURN URLs, on the
// host the member reached the signalling server by, with credentials for
// this member of this room.
func (tc *turnConfig) offer(roomID, peer, host string) []room.ICEServer {
	if host == "" {
		return nil
	}
	hp := net.JoinHostPort(host, strconv.Itoa(tc.port))
	user, pass := relay.Credentials(tc.secret, roomID+"."+peer, tc.now().Add(tc.ttl))
	return []room.ICEServer{
		{URLs: []string{"stun:" + hp}},
		{URLs: []string{"turn:" + hp + "?transport=udp", "turn:" + hp + "?transport=tcp"}, Username: user, Credential: pass},
	}
}
