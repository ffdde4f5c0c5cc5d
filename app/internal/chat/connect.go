package chat

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/quibly/quibly/app/internal/apperr"
	"github.com/quibly/quibly/app/internal/auth"
	"github.com/quibly/quibly/app/internal/broker"
	"github.com/quibly/quibly/app/internal/engineio"
	"github.com/quibly/quibly/app/internal/sessions"
	"github.com/quibly/quibly/app/internal/socketio"
)

type connectAuth struct {
	Token  string `json:"token"`
	PID    string `json:"pid"`
	Offset string `json:"offset"`
}

func refuse(code, msg string) error {
	return &socketio.ConnectErr{Message: code + ": " + msg, Data: map[string]string{"code": code}}
}

// Connect authenticates the handshake and, when the client presents a known pid,
// restores its session.
func (h *Hub) Connect(s *socketio.Socket, raw json.RawMessage) error {
	if h.draining.Load() {
		return refuse(apperr.Unavailable, "server is shutting down, reconnect")
	}
	var a connectAuth
	if len(raw) > 0 && json.Unmarshal(raw, &a) != nil {
		return refuse(apperr.Unauthorized, "auth must be an object with a token")
	}
	if a.Token == "" {
		return refuse(apperr.Unauthorized, "missing token")
	}
	user, exp, err := h.Auth.ParseTokenExpiry(a.Token)
	if err != nil {
		return refuse(apperr.Unauthorized, "invalid or expired token")
	}
	ctx, cancel := h.opContext(context.Background())
	defer cancel()
	var refused *apperr.Error
	switch err := auth.Current(ctx, h.Store, user); {
	case errors.As(err, &refused):
		return refuse(refused.Code, refused.Message)
	case err != nil:
		h.Log.Warn("checking the token's user failed", "err", err)
		return refuse(apperr.Unavailable, "the service is temporarily unavailable, reconnect")
	}
	if !h.reserveConn(user.ID) {
		return refuse(apperr.RateLimited, fmt.Sprintf("a user may hold at most %d connections to one server", h.cfg.MaxConnsPerUser))
	}
	c := &client{sock: s, user: user, tokenExp: exp}
	s.Data = c

	if a.PID != "" && h.restore(ctx, s, c, a.PID, a.Offset) {
		return nil
	}
	s.PID = newPID()
	// Read before register: an event delivered in between is then replayed, not lost.
	if h.busOffset.Load() == nil {
		h.noteHead(ctx) // the start could not read it
	}
	if p := h.busOffset.Load(); p != nil {
		c.since = *p
	}
	h.register(c)
	return nil
}

// restore continues the session pid names, when it belongs to c's user and the bus
// log still holds what it missed since offset (or, without one, since the session
// began). It joins c to the session's channels first, holding their live events, and
// then reads the log, so that nothing published in between falls through the gap;
// Connected sends the log, then what was held (recoveryPacketsLocked). It reports whether
// the session was restored; if not, c is as it was.
func (h *Hub) restore(ctx context.Context, s *socketio.Socket, c *client, pid, offset string) bool {
	sess, ok, err := h.Sessions.Take(ctx, pid, c.user.ID)
	if err != nil {
		h.Log.Warn("session lookup failed", "err", err)
	}
	if offset == "" {
		offset = sess.Since
	}
	if !ok || offset == "" {
		h.Metrics.Recoveries.WithLabelValues("expired").Inc()
		return false
	}
	c.recovering = true
	for _, ch := range sess.Channels {
		// A channel the user may no longer be in (removed while away, or a private
		// one it left) is not restored, and nothing of it is replayed.
		id, err := h.admit(ctx, ch, c.user.ID)
		if errors.Is(err, errNoChannel) {
			continue
		}
		if err != nil {
			h.Log.Warn("checking a recovered channel failed", "err", err)
			h.Metrics.Recoveries.WithLabelValues("expired").Inc()
			c.channels, c.recovering = nil, false
			return false
		}
		c.channels.add(id)
	}
	h.register(c)
	c.mu.Lock()
	channels := c.channelList()
	c.mu.Unlock()
	events, err := h.Broker.Since(ctx, offset, channels)
	if err == nil {
		events = h.untilLeft(c, events)
		s.ID, s.PID, s.Recovered = sess.SID, pid, true
		c.replay, c.since = events, offset
		h.Metrics.Recoveries.WithLabelValues("recovered").Inc()
		return true
	}
	if !errors.Is(err, broker.ErrOffsetExpired) {
		h.Log.Warn("recovery log read failed", "err", err)
	}
	h.Metrics.Recoveries.WithLabelValues("expired").Inc()
	h.unregister(c)
	c.mu.Lock()
	c.channels, c.recovering, c.held = nil, false, nil
	c.mu.Unlock()
	return false
}

