package leader

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/quibly/quibly/app/internal/redisx"
)

var _ Elector = (*Redis)(nil)

// RedisConfig configures the Redis elector.
type RedisConfig struct {
	// KeyPrefix namespaces the keys (e.g. "quibly:"); no braces.
	KeyPrefix string
	// Name tells elections apart under one prefix (default "batch-writer").
	Name string
	// NodeID is written into the lease, so an operator can see who leads.
	NodeID string
	// Lease is how long leadership lasts without renewal (default 10 s): a crashed
	// leader is replaced within Lease plus RetryEvery.
	Lease time.Duration
	// RenewEvery is how often the leader renews (default Lease/3).
	RenewEvery time.Duration
	// SafetyMargin is how long before the lease could expire the leader stops
	// leading when it could not renew (default Lease/5). lead must return within
	// it after its context is cancelled, or two leaders may overlap.
	SafetyMargin time.Duration
	// RetryEvery is how often a follower tries to take the lease (default Lease/10).
	RetryEvery time.Duration
	// Log receives leadership changes; slog.Default when nil.
	Log *slog.Logger
}

// Redis elects one leader through a lease in Redis: SET NX PX with a random token,
// renewed by compare-and-PEXPIRE, released by compare-and-DEL (on Resign, when Run's
// context ends, and when lead returns).
//
// lead's context is cancelled at once when a renewal finds the lease taken or gone,
// and SafetyMargin before the lease could expire when renewals keep failing, so a
// Redis blip shorter than about Lease-RenewEvery-SafetyMargin is survived.
//
// If Redis loses the lease (restart without persistence), the old leader notices at
// its next renewal. So that a new leader cannot start meanwhile, the lease may only
// be taken once Redis has known the election for a full Lease: after a data loss no
// one leads for one Lease. (This also delays the very first election by one Lease.)
// A failover to a replica that missed the last renewal can shorten the lease by up
// to RenewEvery; keep SafetyMargin above the replication lag.
type Redis struct {
	client redis.UniversalClient
	cfg    RedisConfig
	log    *slog.Logger

	leaseKey, sinceKey string

	leading atomic.Bool

	mu       sync.Mutex
	running  bool
	resigned bool
	resignCh chan struct{} // closed by the first Resign
	termDone chan struct{} // closed when the current term has ended and been released
}

// withDefaults fills the fields left zero that have a default.
func (c RedisConfig) withDefaults() RedisConfig {
	if c.Name == "" {
		c.Name = "batch-writer"
	}
	if c.Lease == 0 {
		c.Lease = 10 * time.Second
	}
	if c.RenewEvery == 0 {
		c.RenewEvery = c.Lease / 3
	}
	if c.SafetyMargin == 0 {
		c.SafetyMargin = c.Lease / 5
	}
	if c.RetryEvery == 0 {
		c.RetryEvery = c.Lease / 10
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return c
}

// Validate rejects impossible values.
func (c RedisConfig) Validate() error {
	if err := redisx.ValidPrefix(c.KeyPrefix); err != nil {
		return fmt.Errorf("leader: %w", err)
	}
	if c.Lease < 10*time.Millisecond || c.RenewEvery <= 0 || c.SafetyMargin <= 0 || c.RetryEvery <= 0 ||
		c.RenewEvery+c.SafetyMargin >= c.Lease {
		return errors.New("leader: need Lease >= 10ms and RenewEvery + SafetyMargin < Lease, all positive")
	}
	return nil
}

// NewRedis returns an elector on client. The client is shared and stays open.
func NewRedis(cfg RedisConfig, client redis.UniversalClient) (*Redis, error) {
	if client == nil {
		return nil, errors.New("leader: a Redis client is required")
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Redis{
		client: client, cfg: cfg, log: cfg.Log,
		leaseKey: redisx.Key(cfg.KeyPrefix, "leader:"+cfg.Name, "lease"),
		sinceKey: redisx.Key(cfg.KeyPrefix, "leader:"+cfg.Name, "since"),
		resignCh: make(chan struct{}),
	}, nil
}

// acquireScript takes the lease when it is free and Redis has known the election
// for a full lease. Returns 1 when taken, 0 when held by someone, -1 when waiting.
// KEYS: lease, since. ARGV: token, lease ms.
var acquireScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local since = redis.call('GET', KEYS[2])
if not since then
  redis.call('SET', KEYS[2], now)
  return -1
end
if now - tonumber(since) < tonumber(ARGV[2]) then return -1 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

// renewScript extends the lease if it is still ours. KEYS: lease. ARGV: token, ms.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// releaseScript drops the lease if it is still ours. KEYS: lease. ARGV: token.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

func newToken(node string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return node + "/" + hex.EncodeToString(b[:])
}

// Run campaigns until ctx ends or Resign is called, calling lead each time
// leadership is won. It returns nil then; it never returns early on Redis errors,
// which it logs and retries.
func (e *Redis) Run(ctx context.Context, lead func(ctx context.Context)) error {
	e.mu.Lock()
	if e.running {
		e.mu.Unlock()
		return errors.New("leader: Run is already running")
	}
	e.running = true
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.running = false
		e.mu.Unlock()
	}()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-e.resignCh:
			return nil
		default:
		}
		token := newToken(e.cfg.NodeID)
		sent := time.Now()
		won, err := e.tryAcquire(ctx, token)
		switch {
		case err != nil && ctx.Err() == nil:
			failures++
			if failures == 1 || failures%30 == 0 {
				e.log.Warn("leader: campaigning failed, retrying", "attempts", failures, "err", err)
			}
		case won:
			failures = 0
			e.term(ctx, token, sent, lead)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-e.resignCh:
			return nil
		case <-time.After(e.cfg.RetryEvery):
		}
	}
}

