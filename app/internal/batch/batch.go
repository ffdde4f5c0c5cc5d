// Package batch runs the batch writer: it moves messages from the queue into the
// store in batches, committing the queue only after the store committed.
package batch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/quibly/quibly/app/internal/metrics"
	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/queue"
	"github.com/quibly/quibly/app/internal/retry"
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

// withDefaults fills the fields left zero that have a default.
func (c Config) withDefaults() Config {
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 2 * time.Second
	}
	return c
}

// Validate rejects impossible values.
func (c Config) Validate() error {
	if c.MaxBatch < 1 {
		return errors.New("batch: MaxBatch must be positive")
	}
	if c.Linger < 0 {
		return errors.New("batch: Linger must not be negative")
	}
	return nil
}

// Writer is the batch writer; run it only on the elected leader.
type Writer struct {
	cfg     Config
	q       queue.Consumer
	st      store.Store
	log     *slog.Logger
	metrics *metrics.Metrics
	// failingSince is when the batch in hand first failed (Unix ns); 0 while writes succeed.
	failingSince atomic.Int64
	now          func() time.Time // time.Now; tests move it
}

// StallAfter is how long a batch may keep failing before Healthy says so.
const StallAfter = 30 * time.Second

// Healthy reports an error while the writer has been failing to store a batch for
// longer than StallAfter (nothing is stored meanwhile, and in standalone mode no send
// is acked): /health shows it on the database.
func (w *Writer) Healthy() error {
	if since := w.failingSince.Load(); since != 0 {
		if failing := w.now().Sub(time.Unix(0, since)); failing > StallAfter {
			return fmt.Errorf("batch writer: no batch stored for %s", failing.Round(time.Second))
		}
	}
	return nil
}

// NewWriter returns a writer reading q into st.
func NewWriter(cfg Config, q queue.Consumer, st store.Store, log *slog.Logger, m *metrics.Metrics) (*Writer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Writer{cfg: cfg, q: q, st: st, log: log, metrics: m, now: time.Now}, nil
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
			if !retry.Sleep(ctx, 200*time.Millisecond) {
				return nil
			}
			continue
		}
		if err := w.store(ctx, b); err != nil {
			return err
		}
		if w.cfg.Linger > 0 && len(b.Messages) < w.cfg.MaxBatch && !retry.Sleep(ctx, w.cfg.Linger) {
			return nil
		}
	}
}

// store writes one batch, retrying with backoff: nothing is committed to the queue
// (and so nothing acked, in standalone mode) until the store has it. Messages the
// store refuses for good are found, parked and counted, and the rest is stored:
// one poison message never holds up the others.
func (w *Writer) store(ctx context.Context, b queue.Batch) error {
	wait := retry.Backoff{Initial: 50 * time.Millisecond, Max: w.cfg.MaxBackoff}
	defer w.failingSince.Store(0)
	for {
		start := w.now()
		// The write is not cancelled by ctx: a drain must finish what it fetched.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		rejected, err := w.write(wctx, b.Messages)
		if err == nil && len(rejected) > 0 {
			err = w.park(wctx, rejected)
		}
		cancel()
		if err == nil {
			w.metrics.BatchSize.Observe(float64(len(b.Messages)))
			w.metrics.BatchSeconds.Observe(w.now().Sub(start).Seconds())
			return w.q.Commit(context.WithoutCancel(ctx), b)
		}
		w.failingSince.CompareAndSwap(0, start.UnixNano())
		w.metrics.BatchErrors.Inc()
		backoff := wait.Next()
		w.log.Error("batch write failed, retrying", "messages", len(b.Messages), "err", err, "retry_in", backoff)
		if !retry.Sleep(ctx, backoff) {
			return err
		}
	}
}

// rejection is a message the store refused for good, and why.
type rejection struct {
	msg    model.Message
	reason string
}

// write stores msgs. When the store refuses the batch for good, it halves it until
// the refused messages stand alone, so every other one is stored; those are returned.
// Any other error ends the write (the caller retries it all; writes are idempotent).
func (w *Writer) write(ctx context.Context, msgs []model.Message) ([]rejection, error) {
	_, err := w.st.WriteMessages(ctx, msgs)
	switch {
	case err == nil:
		return nil, nil
	case !errors.Is(err, store.ErrRejected):
		return nil, err
	case len(msgs) == 1:
		return []rejection{{msgs[0], err.Error()}}, nil
	}
	half := len(msgs) / 2
	first, err := w.write(ctx, msgs[:half])
	if err != nil {
		return nil, err
	}
	second, err := w.write(ctx, msgs[half:])
	if err != nil {
		return nil, err
	}
	return append(first, second...), nil
}

// park keeps the refused messages apart, counts them and says which they are (never
// their text).
func (w *Writer) park(ctx context.Context, rejected []rejection) error {
	for _, r := range rejected {
		if err := w.st.RejectMessage(ctx, r.msg, r.reason); err != nil {
			return err
		}
		w.metrics.MessagesRejected.Inc()
		w.log.Error("the store refused a message for good; parked in rejected_messages",
			"id", r.msg.ID, "channel", r.msg.ChannelID, "author", r.msg.AuthorID, "reason", r.reason)
	}
	return nil
}
