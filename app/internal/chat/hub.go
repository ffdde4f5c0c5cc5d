// Package chat is Quibly's application logic on top of Socket.IO: who may join
// which channel, the message path (validate, queue durably, fan out, ack), typing,
// presence, and connection state recovery.
package chat

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quibly/quibly/app/internal/apperr"
	"github.com/quibly/quibly/app/internal/auth"
	"github.com/quibly/quibly/app/internal/broker"
	"github.com/quibly/quibly/app/internal/engineio"
	"github.com/quibly/quibly/app/internal/metrics"
	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/presence"
	"github.com/quibly/quibly/app/internal/queue"
	"github.com/quibly/quibly/app/internal/sessions"
	"github.com/quibly/quibly/app/internal/socketio"
	"github.com/quibly/quibly/app/internal/store"
	"golang.org/x/time/rate"
)

// Config holds the hub's limits.
type Config struct {
	MaxMessageChars    int
	MessageRate        float64 // sustained messages per second per user
	MessageBurst       int
	RecoveryWindow     time.Duration
	NonceTTL           time.Duration
	SendTimeout        time.Duration // how long a send may wait for the queue
	PresenceGrace      time.Duration // a reconnect within this does not flap presence
	MaxChannelsPerConn int
	// MaxConnsPerUser bounds one user's connections on this node; 0 is no bound.
	MaxConnsPerUser int
	MaxNonceLen     int
	PresenceSweep   time.Duration // how often users of dead nodes are looked for
}

// Validate fills defaults and rejects impossible values.
func (c *Config) Validate() error {
	if c.MaxMessageChars < 1 || c.MessageRate <= 0 || c.MessageBurst < 1 || c.RecoveryWindow <= 0 {
		return errors.New("chat: message limits, rate and recovery window must be positive")
	}
	if c.NonceTTL <= 0 {
		c.NonceTTL = 10 * time.Minute
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = 5 * time.Second
	}
	if c.PresenceGrace <= 0 {
		c.PresenceGrace = 3 * time.Second
	}
	if c.MaxChannelsPerConn <= 0 {
		c.MaxChannelsPerConn = 200
	}
	if c.MaxNonceLen <= 0 {
		c.MaxNonceLen = 128
	}
	if c.PresenceSweep <= 0 {
		c.PresenceSweep = 5 * time.Second
	}
	return nil
}

// Deps are the backends the hub works with.
type Deps struct {
	Store    store.Store
	Broker   broker.Broker
	Queue    queue.Producer
	Presence presence.Tracker
	Sessions sessions.Store
	Auth     *auth.Auth
	Metrics  *metrics.Metrics
	Log      *slog.Logger
}

// Hub implements socketio.Handler.
type Hub struct {
	cfg Config
	Deps

	mu       sync.RWMutex
	clients  map[*client]struct{}
	members  map[string]map[*client]struct{} // channel id → local clients
	limiters *limiters
	// typists limits typing events per user across the user's connections on this node.
	typists *limiters
	offline map[string]*time.Timer // user id → pending offline announcement
	// userConns counts each user's connections here, from Connect to Disconnected.
	userConns map[string]int

	draining atomic.Bool
	inflight sync.WaitGroup
	// busOffset is the offset of the last logged bus event delivered here.
	busOffset   atomic.Pointer[string]
	fanoutRetry chan pendingFanout
	online      onlineSnapshot
	channels    knownChannels
}

var _ socketio.Handler = (*Hub)(nil)

// NewHub returns a hub; call Start to subscribe it to the broker.
func NewHub(cfg Config, deps Deps) (*Hub, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil || deps.Broker == nil || deps.Queue == nil || deps.Presence == nil || deps.Sessions == nil || deps.Auth == nil || deps.Metrics == nil {
		return nil, errors.New("chat: every dependency is required")
	}
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	return &Hub{
		cfg: cfg, Deps: deps,
		clients:   map[*client]struct{}{},
		members:   map[string]map[*client]struct{}{},
		limiters:  newLimiters(cfg.MessageRate, cfg.MessageBurst),
		typists:   newLimiters(float64(time.Second/typingEvery), typingBurst),
		offline:   map[string]*time.Timer{},
		userConns: map[string]int{},

		fanoutRetry: make(chan pendingFanout, fanoutRetryQueue),
	}, nil
}

