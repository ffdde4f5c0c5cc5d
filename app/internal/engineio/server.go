package engineio

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/quibly/quibly/app/internal/clientip"
)

// Config tunes the Engine.IO server.
type Config struct {
	PingInterval  time.Duration
	PingTimeout   time.Duration
	MaxPayload    int // bytes; announced to clients, enforced on every transport
	SendQueueSize int // packets queued per connection before it is dropped
	WriteTimeout  time.Duration
	// CheckOrigin decides whether a browser Origin may connect. Nil allows all.
	CheckOrigin func(r *http.Request) bool
	// MaxSessionsPerIP bounds the open sessions of one client address (ClientIP's);
	// 0 is no bound. ClientIP nil uses the peer's address.
	MaxSessionsPerIP int
	ClientIP         func(r *http.Request) string
	Logger           *slog.Logger
}

// withDefaults fills the fields left zero that have a default.
func (c Config) withDefaults() Config {
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ClientIP == nil {
		c.ClientIP = clientip.Resolver{}.IP // the peer: no proxy trusted
	}
	return c
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	switch {
	case c.MaxSessionsPerIP < 0:
		return errors.New("engine.io: max sessions per address must not be negative")
	case c.PingInterval <= 0 || c.PingTimeout <= 0:
		return errors.New("engine.io: ping interval and timeout must be positive")
	case c.MaxPayload < 1024:
		return errors.New("engine.io: max payload must be at least 1024 bytes")
	case c.SendQueueSize < 1:
		return errors.New("engine.io: send queue size must be positive")
	}
	return nil
}

// Server accepts Engine.IO connections; mount it at /socket.io/.
type Server struct {
	cfg      Config
	log      *slog.Logger
	onConn   func(*Conn)
	upgrader websocket.Upgrader
	beats    *heartbeatWheel

	mu       sync.Mutex
	conns    map[string]*Conn
	perIP    map[string]int // open sessions per client address, when bounded
	draining atomic.Bool
}

// NewServer returns a server that calls onConnection for every new session, before any
// of its packets are handled, so the callee can install handlers.
func NewServer(cfg Config, onConnection func(*Conn)) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, onConn: onConnection, conns: map[string]*Conn{}, perIP: map[string]int{},
		beats: newHeartbeatWheel(min(cfg.PingInterval, cfg.PingTimeout), max(cfg.PingInterval, cfg.PingTimeout))}
	s.upgrader = websocket.Upgrader{
		// 0: gorilla reads through the reader batchingWriter hands it (wsReadBufferSize).
		ReadBufferSize: 0,
		// Pooled write buffers: an idle connection holds none. gorilla writes only the
		// open packet and control frames; batchConn frames the rest.
		WriteBufferSize: 4 << 10,
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     s.originAllowed,
	}
	return s, nil
}

func (s *Server) originAllowed(r *http.Request) bool {
	return s.cfg.CheckOrigin == nil || s.cfg.CheckOrigin(r)
}

// Count returns the number of open sessions.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Accepting reports an error once the server refuses new sessions (a drain).
func (s *Server) Accepting() error {
	if s.draining.Load() {
		return errors.New("engine.io: draining, new sessions are refused")
	}
	return nil
}

// Drain refuses new sessions and closes every open one with a close packet, so
// clients reconnect elsewhere at once.
func (s *Server) Drain() {
	s.draining.Store(true)
	s.mu.Lock()
	all := make([]*Conn, 0, len(s.conns))
	for _, c := range s.conns {
		all = append(all, c)
	}
	s.mu.Unlock()
	for _, c := range all {
		c.Close()
	}
}

func (s *Server) remove(c *Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns[c.ID] == c {
		delete(s.conns, c.ID)
		s.releaseConnLocked(c)
	}
}

// releaseConn gives back c's place among its address's sessions when it closes, even
// while the session lingers for its last poll.
func (s *Server) releaseConn(c *Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseConnLocked(c)
}

func (s *Server) releaseConnLocked(c *Conn) {
	if !c.ipReleased {
		c.ipReleased = true
		s.releaseLocked(c.clientIP)
	}
}