// reserveConn counts a connection of user, unless the user has its fill; Disconnected
// gives it back (socketio calls it for every socket whose Connect succeeded).
func (h *Hub) reserveConn(userID string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cfg.MaxConnsPerUser > 0 && h.userConns[userID] >= h.cfg.MaxConnsPerUser {
		return false
	}
	h.userConns[userID]++
	return true
}

func (h *Hub) releaseConn(userID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.userConns[userID] <= 1 {
		delete(h.userConns, userID)
	} else {
		h.userConns[userID]--
	}
}

func newPID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Connected announces presence, sends the presence snapshot, and for a recovered
// session the missed events followed by what was held meanwhile.
func (h *Hub) Connected(s *socketio.Socket) {
	c := s.Data.(*client)
	c.connected.Store(true)
	h.Metrics.Connections.Inc()
	h.expireAt(c, c.tokenExp)
	ctx, cancel := h.opContext(context.Background())
	defer cancel()
	h.userConnected(ctx, c)
	h.saveSession(ctx, c, liveSessionTTL)
	if packets, err := h.onlinePackets(ctx); err == nil {
		_ = s.SendPrepared(packets...)
	} else {
		h.Log.Warn("presence snapshot failed", "err", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.recovering {
		return
	}
	for _, p := range c.recoveryPacketsLocked() {
		_ = c.sock.SendPrepared(p)
	}
	c.recovering, c.held, c.replay = false, nil, nil
}

// recoveryPacketsLocked is what a restored client is sent before any live event, in
// order: the events it missed, from the log, then the live events held while the log
// was read, without those the log had already (an event can be in both). Callers
// hold c.mu.
func (c *client) recoveryPacketsLocked() []string {
	out := make([]string, 0, len(c.replay)+len(c.held))
	replayed := make(map[string]struct{}, len(c.replay))
	for _, ev := range c.replay {
		replayed[ev.Offset] = struct{}{}
		if p, err := encodeEvent(ev); err == nil {
			out = append(out, socketio.Prepare(p))
		}
	}
	for _, hp := range c.held {
		if _, dup := replayed[hp.offset]; dup && hp.offset != "" {
			continue
		}
		out = append(out, hp.packet)
	}
	return out
}

// Disconnected keeps the session recoverable and updates presence.
func (h *Hub) Disconnected(s *socketio.Socket, reason string) {
	c, ok := s.Data.(*client)
	if !ok {
		return
	}
	if reason == engineio.ReasonSlowConsumer {
		h.Metrics.SlowDropped.Inc()
	}
	c.mu.Lock()
	if c.expiry != nil {
		c.expiry.Stop()
	}
	c.mu.Unlock()
	h.releaseConn(c.user.ID)
	h.unregister(c)
	ctx, cancel := h.opContext(context.Background())
	defer cancel()
	h.saveSession(ctx, c, h.cfg.RecoveryWindow)
	if !c.connected.Load() {
		return // the connection ended during Connect: Connected never ran
	}
	h.Metrics.Connections.Dec()
	h.userDisconnected(ctx, c)
	h.Log.Debug("client disconnected", "user", c.user.Username, "reason", reason)
}

// liveSessionTTL is how long a connected client's session stays stored without a
// refresh. Sessions are stored while connected, not only at a clean disconnect,
// so a client whose node is killed can still recover on another node; the
// broker's recovery window bounds what such a session can replay.
const liveSessionTTL = 10 * time.Minute

// saveSession stores c's session so that its pid recovers for ttl.
func (h *Hub) saveSession(ctx context.Context, c *client, ttl time.Duration) {
	pid := c.sock.PID
	if pid == "" {
		return
	}
	c.mu.Lock()
	sess := sessions.Session{SID: c.sock.ID, UserID: c.user.ID, Channels: c.channelList(), Since: c.since}
	c.mu.Unlock()
	if err := h.Sessions.Save(ctx, pid, sess, ttl); err != nil {
		h.Log.Warn("saving session for recovery failed", "err", err)
	}
}

func (h *Hub) refreshSessions(ctx context.Context) {
	h.mu.RLock()
	local := make([]*client, 0, len(h.clients))
	for c := range h.clients {
		local = append(local, c)
	}
	h.mu.RUnlock()
	for _, c := range local {
		if ctx.Err() != nil {
			return
		}
		sctx, cancel := h.opContext(ctx)
		h.saveSession(sctx, c, liveSessionTTL)
		cancel()
	}
}
