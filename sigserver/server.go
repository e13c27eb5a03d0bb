// Package sigserver is the p2pxfer signalling server, an http.Handler that
// speaks the protocol of package room.
//
// A sender (the host) opens a room and receivers join it by room ID. The
// server then relays opaque frames between the host and one receiver at a
// time, only between the two ends of a handshake and never to the whole
// room. For the swarm it also runs a seed pool per room: connections offer
// upload slots, receivers ask for sources and wait in a FIFO queue when all
// slots are taken, and an assignment lets its two ends relay to each other
// (pool.go). Those frames are end-to-end PAKE messages and sealed WebRTC offers,
// so the server never learns passwords, file names or file data. Its only
// jobs are routing and limiting abuse: it caps connections, rooms per
// address and join attempts per address, which throttles guessing room IDs.
//
// The caller owns the listeners: mount a Server on an http.Server (or
// httptest.Server) and call Close when shutting down.
package sigserver

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/p2pxfer/p2pxfer/room"
)

// Config tunes a Server. The zero value gives the documented defaults.
type Config struct {
	// Logger receives structured logs. Nil discards them.
	Logger *slog.Logger
	// Now is the clock used for idle expiry, assignment timeouts and rate
	// limits, so tests can move time without sleeping. Nil means time.Now.
	Now func() time.Time
	// MaxConns caps concurrent WebSocket connections (default 4096). A
	// connection over the cap gets CodeServerFull and is closed.
	MaxConns int
	// MaxConnsPerIP caps the concurrent connections from one client
	// address (an IPv6 /64; default 64), so that one address cannot fill
	// the server for everyone else: a connection over it gets
	// CodeRateLimited and is closed. Behind a reverse proxy every client
	// has the proxy's address unless TrustForwardedFor.
	MaxConnsPerIP int
	// MaxRoomsPerIP caps the open rooms created from one client address
	// (default 16); a create over it gets CodeRateLimited.
	MaxRoomsPerIP int
	// JoinRate is the sustained joins per second allowed from one client
	// address (default 2), with bursts of JoinBurst (default 10). It makes
	// guessing room IDs slow; a join over it gets CodeRateLimited.
	JoinRate  float64
	JoinBurst int
	// RoomIdle is how long a room may go without joins or relays before it
	// expires and its members get CodeRoomClosed (default 1h).
	RoomIdle time.Duration
	// AssignTimeout is how long an assignment may wait for the PAKE's
	// first round trip, a relay from the receiver and one back from the
	// source (default 5s): a few frames that take milliseconds. One
	// without both then ends as if the receiver had released it: the slot
	// goes to the queue and both ends get left. Once both have relayed on
	// it, an assignment never expires, however long the transfer takes.
	// So anyone who knows a room ID, but not its password, holds its
	// slots for this long at most; and each assignment its receiver left
	// silent counts against the receiver's address, whose wants are
	// refused (CodeRateLimited) once it has left SilentBurst of them
	// unused, until they refill at one per SilentEvery.
	AssignTimeout time.Duration
	SilentBurst   int
	SilentEvery   time.Duration
	// ClosedMemory is how long the server remembers why a room closed,
	// to answer a late join with that rather than room_not_found (default
	// 15m; at most maxClosed rooms are remembered).
	ClosedMemory time.Duration
	// PingInterval is how often each peer is pinged (default 20s). A peer
	// that does not answer within PingInterval is dropped.
	PingInterval time.Duration
	// HandshakeTimeout closes a connection that has not created or joined a
	// room within it (default 10s).
	HandshakeTimeout time.Duration
	// TrustForwardedFor takes the client address from the last hop of
	// X-Forwarded-For. Enable it only behind a reverse proxy that sets the
	// header, or clients can pick their own address and dodge the limits.
	TrustForwardedFor bool
	// KeepRoomWithoutHost keeps a room open after its host disconnects,
	// for as long as any member remains, so seeds can go on serving the
	// others (see docs/swarm.md). The room is deleted when its last member
	// leaves or it expires. False (the default) closes the room with the
	// host, as receivers that know only the host expect.
	KeepRoomWithoutHost bool
	// ICE, if set, gives a member, when it creates or joins a room, the
	// STUN and TURN servers it may use, with TURN credentials made for it
	// (see package relay). host is the name the member reached this
	// server by, without the port: what it can reach a relay on this host
	// by.
	ICE func(roomID, peer, host string) []room.ICEServer
}

// Defaults applied by New to zero (or negative) Config fields.
const (
	DefaultMaxConns         = 4096
	DefaultMaxConnsPerIP    = 64
	DefaultMaxRoomsPerIP    = 16
	DefaultJoinRate         = 2.0
	DefaultJoinBurst        = 10
	DefaultRoomIdle         = time.Hour
	DefaultAssignTimeout    = 5 * time.Second
	DefaultSilentBurst      = room.MaxWant // one want's worth: a receiver that crashed once is not refused
	DefaultSilentEvery      = 15 * time.Second
	DefaultClosedMemory     = 15 * time.Minute
	DefaultPingInterval     = 20 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
)

// writeTimeout bounds one frame write; a peer that cannot take a small
// signalling frame in that time is dead or hostile.
const writeTimeout = 10 * time.Second

// closeGrace bounds how long a connection that is being closed may take to
// flush its last frames and finish the close handshake, so a peer that has
// vanished cannot stall Close.
const closeGrace = 2 * time.Second

