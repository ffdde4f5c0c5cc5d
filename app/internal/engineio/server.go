package engineio

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
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

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	switch {
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
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ClientIP == nil {
		cfg.ClientIP = func(r *http.Request) string {
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			return host
		}
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
		s.releaseLocked(c.clientIP)
	}
}

// admit reserves a session for the request's client address, or reports that the
// address has its fill (MaxSessionsPerIP).
func (s *Server) admit(r *http.Request) (ip string, ok bool) {
	if s.cfg.MaxSessionsPerIP <= 0 {
		return "", true
	}
	ip = s.cfg.ClientIP(r)
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

func (s *Server) openPolling(w http.ResponseWriter, r *http.Request, ip string) {
	c := s.register(TransportPolling, r, ip)
	writePollResponse(w, []string{s.openPacket([]string{TransportWebSocket}, c.ID)})
	c.startHeartbeat()
}

func writePollResponse(w http.ResponseWriter, packets []string) {
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	for i, p := range packets {
		if i > 0 {
			_, _ = io.WriteString(w, separator)
		}
		_, _ = io.WriteString(w, pollingForm(p))
	}
}

// upgradeGrace is how long a poll that arrives after the upgrade's probe waits for
// the upgrade packet, which usually follows the probe at once.
const upgradeGrace = 100 * time.Millisecond

// poll answers a long-polling GET with whatever is queued, waiting until something is.
func (s *Server) poll(w http.ResponseWriter, r *http.Request, c *Conn) {
	c.mu.Lock()
	if c.upgrading && c.probed {
		// A client pauses polling once its probe is answered, so this poll raced the
		// upgrade: it is refused if the session moves to the websocket now, and ends
		// with a noop (pollWake) if not.
		end := c.upgradeEnd
		c.mu.Unlock()
		select {
		case <-end:
		case <-time.After(upgradeGrace):
		}
		c.mu.Lock()
	}
	if c.transport != TransportPolling {
		c.mu.Unlock()
		httpError(w, http.StatusBadRequest, codeBadRequest, "Transport was upgraded")
		return
	}
	if c.pollActive {
		c.mu.Unlock()
		// Two concurrent polls mean a confused or hostile client: end the session.
		httpError(w, http.StatusBadRequest, codeBadRequest, "Overlapping polls")
		c.close(ReasonProtocolError, false)
		return
	}
	c.pollActive = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.pollActive = false
		c.mu.Unlock()
	}()
	// A poll is held until the next ping, which may be longer than the HTTP server's
	// read and write timeouts (Go's server cancels a request whose connection passes
	// its read deadline): this request gets until then.
	rc := http.NewResponseController(w)
	holdUntil := time.Now().Add(s.cfg.PingInterval + s.cfg.PingTimeout)
	_ = rc.SetReadDeadline(holdUntil)
	_ = rc.SetWriteDeadline(holdUntil.Add(s.cfg.WriteTimeout))
	for {
		c.mu.Lock()
		if len(c.queue) > 0 && !c.isClosed() {
			batch := c.takeQueue(s.cfg.MaxPayload)
			c.mu.Unlock()
			writePollResponse(w, batch)
			return
		}
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-c.pollWake:
			writePollResponse(w, []string{string(Noop)})
			return
		case <-c.closed:
			// The client's own close packet ends its pending poll with a noop, as the
			// reference server does; a close by the server is announced.
			end := Close
			c.mu.Lock()
			if c.reason == ReasonClientClose {
				end = Noop
			}
			c.mu.Unlock()
			writePollResponse(w, []string{string(end)})
			s.remove(c) // a poll that raced the close packet was the last one
			return
		case <-r.Context().Done():
			return
		}
	}
}

func (s *Server) receivePost(w http.ResponseWriter, r *http.Request, c *Conn) {
	c.mu.Lock()
	if c.isClosed() {
		c.mu.Unlock()
		httpError(w, http.StatusBadRequest, codeUnknownSID, "Session closed")
		return
	}
	if c.transport != TransportPolling {
		c.mu.Unlock()
		httpError(w, http.StatusBadRequest, codeBadRequest, "Transport was upgraded")
		return
	}
	if c.postActive {
		c.mu.Unlock()
		httpError(w, http.StatusBadRequest, codeBadRequest, "Overlapping writes")
		c.close(ReasonProtocolError, false)
		return
	}
	c.postActive = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.postActive = false
		c.mu.Unlock()
	}()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.cfg.MaxPayload)))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			httpError(w, http.StatusRequestEntityTooLarge, codeBadRequest, "Payload too large")
			c.close(ReasonTooLarge, false)
			return
		}
		httpError(w, http.StatusBadRequest, codeBadRequest, "Bad request body")
		return
	}
	if !utf8.Valid(body) {
		httpError(w, http.StatusBadRequest, codeBadRequest, "Payload is not valid UTF-8")
		c.close(ReasonInvalidUTF8, false)
		return
	}
	packets, err := DecodePayload(string(body))
	if err != nil {
		httpError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		c.close(ReasonProtocolError, false)
		return
	}
	for _, p := range packets {
		if p.Type == Upgrade || p.Type == Open {
			c.close(ReasonProtocolError, false)
			break
		}
		c.handlePacket(p)
	}
	w.Header().Set("Content-Type", "text/html")
	_, _ = io.WriteString(w, "ok")
}

