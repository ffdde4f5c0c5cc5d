// Package sessions keeps the short-lived per-user state a node needs beyond one
// connection: sessions that a reconnecting client may recover, and recent send
// nonces so that a retried send is not stored twice, and each user's latest reactions,
// so that a reaction changes once however many nodes are asked at once.
package sessions

import (
	"context"
	"errors"
	"time"
)

// ErrInFlight means a send with the same nonce is still being processed.
var ErrInFlight = errors.New("a send with this nonce is in progress")

// Session is what a client's recovery restores.
type Session struct {
	SID      string   `json:"sid"`
	UserID   string   `json:"userId"`
	Channels []string `json:"channels"`
	// Since is where to replay from when the client presents no offset (it had
	// received no logged event before it dropped).
	Since string `json:"since,omitempty"`
}

// Ack is the outcome of a send, remembered per (user, nonce).
type Ack struct {
	ID string `json:"id"`
	TS int64  `json:"ts"`
}

// Store is implemented in memory (standalone) and in Redis (clustered).
type Store interface {
	// Save keeps a disconnected session recoverable for ttl.
	Save(ctx context.Context, pid string, s Session, ttl time.Duration) error
	// Take returns and forgets the session pid when it belongs to userID; ok is false
	// when it is unknown, expired or another user's, and then it is left as it was
	// (presenting someone else's pid must not wipe their recovery).
	Take(ctx context.Context, pid, userID string) (s Session, ok bool, err error)
	// ClaimNonce reserves (userID, nonce) for a new send. When the nonce was used
	// already it returns the earlier ack with claimed false, or ErrInFlight while
	// that earlier send is unfinished.
	// A claim that follows a failed attempt is claimed with prev set to that attempt:
	// the retry must reuse its id and time, since the attempt may have reached the
	// queue after all, and the message must not be stored under two ids.
	ClaimNonce(ctx context.Context, userID, nonce string, ttl time.Duration) (prev Ack, claimed bool, err error)
	// CompleteNonce records the ack of a claimed nonce.
	CompleteNonce(ctx context.Context, userID, nonce string, ack Ack, ttl time.Duration) error
	// ReleaseNonce turns a pending claim whose send failed into a record of that
	// attempt, kept for ttl, so a retry can go through with the same id. It never
	// touches a completed ack.
	ReleaseNonce(ctx context.Context, userID, nonce string, attempt Ack, ttl time.Duration) error
	// SetReaction records whether userID's reaction with emoji on messageID is on and
	// reports whether that changed it, atomically over every node: of two nodes
	// adding the same reaction at once, one changes it. stored is what the database
	// holds, taken as the state when this record has none (its first change, or ttl
	// after the last): the database may lag a change of the last moments, never one
	// of ttl ago.
	SetReaction(ctx context.Context, userID, messageID, emoji string, on, stored bool, ttl time.Duration) (changed bool, err error)
	Close() error
}
