package chat

import (
	"context"
	"time"

	"github.com/quibly/quibly/app/internal/broker"
	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/retry"
	"github.com/quibly/quibly/app/internal/sessions"
	"github.com/quibly/quibly/app/internal/socketio"
)

// encodeEvent turns a bus event into the Socket.IO packet clients receive. Logged
// events carry their offset as the last argument: that is how socket.io-client
// learns the offset it presents when it recovers.
func encodeEvent(ev broker.Event) (string, error) {
	if ev.Offset != "" {
		return socketio.EncodeEvent(ev.Kind, ev.Data, ev.Offset)
	}
	return socketio.EncodeEvent(ev.Kind, ev.Data)
}

// deliver fans bus events out to the local clients they concern. It is called in
// bus order and never blocks: a client whose queue is full is dropped. Each client
// gets its events of one call queued together, so they leave in one write: under
// load a bus read brings many events, and a write per event per socket would cost
// a system call each.
func (h *Hub) deliver(evs []broker.Event) {
	for _, ev := range evs {
		if ev.Kind == broker.KindRevoke { // for the nodes, not their clients
			h.revokeLocal(ev)
		}
	}
	if len(evs) == 1 {
		h.deliverOne(evs[0])
		return
	}
	batches := map[*client][]heldPacket{}
	var order []*client // clients in first-target order, for a stable send order
	for _, ev := range evs {
		packet, ok := h.prepare(ev)
		if !ok {
			continue
		}
		h.mu.RLock()
		h.eachTarget(ev, func(c *client) {
			b, seen := batches[c]
			if !seen {
				order = append(order, c)
			}
			batches[c] = append(b, heldPacket{ev.Offset, packet})
		})
		h.mu.RUnlock()
		// A member who left (everyone, on a delete) gets that event and nothing after it.
		h.applyLeaving(ev)
	}
	for _, c := range order {
		b := batches[c]
		h.countSend(c.send(b...), len(b))
	}
	h.observeDelivery(evs...)
}

// observeDelivery records how long the bus took to bring each message here, once per
// message and node whatever its number of local clients.
func (h *Hub) observeDelivery(evs ...broker.Event) {
	now := time.Now()
	for _, ev := range evs {
		if ev.Kind == broker.KindMessage && !ev.PublishedAt.IsZero() {
			h.Metrics.DeliverySeconds.Observe(max(now.Sub(ev.PublishedAt), 0).Seconds())
		}
	}
}

// deliverOne is deliver for a single event, without the grouping.
func (h *Hub) deliverOne(ev broker.Event) {
	packet, ok := h.prepare(ev)
	if !ok {
		return
	}
	h.mu.RLock()
	var targets []*client
	h.eachTarget(ev, func(c *client) { targets = append(targets, c) })
	h.mu.RUnlock()
	h.applyLeaving(ev)
	for _, c := range targets {
		h.countSend(c.send(heldPacket{ev.Offset, packet}), 1)
	}
	h.observeDelivery(ev)
}

// prepare records a logged event's offset as the latest delivered (before its
// targets are chosen, see Connect), drops the online snapshot on a presence change,
// and encodes the event once, down to the Engine.IO packet, for all its targets.
func (h *Hub) prepare(ev broker.Event) (string, bool) {
	if ev.Kind == broker.KindRevoke {
		return "", false
	}
	if ev.Offset != "" {
		h.busOffset.Store(&ev.Offset)
	}
	h.online.notePresence(ev)
	packet, err := encodeEvent(ev)
	if err != nil {
		h.Log.Error("encoding event", "kind", ev.Kind, "err", err)
		return "", false
	}
	return socketio.Prepare(packet), true
}

// eachTarget calls fn for every local client ev goes to. Callers hold h.mu (read).
func (h *Hub) eachTarget(ev broker.Event, fn func(*client)) {
	if ev.To != "" || ev.Kind == model.EventRead {
		h.eachPersonal(ev, fn)
		return
	}
	all := h.clients
	if ev.ChannelID != "" {
		all = h.members[ev.ChannelID]
	}
	for c := range all {
		if ev.Kind == broker.KindTyping && c.user.ID == ev.Origin {
			continue
		}
		fn(c)
	}
}

// countSend counts delivered packets. A drop for slowness is counted once, whatever
// caused it (events, or acks a client never read), when the socket ends (Disconnected).
func (h *Hub) countSend(err error, packets int) {
	if err == nil {
		h.Metrics.Deliveries.Add(float64(packets))
	}
}

// fanoutRetryQueue bounds the durable messages waiting for the bus to come back.
const fanoutRetryQueue = 10_000

// pendingFanout is an acked message whose commit to the bus failed.
type pendingFanout struct {
	slot   broker.Slot
	ev     broker.Event
	userID string
	nonce  string
	ack    sessions.Ack
	since  time.Time
}

// queueFanout hands a durable message whose publish failed to the republisher.
// It never blocks the sender: when the queue is full the message is left to
// history, and the metric and log say so.
func (h *Hub) queueFanout(p pendingFanout) {
	select {
	case h.fanoutRetry <- p:
	default:
		h.Log.Error("fan-out retry queue full; the stored message is only in history", "id", p.ack.ID)
	}
}

// republish keeps publishing queued messages, in order, until the bus takes them
// or they are older than the recovery window (clients then reload history).
func (h *Hub) republish(ctx context.Context) {
	for {
		var p pendingFanout
		select {
		case <-ctx.Done():
			return
		case p = <-h.fanoutRetry:
		}
		wait := retry.Backoff{Initial: 50 * time.Millisecond, Max: 2 * time.Second}
		for {
			pctx, cancel := h.opContext(ctx)
			late, err := h.Broker.Commit(pctx, p.slot, p.ev)
			if late {
				h.Metrics.FanoutLate.Inc()
			}
			if err == nil && p.nonce != "" {
				err = h.Sessions.CompleteNonce(pctx, p.userID, p.nonce, p.ack, h.cfg.NonceTTL)
			}
			cancel()
			if err == nil {
				h.Log.Info("delayed fan-out delivered", "id", p.ack.ID, "after", time.Since(p.since).Round(time.Millisecond))
				break
			}
			if time.Since(p.since) > h.cfg.RecoveryWindow {
				h.Log.Error("giving up fan-out; the stored message is only in history", "id", p.ack.ID, "err", err)
				break
			}
			if !retry.Sleep(ctx, wait.Next()) {
				return
			}
		}
	}
}

// eachPersonal is eachTarget for an event addressed to a user (To), and for a read
// marker: its reader's every connection gets it (unread counts agree on every
// device, joined to the channel or not), and so do the channel's members when the
// marker is a receipt (To empty). Callers hold h.mu (read).
func (h *Hub) eachPersonal(ev broker.Event, fn func(*client)) {
	user := ev.To
	if user == "" {
		user = ev.Origin
		for c := range h.members[ev.ChannelID] {
			if c.user.ID != user {
				fn(c)
			}
		}
	}
	if h.userConns[user] == 0 {
		return
	}
	for c := range h.clients {
		if c.user.ID == user {
			fn(c)
		}
	}
}
