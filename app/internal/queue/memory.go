package queue

import (
	"context"
	"errors"
	"sync"

	"github.com/quibly/quibly/app/internal/model"
)

var (
	_ Producer = (*Memory)(nil)
	_ Consumer = (*Memory)(nil)
)

// ErrClosed is returned by a closed queue.
var ErrClosed = errors.New("queue: closed")

// Memory is the in-process queue of standalone mode. Produce waits until the batch
// writer has committed the message to the store, so an acked message survives even
// a crash of the process; concurrent sends share one store transaction.
type Memory struct {
	mu      sync.Mutex
	pending []item
	ready   chan struct{}
	closed  bool
}

type item struct {
	msg  model.Message
	done chan error
}

// NewMemory returns an empty queue.
func NewMemory() *Memory { return &Memory{ready: make(chan struct{}, 1)} }

// Produce enqueues msg and waits until it is stored or ctx ends.
func (m *Memory) Produce(ctx context.Context, msg model.Message) error {
	it := item{msg: msg, done: make(chan error, 1)}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	m.pending = append(m.pending, it)
	m.mu.Unlock()
	select {
	case m.ready <- struct{}{}:
	default:
	}
	select {
	case err := <-it.done:
		return err
	case <-ctx.Done():
		// The message may still be stored later; the client's retry with the same
		// nonce is then deduplicated by the store.
		return ctx.Err()
	}
}

// Fetch waits for pending messages and returns up to max of them.
func (m *Memory) Fetch(ctx context.Context, max int) (Batch, error) {
	for {
		m.mu.Lock()
		if n := min(max, len(m.pending)); n > 0 {
			items := append([]item(nil), m.pending[:n]...)
			m.pending = m.pending[n:]
			if len(m.pending) == 0 {
				m.pending = nil
			}
			m.mu.Unlock()
			b := Batch{Messages: make([]model.Message, len(items)), Token: items}
			for i, it := range items {
				b.Messages[i] = it.msg
			}
			return b, nil
		}
		closed := m.closed
		m.mu.Unlock()
		if closed {
			return Batch{}, ErrClosed
		}
		select {
		case <-m.ready:
		case <-ctx.Done():
			return Batch{}, ctx.Err()
		}
	}
}

// Commit releases the producers of a stored batch.
func (m *Memory) Commit(_ context.Context, b Batch) error {
	items, _ := b.Token.([]item)
	for _, it := range items {
		it.done <- nil
	}
	return nil
}

// Lag is the number of messages waiting for the batch writer.
func (m *Memory) Lag() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.pending))
}

// Ping always succeeds in process.
func (m *Memory) Ping(context.Context) error { return nil }

// Close refuses new messages; pending ones can still be fetched so a drain
// stores everything that was accepted.
func (m *Memory) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	select {
	case m.ready <- struct{}{}:
	default:
	}
	return nil
}
