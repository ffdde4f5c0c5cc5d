package leader

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/quibly/quibly/app/internal/redisx/redistest"
)

// testLease is short so that the tests that wait a lease out stay fast.
const testLease = time.Second

func newRedisElector(t *testing.T, c redis.UniversalClient, prefix, node string) *Redis {
	t.Helper()
	e, err := NewRedis(RedisConfig{KeyPrefix: prefix, NodeID: node, Lease: testLease, RetryEvery: 50 * time.Millisecond}, c)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestRedisContract(t *testing.T) {
	runElectorContract(t, func(t *testing.T) Elector {
		c, prefix := redistest.Client(t)
		return newRedisElector(t, c, prefix, "a")
	})
}

func TestNewRedisValidates(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	for _, tc := range []struct {
		name string
		cfg  RedisConfig
		c    redis.UniversalClient
	}{
		{"no client", RedisConfig{}, nil},
		{"brace in prefix", RedisConfig{KeyPrefix: "{"}, c},
		{"renewal slower than the lease", RedisConfig{Lease: time.Second, RenewEvery: time.Second}, c},
		{"no room for the margin", RedisConfig{Lease: time.Second, RenewEvery: 500 * time.Millisecond, SafetyMargin: 600 * time.Millisecond}, c},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewRedis(tc.cfg, tc.c); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	e, err := NewRedis(RedisConfig{}, c)
	if err != nil || e.cfg.Lease != 10*time.Second || e.cfg.RenewEvery >= e.cfg.Lease-e.cfg.SafetyMargin {
		t.Fatalf("defaults: %+v %v", e, err)
	}
}

// cluster runs electors on one key and records every term, checking that terms never
// overlap.
type cluster struct {
	t       *testing.T
	mu      sync.Mutex
	active  int
	overlap bool
	terms   chan term
}

type term struct {
	node  string
	ended <-chan struct{}
}

func newCluster(t *testing.T) *cluster { return &cluster{t: t, terms: make(chan term, 16)} }

// run starts e.Run; cancel stops it. Each term reports on terms.
func (c *cluster) run(e *Redis, name string) (cancel func(), returned <-chan struct{}) {
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.Run(ctx, func(lctx context.Context) {
			c.mu.Lock()
			c.active++
			if c.active > 1 {
				c.overlap = true
			}
			c.mu.Unlock()
			ended := make(chan struct{})
			c.terms <- term{node: name, ended: ended}
			<-lctx.Done()
			c.mu.Lock()
			c.active--
			c.mu.Unlock()
			close(ended)
		})
	}()
	c.t.Cleanup(func() { stop(); <-done })
	return stop, done
}

func (c *cluster) next(what string) term {
	c.t.Helper()
	select {
	case tm := <-c.terms:
		return tm
	case <-time.After(generous):
		c.t.Fatalf("timed out waiting for %s", what)
		return term{}
	}
}

func (c *cluster) noOverlap() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.overlap {
		c.t.Fatal("two nodes ran lead at the same time")
	}
}

func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(generous):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestRedisOneLeaderAndResignHandsOver: of two electors exactly one leads; when it
// resigns the other takes over well within the lease.
func TestRedisOneLeaderAndResignHandsOver(t *testing.T) {
	c, prefix := redistest.Client(t)
	a := newRedisElector(t, c, prefix, "a")
	b := newRedisElector(t, redistest.NewClient(t, ""), prefix, "b")
	cl := newCluster(t)
	cl.run(a, "a")
	cl.run(b, "b")
	first := cl.next("a first leader")
	time.Sleep(2 * testLease) // several renewals: leadership must stay put
	cl.noOverlap()
	leader, follower := a, b
	if first.node == "b" {
		leader, follower = b, a
	}
	if !leader.IsLeader() || follower.IsLeader() {
		t.Fatalf("IsLeader: leader %v, follower %v", leader.IsLeader(), follower.IsLeader())
	}
	select {
	case tm := <-cl.terms:
		t.Fatalf("%s was elected while %s leads", tm.node, first.node)
	default:
	}

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), generous)
	defer cancel()
	if err := leader.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	wait(t, first.ended, "the resigned term to end")
	second := cl.next("the takeover")
	if second.node == first.node {
		t.Fatal("the resigned node was elected again")
	}
	if took := time.Since(start); took > testLease/2 {
		t.Fatalf("takeover after a resign took %v; the lease (%v) should not be waited out", took, testLease)
	}
	cl.noOverlap()
	if leader.IsLeader() || !follower.IsLeader() {
		t.Fatal("IsLeader did not follow the handover")
	}
}

