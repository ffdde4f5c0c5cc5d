package chat

// A socket's life ends with its token's: at the token's expiry, and when its user
// logs out on any node (the logout is published on the bus, every node ends its own
// sockets of that user).

import (
	"context"
	"encoding/json"
	"time"

	"github.com/quibly/quibly/app/internal/apperr"
	"github.com/quibly/quibly/app/internal/broker"
)

// EventSessionEnd tells a client, just before its connection is closed, that its
// token no longer admits it: `{code: "unauthorized", message}`. The client
// reconnects by itself; with the same token it gets connect_error unauthorized, with
// a fresh one (the same user) it continues and recovers its session.
const EventSessionEnd = "session:end"

type revokePayload struct {
	// Version is the user's token version after the logout: sockets admitted with an
	// older one end, one made with a new login in between stays.
	Version int64 `json:"v"`
}

// Revoke ends the live sockets of userID, on every node, whose tokens were issued
// before its current token version (call it after the store revoked them).
func (h *Hub) Revoke(ctx context.Context, userID string) error {
	version, _, err := h.Store.TokenVersion(ctx, userID)
	if err != nil {
		return err
	}
	data, _ := json.Marshal(revokePayload{Version: version})
	_, err = h.Broker.Publish(ctx, broker.Event{Kind: broker.KindRevoke, Data: data, Origin: userID}, false)
	return err
}

// revokeLocal ends this node's sockets that ev revokes. It is called from the bus
// subscriber, which must not block: the sockets end on a goroutine.
func (h *Hub) revokeLocal(ev broker.Event) {
	var p revokePayload
	if err := json.Unmarshal(ev.Data, &p); err != nil || ev.Origin == "" {
		h.Log.Warn("malformed revoke event on the bus", "err", err)
		return
	}
	var gone []*client
	h.mu.RLock()
	for c := range h.clients {
		if c.user.ID == ev.Origin && c.user.TokenVersion < p.Version {
			gone = append(gone, c)
		}
	}
	h.mu.RUnlock()
	if len(gone) == 0 {
		return
	}
	go func() {
		for _, c := range gone {
			h.endSession(c, "this account logged out everywhere; sign in again")
		}
	}()
}

// expireAt ends c's socket when its token expires.
func (h *Hub) expireAt(c *client, exp time.Time) {
	if exp.IsZero() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expiry = time.AfterFunc(time.Until(exp), func() {
		h.endSession(c, "the session expired; sign in again")
	})
}

// endSession tells c's client why and closes its connection (after what is queued).
func (h *Hub) endSession(c *client, message string) {
	_ = c.sock.Emit(EventSessionEnd, apperr.New(apperr.Unauthorized, "%s", message))
	c.sock.Conn().Close()
}
