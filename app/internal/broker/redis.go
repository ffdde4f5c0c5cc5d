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
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/quibly/quibly/app/internal/redisx"
	"github.com/quibly/quibly/app/internal/retry"
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

// channelKeys are a channel's order keys: its clock, its slots (ids in order) and
// their state ("d<deadline ms>" while reserved, "e<event>" once committed).
func (r *Redis) channelKeys(channelID string) (clock, slots, state string) {
	return redisx.Key(r.cfg.KeyPrefix, "bus", "clock:"+channelID),
		redisx.Key(r.cfg.KeyPrefix, "bus", "slots:"+channelID),
		redisx.Key(r.cfg.KeyPrefix, "bus", "slot-state:"+channelID)
}

// Reserve implements Broker: one script call.
func (r *Redis) Reserve(ctx context.Context, channelID string) (Slot, error) {
	if r.isClosed() {
		return Slot{}, errors.New("broker: closed")
	}
	clockKey, slots, state := r.channelKeys(channelID)
	tail := slotID(clock{})[19:] // the variant and random part of a fresh UUIDv7
	res, err := reserveScript.Run(ctx, r.client, []string{r.streamKey, r.epochKey, r.seqKey, clockKey, slots, state, r.pendingKey},
		channelID, tail, r.cfg.Hold.Milliseconds()).StringSlice()
	if err != nil {
		return Slot{}, fmt.Errorf("broker: reserving a message slot: %w", err)
	}
	if len(res) != 2 {
		return Slot{}, fmt.Errorf("broker: reserve script returned %d values", len(res))
	}
	ms, err := strconv.ParseInt(res[1], 10, 64)
	if err != nil {
		return Slot{}, fmt.Errorf("broker: reserve script returned time %q", res[1])
	}
	return Slot{ChannelID: channelID, ID: res[0], TS: ms}, nil
}

// Commit implements Broker: one script call.
func (r *Redis) Commit(ctx context.Context, s Slot, ev Event) (bool, error) {
	if r.isClosed() {
		return false, errors.New("broker: closed")
	}
	ev.ChannelID, ev.Offset = s.ChannelID, ""
	payload, err := json.Marshal(ev)
	if err != nil {
		return false, fmt.Errorf("broker: encoding event: %w", err)
	}
	late, err := r.release(ctx, s.ChannelID, s.ID, string(payload))
	if err != nil {
		return false, fmt.Errorf("broker: committing message %s: %w", s.ID, err)
	}
	return late, nil
}

// Cancel implements Broker: one script call.
func (r *Redis) Cancel(ctx context.Context, s Slot) error {
	if _, err := r.release(ctx, s.ChannelID, s.ID, ""); err != nil {
		return fmt.Errorf("broker: cancelling message slot %s: %w", s.ID, err)
	}
	return nil
}

func (r *Redis) release(ctx context.Context, channelID, slotID, payload string) (bool, error) {
	_, slots, state := r.channelKeys(channelID)
	late, err := releaseScript.Run(ctx, r.client, []string{r.streamKey, r.epochKey, r.seqKey, slots, state, r.pendingKey},
		channelID, slotID, payload, newEpoch(), r.cfg.MaxLogLength, r.cfg.Window.Milliseconds()).Int()
	return late == 1, err
}

// sweep gives up the expired slots of every channel that has slots, so that the
// messages behind a slot whose node died are delivered.
func (r *Redis) sweep(ctx context.Context) error {
	channels, err := r.client.SMembers(ctx, r.pendingKey).Result()
	if err != nil {
		return err
	}
	for _, ch := range channels {
		if _, err := r.release(ctx, ch, "", ""); err != nil {
			return err
		}
	}
	return nil
}

func (r *Redis) sweepLoop(ctx context.Context) {
	t := time.NewTicker(max(r.cfg.Hold/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			opCtx, cancel := context.WithTimeout(ctx, r.cfg.OpTimeout)
			if err := r.sweep(opCtx); err != nil && ctx.Err() == nil {
				r.log.Warn("broker: giving up expired message slots failed; retrying", "err", err)
			}
			cancel()
		}
	}
}

// position is where an entry sits in the log; its offset form is "epoch:seq:id".
type position struct {
	epoch string
	seq   uint64
	id    string
}

func (p position) offset() string {
	return p.epoch + ":" + strconv.FormatUint(p.seq, 10) + ":" + p.id
}

func parseOffset(offset string) (position, bool) {
	parts := strings.Split(offset, ":")
	if len(parts) != 3 || parts[0] == "" {
		return position{}, false
	}
	seq, err := strconv.ParseUint(parts[1], 10, 64)
	if err != nil || !validStreamID(parts[2]) {
		return position{}, false
	}
	return position{epoch: parts[0], seq: seq, id: parts[2]}, true
}

func validStreamID(s string) bool {
	a, b, found := strings.Cut(s, "-")
	if !found {
		return false
	}
	_, err1 := strconv.ParseUint(a, 10, 64)
	_, err2 := strconv.ParseUint(b, 10, 64)
	return err1 == nil && err2 == nil
}

