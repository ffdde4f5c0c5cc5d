package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/quibly/quibly/app/internal/redisx"
)

var _ Broker = (*Redis)(nil)

// RedisConfig configures the Redis broker.
type RedisConfig struct {
	// KeyPrefix namespaces every key and channel (e.g. "quibly:"); no braces.
	KeyPrefix string
	// Window is how long logged events stay replayable (RECOVERY_WINDOW, 2 min).
	Window time.Duration
	// MaxLogLength bounds the log by count as well (default 100000 entries):
	// trimming is approximate (whole stream nodes), so a few more may stay.
	MaxLogLength int64
	// ReadBatch is how many log entries one XREAD returns at most (default 512).
	ReadBatch int64
	// BlockTime is how long one XREAD waits for new entries (default 1 s). It bounds
	// how long a cancelled Subscribe (and so Close) waits for its reader: go-redis
	// does not interrupt a blocked read when its context is cancelled.
	BlockTime time.Duration
	// OpTimeout bounds each non-blocking call the broker makes on its own (default 5 s).
	OpTimeout time.Duration
	// Hold is how long a reserved slot holds back the later messages of its channel
	// (DefaultHold when 0). Every subscribed node gives up expired slots about four
	// times per Hold, so a node that died holding one delays its channel by at most
	// about 1.25 × Hold.
	Hold time.Duration
	// Log receives reconnects and log losses; slog.Default when nil.
	Log *slog.Logger
}

// Redis is the clustered broker. Logged events go to one Redis Stream, which gives
// every node the same order and is the recovery log at once; each Subscribe reads
// it with XREAD BLOCK from the last entry it delivered, so a dropped connection or
// a Redis restart loses nothing still in the stream. Ephemeral events (typing,
// presence) use sharded pub/sub and may be lost during such a blip.
//
// Offsets are "<epoch>:<seq>:<stream id>" (see position): seq counts the log's entries,
// so a gap in it shows a lost entry. The epoch is a random id kept next to the
// stream; it is replaced whenever the log may have lost entries (a Redis restart
// without persistence, a failover that lost a tail), so an offset from before the
// loss reads as expired instead of silently skipping what was lost.
//
// All keys share one hash tag, so the publish script can touch the stream and the
// epoch atomically in cluster mode; it also means the broker lives on one shard.
type Redis struct {
	client redis.UniversalClient
	cfg    RedisConfig
	log    *slog.Logger

	streamKey, epochKey, seqKey, pubsubChannel string
	// pendingKey is the set of channels with slots not yet delivered.
	pendingKey string

	mu     sync.Mutex
	closed bool
	subs   map[int]context.CancelFunc
	nextID int
	wg     sync.WaitGroup
}

