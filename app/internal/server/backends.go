package server

import (
	"time"

	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quibly/quibly/app/internal/broker"
	"github.com/quibly/quibly/app/internal/config"
	"github.com/quibly/quibly/app/internal/health"
	"github.com/quibly/quibly/app/internal/leader"
	"github.com/quibly/quibly/app/internal/presence"
	"github.com/quibly/quibly/app/internal/queue"
	"github.com/quibly/quibly/app/internal/sessions"
	"github.com/quibly/quibly/app/internal/store"
)

// backends are the implementations a mode uses.
type backends struct {
	store    store.Store
	broker   broker.Broker
	producer queue.Producer
	consumer queue.Consumer
	presence presence.Tracker
	sessions sessions.Store
	elector  leader.Elector
	// batchLinger is the batch writer's Linger (see batch.Config).
	batchLinger time.Duration
	checks      map[string]health.Check
	// collectors are the backends' figures for /metrics (pools, clients).
	collectors []prometheus.Collector
	closers    []func() error
}

func (b *backends) close() {
	for i := len(b.closers) - 1; i >= 0; i-- {
		_ = b.closers[i]()
	}
}

// openBackends is the one place where the mode picks implementations.
func openBackends(ctx context.Context, cfg config.Config, log *slog.Logger) (*backends, error) {
	switch cfg.Mode() {
	case config.Standalone:
		return openStandalone(ctx, cfg)
	case config.Clustered:
		return openClustered(ctx, cfg, log)
	default:
		return nil, fmt.Errorf("unknown mode %q", cfg.Mode())
	}
}

func openStandalone(ctx context.Context, cfg config.Config) (*backends, error) {
	st, err := store.NewSQLite(ctx, store.SQLiteConfig{Path: filepath.Join(cfg.DataDir, "quibly.db")})
	if err != nil {
		return nil, fmt.Errorf("DATA_DIR %s: opening the SQLite store: %w", cfg.DataDir, err)
	}
	br, err := broker.NewMemory(broker.MemoryConfig{Window: cfg.RecoveryWindow})
	if err != nil {
		st.Close()
		return nil, err
	}
	q := queue.NewMemory()
	return &backends{
		store: st, broker: br, producer: q, consumer: q,
		presence: presence.NewMemory(), sessions: sessions.NewMemory(), elector: leader.NewSingle(),
		checks:  map[string]health.Check{"database": st.Ping},
		closers: []func() error{st.Close, br.Close},
	}, nil
}

// jwtSecret returns JWT_SECRET, or in standalone mode a random secret kept in the
// data directory so that tokens survive a restart.
func jwtSecret(cfg config.Config) ([]byte, error) {
	if cfg.JWTSecret != "" {
		return []byte(cfg.JWTSecret), nil
	}
	path := filepath.Join(cfg.DataDir, "jwt-secret")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return []byte(strings.TrimSpace(string(b))), nil
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, err
	}
	secret := hex.EncodeToString(raw[:])
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("DATA_DIR %s: %w", cfg.DataDir, err)
	}
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("DATA_DIR %s: storing the generated JWT secret: %w", cfg.DataDir, err)
	}
	return []byte(secret), nil
}
