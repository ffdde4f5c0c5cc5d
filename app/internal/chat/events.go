package chat

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/quibly/quibly/app/internal/apperr"
	"github.com/quibly/quibly/app/internal/broker"
	"github.com/quibly/quibly/app/internal/socketio"
	"github.com/quibly/quibly/app/internal/text"
)

// Event names of the wire protocol.
const (
	EventJoin   = "channel:join"
	EventLeave  = "channel:leave"
	EventSend   = "message:send"
	EventTyping = "typing"
)

// Typing events are limited per user across the user's connections on a node.
// Clients send one every couple of seconds while typing (and at once after a send),
// so a burst allowance keeps honest clients unthrottled while a flood is cut to the
// steady rate.
const (
	typingEvery = 500 * time.Millisecond
	typingBurst = 4
)

// Joins are limited per connection: each one of an unknown channel costs a store
// read. A client joining all its channels at once (up to MaxChannelsPerConn) is never
// held back; a flood of random ids is cut to joinRate.
const joinRate = 10 // a second

type channelPayload struct {
	ChannelID string `json:"channelId"`
}

func errorAck(e *apperr.Error) map[string]any { return map[string]any{"error": e} }

// decodePayload reads the single object argument of an event.
func decodePayload(args []json.RawMessage, v any) *apperr.Error {
	if len(args) == 0 {
		return apperr.New(apperr.Invalid, "the event needs an object payload")
	}
	raw := strings.TrimSpace(string(args[0]))
	if !strings.HasPrefix(raw, "{") {
		return apperr.New(apperr.Invalid, "the payload must be a JSON object")
	}
	// encoding/json would decode a lone surrogate as U+FFFD: the text stored would
	// not be the text sent.
	if text.LoneSurrogate(args[0]) {
		return apperr.New(apperr.Invalid, "the payload has a lone UTF-16 surrogate escape (\\ud800 and the like)")
	}
	if err := json.Unmarshal(args[0], v); err != nil {
		return apperr.New(apperr.Invalid, "malformed payload: field types do not match")
	}
	return nil
}

// Event dispatches one client event.
func (h *Hub) Event(s *socketio.Socket, event string, args []json.RawMessage, attachments [][]byte, ack socketio.AckFunc) {
	c := s.Data.(*client)
	if ack == nil {
		ack = func(...any) {} // the client did not ask for an answer
	}
	if len(attachments) > 0 {
		// The transport carries binary packets; chat's events are JSON only.
		ack(errorAck(apperr.New(apperr.Invalid, "%s: binary attachments are not accepted; send JSON", truncate(event, 64))))
		return
	}
	switch event {
	case EventJoin:
		ack(h.join(c, args))
	case EventLeave:
		ack(h.leave(c, args))
	case EventSend, EventEdit, EventDelete, EventReactionAdd, EventReactionRemove, EventRead:
		if c.sendSlots == nil { // events of one socket are handled one at a time
			c.sendSlots = make(chan struct{}, maxSendsInFlight)
		}
		// A send (a message, or a change of one) waits for Kafka's acks. Validation and
		// the id happen here, in the connection's order (its entries get ids in the
		// order it sent them); the rest runs off the read loop, so a connection can
		// have several sends in flight and the producer batches them (acks may return
		// out of order, which Socket.IO allows). Past maxSendsInFlight the read loop
		// waits here: backpressure.
		var ps *pendingSend
		var res any
		switch event {
		case EventSend:
			ps, res = h.beginSend(c, args)
		case EventEdit:
			ps, res = h.beginEdit(c, args)
		case EventDelete:
			ps, res = h.beginDelete(c, args)
		case EventRead:
			ps, res = h.beginRead(c, args)
		default:
			ps, res = h.beginReaction(c, args, event == EventReactionAdd)
		}
		if ps == nil {
			ack(res)
			return
		}
		c.sendSlots <- struct{}{}
		go func() {
			defer func() { <-c.sendSlots }()
			ack(h.completeSend(c, ps))
		}()
	case EventTyping:
		h.typing(c, args)
	default:
		ack(errorAck(apperr.New(apperr.Invalid, "unknown event %q", truncate(event, 64))))
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func (h *Hub) join(c *client, args []json.RawMessage) any {
	if c.joinLimit == nil {
		c.joinLimit = rate.NewLimiter(joinRate, h.cfg.MaxChannelsPerConn)
	}
	if !c.joinLimit.Allow() {
		return errorAck(apperr.New(apperr.RateLimited, "too many channel:join events; slow down"))
	}
	var p channelPayload
	if e := decodePayload(args, &p); e != nil {
		return errorAck(e)
	}
	if p.ChannelID == "" {
		return errorAck(apperr.New(apperr.Invalid, "channelId is required"))
	}
	ctx, cancel := h.opContext(context.Background())
	defer cancel()
	id, err := h.admit(ctx, p.ChannelID, c.user.ID)
	if errors.Is(err, errNoChannel) {
		return errorAck(apperr.New(apperr.NotFound, "no channel with id %q", truncate(p.ChannelID, 64)))
	}
	if err != nil {
		h.Log.Error("channel lookup failed", "err", err)
		return errorAck(apperr.From(err))
	}
	c.mu.Lock()
	if !c.channels.has(id) && len(c.channels) >= h.cfg.MaxChannelsPerConn {
		c.mu.Unlock()
		return errorAck(apperr.New(apperr.Forbidden, "a connection may join at most %d channels", h.cfg.MaxChannelsPerConn))
	}
	c.channels.add(id)
	c.mu.Unlock()
	h.mu.Lock()
	h.joinLocked(c, id)
	h.mu.Unlock()
	h.saveSession(ctx, c, liveSessionTTL)
	return map[string]bool{"ok": true}
}

func (h *Hub) leave(c *client, args []json.RawMessage) any {
	var p channelPayload
	if e := decodePayload(args, &p); e != nil {
		return errorAck(e)
	}
	if p.ChannelID == "" {
		return errorAck(apperr.New(apperr.Invalid, "channelId is required"))
	}
	c.mu.Lock()
	c.channels.remove(p.ChannelID)
	c.mu.Unlock()
	h.mu.Lock()
	h.leaveLocked(c, p.ChannelID)
	h.mu.Unlock()
	ctx, cancel := h.opContext(context.Background())
	defer cancel()
	h.saveSession(ctx, c, liveSessionTTL)
	return map[string]bool{"ok": true}
}

func (c *client) inChannel(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.channels.has(id)
}

func (h *Hub) typing(c *client, args []json.RawMessage) {
	var p channelPayload
	if decodePayload(args, &p) != nil || !c.inChannel(p.ChannelID) {
		return // typing has no ack; a bad one is simply not relayed
	}
	if ok, _ := h.typists.Allow(c.user.ID); !ok {
		return
	}
	data, _ := json.Marshal(map[string]string{"channelId": p.ChannelID, "userId": c.user.ID, "username": c.user.Username})
	ctx, cancel := h.opContext(context.Background())
	defer cancel()
	_, _ = h.Broker.Publish(ctx, broker.Event{Kind: broker.KindTyping, ChannelID: p.ChannelID, Data: data, Origin: c.user.ID}, false)
}