// withDefaults fills the fields left zero that have a default.
func (c RedisConfig) withDefaults() RedisConfig {
	if c.MaxLogLength == 0 {
		c.MaxLogLength = 100_000
	}
	if c.ReadBatch == 0 {
		c.ReadBatch = 512
	}
	if c.BlockTime == 0 {
		c.BlockTime = time.Second
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = 5 * time.Second
	}
	if c.Hold == 0 {
		c.Hold = DefaultHold
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return c
}

// Validate rejects impossible values.
func (c RedisConfig) Validate() error {
	if err := redisx.ValidPrefix(c.KeyPrefix); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	if c.Window <= 0 {
		return errors.New("broker: recovery window must be positive")
	}
	if c.MaxLogLength < 0 || c.ReadBatch < 0 || c.BlockTime < 0 || c.OpTimeout < 0 || c.Hold < 0 {
		return errors.New("broker: MaxLogLength, ReadBatch, BlockTime, OpTimeout and Hold must not be negative")
	}
	return nil
}

// NewRedis returns a broker on client. The client is shared: Close leaves it open.
func NewRedis(cfg RedisConfig, client redis.UniversalClient) (*Redis, error) {
	if client == nil {
		return nil, errors.New("broker: a Redis client is required")
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Redis{
		client: client, cfg: cfg, log: cfg.Log,
		streamKey:     redisx.Key(cfg.KeyPrefix, "bus", "log"),
		epochKey:      redisx.Key(cfg.KeyPrefix, "bus", "epoch"),
		seqKey:        redisx.Key(cfg.KeyPrefix, "bus", "seq"),
		pubsubChannel: redisx.Key(cfg.KeyPrefix, "bus", "live"),
		pendingKey:    redisx.Key(cfg.KeyPrefix, "bus", "pending"),
		subs:          map[int]context.CancelFunc{},
	}, nil
}

// Stream entry fields: the event as JSON, the epoch it was logged under and its
// sequence number within that epoch (1, 2, 3, …). The sequence is what makes a gap
// visible: trimmed or lost entries leave a hole in it.
const (
	fieldEvent = "e"
	fieldEpoch = "p"
	fieldSeq   = "n"
)

// appendLua appends one event to the log and trims it, creating the epoch when the
// log is new (or was lost); it returns {epoch, id, seq}. It expects the keys stream,
// epoch, seq in KEYS[1..3] and reads max length and window (ms) from its arguments.
const appendLua = `
local function append(event, candidate, maxlen, window)
  local epoch = redis.call('GET', KEYS[2])
  if not epoch then
    epoch = candidate
    redis.call('SET', KEYS[2], epoch)
    redis.call('SET', KEYS[3], 0)
  end
  local n = redis.call('INCR', KEYS[3])
  local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'e', event, 'p', epoch, 'n', n)
  local ms = tonumber(string.match(id, '^(%d+)-'))
  local cut = ms - tonumber(window)
  if cut > 0 then
    redis.call('XTRIM', KEYS[1], 'MINID', '~', tostring(cut))
  end
  return {epoch, id, tostring(n)}
end
local function nowms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`

// publishScript appends one event. KEYS: stream, epoch, seq.
// ARGV: event json, candidate epoch, max length, window ms.
var publishScript = redis.NewScript(appendLua + `
return append(ARGV[1], ARGV[2], ARGV[3], ARGV[4])
`)

// reserveScript hands out a channel's next slot: the id's time is Redis' clock, so
// the ids of every node share one clock. It returns {id, ms}.
// KEYS: stream, epoch, seq, clock, slots (zset), state (hash), pending set.
// ARGV: channel, random tail of the id ("xxxx-xxxxxxxxxxxx", variant set), hold ms.
var reserveScript = redis.NewScript(appendLua + `
local now = nowms()
local last = redis.call('HMGET', KEYS[4], 'ms', 'seq')
local ms, seq = now, 0
local lms = tonumber(last[1])
if lms and now <= lms then
  ms, seq = lms, tonumber(last[2]) + 1
  if seq >= 4096 then ms, seq = lms + 1, 0 end
end
redis.call('HSET', KEYS[4], 'ms', ms, 'seq', seq)
redis.call('PEXPIRE', KEYS[4], 86400000)
local id = string.format('%08x-%04x-7%03x-', math.floor(ms / 65536), ms % 65536, seq) .. ARGV[2]
redis.call('ZADD', KEYS[5], 0, id)
redis.call('HSET', KEYS[6], id, 'd' .. (now + tonumber(ARGV[3])))
redis.call('SADD', KEYS[7], ARGV[1])
return {id, tostring(ms)}
`)

// releaseScript settles one slot (commit: its event; cancel: none), then appends the
// channel's committed slots from the head in id order, dropping heads past their
// deadline, until it meets one still waiting. A commit of a slot no longer held is
// appended at once and reported late (1). With an empty slot id it only releases
// (the sweep of given-up slots).
// KEYS: stream, epoch, seq, slots (zset), state (hash), pending set.
// ARGV: channel, slot id, event json (empty to cancel), candidate epoch, max length, window ms.
var releaseScript = redis.NewScript(appendLua + `
local late = 0
if ARGV[2] ~= '' then
  if redis.call('ZSCORE', KEYS[4], ARGV[2]) then
    if ARGV[3] ~= '' then
      redis.call('HSET', KEYS[5], ARGV[2], 'e' .. ARGV[3])
    else
      redis.call('ZREM', KEYS[4], ARGV[2])
      redis.call('HDEL', KEYS[5], ARGV[2])
    end
  elseif ARGV[3] ~= '' then
    append(ARGV[3], ARGV[4], ARGV[5], ARGV[6])
    late = 1
  end
end
local now = nowms()
while true do
  local head = redis.call('ZRANGE', KEYS[4], 0, 0)
  if #head == 0 then
    redis.call('SREM', KEYS[6], ARGV[1])
    break
  end
  local state = redis.call('HGET', KEYS[5], head[1])
  if state and string.sub(state, 1, 1) == 'e' then
    append(string.sub(state, 2), ARGV[4], ARGV[5], ARGV[6])
  elseif state and tonumber(string.sub(state, 2)) > now then
    break
  end
  redis.call('ZREM', KEYS[4], head[1])
  redis.call('HDEL', KEYS[5], head[1])
end
return late
`)

// rotateScript replaces the epoch if it still is the one the caller saw, so that
// several nodes noticing the same loss rotate it once.
// KEYS: epoch. ARGV: epoch seen, new epoch.
var rotateScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
`)

func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Publish logs (when logged) and delivers ev. A logged publish is one script call;
// an ephemeral one is one SPUBLISH.
func (r *Redis) Publish(ctx context.Context, ev Event, logged bool) (string, error) {
	if r.isClosed() {
		return "", errors.New("broker: closed")
	}
	ev.Offset = ""
	payload, err := json.Marshal(ev)
	if err != nil {
		return "", fmt.Errorf("broker: encoding event: %w", err)
	}
	if !logged {
		if err := r.client.SPublish(ctx, r.pubsubChannel, payload).Err(); err != nil {
			return "", fmt.Errorf("broker: publishing %s event: %w", ev.Kind, err)
		}
		return "", nil
	}
	res, err := publishScript.Run(ctx, r.client, []string{r.streamKey, r.epochKey, r.seqKey},
		payload, newEpoch(), r.cfg.MaxLogLength, r.cfg.Window.Milliseconds()).StringSlice()
	if err != nil {
		return "", fmt.Errorf("broker: logging %s event: %w", ev.Kind, err)
	}
	if len(res) != 3 {
		return "", fmt.Errorf("broker: publish script returned %d values", len(res))
	}
	seq, err := strconv.ParseUint(res[2], 10, 64)
	if err != nil {
		return "", fmt.Errorf("broker: publish script returned sequence %q", res[2])
	}
	return position{epoch: res[0], seq: seq, id: res[1]}.offset(), nil
}

// Ping reports whether Redis answers.
func (r *Redis) Ping(ctx context.Context) error { return r.client.Ping(ctx).Err() }

func (r *Redis) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// Close stops publishing and every subscription, and waits for their readers. The
// shared client stays open.
func (r *Redis) Close() error {
	r.mu.Lock()
	r.closed = true
	for _, stop := range r.subs {
		stop()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}