func (e *Redis) tryAcquire(ctx context.Context, token string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Lease)
	defer cancel()
	n, err := acquireScript.Run(ctx, e.client, []string{e.leaseKey, e.sinceKey}, token, e.cfg.Lease.Milliseconds()).Int()
	return n == 1, err
}

// term runs one leadership term: lead in its own goroutine, renewals here. The lease
// counts from before the command that took or renewed it was sent, so the local
// deadline is never later than Redis' expiry.
func (e *Redis) term(ctx context.Context, token string, sent time.Time, lead func(ctx context.Context)) {
	leadCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	termDone := make(chan struct{})
	e.mu.Lock()
	e.termDone = termDone
	e.mu.Unlock()
	e.leading.Store(true)
	e.log.Info("leader: leadership won", "election", e.cfg.Name, "node", e.cfg.NodeID)
	go func() {
		defer close(done)
		lead(leadCtx)
	}()

	stop := func(reason string) {
		e.leading.Store(false)
		cancel()
		e.log.Info("leader: leadership ends", "election", e.cfg.Name, "reason", reason)
	}
	deadline := sent.Add(e.cfg.Lease - e.cfg.SafetyMargin)
	renewAt := time.NewTimer(e.cfg.RenewEvery)
	expire := time.NewTimer(time.Until(deadline))
	defer renewAt.Stop()
	defer expire.Stop()
	holding := true
loop:
	for {
		select {
		case <-ctx.Done():
			stop("shutting down")
			break loop
		case <-e.resignCh:
			stop("resigned")
			break loop
		case <-done:
			stop("lead returned")
			break loop
		case <-expire.C:
			stop("could not renew the lease in time")
			break loop
		case <-renewAt.C:
			sentAt := time.Now()
			ok, err := e.renew(ctx, token, time.Until(deadline))
			switch {
			case err == nil && ok:
				deadline = sentAt.Add(e.cfg.Lease - e.cfg.SafetyMargin)
				expire.Reset(time.Until(deadline))
				renewAt.Reset(e.cfg.RenewEvery)
			case err == nil:
				holding = false
				stop("the lease was lost (taken over or Redis lost it)")
				break loop
			default:
				if ctx.Err() == nil {
					e.log.Warn("leader: renewing the lease failed, retrying", "err", err, "until", deadline.Format(time.RFC3339Nano))
				}
				renewAt.Reset(min(e.cfg.RenewEvery, e.cfg.SafetyMargin) / 2)
			}
		}
	}
	<-done
	if holding {
		// Free the lease at once so another node takes over without waiting it out.
		relCtx, relCancel := context.WithTimeout(context.Background(), e.cfg.RenewEvery)
		if err := releaseScript.Run(relCtx, e.client, []string{e.leaseKey}, token).Err(); err != nil {
			e.log.Warn("leader: releasing the lease failed; it expires by itself", "err", err)
		}
		relCancel()
	}
	e.mu.Lock()
	e.termDone = nil
	e.mu.Unlock()
	close(termDone)
}

func (e *Redis) renew(ctx context.Context, token string, left time.Duration) (bool, error) {
	if left <= 0 {
		return false, context.DeadlineExceeded
	}
	ctx, cancel := context.WithTimeout(ctx, left)
	defer cancel()
	n, err := renewScript.Run(ctx, e.client, []string{e.leaseKey}, token, e.cfg.Lease.Milliseconds()).Int()
	return n == 1, err
}

// IsLeader reports whether lead is running under a lease this node holds. It turns
// false the moment lead's context is cancelled.
func (e *Redis) IsLeader() bool { return e.leading.Load() }

// Resign ends leadership at once: lead's context is cancelled, and once lead has
// returned the lease is released so another node takes over immediately. The
// elector then stops campaigning for good and Run returns: Resign is for shutdown.
// It waits (up to ctx) for the release.
func (e *Redis) Resign(ctx context.Context) error {
	e.mu.Lock()
	if !e.resigned {
		e.resigned = true
		close(e.resignCh)
	}
	termDone := e.termDone
	e.mu.Unlock()
	if termDone == nil {
		return nil
	}
	select {
	case <-termDone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("leader: resigning: lead did not return in time: %w", ctx.Err())
	}
}

// Ping reports whether Redis answers.
func (e *Redis) Ping(ctx context.Context) error { return e.client.Ping(ctx).Err() }
