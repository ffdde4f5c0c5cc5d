// Package redistest gives integration tests a client on the test Redis and a key
// prefix of their own, removed when the test ends.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/quibly/quibly/app/internal/redisx"
	"github.com/quibly/quibly/app/internal/testenv"
)

// Client returns a client on the test Redis (skipping or failing as testenv says)
// and a fresh key prefix. Keys under the prefix are deleted and the client is
// closed when the test ends.
func Client(t testing.TB) (redis.UniversalClient, string) {
	t.Helper()
	return NamedClient(t, "")
}

// NamedClient is Client with CLIENT SETNAME name, so a test can find and kill its
// connections.
func NamedClient(t testing.TB, name string) (redis.UniversalClient, string) {
	t.Helper()
	c := NewClient(t, name)
	prefix := "quibly-test-" + RandomID() + ":"
	t.Cleanup(func() { DeletePrefix(t, c, prefix) })
	return c, prefix
}

// NewClient returns one more client on the test Redis, closed when the test ends.
func NewClient(t testing.TB, name string) redis.UniversalClient {
	t.Helper()
	addr := testenv.Redis(t)
	c, err := redisx.NewClient(redisx.Config{Host: addr, ClientName: name})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		t.Fatalf("test Redis at %s does not answer: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// DeletePrefix removes every key under prefix.
func DeletePrefix(t testing.TB, c redis.UniversalClient, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
	for iter.Next(ctx) {
		if err := c.Del(ctx, iter.Val()).Err(); err != nil {
			t.Errorf("cleaning up %s: %v", iter.Val(), err)
			return
		}
	}
	if err := iter.Err(); err != nil {
		t.Errorf("cleaning up keys %s*: %v", prefix, err)
	}
}

// KillConnections closes, from a separate client, every connection named name:
// what a dropped network or a Redis restart looks like to the named client.
// It returns how many were killed.
func KillConnections(t testing.TB, name string) int {
	t.Helper()
	admin := NewClient(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list, err := admin.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, line := range strings.Split(list, "\n") {
		id, n := field(line, "id"), field(line, "name")
		if n != name || id == "" {
			continue
		}
		if err := admin.Do(ctx, "CLIENT", "KILL", "ID", id).Err(); err == nil {
			killed++
		}
	}
	return killed
}

// RandomID returns a short random hex string.
func RandomID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// field reads key=value out of one CLIENT LIST line.
func field(line, key string) string {
	for _, kv := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

// Outage is a go-redis hook (client.AddHook) that cuts a client off Redis while Down
// is set: its new connections fail, which with its open ones killed is a Redis
// restart or a network cut; with Commands set, every command fails too, as for a
// process frozen or cut off with its connections still open.
type Outage struct {
	Down     atomic.Bool
	Commands bool
}

var _ redis.Hook = (*Outage)(nil)

var errOutage = errors.New("simulated outage")

// DialHook implements redis.Hook.
func (o *Outage) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if o.Down.Load() {
			return nil, errOutage
		}
		return next(ctx, network, addr)
	}
}

// ProcessHook implements redis.Hook.
func (o *Outage) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if o.Commands && o.Down.Load() {
			cmd.SetErr(errOutage)
			return cmd.Err()
		}
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook implements redis.Hook.
func (o *Outage) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if o.Commands && o.Down.Load() {
			for _, c := range cmds {
				c.SetErr(errOutage)
			}
			return errOutage
		}
		return next(ctx, cmds)
	}
}