// streamIDMillis is the Redis time (ms) at which an entry was added.
func streamIDMillis(id string) int64 {
	a, _, _ := strings.Cut(id, "-")
	ms, _ := strconv.ParseInt(a, 10, 64)
	return ms
}

// decodeEntry turns a stream entry into an event carrying its offset.
func decodeEntry(m redis.XMessage) (Event, position, error) {
	raw, _ := m.Values[fieldEvent].(string)
	epoch, _ := m.Values[fieldEpoch].(string)
	seqStr, _ := m.Values[fieldSeq].(string)
	seq, err := strconv.ParseUint(seqStr, 10, 64)
	if err != nil || epoch == "" {
		return Event{}, position{}, fmt.Errorf("broker: log entry %s lacks epoch or sequence", m.ID)
	}
	var ev Event
	if err := json.Unmarshal([]byte(raw), &ev); err != nil {
		return Event{}, position{}, fmt.Errorf("broker: log entry %s: %w", m.ID, err)
	}
	pos := position{epoch: epoch, seq: seq, id: m.ID}
	ev.Offset = pos.offset()
	return ev, pos, nil
}

// Since pages through the log after offset. The offset is covered when its epoch is
// the current one and the entries after it carry the next sequence numbers without
// a hole (none trimmed or lost), the first of them still within the window;
// otherwise ErrOffsetExpired.
func (r *Redis) Since(ctx context.Context, offset string, channels []string) ([]Event, error) {
	after, ok := parseOffset(offset)
	if !ok {
		return nil, ErrOffsetExpired
	}
	want := make(map[string]bool, len(channels))
	for _, c := range channels {
		want[c] = true
	}
	var out []Event
	cursor, wantSeq := after.id, after.seq+1
	for first := true; ; first = false {
		var (
			epochCmd, seqCmd *redis.StringCmd
			rangeCmd         *redis.XMessageSliceCmd
			timeCmd          *redis.TimeCmd
		)
		// One MULTI, so epoch, sequence and entries describe the same moment.
		_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
			epochCmd = p.Get(ctx, r.epochKey)
			seqCmd = p.Get(ctx, r.seqKey)
			rangeCmd = p.XRangeN(ctx, r.streamKey, "("+cursor, "+", r.cfg.ReadBatch)
			timeCmd = p.Time(ctx)
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("broker: reading the recovery log: %w", err)
		}
		epoch, err := epochCmd.Result()
		if errors.Is(err, redis.Nil) || epoch != after.epoch {
			return nil, ErrOffsetExpired
		}
		lastSeq, err := seqCmd.Uint64()
		if err != nil {
			return nil, ErrOffsetExpired // epoch without sequence: a damaged log
		}
		if lastSeq < after.seq {
			return nil, ErrOffsetExpired // an offset this log never handed out
		}
		entries := rangeCmd.Val()
		if first && len(entries) == 0 && lastSeq != after.seq {
			return nil, ErrOffsetExpired // later entries exist but not after this id
		}
		if first && len(entries) > 0 {
			// The memory broker drops entries older than the window; so must we, even
			// before the lazy trimming of the next publish has removed them.
			now, _ := timeCmd.Result()
			if streamIDMillis(entries[0].ID) < now.UnixMilli()-r.cfg.Window.Milliseconds() {
				return nil, ErrOffsetExpired
			}
		}
		for _, m := range entries {
			ev, pos, err := decodeEntry(m)
			if err != nil {
				return nil, err
			}
			if pos.epoch != after.epoch || pos.seq != wantSeq {
				return nil, ErrOffsetExpired // a hole: trimmed or lost entries
			}
			wantSeq++
			if want[ev.ChannelID] {
				out = append(out, ev)
			}
		}
		if int64(len(entries)) < r.cfg.ReadBatch {
			return out, nil
		}
		cursor = entries[len(entries)-1].ID
	}
}

// Subscribe starts one reader that calls fn for every event until ctx ends or the
// broker is closed. It returns once the reader's start position is fixed: every
// event published after Subscribe returns is delivered. The reader survives dropped
// connections and Redis restarts: it retries with backoff and resumes after the last
// entry it delivered, so logged events published meanwhile are not missed.
func (r *Redis) Subscribe(ctx context.Context, fn func([]Event)) error {
	if fn == nil {
		return errors.New("broker: Subscribe needs a function")
	}
	opCtx, cancel := context.WithTimeout(ctx, r.cfg.OpTimeout)
	defer cancel()
	tail, err := r.client.XRevRangeN(opCtx, r.streamKey, "+", "-", 1).Result()
	if err != nil {
		return fmt.Errorf("broker: subscribing: %w", err)
	}
	s := &subscription{r: r, fn: fn, lastID: "0-0"}
	if len(tail) == 1 {
		if _, pos, err := decodeEntry(tail[0]); err == nil {
			s.lastID, s.last = pos.id, pos
		} else {
			s.lastID = tail[0].ID
		}
	}

	ctx, stop := context.WithCancel(ctx)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		stop()
		return errors.New("broker: closed")
	}
	id := r.nextID
	r.nextID++
	r.subs[id] = stop
	r.mu.Unlock()
	unregister := func() {
		r.mu.Lock()
		delete(r.subs, id)
		r.mu.Unlock()
	}

	// Wait for the SSUBSCRIBE confirmation, so ephemeral events published from now
	// on arrive.
	ps := r.client.SSubscribe(ctx, r.pubsubChannel)
	if _, err := ps.Receive(opCtx); err != nil {
		_ = ps.Close()
		stop()
		unregister()
		return fmt.Errorf("broker: subscribing to live events: %w", err)
	}
	r.wg.Add(3)
	go func() {
		defer r.wg.Done()
		defer unregister()
		defer stop()
		s.readLog(ctx)
	}()
	go func() {
		defer r.wg.Done()
		r.sweepLoop(ctx)
	}()
	go func() {
		defer r.wg.Done()
		s.readLive(ctx, ps)
	}()
	return nil
}

