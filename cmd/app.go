package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/p2pxfer/p2pxfer/peer"
	"github.com/p2pxfer/p2pxfer/peer/lane"
	"github.com/p2pxfer/p2pxfer/room"
)

// Version is the program version, set at build time with -ldflags.
var Version = "dev"

// Env is everything the commands take from the outside world, so tests can
// run them in-process with buffers.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// ReadPassword prompts on the terminal without echo; nil when there is
	// no terminal.
	ReadPassword func(prompt string) (string, error)
	// PeerConfig, if set, adjusts the WebRTC configuration (tests restrict
	// ICE to loopback).
	PeerConfig func(*peer.Config)
	// Terminal says Stderr is a terminal, where progress bars are drawn.
	Terminal bool
	// Logger gets diagnostics; nil logs warnings and errors to Stderr.
	Logger *slog.Logger
	// SharedCPUs is lane.Config's: told when a transfer with a peer on
	// this host starts and ends (main tunes the runtime for it).
	SharedCPUs func(shared bool)
}

// OSEnv is the Env of the real process.
func OSEnv() Env {
	env := Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv,
		Terminal: term.IsTerminal(int(os.Stderr.Fd()))}
	if term.IsTerminal(int(os.Stdin.Fd())) {
		env.ReadPassword = func(prompt string) (string, error) {
			fmt.Fprint(os.Stderr, prompt)
			b, err := term.ReadPassword(int(os.Stdin.Fd()))
			fmt.Fprintln(os.Stderr)
			return string(b), err
		}
	}
	return env
}

func (env *Env) logger(level slog.Level) *slog.Logger {
	if env.Logger != nil {
		return env.Logger
	}
	return slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: level}))
}

// Run runs the command line args (args[0] is the program name) and returns
// the exit code. It prints one line for any error.
func Run(ctx context.Context, env Env, args []string) int {
	app := NewApp(env)
	args = reorderArgs(app, args)
	err := app.RunContext(ctx, args)
	code, hint := exitCode(err)
	if err != nil && code != ExitInterrupted {
		// Errors quote names and values from the command line and the
		// file system: no control character in them reaches the terminal.
		msg := summary(err)
		fmt.Fprintf(env.Stderr, "p2pxfer: %s\n", safeText(msg))
		if msg != err.Error() && verbose(args) {
			fmt.Fprintf(env.Stderr, "  (details: %s)\n", safeText(err.Error()))
		}
		if hint != "" {
			fmt.Fprintf(env.Stderr, "  (%s)\n", hint)
		}
	}
	if code == ExitInterrupted {
		fmt.Fprintln(env.Stderr, "p2pxfer: interrupted")
	}
	return code
}

var stopProfile = func() {}

// verbose reports whether -v or --verbose is among the flags of args (as
// reorderArgs left them: every flag before any "--").
func verbose(args []string) bool {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-v" || a == "--verbose" || a == "-verbose" {
			return true
		}
	}
	return false
}

func init() {
	// -v is --verbose everywhere, before the command too (reorderArgs
	// moves it after); the version is --version only.
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Usage: "print the version"}
}

// NewApp builds the urfave/cli application.
func NewApp(env Env) *cli.App {
	app := &cli.App{
		Name:            "p2pxfer",
		Usage:           "send files directly between machines over WebRTC, protected by a password",
		Version:         Version,
		Writer:          env.Stdout,
		ErrWriter:       env.Stderr,
		Reader:          env.Stdin,
		HideHelpCommand: false,
		Commands: []*cli.Command{
			sendCommand(env),
			recvCommand(env),
			signalCommand(env),
		},
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "cpuprofile", Hidden: true, Usage: "write a CPU profile to `FILE` (for benchmarks)"},
			// Given before a command, reorderArgs hands it to the command.
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "diagnostics on stderr (the command's -v, given before it)"},
		},
		Before: func(c *cli.Context) error {
			if p := c.String("cpuprofile"); p != "" {
				f, err := os.Create(p)
				if err != nil {
					return usagef("--cpuprofile: %v", err)
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					f.Close()
					return fmt.Errorf("--cpuprofile: %w", err)
				}
				stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
			}
			return nil
		},
		After: func(*cli.Context) error {
			stopProfile()
			return nil
		},
		// Errors are printed by Run, once, with an exit code.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			if strings.Contains(err.Error(), "flag provided but not defined") {
				return usagef("%v (an argument that starts with - goes after --, as in: p2pxfer send -- -file)", err)
			}
			return usagef("%v", err)
		},
	}
	for _, c := range app.Commands {
		c.OnUsageError = app.OnUsageError
		// "p2pxfer send help" sends a file named help; help is
		// "p2pxfer help send" or "send --help".
		c.HideHelpCommand = true
	}
	return app
}

