// Package broker is the fan-out bus between nodes. Channel events are appended to a
// short replayable log in one atomic step with their delivery, so the offsets a client
// sees only grow and a reconnecting client can be given exactly what it missed.
package broker

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// ErrOffsetExpired means the requested offset is older than the retained log.
var ErrOffsetExpired = errors.New("offset no longer retained")

// Event kinds.
const (
	KindMessage  = "message"
	KindPresence = "presence"
	KindTyping   = "typing"
	// KindRevoke ends a user's sockets on every node (a logout); Origin is the user.
	// Nodes act on it; it never reaches a client.
	KindRevoke = "revoke"
)

// Event is what travels between nodes. ChannelID empty means "every connected user".
type Event struct {
	Kind      string          `json:"k"`
	ChannelID string          `json:"c,omitempty"`
	Data      json.RawMessage `json:"d"`
	// Origin is the id of the user whose action caused the event; typing is not echoed
	// to that user's connections.
	Origin string `json:"o,omitempty"`
	// To, when set, is the one user whose connections get the event, whatever
	// channels they joined (and recovery replays it to that user only).
	To string `json:"t,omitempty"`
	// Offset is set by the broker on logged events; empty on ephemeral ones.
	Offset string `json:"-"`
	// PublishedAt is when the broker logged the event, by its clock (Redis's, to the
	// millisecond); zero on ephemeral events. Subscribers measure delivery latency by it.
	PublishedAt time.Time `json:"-"`
}

// Slot is a message's place in its channel's order, handed out by Reserve: its id
// (a UUIDv7; a channel's ids only grow) and time (ms since the epoch, the id's).
type Slot struct {
	ChannelID string
	ID        string
	TS        int64
}

// Broker delivers events to every node's subscriber in one global order.
//
// A channel's messages go through Reserve and Commit, so that every subscriber, and
// the recovery log, get them in id order: Commit holds a message back until every
// message of its channel reserved before it has been committed or given up. A slot
// neither committed nor cancelled (its node died, or its send failed and was never
// retried) is given up after the hold time; committed later, its message is
// delivered at once, out of order, and Commit says it was late.
type Broker interface {
	// Reserve hands out the next slot of channel.
	Reserve(ctx context.Context, channelID string) (Slot, error)
	// Commit logs and delivers ev, the message holding s, in its channel's id order.
	Commit(ctx context.Context, s Slot, ev Event) (late bool, err error)
	// Cancel gives s up: later messages of its channel stop waiting for it.
	Cancel(ctx context.Context, s Slot) error
	// Publish delivers ev to all subscribers. When logged is true the event is also
	// appended to the recovery log and gets an Offset; the returned offset is that.
	Publish(ctx context.Context, ev Event, logged bool) (string, error)
	// Subscribe calls fn with every event, in publish order, until ctx ends. Events
	// that arrived together come in one call, so a subscriber can hand a socket all
	// of them in one write. fn must not block for long and must not keep the slice.
	Subscribe(ctx context.Context, fn func([]Event)) error
	// Since returns the logged events after offset whose channel is in channels, in
	// order. ErrOffsetExpired when offset is older than the retained window.
	Since(ctx context.Context, offset string, channels []string) ([]Event, error)
	// Head returns the offset of the log's end now, whether or not anything was ever
	// logged: Since(Head()) returns exactly what is logged after the call. A session
	// that begins before its node has seen any event recovers from it.
	Head(ctx context.Context) (string, error)
	// Ping reports whether the bus can serve.
	Ping(ctx context.Context) error
	Close() error
}
