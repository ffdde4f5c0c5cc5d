package chat

import (
	"context"
	"time"

	"github.com/quibly/quibly/app/internal/broker"
	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/sessions"
)

// What keeps clients whole when a node, or the bus, fails.

// liveSessionTTL is how long a connected client's session stays stored without a
// refresh. Sessions are stored while connected, not only at a clean disconnect,
// so a client whose node is killed can still recover on another node; the
// broker's recovery window bounds what such a session can replay.
const liveSessionTTL = 10 * time.Minute

// fanoutRetryQueue bounds the durable messages waiting for the bus to come back.
const fanoutRetryQueue = 10_000

// Sweeper is implemented by presence trackers that can notice users whose only
// connections were on a node that died; the hub announces them offline.
type Sweeper interface {
	Sweep(ctx context.Context) ([]model.User, error)
}

// pendingFanout is an acked message whose commit to the bus failed.
type pendingFanout struct {
	slot   broker.Slot
	ev     broker.Event
	userID string
	nonce  string
	ack    sessions.Ack
	since  time.Time
}

// runBackground starts the hub's maintenance loops; they end with ctx.
func (h *Hub) runBackground(ctx context.Context) {
	go h.every(ctx, liveSessionTTL/3, h.refreshSessions)
	go h.republish(ctx)
	if sw, ok := h.Presence.(Sweeper); ok {
		go h.every(ctx, h.cfg.PresenceSweep, func(ctx context.Context) { h.sweepPresence(ctx, sw) })
	}
}

func (h *Hub) every(ctx context.Context, d time.Duration, fn func(context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}

// saveSession stores c's session so that its pid recovers for ttl.
func (h *Hub) saveSession(ctx context.Context, c *client, ttl time.Duration) {
	pid := c.sock.PID
	if pid == "" {
		return
	}
	c.mu.Lock()
	sess := sessions.Session{SID: c.sock.ID, UserID: c.user.ID, Channels: c.channelList(), Since: c.since}
	c.mu.Unlock()
	if err := h.Sessions.Save(ctx, pid, sess, ttl); err != nil {
		h.Log.Warn("saving session for recovery failed", "err", err)
	}
}

func (h *Hub) refreshSessions(ctx context.Context) {
	h.mu.RLock()
	local := make([]*client, 0, len(h.clients))
	for c := range h.clients {
		local = append(local, c)
	}
	h.mu.RUnlock()
	for _, c := range local {
		if ctx.Err() != nil {
			return
		}
		sctx, cancel := context.WithTimeout(ctx, h.cfg.SendTimeout)
		h.saveSession(sctx, c, liveSessionTTL)
		cancel()
	}
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
		backoff := 50 * time.Millisecond
		for {
			pctx, cancel := context.WithTimeout(ctx, h.cfg.SendTimeout)
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
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
		}
	}
}

func (h *Hub) sweepPresence(ctx context.Context, sw Sweeper) {
	sctx, cancel := context.WithTimeout(ctx, h.cfg.SendTimeout)
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
