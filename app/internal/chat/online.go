package chat

import (
	"context"
	"sync"
	"time"

	"github.com/quibly/quibly/app/internal/broker"
	"github.com/quibly/quibly/app/internal/socketio"
)

// onlineSnapshot caches the presence packets every new connection receives, one per
// online user. Without it each connection read the whole online list from Presence
// and encoded it: in a reconnect storm (a node restarted, all its clients moving at
// once) that is users × connections of work and garbage. A presence event on the bus
// drops the cache, so a new connection never sees a change older than the events it
// receives live; age drops it too, in case an event was lost.
type onlineSnapshot struct {
	mu      sync.Mutex
	packets []string // made by socketio.Prepare; nil when not cached
	at      time.Time
	gen     uint64 // bumped by invalidate: a read that raced one is not kept
}

const onlineSnapshotTTL = 2 * time.Second

func (o *onlineSnapshot) invalidate() {
	o.mu.Lock()
	o.gen++
	o.packets = nil
	o.mu.Unlock()
}

// notePresence drops the snapshot when ev changes who is online.
func (o *onlineSnapshot) notePresence(ev broker.Event) {
	if ev.Kind == broker.KindPresence {
		o.invalidate()
	}
}

// onlinePackets returns the presence packets of everyone online.
func (h *Hub) onlinePackets(ctx context.Context) ([]string, error) {
	o := &h.online
	o.mu.Lock()
	if o.packets != nil && time.Since(o.at) < onlineSnapshotTTL {
		packets := o.packets
		o.mu.Unlock()
		return packets, nil
	}
	gen := o.gen
	o.mu.Unlock()
	users, err := h.Presence.Online(ctx)
	if err != nil {
		return nil, err
	}
	packets := make([]string, 0, len(users))
	for _, u := range users {
		p, err := socketio.EncodeEvent("presence", presenceData(u, "online"))
		if err != nil {
			return nil, err
		}
		packets = append(packets, socketio.Prepare(p))
	}
	o.mu.Lock()
	if o.gen == gen {
		o.packets, o.at = packets, time.Now()
	}
	o.mu.Unlock()
	return packets, nil
}
