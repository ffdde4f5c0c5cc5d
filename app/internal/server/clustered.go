package server

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/quibly/quibly/app/internal/broker"
	"github.com/quibly/quibly/app/internal/config"
	"github.com/quibly/quibly/app/internal/dbauth"
	"github.com/quibly/quibly/app/internal/health"
	"github.com/quibly/quibly/app/internal/leader"
	"github.com/quibly/quibly/app/internal/presence"
	"github.com/quibly/quibly/app/internal/queue"
	"github.com/quibly/quibly/app/internal/redisx"
	"github.com/quibly/quibly/app/internal/sessions"
	"github.com/quibly/quibly/app/internal/store"
)

// redisKeyPrefix namespaces every key Quibly keeps in Redis.
const redisKeyPrefix = "quibly:"

// openClustered connects Redis, Kafka and PostgreSQL. A dependency that cannot be
// reached stops start-up with the variable to look at; nothing half-open is left.
func openClustered(ctx context.Context, cfg config.Config, log *slog.Logger) (_ *backends, err error) {
	// Kafka holds acked messages, so the store may trail by a few tens of ms.
	be := &backends{checks: map[string]health.Check{}, batchLinger: 25 * time.Millisecond}
	defer func() {
		if err != nil {
			be.close()
		}
	}()
	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	pgCfg := store.PostgresConfig{URL: cfg.DatabaseURL, MaxConns: int32(cfg.DBMaxConns)}
	if cfg.DatabaseSecretARN != "" {
		if pgCfg.Credentials, err = dbauth.NewSecretsManager(startCtx, dbauth.SecretsManagerConfig{SecretID: cfg.DatabaseSecretARN}); err != nil {
			return nil, fmt.Errorf("DATABASE_SECRET_ARN: %w", err)
		}
	}
	st, err := store.NewPostgres(startCtx, pgCfg)
	if err != nil {
		return nil, err // names DATABASE_URL, password redacted
	}
	be.store, be.checks["database"] = st, st.Ping
	be.closers = append(be.closers, st.Close)
	be.collectors = append(be.collectors, poolCollectors(st)...)

	rc, err := redisx.NewClient(redisx.Config{Host: cfg.RedisString, Port: cfg.RedisPort, Password: cfg.RedisPassword,
		TLS: cfg.RedisTLS, Cluster: cfg.RedisCluster, ClientName: "quibly-" + cfg.ServerID})
	if err != nil {
		return nil, fmt.Errorf("REDIS_STRING/REDIS_PORT_NO: %w", err)
	}
	be.closers = append(be.closers, rc.Close)
	if err := redisx.Ping(startCtx, rc); err != nil {
		return nil, fmt.Errorf("REDIS_STRING %s port %d: Redis does not answer: %w", cfg.RedisString, cfg.RedisPort, err)
	}
	be.checks["redis"] = func(ctx context.Context) error { return redisx.Ping(ctx, rc) }
	be.collectors = append(be.collectors, redisCollectors(rc)...)

	br, err := broker.NewRedis(broker.RedisConfig{KeyPrefix: redisKeyPrefix, Window: cfg.RecoveryWindow, Log: log}, rc)
	if err != nil {
		return nil, err
	}
	be.broker = br
	be.closers = append(be.closers, br.Close)
	if be.presence, err = presence.NewRedis(presence.RedisConfig{KeyPrefix: redisKeyPrefix, NodeID: cfg.ServerID, Log: log}, rc); err != nil {
		return nil, err
	}
	be.closers = append(be.closers, be.presence.Close)
	if be.sessions, err = sessions.NewRedis(sessions.RedisConfig{KeyPrefix: redisKeyPrefix}, rc); err != nil {
		return nil, err
	}
	el, err := leader.NewRedis(leader.RedisConfig{KeyPrefix: redisKeyPrefix, NodeID: cfg.ServerID, Lease: cfg.LeaderLease, Log: log}, rc)
	if err != nil {
		return nil, err
	}
	be.elector = el

	kcfg := queue.KafkaConfig{Brokers: cfg.Brokers(), Topic: cfg.KafkaTopic, Partitions: cfg.KafkaPartitions,
		ReplicationFactor: cfg.KafkaReplicationFactor, MinInSyncReplicas: cfg.KafkaMinInsyncReplicas, GroupID: cfg.KafkaGroupID, Username: cfg.KafkaUsername,
		Password: cfg.KafkaPassword, ClientID: "quibly-" + cfg.ServerID,
		// SCRAM only ever travels over TLS (as MSK requires); KAFKA_TLS alone turns on TLS without SASL.
		TLS: cfg.KafkaTLS || cfg.KafkaUsername != ""}
	prod, err := queue.NewKafkaProducer(startCtx, kcfg, log)
	if err != nil {
		return nil, fmt.Errorf("KAFKA_BROKERS %s: %w", cfg.KafkaBrokers, err)
	}
	be.producer, be.checks["kafka"] = prod, prod.Ping
	be.closers = append(be.closers, prod.Close)
	cons, err := queue.NewKafkaConsumer(startCtx, kcfg, log)
	if err != nil {
		return nil, fmt.Errorf("KAFKA_BROKERS %s: %w", cfg.KafkaBrokers, err)
	}
	be.consumer = cons
	be.closers = append(be.closers, cons.Close)
	return be, nil
}

// poolCollectors expose the PostgreSQL connection pool on /metrics.
func poolCollectors(st *store.Postgres) []prometheus.Collector {
	gauge := func(name, help string, v func(store.PoolStats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return v(st.Stats()) })
	}
	return []prometheus.Collector{
		gauge("quibly_db_pool_max_conns", "PostgreSQL pool size limit.", func(s store.PoolStats) float64 { return float64(s.MaxConns) }),
		gauge("quibly_db_pool_conns", "Open PostgreSQL connections.", func(s store.PoolStats) float64 { return float64(s.TotalConns) }),
		gauge("quibly_db_pool_acquired_conns", "PostgreSQL connections in use.", func(s store.PoolStats) float64 { return float64(s.AcquiredConns) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "quibly_db_pool_empty_acquires_total",
			Help: "Acquires that found no idle connection (the pool may be too small)."},
			func() float64 { return float64(st.Stats().EmptyAcquireCount) }),
	}
}

// redisCollectors expose the Redis client's pool on /metrics.
func redisCollectors(rc redis.UniversalClient) []prometheus.Collector {
	stats := func() *redis.PoolStats { return rc.PoolStats() }
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "quibly_redis_pool_conns", Help: "Open Redis connections."},
			func() float64 { return float64(stats().TotalConns) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "quibly_redis_pool_idle_conns", Help: "Idle Redis connections."},
			func() float64 { return float64(stats().IdleConns) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "quibly_redis_pool_timeouts_total",
			Help: "Times a Redis connection could not be had in time."}, func() float64 { return float64(stats().Timeouts) }),
	}
}