// admit reserves a session for the request's client address, or reports that the
// address has its fill (MaxSessionsPerIP).
func (s *Server) admit(r *http.Request) (ip string, ok bool) {
	if s.cfg.MaxSessionsPerIP <= 0 {
		return "", true
	}
	ip = clientip.LimitKey(s.cfg.ClientIP(r))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perIP[ip] >= s.cfg.MaxSessionsPerIP {
		return ip, false
	}
	s.perIP[ip]++
	return ip, true
}

// release gives back a session admit reserved.
func (s *Server) release(ip string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked(ip)
}

func (s *Server) releaseLocked(ip string) {
	if s.cfg.MaxSessionsPerIP <= 0 {
		return
	}
	if s.perIP[ip] <= 1 {
		delete(s.perIP, ip)
	} else {
		s.perIP[ip]--
	}
}

func (s *Server) lookup(id string) *Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns[id]
}

// Engine.IO error codes for HTTP responses, as the reference server sends them.
const (
	codeUnknownTransport = 0
	codeUnknownSID       = 1
	codeBadHandshake     = 2
	codeBadRequest       = 3
	codeForbidden        = 4
	codeUnsupported      = 5
)

func httpError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "message": msg})
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("EIO") != "4" {
		httpError(w, http.StatusBadRequest, codeUnsupported, "Unsupported protocol version")
		return
	}
	if !s.originAllowed(r) {
		httpError(w, http.StatusForbidden, codeForbidden, "Origin not allowed")
		return
	}
	s.setCORS(w, r)
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	transport, sid := q.Get("transport"), q.Get("sid")
	if transport != TransportPolling && transport != TransportWebSocket {
		httpError(w, http.StatusBadRequest, codeUnknownTransport, "Transport unknown")
		return
	}
	if sid == "" {
		if s.draining.Load() {
			httpError(w, http.StatusServiceUnavailable, codeForbidden, "Server is shutting down")
			return
		}
		if transport == TransportPolling && r.Method != http.MethodGet {
			httpError(w, http.StatusBadRequest, codeBadHandshake, "Bad handshake method")
			return
		}
		ip, ok := s.admit(r)
		if !ok {
			w.Header().Set("Retry-After", "10")
			httpError(w, http.StatusTooManyRequests, codeForbidden, "Too many connections from your address")
			return
		}
		if transport == TransportWebSocket {
			s.openWebSocket(w, r, ip)
		} else {
			s.openPolling(w, r, ip)
		}
		return
	}
	c := s.lookup(sid)
	if c == nil {
		httpError(w, http.StatusBadRequest, codeUnknownSID, "Session ID unknown")
		return
	}
	if transport == TransportWebSocket {
		s.upgradeToWebSocket(w, r, c)
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.poll(w, r, c)
	case http.MethodPost:
		s.receivePost(w, r, c)
	default:
		httpError(w, http.StatusBadRequest, codeBadRequest, "Bad request")
	}
}

// setCORS lets an allowed browser origin use long-polling with credentials (the
// load balancer's sticky cookie must travel with each poll).
func (s *Server) setCORS(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Vary", "Origin")
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type")
	}
}

func newID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// register adds a session for a client whose address admit reserved.
func (s *Server) register(transport string, r *http.Request, ip string) *Conn {
	c := newConn(s, newID(), r.RemoteAddr, transport)
	c.clientIP = ip
	s.mu.Lock()
	s.conns[c.ID] = c
	s.mu.Unlock()
	s.onConn(c)
	return c
}

func (s *Server) openPacket(upgrades []string, sid string) string {
	b, _ := json.Marshal(map[string]any{
		"sid":          sid,
		"upgrades":     upgrades,
		"pingInterval": s.cfg.PingInterval.Milliseconds(),
		"pingTimeout":  s.cfg.PingTimeout.Milliseconds(),
		"maxPayload":   s.cfg.MaxPayload,
	})
	return string(Open) + string(b)
}
