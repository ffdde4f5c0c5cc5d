package batch

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quibly/quibly/app/internal/metrics"
	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/queue"
	"github.com/quibly/quibly/app/internal/store"
	"github.com/quibly/quibly/app/internal/testenv"
)

// failingStore refuses every write with a transient error until healed.
type failingStore struct {
	store.Store
	healed atomic.Bool
}

func (f *failingStore) WriteMessages(ctx context.Context, msgs []model.Message) (int, error) {
	if !f.healed.Load() {
		return 0, errors.New("database unreachable")
	}
	return f.Store.WriteMessages(ctx, msgs)
}

// A writer that cannot store its batch reports itself unhealthy once it has failed for
// longer than StallAfter (/health then shows the database down), and healthy again
// when a batch is stored.
func TestStalledWriterIsUnhealthy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	real, err := store.NewSQLite(ctx, store.SQLiteConfig{Path: filepath.Join(t.TempDir(), "q.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer real.Close()
	u, _ := real.CreateUser(ctx, "writer", "hash")
	ch, _ := real.EnsureChannel(ctx, "general")
	st := &failingStore{Store: real}
	q := queue.NewMemory()
	defer q.Close()
	reg := metrics.New(func() float64 { return 0 })
	w, err := NewWriter(Config{MaxBatch: 10, MaxBackoff: 20 * time.Millisecond}, q, st, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	clock := time.Now()
	w.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }

	id, _ := uuid.NewV7()
	produced := make(chan error, 1)
	go func() {
		produced <- q.Produce(ctx, model.Message{ID: id.String(), ChannelID: ch.ID, AuthorID: u.ID, Author: u.Username, Text: "hi", CreatedAt: time.Now()})
	}()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()

	testenv.Eventually(t, 10*time.Second, "a failed batch", func() bool { return testutil.ToFloat64(reg.BatchErrors) >= 2 })
	if err := w.Healthy(); err != nil {
		t.Fatalf("unhealthy after a moment of failures: %v", err)
	}
	advance(StallAfter + time.Second)
	if err := w.Healthy(); err == nil {
		t.Fatal("healthy after failing for longer than StallAfter")
	}
	st.healed.Store(true)
	if err := <-produced; err != nil {
		t.Fatalf("the message was not stored once the store healed: %v", err)
	}
	testenv.Eventually(t, 5*time.Second, "healthy again", func() bool { return w.Healthy() == nil })
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