// Start subscribes to the broker and runs the hub's maintenance until ctx ends.
func (h *Hub) Start(ctx context.Context) error {
	if err := h.Broker.Subscribe(ctx, h.deliver); err != nil {
		return err
	}
	h.runBackground(ctx)
	return nil
}

// Drain stops accepting sends and waits (up to ctx) for the ones in flight.
func (h *Hub) Drain(ctx context.Context) error {
	h.draining.Store(true)
	done := make(chan struct{})
	go func() { h.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// client is the hub's state for one socket.
type client struct {
	sock      *socketio.Socket
	user      model.User
	connected atomic.Bool // Connected ran

	mu         sync.Mutex
	channels   channelSet
	recovering bool         // live events are held until the replay is sent
	held       []heldPacket // events that arrived while recovering
	replay     []broker.Event
	joinLimit  *rate.Limiter // made on the first join
	// sendSlots bounds the sends of this connection in flight; made on its first send,
	// so that a connection that only listens holds neither.
	sendSlots chan struct{}
	// since is the bus offset when this session began: a client that has received
	// no logged event yet presents no offset, and recovers from here instead.
	since string
}

type heldPacket struct {
	offset string
	packet string // made by socketio.Prepare
}

func (c *client) channelList() []string {
	return append([]string{}, c.channels...)
}

// channelSet holds the channels one connection joined. They are few (at most
// MaxChannelsPerConn), so a slice: a map costs ten times the memory of one entry.
type channelSet []string

func (s channelSet) has(id string) bool { return slices.Contains(s, id) }

func (s *channelSet) add(id string) {
	if !s.has(id) {
		*s = append(*s, id)
	}
}

func (s *channelSet) remove(id string) {
	if i := slices.Index(*s, id); i >= 0 {
		*s = slices.Delete(*s, i, i+1)
	}
}

// send queues packets (made by socketio.Prepare) to go out together, holding them
// while a recovery replay is pending.
func (c *client) send(ps ...heldPacket) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.recovering {
		c.held = append(c.held, ps...)
		return nil
	}
	if len(ps) == 1 { // one event for this socket, the common case: no slice
		return c.sock.SendPrepared(ps[0].packet)
	}
	packets := make([]string, len(ps))
	for i, p := range ps {
		packets[i] = p.packet
	}
	return c.sock.SendPrepared(packets...)
}

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
	user, err := h.Auth.ParseToken(a.Token)
	if err != nil {
		return refuse(apperr.Unauthorized, "invalid or expired token")
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.SendTimeout)
	defer cancel()
	// A signed token can outlive its user (a restore, a reset of standalone's data);
	// its messages would then be refused by the store.
	switch version, exists, err := h.Store.TokenVersion(ctx, user.ID); {
	case err != nil:
		h.Log.Warn("checking the token's user failed", "err", err)
		return refuse(apperr.Unavailable, "the service is temporarily unavailable, reconnect")
	case !exists:
		return refuse(apperr.Unauthorized, "the token's user no longer exists, log in again")
	case version != user.TokenVersion:
		return refuse(apperr.Unauthorized, "the token was revoked (logged out), log in again")
	}
	if !h.reserveConn(user.ID) {
		return refuse(apperr.RateLimited, fmt.Sprintf("a user may hold at most %d connections to one server", h.cfg.MaxConnsPerUser))
	}
	c := &client{sock: s, user: user}
	s.Data = c

	var sess sessions.Session
	restoring := false
	if a.PID != "" {
		got, ok, err := h.Sessions.Take(ctx, a.PID, user.ID)
		if err != nil {
			h.Log.Warn("session lookup failed", "err", err)
		}
		sess = got
		if a.Offset == "" {
			a.Offset = got.Since
		}
		restoring = ok && a.Offset != ""
	}
	if restoring {
		// Join first, holding live events, then read the log: nothing published in
		// between can fall through the gap.
		c.recovering = true
		for _, ch := range sess.Channels {
			c.channels.add(ch)
		}
		h.register(c)
		events, err := h.Broker.Since(ctx, a.Offset, sess.Channels)
		if err == nil {
			s.ID, s.PID, s.Recovered = sess.SID, a.PID, true
			c.replay, c.since = events, a.Offset
			h.Metrics.Recoveries.WithLabelValues("recovered").Inc()
			return nil
		}
		if !errors.Is(err, broker.ErrOffsetExpired) {
			h.Log.Warn("recovery log read failed", "err", err)
		}
		h.Metrics.Recoveries.WithLabelValues("expired").Inc()
		h.unregister(c)
		c.mu.Lock()
		c.channels, c.recovering, c.held = nil, false, nil
		c.mu.Unlock()
	} else if a.PID != "" {
		h.Metrics.Recoveries.WithLabelValues("expired").Inc()
	}
	s.PID = newPID()
	// Read before register: an event delivered in between is then replayed, not lost.
	if p := h.busOffset.Load(); p != nil {
		c.since = *p
	}
	h.register(c)
	return nil
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

func (h *Hub) register(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clients[c] = struct{}{}
	for _, ch := range c.channels {
		h.joinLocked(c, ch)
	}
}

func (h *Hub) unregister(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.clients, c)
	for _, ch := range c.channels {
		h.leaveLocked(c, ch)
	}
}

