package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/quibly/quibly/app/internal/redisx/redistest"
)

func newRedisBroker(t testing.TB, c redis.UniversalClient, cfg RedisConfig) *Redis {
	t.Helper()
	b, err := NewRedis(cfg, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestRedisContract(t *testing.T) {
	runBrokerContract(t, func(t *testing.T) backend {
		c1, prefix := redistest.Client(t)
		c2 := redistest.NewClient(t, "")
		const window, hold = 300 * time.Millisecond, 400 * time.Millisecond
		cfg := RedisConfig{KeyPrefix: prefix, Window: window, BlockTime: 200 * time.Millisecond, Hold: hold}
		return backend{
			a: newRedisBroker(t, c1, cfg), b: newRedisBroker(t, c2, cfg),
			window: window, hold: hold, advance: time.Sleep,
		}
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
		{"no client", RedisConfig{Window: time.Minute}, nil},
		{"no window", RedisConfig{}, c},
		{"brace in prefix", RedisConfig{KeyPrefix: "a{b}", Window: time.Minute}, c},
		{"negative length", RedisConfig{Window: time.Minute, MaxLogLength: -1}, c},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewRedis(tc.cfg, tc.c); err == nil {
				t.Fatal("config accepted")
			}
		})
	}
}

// TestRedisSubscribeSurvivesDroppedConnection cuts the subscriber off Redis, logs
// events meanwhile, and expects them all, in order, once it is back, followed by
// what is published after the reconnect.
func TestRedisSubscribeSurvivesDroppedConnection(t *testing.T) {
	name := "quibly-test-sub-" + redistest.RandomID()
	subClient, prefix := redistest.NamedClient(t, name)
	cut := &redistest.Outage{}
	subClient.AddHook(cut)
	cfg := RedisConfig{KeyPrefix: prefix, Window: time.Minute, BlockTime: 500 * time.Millisecond}
	node := newRedisBroker(t, subClient, cfg)
	other := newRedisBroker(t, redistest.NewClient(t, ""), cfg)
	ctx := testCtx(t)

	sub := newCollector()
	if err := node.Subscribe(ctx, sub.add); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, other, msg("a", `1`), true)
	sub.wait(t, 1)

	cut.Down.Store(true)
	if n := redistest.KillConnections(t, name); n == 0 {
		t.Fatal("no subscriber connection to kill")
	}
	for _, d := range []string{`2`, `3`, `4`} {
		mustPublish(t, other, msg("a", d), true)
	}
	time.Sleep(300 * time.Millisecond) // let the reader fail at least once
	cut.Down.Store(false)

	mustPublish(t, other, msg("a", `5`), true)
	got := sub.wait(t, 5)
	if want := []string{"1", "2", "3", "4", "5"}; !slices.Equal(dataOf(got), want) {
		t.Fatalf("after reconnect got %v want %v", dataOf(got), want)
	}
	// Ephemeral events flow again once pub/sub has resubscribed; those sent before
	// that may be lost, so keep sending until one arrives.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mustPublish(t, other, Event{Kind: KindTyping, ChannelID: "a", Data: json.RawMessage(`{}`)}, false)
		time.Sleep(50 * time.Millisecond)
		if slices.ContainsFunc(sub.events(), func(e Event) bool { return e.Kind == KindTyping }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("live events did not resume after the reconnect")
		}
	}
}

// TestRedisDataLossInvalidatesOffsets: after Redis loses the log (restart without
// persistence), older offsets must read as expired, never as a clean replay, and
// delivery goes on with the new log.
func TestRedisDataLossInvalidatesOffsets(t *testing.T) {
	name := "quibly-test-sub-" + redistest.RandomID()
	subClient, prefix := redistest.NamedClient(t, name)
	admin := redistest.NewClient(t, "")
	cfg := RedisConfig{KeyPrefix: prefix, Window: time.Minute, BlockTime: 500 * time.Millisecond}
	node := newRedisBroker(t, subClient, cfg)
	other := newRedisBroker(t, admin, cfg)
	ctx := testCtx(t)
	sub := newCollector()
	if err := node.Subscribe(ctx, sub.add); err != nil {
		t.Fatal(err)
	}
	o1 := mustPublish(t, other, msg("a", `1`), true)
	sub.wait(t, 1)

	if err := admin.Del(ctx, node.streamKey, node.epochKey, node.seqKey).Err(); err != nil {
		t.Fatal(err)
	}
	redistest.KillConnections(t, name)
	// Stream ids are milliseconds: a new log started within the millisecond of the
	// lost entry would reuse its id, which the reader has already passed. A real loss
	// (a restart) takes far longer; here the test is fast enough to hit it.
	time.Sleep(2 * time.Millisecond)
	o2 := mustPublish(t, other, msg("a", `2`), true)
	if got := sub.wait(t, 2); string(got[1].Data) != "2" {
		t.Fatalf("delivery after the loss: %v", dataOf(got))
	}
	if _, err := node.Since(ctx, o1, []string{"a"}); !errors.Is(err, ErrOffsetExpired) {
		t.Fatalf("an offset from before the loss must be expired, got %v", err)
	}
	if evs, err := node.Since(ctx, o2, []string{"a"}); err != nil || len(evs) != 0 {
		t.Fatalf("the new log serves its own offsets: %v %v", evs, err)
	}
}

