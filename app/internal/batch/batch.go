// Package batch runs the batch writer: it moves messages from the queue into the
// store in batches, committing the queue only after the store committed.
package batch

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/quibly/quibly/app/internal/metrics"
	"github.com/quibly/quibly/app/internal/queue"
	"github.com/quibly/quibly/app/internal/store"
)

// Config tunes the writer.
type Config struct {
	MaxBatch   int
	MaxBackoff time.Duration
	// Linger is how long the writer waits after a batch that was not full before it
	// fetches again, so that a steady trickle is written in a few batches a second
	// rather than a transaction (and a queue commit) per message. Zero writes at
	// once: standalone acks wait for the store.
	Linger time.Duration
}

// Writer is the batch writer; run it only on the elected leader.
type Writer struct {
	cfg     Config
	q       queue.Consumer
	st      store.Store
	log     *slog.Logger
	metrics *metrics.Metrics
}

// NewWriter returns a writer reading q into st.
func NewWriter(cfg Config, q queue.Consumer, st store.Store, log *slog.Logger, m *metrics.Metrics) (*Writer, error) {
	if cfg.MaxBatch < 1 {
		return nil, errors.New("batch: MaxBatch must be positive")
	}
	if cfg.Linger < 0 {
		return nil, errors.New("batch: Linger must not be negative")
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 2 * time.Second
	}
	return &Writer{cfg: cfg, q: q, st: st, log: log, metrics: m}, nil
}

// Run writes batches until ctx ends or the queue is closed and drained.
func (w *Writer) Run(ctx context.Context) error {
	for {
		b, err := w.q.Fetch(ctx, w.cfg.MaxBatch)
		if err != nil {
			if errors.Is(err, queue.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			w.log.Warn("batch writer fetch failed", "err", err)
			if !sleep(ctx, 200*time.Millisecond) {
				return nil
			}
			continue
		}
		if err := w.store(ctx, b); err != nil {
			return err
		}
		if w.cfg.Linger > 0 && len(b.Messages) < w.cfg.MaxBatch && !sleep(ctx, w.cfg.Linger) {
			return nil
		}
	}
}

// store writes one batch, retrying with backoff: nothing is committed to the queue
// (and so nothing acked, in standalone mode) until the store has it.
func (w *Writer) store(ctx context.Context, b queue.Batch) error {
	backoff := 50 * time.Millisecond
	for {
		start := time.Now()
		// The write is not cancelled by ctx: a drain must finish what it fetched.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		_, err := w.st.WriteMessages(wctx, b.Messages)
		cancel()
		if err == nil {
			w.metrics.BatchSize.Observe(float64(len(b.Messages)))
			w.metrics.BatchSeconds.Observe(time.Since(start).Seconds())
			return w.q.Commit(context.WithoutCancel(ctx), b)
		}
		w.metrics.BatchErrors.Inc()
		w.log.Error("batch write failed, retrying", "messages", len(b.Messages), "err", err, "retry_in", backoff)
		if !sleep(ctx, backoff) {
			return err
		}
		backoff = min(backoff*2, w.cfg.MaxBackoff)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
