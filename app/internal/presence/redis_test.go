package presence

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/redisx/redistest"
	"github.com/quibly/quibly/app/internal/testenv"
)

func newRedisTracker(t *testing.T, c redis.UniversalClient, cfg RedisConfig) *Redis {
	t.Helper()
	r, err := NewRedis(cfg, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func TestRedisContract(t *testing.T) {
	runTrackerContract(t, func(t *testing.T) (Tracker, Tracker) {
		c, prefix := redistest.Client(t)
		return newRedisTracker(t, c, RedisConfig{KeyPrefix: prefix, NodeID: "a"}),
			newRedisTracker(t, redistest.NewClient(t, ""), RedisConfig{KeyPrefix: prefix, NodeID: "b"})
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
		{"no client", RedisConfig{NodeID: "a"}, nil},
		{"no node id", RedisConfig{}, c},
		{"brace in prefix", RedisConfig{NodeID: "a", KeyPrefix: "{x}"}, c},
		{"heartbeat not shorter than ttl", RedisConfig{NodeID: "a", HeartbeatTTL: time.Second, HeartbeatEvery: time.Second}, c},
		{"unreachable Redis", RedisConfig{NodeID: "a", OpTimeout: 300 * time.Millisecond}, c},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r, err := NewRedis(tc.cfg, tc.c); err == nil {
				_ = r.Close()
				t.Fatal("accepted")
			}
		})
	}
}

// crash stops a tracker's heartbeat without the clean-up Close does, as a killed
// process would.
func crash(r *Redis) {
	r.closeOnce.Do(func() {
		r.stop()
		<-r.done
	})
}

// waitFor polls cond until it holds or the generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 15*time.Second, what, cond)
}

// TestRedisCrashedNodeGoesOffline: the users of a node that stops heartbeating count
// as offline once its TTL passes, and exactly one Sweep announces them.
func TestRedisCrashedNodeGoesOffline(t *testing.T) {
	c, prefix := redistest.Client(t)
	fast := RedisConfig{KeyPrefix: prefix, HeartbeatTTL: 600 * time.Millisecond, HeartbeatEvery: 200 * time.Millisecond}
	cfgA, cfgB := fast, fast
	cfgA.NodeID, cfgB.NodeID = "a", "b"
	a := newRedisTracker(t, c, cfgA)
	b := newRedisTracker(t, redistest.NewClient(t, ""), cfgB)
	ctx := testCtx(t)
	alice := model.User{ID: "1", Username: "alice"}
	bob := model.User{ID: "2", Username: "bob"}
	_, _ = a.Connect(ctx, alice, "a1")
	_, _ = a.Connect(ctx, bob, "a2")
	_, _ = b.Connect(ctx, bob, "b1") // bob stays online through b

	// Heartbeats keep a alive well past its TTL.
	time.Sleep(3 * fast.HeartbeatTTL / 2)
	if on, _ := b.IsOnline(ctx, alice.ID); !on {
		t.Fatal("a live node's user went offline")
	}
	if gone, err := b.Sweep(ctx); err != nil || len(gone) != 0 {
		t.Fatalf("sweep with every node alive: %v %v", gone, err)
	}

	crash(a)
	waitFor(t, "alice to go offline", func() bool { on, _ := b.IsOnline(ctx, alice.ID); return !on })
	online, err := b.Online(ctx)
	if err != nil || len(online) != 1 || online[0].Username != "bob" {
		t.Fatalf("online after a crashed: %+v %v", online, err)
	}
	gone, err := b.Sweep(ctx)
	if err != nil || len(gone) != 1 || gone[0] != (model.User{ID: "1", Username: "alice"}) {
		t.Fatalf("sweep must report alice only: %+v %v", gone, err)
	}
	if again, err := b.Sweep(ctx); err != nil || len(again) != 0 {
		t.Fatalf("a second sweep reports nobody: %+v %v", again, err)
	}
	if n, _ := c.Exists(ctx, a.nodeConnsKey).Result(); n != 0 {
		t.Fatal("the dead node's connections were not removed")
	}
	// bob disconnecting from b is his last connection now.
	if off, err := b.Disconnect(ctx, bob, "b1"); err != nil || !off {
		t.Fatalf("bob's last disconnect: %v %v", off, err)
	}
}

// TestRedisCloseHandsUsersToSweep: a node shut down with connections still recorded
// is dead at once; the next Sweep elsewhere announces its users.
func TestRedisCloseHandsUsersToSweep(t *testing.T) {
	c, prefix := redistest.Client(t)
	a := newRedisTracker(t, c, RedisConfig{KeyPrefix: prefix, NodeID: "a"})
	b := newRedisTracker(t, c, RedisConfig{KeyPrefix: prefix, NodeID: "b"})
	ctx := testCtx(t)
	_, _ = a.Connect(ctx, model.User{ID: "1", Username: "alice"}, "a1")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if on, _ := b.IsOnline(ctx, "1"); on {
		t.Fatal("a closed node's user is still online")
	}
	if gone, err := b.Sweep(ctx); err != nil || len(gone) != 1 {
		t.Fatalf("sweep after close: %+v %v", gone, err)
	}
}

// TestRedisLapsedNodeRecordsAgain: a node that was cut off long enough to be swept
// records its connections again with its next heartbeat.
func TestRedisLapsedNodeRecordsAgain(t *testing.T) {
	c, prefix := redistest.Client(t)
	a := newRedisTracker(t, c, RedisConfig{KeyPrefix: prefix, NodeID: "a", HeartbeatTTL: 900 * time.Millisecond, HeartbeatEvery: 300 * time.Millisecond})
	b := newRedisTracker(t, c, RedisConfig{KeyPrefix: prefix, NodeID: "b"})
	ctx := testCtx(t)
	_, _ = a.Connect(ctx, model.User{ID: "1", Username: "alice"}, "a1")
	// What another node sees after a's heartbeats failed for longer than the TTL.
	if err := c.ZAdd(ctx, a.nodesKey, redis.Z{Score: 0, Member: a.node}).Err(); err != nil {
		t.Fatal(err)
	}
	if gone, err := b.Sweep(ctx); err != nil || len(gone) != 1 {
		t.Fatalf("sweep of the lapsed node: %+v %v", gone, err)
	}
	waitFor(t, "alice to be recorded again", func() bool { on, _ := b.IsOnline(ctx, "1"); return on })
	if off, err := a.Disconnect(ctx, model.User{ID: "1", Username: "alice"}, "a1"); err != nil || !off {
		t.Fatalf("disconnect after re-recording: %v %v", off, err)
	}
}

// TestRedisRestartedNodeDoesNotInheritConnections: a node restarted under the same
// SERVER_ID is a new node; its predecessor's users still go offline.
func TestRedisRestartedNodeDoesNotInheritConnections(t *testing.T) {
	c, prefix := redistest.Client(t)
	cfg := RedisConfig{KeyPrefix: prefix, NodeID: "server-1", HeartbeatTTL: 600 * time.Millisecond, HeartbeatEvery: 200 * time.Millisecond}
	old := newRedisTracker(t, c, cfg)
	ctx := testCtx(t)
	_, _ = old.Connect(ctx, model.User{ID: "1", Username: "alice"}, "c1")
	crash(old)
	restarted := newRedisTracker(t, c, cfg)
	waitFor(t, "the old process's user to go offline", func() bool { on, _ := restarted.IsOnline(ctx, "1"); return !on })
	if gone, err := restarted.Sweep(ctx); err != nil || len(gone) != 1 {
		t.Fatalf("sweep: %+v %v", gone, err)
	}
}
