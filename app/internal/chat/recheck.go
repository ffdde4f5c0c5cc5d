package chat

// The recheck: membership and channel changes reach a node as events in the channel's
// order (members.go). An event can be missing: the node that changed the store died
// before it queued the event, or a node learned a channel before a change it missed.
// Every Config.Recheck each node compares what its sockets hold with the store and
// repairs the difference, so such a gap closes within that time instead of lasting
// until the socket reconnects.

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/quibly/quibly/app/internal/broker"
	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/store"
)

// recheck reads, for each channel with sockets here, the channel (one indexed read)
// and, for a private channel or DM, its members (a second), and takes out of it every
// local socket whose user may no longer be in it. Public channels need no member list.
func (h *Hub) recheck(ctx context.Context) {
	local := map[string]map[string]bool{} // channel → its local users
	h.mu.RLock()
	for ch, clients := range h.members {
		users := make(map[string]bool, len(clients))
		for c := range clients {
			users[c.user.ID] = true
		}
		local[ch] = users
	}
	h.mu.RUnlock()
	for ch, users := range local {
		if ctx.Err() != nil {
			return
		}
		if err := h.recheckChannel(ctx, ch, users); err != nil {
			h.Log.Warn("rechecking a channel's members", "channel", ch, "err", err)
		}
	}
}

func (h *Hub) recheckChannel(ctx context.Context, ch string, users map[string]bool) error {
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	c, err := h.Store.Channel(ctx, ch)
	if errors.Is(err, store.ErrNotFound) { // deleted
		h.channels.forget(ch)
		h.evict(ch, "", model.EventChannelDelete, model.ChannelChange{ChannelID: ch})
		return nil
	}
	if err != nil {
		return err
	}
	h.channels.add(c)
	h.channels.setArchived(ch, c.Archived)
	if c.Kind == model.KindPublic {
		return nil
	}
	members, err := h.Store.Members(ctx, ch)
	if err != nil {
		return err
	}
	for _, m := range members {
		delete(users, m.UserID)
	}
	for user := range users {
		h.evict(ch, user, model.EventMemberLeave, model.MemberChange{ChannelID: ch, UserID: user})
	}
	return nil
}

// evict gives userID's local sockets in ch (every socket, for "") the event that
// takes them out, outside the channel's order (no offset: it is not in the log, and
// the log has nothing of it to replay), then takes them out as that event would have.
func (h *Hub) evict(ch, userID, event string, payload any) {
	data, err := json.Marshal(payload)
	if err != nil {
		h.Log.Error("encoding an eviction", "err", err)
		return
	}
	packet, ok := h.prepare(broker.Event{Kind: event, ChannelID: ch, Data: data})
	if !ok {
		return
	}
	h.mu.RLock()
	var targets []*client
	for c := range h.members[ch] {
		if userID == "" || c.user.ID == userID {
			targets = append(targets, c)
		}
	}
	h.mu.RUnlock()
	if len(targets) == 0 {
		return
	}
	for _, c := range targets {
		h.countSend(c.send(heldPacket{"", packet}), 1)
	}
	h.Metrics.Rechecked.Add(float64(len(targets)))
	h.removeMember(ch, userID)
}