func (h *Hub) joinLocked(c *client, ch string) {
	m := h.members[ch]
	if m == nil {
		m = map[*client]struct{}{}
		h.members[ch] = m
	}
	m[c] = struct{}{}
}

func (h *Hub) leaveLocked(c *client, ch string) {
	if m := h.members[ch]; m != nil {
		delete(m, c)
		if len(m) == 0 {
			delete(h.members, ch)
		}
	}
}

// Connected announces presence, sends the presence snapshot, and for a recovered
// session the missed events followed by what was held meanwhile.
func (h *Hub) Connected(s *socketio.Socket) {
	c := s.Data.(*client)
	c.connected.Store(true)
	h.Metrics.Connections.Inc()
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.SendTimeout)
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
	replayed := make(map[string]struct{}, len(c.replay))
	for _, ev := range c.replay {
		replayed[ev.Offset] = struct{}{}
		if p, err := encodeEvent(ev); err == nil {
			_ = c.sock.SendPrepared(socketio.Prepare(p))
		}
	}
	for _, hp := range c.held {
		if _, dup := replayed[hp.offset]; dup && hp.offset != "" {
			continue
		}
		_ = c.sock.SendPrepared(hp.packet)
	}
	c.recovering, c.held, c.replay = false, nil, nil
}

// Disconnected keeps the session recoverable and updates presence.
func (h *Hub) Disconnected(s *socketio.Socket, reason string) {
	c, ok := s.Data.(*client)
	if !ok {
		return
	}
	h.releaseConn(c.user.ID)
	h.unregister(c)
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.SendTimeout)
	defer cancel()
	h.saveSession(ctx, c, h.cfg.RecoveryWindow)
	if !c.connected.Load() {
		return // the connection ended during Connect: Connected never ran
	}
	h.Metrics.Connections.Dec()
	h.userDisconnected(ctx, c)
	h.Log.Debug("client disconnected", "user", c.user.Username, "reason", reason)
}

func presenceData(u model.User, status string) map[string]string {
	return map[string]string{"userId": u.ID, "username": u.Username, "status": status}
}

func (h *Hub) userConnected(ctx context.Context, c *client) {
	online, err := h.Presence.Connect(ctx, c.user, c.sock.Conn().ID)
	if err != nil {
		h.Log.Warn("presence connect failed", "err", err)
		return
	}
	h.mu.Lock()
	t, pending := h.offline[c.user.ID]
	if pending {
		t.Stop()
		delete(h.offline, c.user.ID)
	}
	h.mu.Unlock()
	if online && !pending { // back within the grace period: others never saw them leave
		h.publishPresence(ctx, c.user, "online")
	}
}

