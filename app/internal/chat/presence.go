package chat

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/quibly/quibly/app/internal/broker"
	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/presence"
	"github.com/quibly/quibly/app/internal/socketio"
)

func presenceData(u model.User, status string) map[string]string {
	return map[string]string{"userId": u.ID, "username": u.Username, "status": status}
}

func (h *Hub) userConnected(ctx context.Context, c *client) {
	online, err := h.Presence.Connect(ctx, c.user, c.sock.Conn().ID)
	if err != nil {
		h.Log.Warn("presence connect failed", "err", err)
		return
	}
	h.mu.Lock()
	t, pending := h.offline[c.user.ID]
	if pending {
		t.Stop()
		delete(h.offline, c.user.ID)
	}
	h.mu.Unlock()
	if online && !pending { // back within the grace period: others never saw them leave
		h.publishPresence(ctx, c.user, "online")
	}
}

func (h *Hub) userDisconnected(ctx context.Context, c *client) {
	offline, err := h.Presence.Disconnect(ctx, c.user, c.sock.Conn().ID)
	if err != nil || !offline {
		return
	}
	user := c.user
	h.mu.Lock()
	defer h.mu.Unlock()
	if old := h.offline[user.ID]; old != nil {
		old.Stop()
	}
	h.offline[user.ID] = time.AfterFunc(h.cfg.PresenceGrace, func() {
		h.mu.Lock()
		delete(h.offline, user.ID)
		h.mu.Unlock()
		ctx, cancel := h.opContext(context.Background())
		defer cancel()
		if on, err := h.Presence.IsOnline(ctx, user.ID); err == nil && !on {
			h.publishPresence(ctx, user, "offline")
		}
	})
}

func (h *Hub) publishPresence(ctx context.Context, u model.User, status string) {
	data, _ := json.Marshal(presenceData(u, status))
	if _, err := h.Broker.Publish(ctx, broker.Event{Kind: broker.KindPresence, Data: data}, false); err != nil {
		h.Log.Warn("presence publish failed", "err", err)
	}
}

// sweepPresence announces offline the users whose node died (presence.Sweeper).
func (h *Hub) sweepPresence(ctx context.Context, sw presence.Sweeper) {
	sctx, cancel := h.opContext(ctx)
	defer cancel()
	gone, err := sw.Sweep(sctx)
	if err != nil {
		h.Log.Warn("presence sweep failed", "err", err)
		return
	}
	for _, u := range gone {
		h.publishPresence(sctx, u, "offline")
	}
}

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
