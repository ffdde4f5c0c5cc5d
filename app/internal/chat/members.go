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
// node, as a message would be: its place is reserved, it is queued durably (clustered:
// Kafka) so that the batch writer keeps it in the channel's history, then committed to
// the bus. Call it after the store has the change: a removed member's sockets then
// leave the channel at that place in its order (deliver), and its recovery no longer
// admits the channel (restore).
func (h *Hub) MembershipChanged(ctx context.Context, change model.MemberChange) error {
	switch change.Event {
	case model.EventMemberJoin, model.EventMemberUpdate, model.EventMemberLeave:
	default:
		return fmt.Errorf("chat: membership change %q is not a member event", change.Event)
	}
	ctx, cancel := h.opContext(ctx)
	defer cancel()
	slot, err := h.Broker.Reserve(ctx, change.ChannelID)
	if err != nil {
		return err
	}
	change.ID, change.TS = slot.ID, slot.TS
	data, err := json.Marshal(change)
	if err != nil {
		return err
	}
	msg := model.Message{ID: slot.ID, ChannelID: change.ChannelID, AuthorID: change.By, Author: change.ByName,
		CreatedAt: time.UnixMilli(slot.TS).UTC(), Kind: change.Event, Data: data}
	if err := h.Queue.Produce(ctx, msg); err != nil {
		cctx, cancel := h.opContext(context.Background())
		defer cancel()
		_ = h.Broker.Cancel(cctx, slot)
		return fmt.Errorf("chat: queueing %s: %w", change.Event, err)
	}
	ev := broker.Event{Kind: change.Event, ChannelID: change.ChannelID, Data: data}
	if _, err := h.Broker.Commit(ctx, slot, ev); err != nil {
		// Durable already: the fan-out is retried until the bus is back, in its place.
		h.Metrics.FanoutErrors.Inc()
		h.queueFanout(pendingFanout{slot: slot, ev: ev, userID: change.By, since: time.Now()})
	}
	return nil
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

// removeMember takes userID's local sockets out of channelID, right after they were
// given the member:leave event, so that nothing later of the channel reaches them;
// their recoverable sessions forget the channel too. Callers hold no lock.
func (h *Hub) removeMember(channelID, userID string) {
	var gone []*client
	h.mu.Lock()
	for c := range h.members[channelID] {
		if c.user.ID == userID {
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

// untilLeft cuts a recovery replay for c at each member:leave of c's own user: c gets
// that event and nothing later of its channel, and leaves the channel. (The removal
// can land between the membership check of a restore and its registration, where the
// live path cannot see c yet; the log has it in its place.)
func (h *Hub) untilLeft(c *client, events []broker.Event) []broker.Event {
	var left map[string]bool
	out := events[:0:0]
	for _, ev := range events {
		if left[ev.ChannelID] {
			continue
		}
		out = append(out, ev)
		if leftChannel(ev) == c.user.ID {
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
