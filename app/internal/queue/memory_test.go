package queue

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/quibly/quibly/app/internal/model"
)

func TestMemoryContract(t *testing.T) {
	runQueueContract(t, func(t *testing.T) queueUnderTest {
		q := NewMemory()
		return queueUnderTest{producer: q, consumer: q,
			lag:   func(*testing.T) int64 { return q.Lag() },
			close: closeOnce(func() { _ = q.Close() })}
	})
}

// Memory-only: Produce is acked by the store commit, not by the queue.
func TestMemoryProduceWaitsForCommit(t *testing.T) {
	q := NewMemory()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- q.Produce(ctx, model.Message{ID: string(rune('a' + i))})
		}()
	}
	deadline := time.Now().Add(2 * time.Second)
	for q.Lag() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-errs:
		t.Fatalf("Produce returned (%v) before the batch was committed", err)
	default:
	}
	b, err := q.Fetch(ctx, 2)
	if err != nil || len(b.Messages) != 2 {
		t.Fatalf("fetch: %v %d", err, len(b.Messages))
	}
	if err := q.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	b2, _ := q.Fetch(ctx, 10)
	if len(b2.Messages) != 1 || q.Lag() != 0 {
		t.Fatalf("second fetch %d, lag %d", len(b2.Messages), q.Lag())
	}
	_ = q.Commit(ctx, b2)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// Memory-only: what was accepted before Close is still handed to the writer.
func TestMemoryCloseDrains(t *testing.T) {
	q := NewMemory()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	go func() { _ = q.Produce(ctx, model.Message{ID: "x"}) }()
	for q.Lag() == 0 {
		time.Sleep(time.Millisecond)
	}
	_ = q.Close()
	if err := q.Produce(ctx, model.Message{ID: "y"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("produce after close: %v", err)
	}
	b, err := q.Fetch(ctx, 10)
	if err != nil || len(b.Messages) != 1 {
		t.Fatalf("pending message must still be fetched: %v", err)
	}
	_ = q.Commit(ctx, b)
	if _, err := q.Fetch(ctx, 10); !errors.Is(err, ErrClosed) {
		t.Fatalf("empty closed queue: %v", err)
	}
}