// passwordFrom reads the password from P2PXFER_PASSWORD or --password-file;
// never from the command line, where other users can see it.
func passwordFrom(env Env, file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", usagef("read --password-file: %v", err)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return "", usagef("--password-file %s is empty", quoteName(file))
		}
		return pw, nil
	}
	return env.Getenv("P2PXFER_PASSWORD"), nil
}

// signalURL is the signalling server's URL: the flag's, else
// P2PXFER_SIGNAL's, else the configuration file's; "" for none. One that
// is not a ws(s) or http(s) URL with a host is a usage error that says
// where it came from.
func signalURL(env Env, flag string) (string, error) {
	if flag != "" {
		return flag, checkSignalURL("--signal", flag)
	}
	if v := env.Getenv("P2PXFER_SIGNAL"); v != "" {
		return v, checkSignalURL("P2PXFER_SIGNAL", v)
	}
	cfg, err := readConfig(env)
	if err != nil || cfg["signal"] == "" {
		return "", err
	}
	return cfg["signal"], checkSignalURL(configPath(env)+": signal", cfg["signal"])
}

// checkSignalURL refuses what signalclient.Dial would refuse only after a
// connection attempt (and exit 5, as if the server were down).
func checkSignalURL(from, raw string) error {
	u, err := url.Parse(raw)
	if err == nil && !slices.Contains([]string{"ws", "wss", "http", "https"}, u.Scheme) {
		err = errors.New("the scheme must be ws, wss, http or https")
	}
	if err == nil && u.Hostname() == "" {
		err = errors.New("no host")
	}
	if err != nil {
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err
		}
		return usagef("%s %s is not a signalling server URL (%v): give one like ws://HOST:PORT/ws", from, quoteArg(raw), err)
	}
	return nil
}

// configKeys are what the configuration file may set.
var configKeys = []string{"signal"}

// configPath is the configuration file: $XDG_CONFIG_HOME/p2pxfer/config,
// or ~/.config/p2pxfer/config; "" when neither is known.
func configPath(env Env) string {
	if d := env.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "p2pxfer", "config")
	}
	if h := env.Getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "p2pxfer", "config")
	}
	return ""
}

// readConfig reads the configuration file, if there is one: lines of
// "key = value", # comments. It is for defaults a team shares, such as
// its signalling server; flags and the environment win.
func readConfig(env Env) (map[string]string, error) {
	path := configPath(env)
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, usagef("configuration file: %v", err)
	}
	cfg := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || !slices.Contains(configKeys, k) || v == "" {
			return nil, usagef("%s:%d: want one of %s = VALUE, got %s", path, i+1, strings.Join(configKeys, ", "), quoteName(line))
		}
		cfg[k] = v
	}
	return cfg, nil
}

// stunServers turns the --stun flags into STUN URLs ("none" for none):
// a bare host[:port] gets the stun: scheme. A TURN URL is refused: relays
// come from a signalling server run with --turn, with credentials.
func stunServers(flags []string) ([]string, error) {
	if len(flags) == 0 {
		return []string{defaultSTUN}, nil
	}
	var out []string
	for _, s := range flags {
		if s == "none" {
			return nil, nil
		}
		if strings.HasPrefix(s, "turn:") || strings.HasPrefix(s, "turns:") {
			return nil, usagef("--stun %s: a TURN relay is not a STUN server; run 'p2pxfer signal --turn' and pass --signal, which hands out its relay", s)
		}
		if !strings.HasPrefix(s, "stun:") && !strings.HasPrefix(s, "stuns:") {
			s = "stun:" + s
		}
		if err := lane.ValidateICEURL(s); err != nil {
			return nil, usagef("--stun: %v", err)
		}
		out = append(out, s)
	}
	return out, nil
}

const defaultSTUN = "stun:stun.l.google.com:19302"

var errNoPassword = errors.New("no password")