// upgrade turns the request into a websocket on a batchConn, which every websocket
// of a session is: its writes are batched (writeFrames) and its reads polled
// (startReading). On failure the upgrader has answered the client.
func (s *Server) upgrade(w http.ResponseWriter, r *http.Request) (*websocket.Conn, error) {
	ws, err := s.upgrader.Upgrade(&batchingWriter{ResponseWriter: w}, r, nil)
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(int64(s.cfg.MaxPayload))
	return ws, nil
}

func (s *Server) openWebSocket(w http.ResponseWriter, r *http.Request, ip string) {
	ws, err := s.upgrade(w, r)
	if err != nil {
		s.release(ip)
		return // the upgrader has answered the client
	}
	c := s.register(TransportWebSocket, r, ip)
	// The open packet goes first: nothing is queued until the session is registered
	// with ws, and the writer then waits for wmu.
	c.wmu.Lock()
	c.mu.Lock()
	c.ws = ws
	c.mu.Unlock()
	err = ws.WriteMessage(websocket.TextMessage, []byte(s.openPacket([]string{}, c.ID)))
	c.wmu.Unlock()
	if err != nil {
		ws.Close()
		c.close(ReasonTransportErr, false)
		return
	}
	c.mu.Lock()
	flush := c.startWSWriterLocked()
	c.mu.Unlock()
	if flush != nil {
		go c.flushWS(flush)
	}
	c.startHeartbeat()
	// Return without reading here: the HTTP server then lets go of the hijacked
	// connection's buffers, request and context (~10 KB an idle socket held).
	c.startReading(ws)
}

// upgradeToWebSocket runs the probe exchange on a new websocket for a polling
// session; once the client confirms with an upgrade packet, the websocket takes over.
func (s *Server) upgradeToWebSocket(w http.ResponseWriter, r *http.Request, c *Conn) {
	c.mu.Lock()
	if c.transport != TransportPolling || c.upgrading {
		c.mu.Unlock()
		// As the reference server does: the websocket opens and closes at once, so a
		// client library sees a close, not a failed handshake it may not handle.
		if ws, err := s.upgrade(w, r); err == nil {
			_ = ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "session already upgraded"), time.Now().Add(time.Second))
			_ = ws.Close()
		}
		return
	}
	c.upgrading, c.probed, c.upgradeEnd = true, false, make(chan struct{})
	c.mu.Unlock()
	// endUpgrade records the outcome; callers hold c.mu.
	endUpgrade := func() {
		c.upgrading, c.probed = false, false
		close(c.upgradeEnd)
	}
	ws, err := s.upgrade(w, r)
	if err != nil {
		c.mu.Lock()
		endUpgrade()
		c.mu.Unlock()
		return
	}
	fail := func() {
		ws.Close()
		c.mu.Lock()
		endUpgrade()
		c.mu.Unlock()
	}
	// The probe must finish in time, and the session may end meanwhile.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-c.closed:
			ws.Close()
		case <-stop:
		}
	}()
	_ = ws.SetReadDeadline(time.Now().Add(s.cfg.PingTimeout))
	for {
		kind, data, err := ws.ReadMessage()
		if err != nil || kind != websocket.TextMessage {
			fail()
			return
		}
		p, err := DecodePacket(string(data))
		if err != nil {
			fail()
			return
		}
		switch {
		case p.Type == Ping && p.Data == "probe":
			if ws.WriteMessage(websocket.TextMessage, []byte("3probe")) != nil {
				fail()
				return
			}
			c.mu.Lock()
			c.probed = true
			c.mu.Unlock()
			// Release the pending poll so the client can pause polling.
			select {
			case c.pollWake <- struct{}{}:
			default:
			}
		case p.Type == Upgrade:
			c.mu.Lock()
			if c.isClosed() {
				endUpgrade()
				c.mu.Unlock()
				ws.Close()
				return
			}
			c.transport = TransportWebSocket
			c.ws = ws
			endUpgrade()
			// Packets queued while polling go out over the websocket now.
			flush := c.startWSWriterLocked()
			c.mu.Unlock()
			_ = ws.SetReadDeadline(time.Time{})
			if flush != nil {
				go c.flushWS(flush)
			}
			c.startReading(ws) // see openWebSocket
			return
		case p.Type == Noop:
		default:
			fail()
			return
		}
	}
}