// TestRedisDeadLeaderIsReplaced: a leader cut off from Redis (it can neither renew
// nor release) stops leading before its lease expires, and the other node takes
// over once it has.
func TestRedisDeadLeaderIsReplaced(t *testing.T) {
	ca, prefix := redistest.Client(t)
	cut := &redistest.Outage{Commands: true}
	ca.AddHook(cut)
	a := newRedisElector(t, ca, prefix, "a")
	b := newRedisElector(t, redistest.NewClient(t, ""), prefix, "b")
	cl := newCluster(t)
	cl.run(a, "a")
	first := cl.next("a elected")
	cl.run(b, "b")
	time.Sleep(testLease / 2)
	cut.Down.Store(true)
	wait(t, first.ended, "the cut-off leader to stop")
	second := cl.next("b to take over")
	if second.node != "b" {
		t.Fatalf("%s took over", second.node)
	}
	cl.noOverlap()
	cut.Down.Store(false)
	time.Sleep(testLease)
	if a.IsLeader() {
		t.Fatal("the old leader came back as leader while b holds the lease")
	}
	cl.noOverlap()
}

// TestRedisSurvivesShortBlip: a Redis outage shorter than the renewal slack does not
// cost leadership.
func TestRedisSurvivesShortBlip(t *testing.T) {
	c, prefix := redistest.Client(t)
	cut := &redistest.Outage{Commands: true}
	c.AddHook(cut)
	e, err := NewRedis(RedisConfig{KeyPrefix: prefix, NodeID: "a", Lease: 3 * time.Second, RetryEvery: 50 * time.Millisecond}, c)
	if err != nil {
		t.Fatal(err)
	}
	cl := newCluster(t)
	cl.run(e, "a")
	tm := cl.next("election")
	cut.Down.Store(true)
	time.Sleep(300 * time.Millisecond)
	cut.Down.Store(false)
	time.Sleep(2 * time.Second) // renewals resume
	select {
	case <-tm.ended:
		t.Fatal("a 300 ms blip ended leadership")
	default:
	}
	if !e.IsLeader() {
		t.Fatal("IsLeader false after a short blip")
	}
}

// TestRedisLostLeaseMovesSafely: Redis losing its data (restart without
// persistence) ends the term at the next renewal, and no one leads again until a
// full lease has passed, so the old term can never overlap a new one.
func TestRedisLostLeaseMovesSafely(t *testing.T) {
	c, prefix := redistest.Client(t)
	a := newRedisElector(t, c, prefix, "a")
	b := newRedisElector(t, redistest.NewClient(t, ""), prefix, "b")
	cl := newCluster(t)
	cl.run(a, "a")
	first := cl.next("a elected")
	cl.run(b, "b")
	ctx, cancel := context.WithTimeout(context.Background(), generous)
	defer cancel()
	if err := c.Del(ctx, a.leaseKey, a.sinceKey).Err(); err != nil {
		t.Fatal(err)
	}
	lost := time.Now()
	wait(t, first.ended, "the term to end once the lease is gone")
	cl.next("a new leader")
	if waited := time.Since(lost); waited < testLease-100*time.Millisecond {
		t.Fatalf("a new leader after %v, before a full lease (%v) since the loss", waited, testLease)
	}
	cl.noOverlap()
}

// TestRedisLeadReturningCampaignsAgain: when lead returns by itself the lease is
// released and the node campaigns again.
func TestRedisLeadReturningCampaignsAgain(t *testing.T) {
	c, prefix := redistest.Client(t)
	e := newRedisElector(t, c, prefix, "a")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var terms atomic.Int32
	again := make(chan struct{})
	go func() {
		_ = e.Run(ctx, func(context.Context) {
			if terms.Add(1) == 2 {
				close(again)
			}
		})
	}()
	wait(t, again, "a second term")
}
