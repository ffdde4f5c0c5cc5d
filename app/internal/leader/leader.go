// Package leader elects the one node that runs the batch writer.
package leader

import "context"

// Elector campaigns for leadership and runs work while it is held.
type Elector interface {
	// Run campaigns until ctx ends. Each time leadership is won, lead is called with a
	// context that is cancelled when it is lost; Run waits for lead to return.
	Run(ctx context.Context, lead func(ctx context.Context)) error
	// IsLeader reports whether this node holds leadership now.
	IsLeader() bool
	// Resign gives leadership up at once so another node can take over.
	Resign(ctx context.Context) error
}