// outQueueLen is the per-connection outbound queue. Signalling is a handful
// of frames per handshake, so a peer that lets this many pile up is not
// reading and is dropped rather than buffered without bound.
const outQueueLen = 64

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxConnsPerIP <= 0 {
		c.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if c.SilentBurst <= 0 {
		c.SilentBurst = DefaultSilentBurst
	}
	if c.SilentEvery <= 0 {
		c.SilentEvery = DefaultSilentEvery
	}
	if c.ClosedMemory <= 0 {
		c.ClosedMemory = DefaultClosedMemory
	}
	if c.MaxRoomsPerIP <= 0 {
		c.MaxRoomsPerIP = DefaultMaxRoomsPerIP
	}
	if c.JoinRate <= 0 {
		c.JoinRate = DefaultJoinRate
	}
	if c.JoinBurst <= 0 {
		c.JoinBurst = DefaultJoinBurst
	}
	if c.RoomIdle <= 0 {
		c.RoomIdle = DefaultRoomIdle
	}
	if c.AssignTimeout <= 0 {
		c.AssignTimeout = DefaultAssignTimeout
	}
	if c.PingInterval <= 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	return c
}

// Stats is a snapshot of the server's load, also served by /healthz.
type Stats struct {
	Rooms int `json:"rooms"`
	Conns int `json:"conns"`
}

// Server is the signalling server. Create it with New; it is safe for
// concurrent use.
type Server struct {
	cfg Config
	log *slog.Logger

	// mu guards everything below it and the room fields of every conn. One
	// lock for the whole server keeps the routing rules easy to check;
	// signalling traffic is a few frames per transfer, so it is not a
	// bottleneck.
	mu     sync.Mutex
	closed bool
	rooms  map[string]*roomState
	conns  map[*conn]struct{}
	ips    map[string]*ipState
	gone   closedRooms // why recently closed rooms closed

	connSeq   atomic.Uint64 // numbers connections in the logs
	stop      chan struct{} // closed by Close to stop the janitor
	closeOnce sync.Once
	// wg counts every goroutine the server owns or borrows: the janitor,
	// each connection's handler (its reader), writer and pinger, so Close
	// can wait for all of them.
	wg sync.WaitGroup
}

// New returns a Server and starts its janitor, which expires idle rooms and
// silent assignments. Call Close to stop it.
func New(cfg Config) *Server {
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:   cfg,
		log:   cfg.Logger,
		rooms: make(map[string]*roomState),
		conns: make(map[*conn]struct{}),
		ips:   make(map[string]*ipState),
		gone:  closedRooms{m: make(map[string]closedRoom)},
		stop:  make(chan struct{}),
	}
	s.wg.Add(1)
	go s.janitor(janitorTick(min(cfg.RoomIdle, cfg.AssignTimeout)))
	return s
}

// janitorTick sweeps often enough that nothing outlives a timeout of d by
// more than a quarter of it, but at least once a minute and at most once a
// second.
func janitorTick(d time.Duration) time.Duration {
	t := d / 4
	if t > time.Minute {
		t = time.Minute
	}
	if t < time.Second {
		t = time.Second
	}
	return t
}

// ServeHTTP serves GET /ws (the signalling WebSocket) and GET /healthz.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/ws":
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		s.serveWS(w, r)
	case "/healthz":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		s.serveHealth(w)
	default:
		http.NotFound(w, r)
	}
}

// healthBody is what /healthz answers: "ok" plus the current Stats.
type healthBody struct {
	Status string `json:"status"`
	Stats
}

func (s *Server) serveHealth(w http.ResponseWriter) {
	b, err := json.Marshal(healthBody{Status: "ok", Stats: s.Stats()})
	if err != nil {
		// Cannot happen for this struct; answer something a probe reads.
		s.log.Error("healthz: encode stats", "err", err)
		b = []byte(`{"status":"ok"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(b, '\n'))
}

// Stats returns the number of open rooms and WebSocket connections.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Rooms: len(s.rooms), Conns: len(s.conns)}
}

// Close closes every connection (members of a room are told it closed),
// stops the janitor and waits for all of the server's goroutines. It does
// not close listeners; new WebSocket requests are refused with 503. It is
// safe to call more than once and always returns nil.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		n := len(s.conns)
		bye := room.ErrorMessage(errShuttingDown)
		for c := range s.conns {
			if c.room != nil {
				c.closeWith(bye, statusGoingAway, "server shutting down")
			} else {
				c.closeWith(nil, statusGoingAway, "server shutting down")
			}
		}
		s.mu.Unlock()
		close(s.stop)
		s.wg.Wait()
		s.log.Info("signalling server closed", "conns_closed", n)
	})
	return nil
}

func (s *Server) janitor(tick time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.Sweep()
		}
	}
}

// Sweep runs one expiry pass at Config.Now: rooms idle for RoomIdle or
// longer are closed (host and members get CodeRoomClosed), assignments on
// which the receiver has not relayed within AssignTimeout end (both ends get
// left) and per-address bookkeeping that no longer limits anything is
// dropped. The janitor calls it periodically; it is exported so tests can
// drive expiry with a fake clock.
func (s *Server) Sweep() {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rooms {
		if now.Sub(r.lastActive) < s.cfg.RoomIdle {
			s.expireLocked(r, now)
			continue
		}
		host := r.host
		why := errRoomExpired(s.cfg.RoomIdle)
		s.closeRoomLocked(r, why, "expired")
		if host != nil {
			host.closeWith(room.ErrorMessage(why), statusNormal, "room expired")
		}
	}
	s.pruneIPsLocked(now)
	s.gone.prune(now.Add(-s.cfg.ClosedMemory))
}
