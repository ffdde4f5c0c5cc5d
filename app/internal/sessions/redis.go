package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/quibly/quibly/app/internal/redisx"
)

var _ Store = (*Redis)(nil)

// RedisConfig configures the Redis session store.
type RedisConfig struct {
	// KeyPrefix namespaces every key (e.g. "quibly:"); no braces.
	KeyPrefix string
}

// Redis keeps sessions and nonces in Redis so that any node can recover a session
// and see a retried send. Every operation touches one key, so keys carry no shared
// hash tag and spread over the shards in cluster mode.
type Redis struct {
	client redis.UniversalClient
	prefix string
}

// NewRedis returns a store on client. The client is shared: Close leaves it open.
func NewRedis(cfg RedisConfig, client redis.UniversalClient) (*Redis, error) {
	if client == nil {
		return nil, errors.New("sessions: a Redis client is required")
	}
	if err := redisx.ValidPrefix(cfg.KeyPrefix); err != nil {
		return nil, fmt.Errorf("sessions: %w", err)
	}
	return &Redis{client: client, prefix: cfg.KeyPrefix}, nil
}

func (r *Redis) sessionKey(pid string) string { return r.prefix + "session:" + pid }

// nonceKey length-prefixes the user id so that no (user, nonce) pair can collide
// with another whatever characters they contain.
func (r *Redis) nonceKey(userID, nonce string) string {
	return r.prefix + "nonce:" + strconv.Itoa(len(userID)) + ":" + userID + ":" + nonce
}

// pending marks a claimed nonce whose send has not finished. An ack is JSON, which
// never equals it.
const pending = "pending"

func (r *Redis) Save(ctx context.Context, pid string, s Session, ttl time.Duration) error {
	if ttl <= 0 {
		return errors.New("sessions: ttl must be positive")
	}
	raw, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("sessions: encoding session: %w", err)
	}
	if err := r.client.Set(ctx, r.sessionKey(pid), raw, ttl).Err(); err != nil {
		return fmt.Errorf("sessions: saving session: %w", err)
	}
	return nil
}

// takeScript returns and deletes a session only when its owner asks: of several nodes
// racing for one pid, exactly one gets it, and another user's pid is left alone.
// KEYS: session. ARGV: user id. Returns the session, or nil.
var takeScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return false end
local ok, s = pcall(cjson.decode, v)
if not ok or s.userId ~= ARGV[1] then return false end
redis.call('DEL', KEYS[1])
return v
`)

// Take implements Store: one script call.
func (r *Redis) Take(ctx context.Context, pid, userID string) (Session, bool, error) {
	raw, err := takeScript.Run(ctx, r.client, []string{r.sessionKey(pid)}, userID).Text()
	if errors.Is(err, redis.Nil) {
		return Session{}, false, nil
	}
	if err != nil {
		return Session{}, false, fmt.Errorf("sessions: taking session: %w", err)
	}
	var s Session
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return Session{}, false, fmt.Errorf("sessions: stored session is not valid: %w", err)
	}
	return s, true, nil
}

// A nonce key holds "pending", "retry:<ack json>" (a failed attempt) or "<ack json>".

// claimScript reserves a nonce (SET NX), or takes over a failed attempt, or returns
// what is there, in one step. KEYS: nonce. ARGV: ttl ms. Returns {1} when claimed
// fresh, {1, attempt} when claimed after a failed attempt, else {0, value}.
var claimScript = redis.NewScript(`
if redis.call('SET', KEYS[1], 'pending', 'NX', 'PX', ARGV[1]) then
  return {1}
end
local v = redis.call('GET', KEYS[1])
if string.sub(v, 1, 6) == 'retry:' then
  redis.call('SET', KEYS[1], 'pending', 'PX', ARGV[1])
  return {1, string.sub(v, 7)}
end
return {0, v}
`)

func (r *Redis) ClaimNonce(ctx context.Context, userID, nonce string, ttl time.Duration) (Ack, bool, error) {
	if ttl <= 0 {
		return Ack{}, false, errors.New("sessions: ttl must be positive")
	}
	res, err := claimScript.Run(ctx, r.client, []string{r.nonceKey(userID, nonce)}, ttl.Milliseconds()).Slice()
	if err != nil {
		return Ack{}, false, fmt.Errorf("sessions: claiming nonce: %w", err)
	}
	claimed := false
	if n, _ := res[0].(int64); n == 1 {
		if len(res) == 1 {
			return Ack{}, true, nil
		}
		claimed = true
	}
	value, _ := res[1].(string)
	if value == pending {
		return Ack{}, false, ErrInFlight
	}
	var ack Ack
	if err := json.Unmarshal([]byte(value), &ack); err != nil {
		return Ack{}, false, fmt.Errorf("sessions: stored ack is not valid: %w", err)
	}
	return ack, claimed, nil
}

func (r *Redis) CompleteNonce(ctx context.Context, userID, nonce string, ack Ack, ttl time.Duration) error {
	if ttl <= 0 {
		return errors.New("sessions: ttl must be positive")
	}
	raw, err := json.Marshal(ack)
	if err != nil {
		return fmt.Errorf("sessions: encoding ack: %w", err)
	}
	if err := r.client.Set(ctx, r.nonceKey(userID, nonce), raw, ttl).Err(); err != nil {
		return fmt.Errorf("sessions: completing nonce: %w", err)
	}
	return nil
}

// releaseScript records a failed attempt only while the claim is still pending, so
// a late release can never erase a completed ack. KEYS: nonce. ARGV: attempt json, ttl ms.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == 'pending' then
  redis.call('SET', KEYS[1], 'retry:' .. ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
`)

func (r *Redis) ReleaseNonce(ctx context.Context, userID, nonce string, attempt Ack, ttl time.Duration) error {
	if ttl <= 0 {
		return errors.New("sessions: ttl must be positive")
	}
	raw, err := json.Marshal(attempt)
	if err != nil {
		return fmt.Errorf("sessions: encoding attempt: %w", err)
	}
	if err := releaseScript.Run(ctx, r.client, []string{r.nonceKey(userID, nonce)}, raw, ttl.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("sessions: releasing nonce: %w", err)
	}
	return nil
}

// reactionScript sets a reaction's state and answers 1 when that changed it; with no
// record, ARGV[2] (the database's state) is the state before.
var reactionScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1]) or ARGV[2]
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
if cur == ARGV[1] then return 0 end
return 1`)

func (r *Redis) SetReaction(ctx context.Context, userID, messageID, emoji string, on, stored bool, ttl time.Duration) (bool, error) {
	flag := func(b bool) string {
		if b {
			return "1"
		}
		return "0"
	}
	n, err := reactionScript.Run(ctx, r.client, []string{r.prefix + "reaction:" + reactionKey(userID, messageID, emoji)},
		flag(on), flag(stored), ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("sessions: set reaction: %w", err)
	}
	return n == 1, nil
}

// Ping reports whether Redis answers.
func (r *Redis) Ping(ctx context.Context) error { return r.client.Ping(ctx).Err() }

// Close does nothing: the client is shared and closed by its owner.
func (r *Redis) Close() error { return nil }
