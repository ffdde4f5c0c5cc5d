// Package redisx builds the one Redis client a clustered node shares between its
// Redis backends (broker, presence, sessions, leader), and holds the small helpers
// they have in common.
package redisx

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config says how to reach Redis. It maps REDIS_STRING, REDIS_PORT_NO,
// REDIS_PASSWORD and REDIS_TLS.
type Config struct {
	// Host is REDIS_STRING: a host name, or host:port, or a comma-separated list of
	// them (cluster seeds). A port in Host wins over Port.
	Host string
	// Port is REDIS_PORT_NO; 6379 when zero.
	Port int
	// Password is REDIS_PASSWORD (the ElastiCache auth token); empty for none.
	Password string
	// TLS turns on TLS 1.2+ with the server name checked against the host.
	TLS bool
	// Cluster talks the Redis Cluster protocol (ElastiCache cluster mode: point Host
	// at the configuration endpoint). More than one address in Host implies it.
	Cluster bool
	// ClientName is sent with CLIENT SETNAME (e.g. "quibly-server-1"), which makes a
	// node's connections visible in CLIENT LIST. Optional.
	ClientName string
	// DialTimeout, ReadTimeout and WriteTimeout default to 5 s, 3 s and 3 s. Blocking
	// reads (XREAD BLOCK) get their block time on top, so these stay short.
	DialTimeout  time.Duration
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// PoolSize is connections per node (per shard in cluster mode); 0 means go-redis'
	// default of 10 per CPU.
	PoolSize int
}

// connBufferSize is the read and the write buffer of each pooled connection.
const connBufferSize = 8 << 10

// NewClient builds the client from cfg. It does not connect: call Ping to check.
// The caller owns the client and closes it after every backend using it is closed.
func NewClient(cfg Config) (redis.UniversalClient, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	addrs, err := cfg.addrs()
	if err != nil {
		return nil, err
	}
	opts := &redis.UniversalOptions{
		Addrs:        addrs,
		Password:     cfg.Password,
		ClientName:   cfg.ClientName,
		DialTimeout:  cfg.DialTimeout,
		ReadTimeout:  cfg.ReadTimeout,
		WriteTimeout: cfg.WriteTimeout,
		PoolSize:     cfg.PoolSize,
		// go-redis gives every pooled connection 32 KiB read and write buffers; a
		// node's pool fills during a connect burst, and 64 KiB a connection was ~10 %
		// of an idle socket's memory in the bench. Quibly's commands and replies are
		// small (an XREAD batch past 8 KiB is read in more than one call).
		ReadBufferSize:  connBufferSize,
		WriteBufferSize: connBufferSize,
		// Callers' contexts bound every call, so a stuck Redis never hangs a request.
		ContextTimeoutEnabled: true,
		// RESP2: understood by every ElastiCache engine version.
		Protocol:      2,
		IsClusterMode: cfg.Cluster || len(addrs) > 1,
		// CLIENT SETINFO is unknown to older servers; skipping it avoids a noisy error.
		DisableIdentity: true,
	}
	if cfg.TLS {
		host, _, _ := net.SplitHostPort(addrs[0])
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	}
	return redis.NewUniversalClient(opts), nil
}

// withDefaults fills the fields left zero that have a default.
func (cfg Config) withDefaults() Config {
	if cfg.Port == 0 {
		cfg.Port = 6379
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = 3 * time.Second
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 3 * time.Second
	}
	return cfg
}

// Validate reports a missing host and a port out of range; addrs checks each host.
func (cfg Config) Validate() error {
	if strings.TrimSpace(cfg.Host) == "" {
		return errors.New("REDIS_STRING: no Redis host given")
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return fmt.Errorf("REDIS_PORT_NO: %d is not a port", cfg.Port)
	}
	return nil
}

// addrs lists the host:port of each host in Host (Port where a host has none).
func (cfg Config) addrs() ([]string, error) {
	port := cfg.Port
	var addrs []string
	for _, h := range strings.Split(cfg.Host, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if strings.Contains(h, "://") {
			return nil, fmt.Errorf("REDIS_STRING: give a host name (and REDIS_TLS/REDIS_PASSWORD), not a URL")
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(h, strconv.Itoa(port))
		}
		addrs = append(addrs, h)
	}
	if len(addrs) == 0 {
		return nil, errors.New("REDIS_STRING: no Redis host given")
	}
	return addrs, nil
}

// Ping checks that Redis answers, for /health. In cluster mode it pings every shard,
// since each backend may live on a different one.
func Ping(ctx context.Context, c redis.UniversalClient) error {
	if cc, ok := c.(*redis.ClusterClient); ok {
		return cc.ForEachShard(ctx, func(ctx context.Context, shard *redis.Client) error {
			return shard.Ping(ctx).Err()
		})
	}
	return c.Ping(ctx).Err()
}

// Key builds a key whose hash tag is {tag}: every key with the same tag lives in one
// cluster slot, which is what lets a Lua script or MULTI touch several of them.
// The price is that all keys of one tag sit on a single shard.
func Key(prefix, tag, rest string) string {
	k := prefix + "{" + tag + "}"
	if rest != "" {
		k += ":" + rest
	}
	return k
}

// ValidPrefix rejects prefixes that would break hash tags.
func ValidPrefix(prefix string) error {
	if strings.ContainsAny(prefix, "{}") {
		return fmt.Errorf("redis key prefix %q must not contain { or }", prefix)
	}
	return nil
}