// commonFlags are shared by send and recv.
func commonFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "signal", Usage: "signalling server `URL` (ws://host:port/ws); env P2PXFER_SIGNAL"},
		&cli.StringFlag{Name: "password-file", Usage: "read the password from `FILE` (else env P2PXFER_PASSWORD)"},
		&cli.StringSliceFlag{Name: "stun", Usage: "STUN server `URL` (repeatable); 'none' for a LAN without STUN (default " + defaultSTUN + ")"},
		&cli.StringSliceFlag{Name: "interface", Usage: "use only this network `NAME` for the transfer (repeatable)"},
		&cli.BoolFlag{Name: "loopback", Usage: "also offer loopback addresses (both ends on this machine)"},
		&cli.IntFlag{
			Name: "lanes", Value: lane.DefaultLanes,
			Usage: fmt.Sprintf("connections between two peers, 1 to %d (the smaller of both ends' counts); 1 keeps to one peer connection, where the transfer rides its path (no direct lanes)", lane.MaxLanes),
			Action: func(_ *cli.Context, n int) error {
				if n < 1 || n > lane.MaxLanes {
					return usagef("--lanes %d: give 1 to %d", n, lane.MaxLanes)
				}
				return nil
			},
		},
		&cli.StringFlag{Name: "max-rate", Value: "0", Usage: "upload at most `RATE` per second to all receivers together (5M, 500K, 2MiB, 40Mbit; 0: no limit)",
			Action: func(_ *cli.Context, v string) error { _, err := parseRate(v); return err }},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log diagnostics to stderr: the paths tried and taken"},
		&cli.StringSliceFlag{Name: "debug", EnvVars: []string{"P2PXFER_DEBUG"}, Usage: "more diagnostics with -v: 'pion' adds the WebRTC library's own, many lines per packet"},
		&cli.DurationFlag{Name: "connect-timeout", Value: lane.DefaultConnectTimeout, Hidden: true,
			Usage: "give up on a peer no path reaches after `DURATION`"},
		&cli.BoolFlag{Name: "no-ride", Hidden: true, Usage: "no ride lanes: the peer connection's SCTP carries what they would, as on a relayed path (for benchmarks)"},
	}
}

// peerConfig is the WebRTC configuration the flags ask for, with the
// STUN and TURN servers the signalling server offered.
func peerConfig(env Env, c *cli.Context, log *slog.Logger, offered []room.ICEServer) (peer.Config, error) {
	stun, err := stunServers(c.StringSlice("stun"))
	if err != nil {
		return peer.Config{}, err
	}
	var ice []lane.ICEServer
	for _, s := range offered {
		ice = append(ice, lane.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	upload, err := parseRate(c.String("max-rate"))
	if err != nil {
		return peer.Config{}, err
	}
	cfg := peer.Config{UploadRate: upload, Transport: lane.Config{
		STUN:           stun,
		ICEServers:     ice,
		Interfaces:     c.StringSlice("interface"),
		Loopback:       c.Bool("loopback"),
		Lanes:          c.Int("lanes"),
		ConnectTimeout: c.Duration("connect-timeout"),
		NoRide:         c.Bool("no-ride"),
		PionLogs:       slices.Contains(c.StringSlice("debug"), "pion"),
		Logger:         log,
		SharedCPUs:     env.SharedCPUs,
	}}
	if env.PeerConfig != nil {
		env.PeerConfig(&cfg)
	}
	return cfg, nil
}

func logLevel(c *cli.Context) slog.Level {
	if c.Bool("verbose") {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

// newEngine starts the WebRTC side and tells the user when the kernel
// capped the UDP socket buffer so low that transfers will drop packets.
func newEngine(env Env, cfg peer.Config) (*peer.Engine, error) {
	eng, err := peer.NewEngine(cfg)
	if err != nil {
		return nil, err
	}
	if got := eng.SocketBuffer(); got > 0 && got < lane.DefaultUDPBufferSize/2 {
		fmt.Fprintf(env.Stderr, "note: the UDP socket buffer is only %s (net.core.rmem_max), which slows transfers down;\n"+
			"  raise it with: sudo sysctl -w net.core.rmem_max=%d net.core.wmem_max=%d\n",
			humanBytes(int64(got)), lane.DefaultUDPBufferSize, lane.DefaultUDPBufferSize)
	}
	return eng, nil
}