// TestRedisLostTailRotatesEpoch: a failover to a replica that missed the newest
// entries keeps the epoch key. A subscriber that delivered a lost entry notices on
// reconnect and rotates the epoch, so a client holding an older offset is not
// handed a replay with a silent hole.
func TestRedisLostTailRotatesEpoch(t *testing.T) {
	name := "quibly-test-sub-" + redistest.RandomID()
	subClient, prefix := redistest.NamedClient(t, name)
	admin := redistest.NewClient(t, "")
	cfg := RedisConfig{KeyPrefix: prefix, Window: time.Minute, BlockTime: 500 * time.Millisecond}
	node := newRedisBroker(t, subClient, cfg)
	other := newRedisBroker(t, admin, cfg)
	ctx := testCtx(t)
	sub := newCollector()
	if err := node.Subscribe(ctx, sub.add); err != nil {
		t.Fatal(err)
	}
	o1 := mustPublish(t, other, msg("a", `1`), true)
	o2 := mustPublish(t, other, msg("a", `2`), true)
	sub.wait(t, 2)

	// Rebuild the stream with entry 1 only, as a replica that missed entry 2 would have it.
	first, err := admin.XRange(ctx, node.streamKey, "-", "+").Result()
	if err != nil || len(first) != 2 {
		t.Fatalf("log: %v %v", first, err)
	}
	if _, err := admin.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, node.streamKey)
		p.XAdd(ctx, &redis.XAddArgs{Stream: node.streamKey, ID: first[0].ID, Values: first[0].Values})
		p.Set(ctx, node.seqKey, 1, 0)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	redistest.KillConnections(t, name)
	// As in TestRedisDataLossInvalidatesOffsets: an entry added within the millisecond
	// of the lost entry 2 would reuse its stream id, which the reader already passed.
	// A real failover takes far longer than a millisecond.
	time.Sleep(2 * time.Millisecond)
	mustPublish(t, other, msg("a", `3`), true)
	got := sub.wait(t, 3)
	if string(got[2].Data) != "3" {
		t.Fatalf("delivery after failover: %v", dataOf(got))
	}
	for _, off := range []string{o1, o2} {
		if _, err := node.Since(ctx, off, []string{"a"}); !errors.Is(err, ErrOffsetExpired) {
			t.Fatalf("offset %s from before the lost tail must be expired, got %v", off, err)
		}
	}
}

func TestRedisLogBoundedByCount(t *testing.T) {
	c, prefix := redistest.Client(t)
	b := newRedisBroker(t, c, RedisConfig{KeyPrefix: prefix, Window: time.Minute, MaxLogLength: 10})
	ctx := testCtx(t)
	first := mustPublish(t, b, msg("a", `0`), true)
	var last string
	for i := 1; i < 400; i++ {
		last = mustPublish(t, b, msg("a", fmt.Sprint(i)), true)
	}
	n, err := c.XLen(ctx, b.streamKey).Result()
	// Trimming is approximate: whole stream nodes (100 entries by default) go at once.
	if err != nil || n > 10+100 {
		t.Fatalf("log holds %d entries (%v), want about 10", n, err)
	}
	if _, err := b.Since(ctx, first, []string{"a"}); !errors.Is(err, ErrOffsetExpired) {
		t.Fatalf("a trimmed offset must be expired, got %v", err)
	}
	if evs, err := b.Since(ctx, last, []string{"a"}); err != nil || len(evs) != 0 {
		t.Fatalf("the newest offset is covered: %v %v", evs, err)
	}
}

// TestRedisSincePages reads a replay longer than one page.
func TestRedisSincePages(t *testing.T) {
	c, prefix := redistest.Client(t)
	b := newRedisBroker(t, c, RedisConfig{KeyPrefix: prefix, Window: time.Minute, ReadBatch: 7})
	ctx := testCtx(t)
	first := mustPublish(t, b, msg("a", `0`), true)
	var want []string
	for i := 1; i <= 30; i++ {
		ch := "a"
		if i%3 == 0 {
			ch = "b"
		}
		mustPublish(t, b, msg(ch, fmt.Sprint(i)), true)
		if ch == "a" {
			want = append(want, fmt.Sprint(i))
		}
	}
	evs, err := b.Since(ctx, first, []string{"a"})
	if err != nil || !slices.Equal(dataOf(evs), want) {
		t.Fatalf("got %v (%v) want %v", dataOf(evs), err, want)
	}
}

// BenchmarkRedisFanOut measures logged publishes from parallel publishers until a
// subscriber on another connection has received them all.
func BenchmarkRedisFanOut(b *testing.B) {
	c, prefix := redistest.Client(b)
	cfg := RedisConfig{KeyPrefix: prefix, Window: time.Minute}
	pub := newRedisBroker(b, c, cfg)
	node := newRedisBroker(b, redistest.NewClient(b, ""), cfg)
	var received atomic.Int64
	done := make(chan struct{})
	target := int64(b.N)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := node.Subscribe(ctx, func(evs []Event) {
		if n := received.Add(int64(len(evs))); n >= target && n-int64(len(evs)) < target {
			close(done)
		}
	}); err != nil {
		b.Fatal(err)
	}
	payload := json.RawMessage(`{"id":"0190c1d2-7e5b-7c3a-9f00-000000000000","text":"hello there"}`)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := pub.Publish(ctx, Event{Kind: KindMessage, ChannelID: "a", Data: payload}, true); err != nil {
				b.Error(err)
				return
			}
		}
	})
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		b.Fatalf("subscriber got %d of %d", received.Load(), b.N)
	}
}
