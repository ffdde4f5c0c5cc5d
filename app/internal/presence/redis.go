package presence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/redisx"
)

var (
	_ Tracker = (*Redis)(nil)
	_ Sweeper = (*Redis)(nil)
)

// RedisConfig configures the Redis presence tracker.
type RedisConfig struct {
	// KeyPrefix namespaces every key (e.g. "quibly:"); no braces.
	KeyPrefix string
	// NodeID names this node (SERVER_ID). A random suffix is added per process, so
	// a node restarted under the same name never inherits its predecessor's entries.
	NodeID string
	// HeartbeatTTL is how long a node counts as alive after its last heartbeat
	// (default 15 s): a crashed node's users go offline within this time.
	HeartbeatTTL time.Duration
	// HeartbeatEvery is how often the heartbeat is renewed (default HeartbeatTTL/3).
	HeartbeatEvery time.Duration
	// OpTimeout bounds the tracker's own calls: heartbeats and Close (default 5 s).
	OpTimeout time.Duration
	// Log receives heartbeat failures; slog.Default when nil.
	Log *slog.Logger
}

// Redis tracks presence across every node.
//
// Each process is a node with a heartbeat: a score in a sorted set holding the Redis
// time until which it counts as alive, renewed every HeartbeatEvery by a goroutine
// the constructor starts and Close stops. Connections are recorded per node and per
// user. Connect, Disconnect, IsOnline and Online ignore connections on nodes whose
// heartbeat has lapsed, so a crashed node's users count as offline within
// HeartbeatTTL. Sweep (which the hub calls periodically on every node) removes those
// nodes' entries and returns the users that went offline with them, each user to
// exactly one caller, so it is announced once.
//
// All keys share one hash tag so the scripts can update several atomically in
// cluster mode; presence therefore lives on one shard.
type Redis struct {
	client redis.UniversalClient
	cfg    RedisConfig
	log    *slog.Logger
	node   string // NodeID plus a per-process suffix

	nodesKey, usersKey, nodeConnsKey, userConnsPrefix string

	mu    sync.Mutex
	local map[string]model.User // this node's connections, to re-register after a lapse

	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// withDefaults fills the fields left zero that have a default.
func (c RedisConfig) withDefaults() RedisConfig {
	if c.HeartbeatTTL == 0 {
		c.HeartbeatTTL = 15 * time.Second
	}
	if c.HeartbeatEvery == 0 {
		c.HeartbeatEvery = c.HeartbeatTTL / 3
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = 5 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return c
}

// Validate rejects impossible values.
func (c RedisConfig) Validate() error {
	if err := redisx.ValidPrefix(c.KeyPrefix); err != nil {
		return fmt.Errorf("presence: %w", err)
	}
	if c.NodeID == "" {
		return errors.New("presence: a node id is required")
	}
	if c.HeartbeatTTL < 0 || c.HeartbeatEvery <= 0 || c.HeartbeatEvery >= c.HeartbeatTTL || c.OpTimeout < 0 {
		return errors.New("presence: HeartbeatEvery must be positive and shorter than HeartbeatTTL")
	}
	return nil
}

// NewRedis returns a tracker on client and starts its heartbeat; the first heartbeat
// is sent before it returns, so an unreachable Redis is reported here. The client is
// shared: Close leaves it open.
func NewRedis(cfg RedisConfig, client redis.UniversalClient) (*Redis, error) {
	if client == nil {
		return nil, errors.New("presence: a Redis client is required")
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	node := cfg.NodeID + "/" + hex.EncodeToString(suffix[:])
	tag := "presence"
	r := &Redis{
		client: client, cfg: cfg, log: cfg.Log, node: node,
		nodesKey:        redisx.Key(cfg.KeyPrefix, tag, "nodes"),
		usersKey:        redisx.Key(cfg.KeyPrefix, tag, "users"),
		nodeConnsKey:    redisx.Key(cfg.KeyPrefix, tag, "node:"+node),
		userConnsPrefix: redisx.Key(cfg.KeyPrefix, tag, "user:"),
		local:           map[string]model.User{},
		done:            make(chan struct{}),
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.OpTimeout)
	defer cancel()
	if _, err := r.heartbeat(ctx); err != nil {
		return nil, fmt.Errorf("presence: first heartbeat: %w", err)
	}
	hbCtx, stop := context.WithCancel(context.Background())
	r.stop = stop
	go r.heartbeatLoop(hbCtx)
	return r, nil
}

// Every script starts from Redis' clock, so the nodes' clocks never matter.
const luaPrelude = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function alive(node)
  local until_ = redis.call('ZSCORE', KEYS[1], node)
  return until_ and tonumber(until_) > now
end
local function anyAlive(userConns)
  local nodes = redis.call('HVALS', userConns)
  for _, node in ipairs(nodes) do
    if alive(node) then return true end
  end
  return false
end
`

// heartbeatScript renews this node; it returns 1 when the node was still alive,
// 0 when it had lapsed (or is new), so its connections may have been swept.
// KEYS: nodes. ARGV: node, ttl ms.
var heartbeatScript = redis.NewScript(luaPrelude + `
local was = alive(ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if was then return 1 end
return 0
`)

// connectScript records a connection and tells whether it is the user's only live
// one. KEYS: nodes, node conns, user conns, users.
// ARGV: node, connection field, conn id, user id, user json, ttl ms.
var connectScript = redis.NewScript(luaPrelude + `
redis.call('ZADD', KEYS[1], 'GT', now + tonumber(ARGV[6]), ARGV[1])
local added = redis.call('HSET', KEYS[3], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('HSET', KEYS[4], ARGV[4], ARGV[5])
if added == 0 then return 0 end
local conns = redis.call('HGETALL', KEYS[3])
for i = 1, #conns, 2 do
  if conns[i] ~= ARGV[2] and alive(conns[i + 1]) then return 0 end
end
return 1
`)

// disconnectScript removes a connection and tells whether the user has no live one
// left; then the user and any leftovers on dead nodes are forgotten.
// KEYS: nodes, node conns, user conns, users. ARGV: connection field, conn id, user id.
var disconnectScript = redis.NewScript(luaPrelude + `
local removed = redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[2])
if removed == 0 then return 0 end
if anyAlive(KEYS[3]) then return 0 end
redis.call('DEL', KEYS[3])
redis.call('HDEL', KEYS[4], ARGV[3])
return 1
`)

// isOnlineScript. KEYS: nodes, user conns.
var isOnlineScript = redis.NewScript(luaPrelude + `
if anyAlive(KEYS[2]) then return 1 end
return 0
`)

// onlineScript lists online users as JSON. With no lapsed node (the usual case) that
// is the users hash as it is; otherwise each user is checked.
// KEYS: nodes, users. ARGV: user conns key prefix.
var onlineScript = redis.NewScript(luaPrelude + `
if redis.call('ZCOUNT', KEYS[1], '-inf', now) == 0 then
  return redis.call('HVALS', KEYS[2])
end
local out = {}
local users = redis.call('HGETALL', KEYS[2])
for i = 1, #users, 2 do
  if anyAlive(ARGV[1] .. users[i]) then table.insert(out, users[i + 1]) end
end
return out
`)

// sweepScript removes the entries of nodes whose heartbeat lapsed and returns the
// users that thereby lost their last live connection. Their keys share the hash tag
// of KEYS, so they are in the same slot.
// KEYS: nodes, users. ARGV: node conns key prefix, user conns key prefix, max nodes.
var sweepScript = redis.NewScript(luaPrelude + `
local dead = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[3]))
local touched, order = {}, {}
for _, node in ipairs(dead) do
  local nodeConns = ARGV[1] .. node
  local conns = redis.call('HGETALL', nodeConns)
  for i = 1, #conns, 2 do
    local uid = conns[i + 1]
    if redis.call('HDEL', ARGV[2] .. uid, node .. '|' .. conns[i]) == 1 and not touched[uid] then
      touched[uid] = true
      table.insert(order, uid)
    end
  end
  redis.call('DEL', nodeConns)
  redis.call('ZREM', KEYS[1], node)
end
local gone = {}
for _, uid in ipairs(order) do
  local userConns = ARGV[2] .. uid
  if not anyAlive(userConns) then
    local user = redis.call('HGET', KEYS[2], uid)
    redis.call('DEL', userConns)
    redis.call('HDEL', KEYS[2], uid)
    if user then table.insert(gone, user) end
  end
end
return gone
`)

func (r *Redis) userConnsKey(userID string) string { return r.userConnsPrefix + userID }

// connField names one connection in a user's hash: node and connection id, so two
// nodes can never clash on a connection id.
func (r *Redis) connField(connID string) string { return r.node + "|" + connID }

func (r *Redis) ttlMillis() int64 { return r.cfg.HeartbeatTTL.Milliseconds() }

// Connect records a connection; online is true when it is the user's first live one
// anywhere.
func (r *Redis) Connect(ctx context.Context, u model.User, connID string) (bool, error) {
	raw, err := json.Marshal(model.User{ID: u.ID, Username: u.Username})
	if err != nil {
		return false, fmt.Errorf("presence: encoding user: %w", err)
	}
	r.mu.Lock()
	r.local[connID] = u
	r.mu.Unlock()
	n, err := connectScript.Run(ctx, r.client,
		[]string{r.nodesKey, r.nodeConnsKey, r.userConnsKey(u.ID), r.usersKey},
		r.node, r.connField(connID), connID, u.ID, raw, r.ttlMillis()).Int()
	if err != nil {
		r.mu.Lock()
		delete(r.local, connID)
		r.mu.Unlock()
		return false, fmt.Errorf("presence: recording connection: %w", err)
	}
	return n == 1, nil
}

// Disconnect removes a connection; offline is true when it was the user's last live
// one anywhere.
func (r *Redis) Disconnect(ctx context.Context, u model.User, connID string) (bool, error) {
	r.mu.Lock()
	delete(r.local, connID)
	r.mu.Unlock()
	n, err := disconnectScript.Run(ctx, r.client,
		[]string{r.nodesKey, r.nodeConnsKey, r.userConnsKey(u.ID), r.usersKey},
		r.connField(connID), connID, u.ID).Int()
	if err != nil {
		return false, fmt.Errorf("presence: removing connection: %w", err)
	}
	return n == 1, nil
}

// IsOnline reports whether the user has a connection on a live node.
func (r *Redis) IsOnline(ctx context.Context, userID string) (bool, error) {
	n, err := isOnlineScript.Run(ctx, r.client, []string{r.nodesKey, r.userConnsKey(userID)}).Int()
	if err != nil {
		return false, fmt.Errorf("presence: reading presence: %w", err)
	}
	return n == 1, nil
}

// Online lists users with a connection on a live node, by username.
func (r *Redis) Online(ctx context.Context) ([]model.User, error) {
	raws, err := onlineScript.Run(ctx, r.client, []string{r.nodesKey, r.usersKey}, r.userConnsPrefix).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("presence: listing online users: %w", err)
	}
	users, err := decodeUsers(raws)
	if err != nil {
		return nil, err
	}
	sort.Slice(users, func(i, j int) bool { return users[i].Username < users[j].Username })
	return users, nil
}

// sweepBatch bounds how many dead nodes one Sweep call cleans up, so the script
// stays short; the next call takes the rest.
const sweepBatch = 16

// Sweep removes the entries of nodes whose heartbeat lapsed (crashed or cut off for
// longer than HeartbeatTTL) and returns the users who went offline with them. Each
// such user is returned by exactly one Sweep call across the deployment, so the
// caller should announce them offline. Call it periodically (every few seconds) on
// every node.
func (r *Redis) Sweep(ctx context.Context) ([]model.User, error) {
	raws, err := sweepScript.Run(ctx, r.client, []string{r.nodesKey, r.usersKey},
		redisx.Key(r.cfg.KeyPrefix, "presence", "node:"), r.userConnsPrefix, sweepBatch).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("presence: sweeping dead nodes: %w", err)
	}
	return decodeUsers(raws)
}

func decodeUsers(raws []string) ([]model.User, error) {
	users := make([]model.User, 0, len(raws))
	for _, raw := range raws {
		var u model.User
		if err := json.Unmarshal([]byte(raw), &u); err != nil {
			return nil, fmt.Errorf("presence: stored user is not valid: %w", err)
		}
		users = append(users, u)
	}
	return users, nil
}

// heartbeat renews this node and returns whether it had lapsed.
func (r *Redis) heartbeat(ctx context.Context) (lapsed bool, err error) {
	n, err := heartbeatScript.Run(ctx, r.client, []string{r.nodesKey}, r.node, r.ttlMillis()).Int()
	return n == 0, err
}

func (r *Redis) heartbeatLoop(ctx context.Context) {
	defer close(r.done)
	tick := time.NewTicker(r.cfg.HeartbeatEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		opCtx, cancel := context.WithTimeout(ctx, r.cfg.OpTimeout)
		lapsed, err := r.heartbeat(opCtx)
		if err != nil {
			cancel()
			if ctx.Err() == nil {
				r.log.Warn("presence: heartbeat failed; this node's users count as offline if it lasts", "ttl", r.cfg.HeartbeatTTL, "err", err)
			}
			continue
		}
		if lapsed {
			r.reregister(opCtx)
		}
		cancel()
	}
}

// reregister records this node's connections again after its heartbeat lapsed
// (Redis was unreachable for longer than the TTL, or lost its data): another node
// may have swept them meanwhile.
func (r *Redis) reregister(ctx context.Context) {
	r.mu.Lock()
	conns := make(map[string]model.User, len(r.local))
	for id, u := range r.local {
		conns[id] = u
	}
	r.mu.Unlock()
	if len(conns) == 0 {
		return
	}
	r.log.Warn("presence: this node's heartbeat had lapsed; recording its connections again", "connections", len(conns))
	var err error
	for id, u := range conns {
		r.mu.Lock()
		_, still := r.local[id]
		r.mu.Unlock()
		if !still {
			continue // disconnected meanwhile
		}
		raw, _ := json.Marshal(model.User{ID: u.ID, Username: u.Username})
		err = connectScript.Run(ctx, r.client, []string{r.nodesKey, r.nodeConnsKey, r.userConnsKey(u.ID), r.usersKey},
			r.node, r.connField(id), id, u.ID, raw, r.ttlMillis()).Err()
		if err != nil {
			break
		}
	}
	if err != nil {
		r.log.Warn("presence: recording connections again failed; retrying at the next heartbeat", "err", err)
		// Make the next heartbeat see a lapse again.
		_ = r.client.ZAdd(ctx, r.nodesKey, redis.Z{Score: 0, Member: r.node}).Err()
	}
}

// Ping reports whether Redis answers.
func (r *Redis) Ping(ctx context.Context) error { return r.client.Ping(ctx).Err() }

// Close stops the heartbeat and marks this node dead at once, so that the next Sweep
// anywhere announces whoever is still recorded here as offline. The shared client
// stays open.
func (r *Redis) Close() error {
	var err error
	r.closeOnce.Do(func() {
		r.stop()
		<-r.done
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.OpTimeout)
		defer cancel()
		if e := r.client.ZAdd(ctx, r.nodesKey, redis.Z{Score: 0, Member: r.node}).Err(); e != nil {
			err = fmt.Errorf("presence: marking this node gone: %w", e)
		}
	})
	return err
}
