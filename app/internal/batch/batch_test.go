package batch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quibly/quibly/app/internal/metrics"
	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/queue"
	"github.com/quibly/quibly/app/internal/store"
)

// recordingStore keeps written messages and fails the first failWrites writes.
type recordingStore struct {
	store.Store
	failWrites atomic.Int32
	mu         sync.Mutex
	rows       map[string]int
	writes     int
}

func (s *recordingStore) WriteMessages(_ context.Context, msgs []model.Message) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	if s.failWrites.Add(-1) >= 0 {
		return 0, errors.New("database unavailable")
	}
	for _, m := range msgs {
		s.rows[m.ID]++
	}
	return len(msgs), nil
}

// watchedQueue counts commits of the memory queue.
type watchedQueue struct {
	*queue.Memory
	commits atomic.Int32
}

func (q *watchedQueue) Commit(ctx context.Context, b queue.Batch) error {
	q.commits.Add(1)
	return q.Memory.Commit(ctx, b)
}

// runWriter starts a writer; stop ends it and done reports what Run returned.
func runWriter(ctx context.Context, t *testing.T, cfg Config, q queue.Consumer, st store.Store) (stop func(), done <-chan error) {
	t.Helper()
	w, err := NewWriter(cfg, q, st, slog.New(slog.NewTextHandler(io.Discard, nil)), metrics.New(func() float64 { return 0 }))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	result := make(chan error, 1)
	go func() { result <- w.Run(runCtx) }()
	return cancel, result
}

func TestWriterStoresThenCommits(t *testing.T) {
	for _, tc := range []struct {
		name       string
		messages   int
		maxBatch   int
		failWrites int32
	}{
		{"one message", 1, 10, 0},
		{"more than a batch", 25, 10, 0},
		{"the store fails twice, then recovers", 5, 10, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st := &recordingStore{rows: map[string]int{}}
			st.failWrites.Store(tc.failWrites)
			q := &watchedQueue{Memory: queue.NewMemory()}
			stop, done := runWriter(ctx, t, Config{MaxBatch: tc.maxBatch, MaxBackoff: 20 * time.Millisecond}, q, st)

			// Produce returns only once the message is stored and committed.
			var wg sync.WaitGroup
			for i := range tc.messages {
				wg.Add(1)
				go func() {
					defer wg.Done()
					id := fmt.Sprintf("m%03d", i)
					if err := q.Produce(ctx, model.Message{ID: id, ChannelID: "c"}); err != nil {
						t.Errorf("produce %s: %v", id, err)
						return
					}
					st.mu.Lock()
					defer st.mu.Unlock()
					if st.rows[id] != 1 {
						t.Errorf("%s acked before it was stored (%d rows)", id, st.rows[id])
					}
				}()
			}
			wg.Wait()
			stop()
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
			if len(st.rows) != tc.messages {
				t.Fatalf("stored %d messages, want %d", len(st.rows), tc.messages)
			}
			if q.Lag() != 0 {
				t.Fatalf("lag %d after every produce returned", q.Lag())
			}
			if got := int(q.commits.Load()); got > st.writes-int(tc.failWrites) {
				t.Fatalf("%d commits for %d successful writes: a failed write was committed", got, st.writes-int(tc.failWrites))
			}
		})
	}
}

func TestNewWriterRejectsABadBatchSize(t *testing.T) {
	if _, err := NewWriter(Config{MaxBatch: 0}, queue.NewMemory(), &recordingStore{}, slog.Default(), metrics.New(func() float64 { return 0 })); err == nil {
		t.Fatal("MaxBatch 0 was accepted")
	}
	if _, err := NewWriter(Config{MaxBatch: 1, Linger: -time.Second}, queue.NewMemory(), &recordingStore{}, slog.Default(), metrics.New(func() float64 { return 0 })); err == nil {
		t.Fatal("a negative Linger was accepted")
	}
}

// With a linger, what arrives while the writer waits after a small batch is written
// as one batch instead of a write per message.
func TestWriterLingersAfterASmallBatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st := &recordingStore{rows: map[string]int{}}
	q := queue.NewMemory()
	stop, done := runWriter(ctx, t, Config{MaxBatch: 100, Linger: 300 * time.Millisecond}, q, st)
	if err := q.Produce(ctx, model.Message{ID: "first", ChannelID: "c"}); err != nil {
		t.Fatal(err)
	}
	// The writer now waits out the linger; these all arrive meanwhile.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := q.Produce(ctx, model.Message{ID: fmt.Sprintf("m%02d", i), ChannelID: "c"}); err != nil {
				t.Errorf("produce: %v", err)
			}
		}()
	}
	wg.Wait()
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.rows) != 21 || st.writes != 2 {
		t.Fatalf("%d messages in %d writes, want 21 in 2 (one, then the 20 that arrived during the linger)", len(st.rows), st.writes)
	}
}