func (h *Hub) userDisconnected(ctx context.Context, c *client) {
	offline, err := h.Presence.Disconnect(ctx, c.user, c.sock.Conn().ID)
	if err != nil || !offline {
		return
	}
	user := c.user
	h.mu.Lock()
	defer h.mu.Unlock()
	if old := h.offline[user.ID]; old != nil {
		old.Stop()
	}
	h.offline[user.ID] = time.AfterFunc(h.cfg.PresenceGrace, func() {
		h.mu.Lock()
		delete(h.offline, user.ID)
		h.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), h.cfg.SendTimeout)
		defer cancel()
		if on, err := h.Presence.IsOnline(ctx, user.ID); err == nil && !on {
			h.publishPresence(ctx, user, "offline")
		}
	})
}

func (h *Hub) publishPresence(ctx context.Context, u model.User, status string) {
	data, _ := json.Marshal(presenceData(u, status))
	if _, err := h.Broker.Publish(ctx, broker.Event{Kind: broker.KindPresence, Data: data}, false); err != nil {
		h.Log.Warn("presence publish failed", "err", err)
	}
}

// encodeEvent turns a bus event into the Socket.IO packet clients receive. Logged
// events carry their offset as the last argument: that is how socket.io-client
// learns the offset it presents when it recovers.
func encodeEvent(ev broker.Event) (string, error) {
	if ev.Offset != "" {
		return socketio.EncodeEvent(ev.Kind, ev.Data, ev.Offset)
	}
	return socketio.EncodeEvent(ev.Kind, ev.Data)
}

// deliver fans bus events out to the local clients they concern. It is called in
// bus order and never blocks: a client whose queue is full is dropped. Each client
// gets its events of one call queued together, so they leave in one write: under
// load a bus read brings many events, and a write per event per socket would cost
// a system call each.
func (h *Hub) deliver(evs []broker.Event) {
	if len(evs) == 1 {
		h.deliverOne(evs[0])
		return
	}
	batches := map[*client][]heldPacket{}
	var order []*client // clients in first-target order, for a stable send order
	for _, ev := range evs {
		packet, ok := h.prepare(ev)
		if !ok {
			continue
		}
		h.mu.RLock()
		h.eachTarget(ev, func(c *client) {
			b, seen := batches[c]
			if !seen {
				order = append(order, c)
			}
			batches[c] = append(b, heldPacket{ev.Offset, packet})
		})
		h.mu.RUnlock()
	}
	for _, c := range order {
		b := batches[c]
		h.countSend(c.send(b...), len(b))
	}
}

// deliverOne is deliver for a single event, without the grouping.
func (h *Hub) deliverOne(ev broker.Event) {
	packet, ok := h.prepare(ev)
	if !ok {
		return
	}
	h.mu.RLock()
	var targets []*client
	h.eachTarget(ev, func(c *client) { targets = append(targets, c) })
	h.mu.RUnlock()
	for _, c := range targets {
		h.countSend(c.send(heldPacket{ev.Offset, packet}), 1)
	}
}

// prepare records a logged event's offset as the latest delivered (before its
// targets are chosen, see Connect), drops the online snapshot on a presence change,
// and encodes the event once, down to the Engine.IO packet, for all its targets.
func (h *Hub) prepare(ev broker.Event) (string, bool) {
	if ev.Offset != "" {
		h.busOffset.Store(&ev.Offset)
	}
	h.online.notePresence(ev)
	packet, err := encodeEvent(ev)
	if err != nil {
		h.Log.Error("encoding event", "kind", ev.Kind, "err", err)
		return "", false
	}
	return socketio.Prepare(packet), true
}

// eachTarget calls fn for every local client ev goes to. Callers hold h.mu (read).
func (h *Hub) eachTarget(ev broker.Event, fn func(*client)) {
	all := h.clients
	if ev.ChannelID != "" {
		all = h.members[ev.ChannelID]
	}
	for c := range all {
		if ev.Kind == broker.KindTyping && c.user.ID == ev.Origin {
			continue
		}
		fn(c)
	}
}

func (h *Hub) countSend(err error, packets int) {
	switch {
	case err == nil:
		h.Metrics.Deliveries.Add(float64(packets))
	case errors.Is(err, engineio.ErrSlowConsumer):
		h.Metrics.SlowDropped.Inc()
	}
}
