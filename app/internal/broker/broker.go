// Package broker is the fan-out bus between nodes. Channel events are appended to a
// short replayable log in one atomic step with their delivery, so the offsets a client
// sees only grow and a reconnecting client can be given exactly what it missed.
package broker

import (
	"context"
	"encoding/json"
	"errors"
)

// ErrOffsetExpired means the requested offset is older than the retained log.
var ErrOffsetExpired = errors.New("offset no longer retained")

// Event kinds.
const (
	KindMessage  = "message"
	KindPresence = "presence"
	KindTyping   = "typing"
)

// Event is what travels between nodes. ChannelID empty means "every connected user".
type Event struct {
	Kind      string          `json:"k"`
	ChannelID string          `json:"c,omitempty"`
	Data      json.RawMessage `json:"d"`
	// Origin is the connection id that caused the event (typing is not echoed to it).
	Origin string `json:"o,omitempty"`
	// Offset is set by the broker on logged events; empty on ephemeral ones.
	Offset string `json:"-"`
}

// Broker delivers events to every node's subscriber in one global order.
type Broker interface {
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
	// Ping reports whether the bus can serve.
	Ping(ctx context.Context) error
	Close() error
}
