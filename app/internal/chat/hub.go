// Package chat is Quibly's application logic on top of Socket.IO: who may join
// which channel, the message path (validate, queue durably, fan out, ack), typing,
// presence, and connection state recovery.
package chat

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quibly/quibly/app/internal/auth"
	"github.com/quibly/quibly/app/internal/broker"
	"github.com/quibly/quibly/app/internal/limit"
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
	// Recheck is how often the channels with sockets here are checked against the
	// store, for a change whose event never made it into the channel's order.
	Recheck time.Duration
}

// withDefaults fills the fields left zero that have a default.
func (c Config) withDefaults() Config {
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
	if c.Recheck <= 0 {
		c.Recheck = time.Minute
	}
	return c
}

// Validate rejects impossible values (the ones without a default must be set).
func (c Config) Validate() error {
	if c.MaxMessageChars < 1 || c.MessageRate <= 0 || c.MessageBurst < 1 || c.RecoveryWindow <= 0 {
		return errors.New("chat: message limits, rate and recovery window must be positive")
	}
	if c.MaxConnsPerUser < 0 {
		return errors.New("chat: MaxConnsPerUser must not be negative")
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

	mu      sync.RWMutex
	clients map[*client]struct{}
	members map[string]map[*client]struct{} // channel id → local clients
	// limiters limits messages per user across the user's connections on this node,
	// typists typing events.
	limiters, typists *limit.Keyed
	offline           map[string]*time.Timer // user id → pending offline announcement
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
	cfg = cfg.withDefaults()
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
		limiters:  limit.NewKeyed(limit.Spec{Rate: cfg.MessageRate, Burst: cfg.MessageBurst}),
		typists:   limit.NewKeyed(limit.Spec{Rate: float64(time.Second / typingEvery), Burst: typingBurst}),
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
	// After Subscribe: whatever is logged after the head reaches this node, and moves
	// busOffset on from it.
	hctx, cancel := h.opContext(ctx)
	h.noteHead(hctx)
	cancel()
	h.runBackground(ctx)
	return nil
}

// noteHead sets busOffset to the log's head while this node has delivered no logged
// event, so that a session beginning now recovers from its first moment (before,
// a session saved with no position could never be recovered, and every client of a
// node that had seen no message since it started lost its session with the node).
// A failure is logged; Connect tries again.
func (h *Hub) noteHead(ctx context.Context) {
	head, err := h.Broker.Head(ctx)
	if err != nil {
		h.Log.Warn("reading the recovery log's head failed; sessions recover once it is read", "err", err)
		return
	}
	// An event delivered meanwhile set a later position: keep that one.
	h.busOffset.CompareAndSwap(nil, &head)
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
	// tokenExp is when the token the socket connected with expires; expiry ends the
	// socket then (revoke.go).
	tokenExp time.Time
	expiry   *time.Timer
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

// runBackground starts the hub's maintenance loops; they end with ctx.
func (h *Hub) runBackground(ctx context.Context) {
	go h.every(ctx, liveSessionTTL/3, h.refreshSessions)
	go h.republish(ctx)
	go h.every(ctx, h.cfg.Recheck, h.recheck)
	if sw, ok := h.Presence.(presence.Sweeper); ok {
		go h.every(ctx, h.cfg.PresenceSweep, func(ctx context.Context) { h.sweepPresence(ctx, sw) })
	}
}

func (h *Hub) every(ctx context.Context, d time.Duration, fn func(context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}

// opContext bounds one backend call (store, broker, presence, sessions) made on a
// client's behalf or in the background by SendTimeout, the longest a client waits.
func (h *Hub) opContext(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, h.cfg.SendTimeout)
}
