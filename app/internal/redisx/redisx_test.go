package redisx

import (
	"context"
	"crypto/tls"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/quibly/quibly/app/internal/testenv"
)

// resolve is what NewClient does with a Config before it dials: defaults, checks, addresses.
func resolve(c Config) ([]string, error) {
	c = c.withDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c.addrs()
}

func TestAddrs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		want    []string
		wantErr bool
	}{
		{"host and default port", Config{Host: "cache.local"}, []string{"cache.local:6379"}, false},
		{"host and port", Config{Host: "cache.local", Port: 16379}, []string{"cache.local:16379"}, false},
		{"port in host wins", Config{Host: "cache.local:7000", Port: 16379}, []string{"cache.local:7000"}, false},
		{"seed list", Config{Host: "a, b:7001", Port: 7000}, []string{"a:7000", "b:7001"}, false},
		{"ipv6", Config{Host: "::1"}, []string{"[::1]:6379"}, false},
		{"empty", Config{Host: " "}, nil, true},
		{"url", Config{Host: "redis://x:6379"}, nil, true},
		{"bad port", Config{Host: "x", Port: 70000}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolve(tc.cfg)
			if (err != nil) != tc.wantErr || !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, %v", got, err)
			}
		})
	}
}

func TestNewClientOptions(t *testing.T) {
	c, err := NewClient(Config{Host: "cache.example.com", Port: 6380, Password: "s3cret", TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	simple, ok := c.(*redis.Client)
	if !ok {
		t.Fatalf("want a single-node client, got %T", c)
	}
	o := simple.Options()
	if o.Addr != "cache.example.com:6380" || o.Password != "s3cret" || !o.ContextTimeoutEnabled {
		t.Fatalf("options: addr %s, context timeouts %v", o.Addr, o.ContextTimeoutEnabled)
	}
	if o.TLSConfig == nil || o.TLSConfig.MinVersion != tls.VersionTLS12 || o.TLSConfig.ServerName != "cache.example.com" {
		t.Fatalf("TLS config: %+v", o.TLSConfig)
	}
	if o.DialTimeout <= 0 || o.ReadTimeout <= 0 || o.WriteTimeout <= 0 {
		t.Fatalf("timeouts must be set: %v %v %v", o.DialTimeout, o.ReadTimeout, o.WriteTimeout)
	}

	cc, err := NewClient(Config{Host: "config.cache.example.com", Cluster: true, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cluster, ok := cc.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("want a cluster client, got %T", cc)
	}
	if co := cluster.Options(); co.TLSConfig == nil || co.TLSConfig.ServerName != "config.cache.example.com" {
		t.Fatalf("cluster TLS config: %+v", co.TLSConfig)
	}
	if plain, _ := NewClient(Config{Host: "x"}); plain.(*redis.Client).Options().TLSConfig != nil {
		t.Fatal("TLS without REDIS_TLS")
	}
}

func TestKey(t *testing.T) {
	if got := Key("quibly:", "bus", "log"); got != "quibly:{bus}:log" {
		t.Fatal(got)
	}
	if ValidPrefix("a{") == nil || ValidPrefix("quibly:") != nil {
		t.Fatal("prefix validation")
	}
}

func TestPingRealRedis(t *testing.T) {
	c, err := NewClient(Config{Host: testenv.Redis(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := Ping(ctx, c); err != nil {
		t.Fatal(err)
	}
	dead, _ := NewClient(Config{Host: "127.0.0.1", Port: 1, DialTimeout: 200 * time.Millisecond})
	defer dead.Close()
	if err := Ping(ctx, dead); err == nil {
		t.Fatal("ping of a closed port succeeded")
	}
}