// subscription is one Subscribe call: a log reader and a pub/sub reader that take
// turns calling fn.
type subscription struct {
	r  *Redis
	fn func([]Event)

	deliverMu sync.Mutex
	lastID    string   // stream id to read after
	last      position // last log entry seen; zero before the first
}

func (s *subscription) deliver(ctx context.Context, evs []Event) bool {
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()
	if ctx.Err() != nil {
		return false
	}
	if len(evs) > 0 {
		s.fn(evs)
	}
	return true
}

// readLog is the delivery loop: one XREAD BLOCK at a time, up to ReadBatch entries
// each, and no other round trip per event.
func (s *subscription) readLog(ctx context.Context) {
	r := s.r
	failures := 0
	// From 100 ms to 5 s with jitter, so a restarted Redis is not stormed by every node.
	wait := retry.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: true}
	for ctx.Err() == nil {
		if failures > 0 {
			if !retry.Sleep(ctx, wait.Next()) {
				return
			}
		}
		res, err := r.client.XRead(ctx, &redis.XReadArgs{
			Streams: []string{r.streamKey, s.lastID},
			Count:   r.cfg.ReadBatch,
			Block:   r.cfg.BlockTime,
		}).Result()
		if errors.Is(err, redis.Nil) {
			failures = 0
			wait.Reset()
			continue // nothing new within BlockTime
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			r.log.Warn("broker: reading the log failed, retrying", "attempt", failures, "err", err)
			continue
		}
		if failures > 0 {
			r.log.Info("broker: reading the log again", "after", s.lastID)
			failures = 0
			wait.Reset()
		}
		for _, stream := range res {
			batch := make([]Event, 0, len(stream.Messages))
			for _, m := range stream.Messages {
				s.lastID = m.ID
				ev, pos, err := decodeEntry(m)
				if err != nil {
					r.log.Error("broker: skipping an undecodable log entry", "err", err)
					continue
				}
				s.checkSequence(ctx, pos)
				batch = append(batch, ev)
			}
			if !s.deliver(ctx, batch) {
				return
			}
		}
	}
}

// checkSequence compares an entry with the one before it. A new epoch means a new
// log (Redis lost its data and a publish started over). Within one epoch the
// sequence must grow by one: if it went back, Redis lost entries this node had
// already delivered (a failover to a replica that missed them), and the epoch is
// rotated so that offsets from before can no longer be replayed with a hole; if it
// jumped ahead, this reader fell behind the trimming and its clients missed events.
func (s *subscription) checkSequence(ctx context.Context, pos position) {
	prev := s.last
	s.last = pos
	if prev.epoch != pos.epoch || pos.seq == prev.seq+1 {
		return
	}
	r := s.r
	if pos.seq > prev.seq {
		r.log.Error("broker: this node fell behind the recovery log and skipped events; raise MaxLogLength",
			"skipped", pos.seq-prev.seq-1)
		return
	}
	r.log.Warn("broker: the recovery log lost entries (Redis failed over or restarted); invalidating older offsets",
		"delivered_seq", prev.seq, "now_seq", pos.seq)
	opCtx, cancel := context.WithTimeout(ctx, r.cfg.OpTimeout)
	defer cancel()
	if err := rotateScript.Run(opCtx, r.client, []string{r.epochKey}, pos.epoch, newEpoch()).Err(); err != nil {
		r.log.Error("broker: could not rotate the log epoch after a loss", "err", err)
	}
}

// readLive delivers ephemeral events. go-redis' PubSub resubscribes by itself after
// a dropped connection; what was published meanwhile is lost, which is acceptable
// for typing and presence.
func (s *subscription) readLive(ctx context.Context, ps *redis.PubSub) {
	defer ps.Close()
	ch := ps.Channel(redis.WithChannelSize(1024))
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			var ev Event
			if err := json.Unmarshal([]byte(msg.Payload), &ev); err != nil {
				s.r.log.Error("broker: skipping an undecodable live event", "err", err)
				continue
			}
			ev.Offset = ""
			if !s.deliver(ctx, []Event{ev}) {
				return
			}
		}
	}
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
