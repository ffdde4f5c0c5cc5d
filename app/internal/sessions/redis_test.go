package sessions

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/quibly/quibly/app/internal/redisx/redistest"
)

func TestRedisStore(t *testing.T) {
	c, prefix := redistest.Client(t)
	s, err := NewRedis(RedisConfig{KeyPrefix: prefix}, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	runStoreContract(t, s, time.Sleep)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestNewRedisValidates(t *testing.T) {
	if _, err := NewRedis(RedisConfig{}, nil); err == nil {
		t.Fatal("a nil client was accepted")
	}
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	if _, err := NewRedis(RedisConfig{KeyPrefix: "x{y}"}, c); err == nil {
		t.Fatal("a prefix with braces was accepted")
	}
}

// TestRedisErrorsAreReported: a Redis that does not answer is an error, never an
// empty answer.
func TestRedisErrorsAreReported(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	s, _ := NewRedis(RedisConfig{KeyPrefix: "x:"}, c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, ok, err := s.Take(ctx, "p", "u"); err == nil || ok {
		t.Fatalf("Take without Redis: %v %v", ok, err)
	}
	if _, _, err := s.ClaimNonce(ctx, "u", "n", time.Minute); err == nil {
		t.Fatal("ClaimNonce without Redis must fail")
	}
}
