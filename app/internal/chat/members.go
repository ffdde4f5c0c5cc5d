package chat

// Membership changes in a channel's order: the members of a channel, on every node,
// learn of a member who joins, changes role or leaves as an event among the channel's
// messages, and a member who leaves (or is removed) gets nothing of the channel after
// that event, live or replayed.

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/quibly/quibly/app/internal/broker"
	"github.com/quibly/quibly/app/internal/model"
)

// MembershipChanged tells change's channel of it, in the channel's order, on every
// node. Call it after the store has the change: a removed member's sockets then
// leave the channel at that place in its order (deliver), and its recovery no longer
// admits the channel (restore).
func (h *Hub) MembershipChanged(ctx context.Context, change model.MemberChange) error {
	switch change.Event {
	case model.EventMemberJoin, model.EventMemberUpdate, model.EventMemberLeave:
	default:
		return fmt.Errorf("chat: membership change %q is not a member event", change.Event)
	}
	return h.stateChanged(ctx, change.ChannelID, change.Event, change.By, change.ByName, func(id string, ts int64) any {
		change.ID, change.TS = id, ts
		return change
	})
}

// ChannelChanged tells a channel that it was renamed, (un)archived or deleted, in its
// order, on every node. Call it after the store has the change.
func (h *Hub) ChannelChanged(ctx context.Context, change model.ChannelChange) error {
	switch change.Event {
	case model.EventChannelUpdate, model.EventChannelDelete:
	default:
		return fmt.Errorf("chat: channel change %q is not a channel event", change.Event)
	}
	return h.stateChanged(ctx, change.ChannelID, change.Event, change.By, change.ByName, func(id string, ts int64) any {
		change.ID, change.TS = id, ts
		return change
	})
}

// stateChanged puts a change of a channel's state in the channel's order as a message
// is: its place is reserved, it is queued durably (clustered: Kafka) so that the batch
// writer keeps it in the channel's history (by the user who made it), then committed
// to the bus. payload makes the event's data once its id and time are known.
func (h *Hub) stateChanged(ctx context.Context, channelID, event, by, byName string, payload func(id string, ts int64) any) error {
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	slot, err := h.Broker.Reserve(ctx, channelID)
	if err != nil {
		return err
	}
	data, err := json.Marshal(payload(slot.ID, slot.TS))
	if err != nil {
		return err
	}
	msg := model.Message{ID: slot.ID, ChannelID: channelID, AuthorID: by, Author: byName,
		CreatedAt: time.UnixMilli(slot.TS).UTC(), Kind: event, Data: data}
	if err := h.Queue.Produce(ctx, msg); err != nil {
		cctx, cancel := h.opContext(context.Background())
		defer cancel()
		_ = h.Broker.Cancel(cctx, slot)
		return fmt.Errorf("chat: queueing %s: %w", event, err)
	}
	ev := broker.Event{Kind: event, ChannelID: channelID, Data: data}
	if _, err := h.Broker.Commit(ctx, slot, ev); err != nil {
		// Durable already: the fan-out is retried until the bus is back, in its place.
		h.Metrics.FanoutErrors.Inc()
		h.queueFanout(pendingFanout{slot: slot, ev: ev, userID: by, since: time.Now()})
	}
	return nil
}

// leaving says whom a channel event takes out of its channel, after they were given
// it: the member of a member:leave, everyone on a channel:delete (all true). A
// channel:update only refreshes what this node knows of the channel.
func (h *Hub) leaving(ev broker.Event) (user string, all bool) {
	switch ev.Kind {
	case model.EventMemberLeave:
		var change model.MemberChange
		if json.Unmarshal(ev.Data, &change) == nil {
			return change.UserID, false
		}
	case model.EventChannelDelete:
		h.channels.forget(ev.ChannelID)
		return "", true
	case model.EventChannelUpdate:
		var change model.ChannelChange
		if json.Unmarshal(ev.Data, &change) == nil {
			h.channels.setArchived(ev.ChannelID, change.Archived)
		}
	}
	return "", false
}

// leftChannel is the member a member:leave event takes out of its channel ("" for
// any other event).
func leftChannel(ev broker.Event) string {
	if ev.Kind != model.EventMemberLeave {
		return ""
	}
	var change model.MemberChange
	if json.Unmarshal(ev.Data, &change) != nil {
		return ""
	}
	return change.UserID
}

// applyLeaving takes the sockets ev removes out of its channel (see leaving).
func (h *Hub) applyLeaving(ev broker.Event) {
	if user, all := h.leaving(ev); user != "" || all {
		h.removeMember(ev.ChannelID, user)
	}
}

// removeMember takes userID's local sockets (every socket, for "") out of channelID,
// right after they were given the event that removes them, so that nothing later of
// the channel reaches them; their recoverable sessions forget the channel too.
// Callers hold no lock.
func (h *Hub) removeMember(channelID, userID string) {
	var gone []*client
	h.mu.Lock()
	for c := range h.members[channelID] {
		if userID == "" || c.user.ID == userID {
			gone = append(gone, c)
			h.leaveLocked(c, channelID)
		}
	}
	h.mu.Unlock()
	for _, c := range gone {
		c.mu.Lock()
		c.channels.remove(channelID)
		c.mu.Unlock()
	}
	if len(gone) == 0 {
		return
	}
	go func() { // the bus subscriber must not wait for Redis
		ctx, cancel := h.opContext(context.Background())
		defer cancel()
		for _, c := range gone {
			h.saveSession(ctx, c, liveSessionTTL)
		}
	}()
}

// untilLeft cuts a recovery replay for c at each member:leave of c's own user, and at
// a channel:delete: c gets that event and nothing later of its channel, and leaves it.
// It also drops what is addressed to another user (a read marker that is no receipt). (The removal
// can land between the membership check of a restore and its registration, where the
// live path cannot see c yet; the log has it in its place.)
func (h *Hub) untilLeft(c *client, events []broker.Event) []broker.Event {
	var left map[string]bool
	out := events[:0:0]
	for _, ev := range events {
		if left[ev.ChannelID] || (ev.To != "" && ev.To != c.user.ID) {
			continue // after c left; or another user's own event
		}
		out = append(out, ev)
		if leftChannel(ev) == c.user.ID || ev.Kind == model.EventChannelDelete {
			if left == nil {
				left = map[string]bool{}
			}
			left[ev.ChannelID] = true
		}
	}
	for ch := range left {
		h.mu.Lock()
		h.leaveLocked(c, ch)
		h.mu.Unlock()
		c.mu.Lock()
		c.channels.remove(ch)
		c.mu.Unlock()
	}
	return out
}
