// Package presence tracks which users have at least one live connection.
package presence

import (
	"context"

	"github.com/quibly/quibly/app/internal/model"
)

// Tracker counts connections per user across the deployment.
type Tracker interface {
	// Connect records a connection; online is true when it is the user's first.
	Connect(ctx context.Context, user model.User, connID string) (online bool, err error)
	// Disconnect removes a connection; offline is true when it was the user's last.
	Disconnect(ctx context.Context, user model.User, connID string) (offline bool, err error)
	// IsOnline reports whether the user has a connection anywhere.
	IsOnline(ctx context.Context, userID string) (bool, error)
	// Online lists users with at least one connection.
	Online(ctx context.Context) ([]model.User, error)
	Close() error
}

// Sweeper is a Tracker that can notice users whose only connections were on a node
// that died (a clustered tracker; in one process there is no other node). Every node
// calls Sweep periodically and announces the users it returns as offline.
type Sweeper interface {
	Sweep(ctx context.Context) ([]model.User, error)
}
