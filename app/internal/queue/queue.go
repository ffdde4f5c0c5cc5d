// Package queue is the durable hand-off between accepting a message and storing it.
package queue

import (
	"context"

	"github.com/quibly/quibly/app/internal/model"
)

// Producer accepts messages. Produce returns only when the message is durable
// (Kafka: acked by all in-sync replicas; memory: committed by the batch writer).
type Producer interface {
	Produce(ctx context.Context, msg model.Message) error
	Ping(ctx context.Context) error
	Close() error
}

// Batch is a set of fetched messages plus whatever the consumer needs to commit them.
type Batch struct {
	Messages []model.Message
	Token    any
}

// Consumer is read by the batch writer, which runs only on the leader.
type Consumer interface {
	// Fetch waits for at least one message (or ctx end) and returns up to max.
	Fetch(ctx context.Context, max int) (Batch, error)
	// Commit marks a batch as stored; called only after the store committed it.
	Commit(ctx context.Context, b Batch) error
	// Lag is the number of messages produced but not yet committed.
	Lag() int64
	Close() error
}
