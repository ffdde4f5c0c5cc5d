package chat

import (
	"context"
	"encoding/json"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/quibly/quibly/app/internal/apperr"
	"github.com/quibly/quibly/app/internal/broker"
	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/sessions"
	"github.com/quibly/quibly/app/internal/text"
)

// maxSendsInFlight is how many message:send events of one connection run at once.
const maxSendsInFlight = 16

type sendPayload struct {
	ChannelID string `json:"channelId"`
	Text      string `json:"text"`
	Nonce     string `json:"nonce"`
}

// send is the message path: validate, make durable, fan out, then ack.
func (h *Hub) send(c *client, args []json.RawMessage) any {
	ps, res := h.beginSend(c, args)
	if ps == nil {
		return res
	}
	return h.completeSend(c, ps)
}

// pendingSend is a validated send with its place in the channel, between beginSend
// and completeSend.
type pendingSend struct {
	start time.Time
	p     sendPayload
	msg   model.Message
	slot  broker.Slot
}

func (h *Hub) sendDone(start time.Time, result string) {
	h.Metrics.MessagesTotal.WithLabelValues(result).Inc()
	h.Metrics.SendAckSeconds.Observe(time.Since(start).Seconds())
}

// beginSend validates a send, claims its nonce and reserves its place (id and time)
// in the channel's order. It runs in the connection's event order, so one
// connection's messages get ids, and are delivered, in the order it sent them. It
// returns either a pendingSend (h.inflight counts it until completeSend) or the ack
// to answer at once.
func (h *Hub) beginSend(c *client, args []json.RawMessage) (*pendingSend, any) {
	start := time.Now()
	fail := func(e *apperr.Error) (*pendingSend, any) {
		h.sendDone(start, e.Code)
		return nil, errorAck(e)
	}
	if h.draining.Load() {
		return fail(apperr.New(apperr.Unavailable, "server is shutting down, retry after reconnecting"))
	}
	var p sendPayload
	if e := decodePayload(args, &p); e != nil {
		return fail(e)
	}
	switch {
	case p.ChannelID == "":
		return fail(apperr.New(apperr.Invalid, "channelId is required"))
	case text.Blank(p.Text):
		return fail(apperr.New(apperr.Invalid, "text must not be empty or only spaces and invisible characters"))
	case !utf8.ValidString(p.Text):
		return fail(apperr.New(apperr.Invalid, "text must be valid UTF-8"))
	case utf8.RuneCountInString(p.Text) > h.cfg.MaxMessageChars:
		return fail(apperr.New(apperr.TooLarge, "text is longer than %d characters", h.cfg.MaxMessageChars))
	case len(p.Nonce) > h.cfg.MaxNonceLen:
		return fail(apperr.New(apperr.Invalid, "nonce is longer than %d bytes", h.cfg.MaxNonceLen))
	case !c.inChannel(p.ChannelID):
		return fail(apperr.New(apperr.Forbidden, "join the channel before sending to it"))
	case h.channels.archived(p.ChannelID):
		return fail(apperr.New(apperr.Forbidden, "the channel is archived: it takes no new messages"))
	}
	if ok, _ := h.limiters.Allow(c.user.ID); !ok {
		return fail(apperr.New(apperr.RateLimited, "too many messages; slow down"))
	}

	ctx, cancel := h.opContext(context.Background())
	defer cancel()
	// A retry after a failed attempt reuses that attempt's id and time: the attempt
	// may have reached the queue after all, and the store then keeps one message.
	var attempt sessions.Ack
	if p.Nonce != "" {
		// The claim only needs to outlive one send; a node that dies holding it
		// must not block the retry for long.
		prev, claimed, err := h.Sessions.ClaimNonce(ctx, c.user.ID, p.Nonce, 3*h.cfg.SendTimeout)
		attempt = prev
		switch {
		case errors.Is(err, sessions.ErrInFlight):
			return fail(apperr.New(apperr.Unavailable, "a send with this nonce is still in progress; retry shortly"))
		case err != nil:
			h.Log.Error("nonce claim failed", "err", err)
			return fail(apperr.New(apperr.Unavailable, "the service is temporarily unavailable, retry"))
		case !claimed:
			h.sendDone(start, "ok")
			return nil, map[string]any{"id": prev.ID, "ts": prev.TS} // a retry of a send that already succeeded
		}
	}

	// A retry after a failed attempt keeps that attempt's slot (the attempt may have
	// reached the queue after all, and the store then keeps one message); the slot
	// stays reserved for it until the broker's hold runs out.
	slot := broker.Slot{ChannelID: p.ChannelID, ID: attempt.ID, TS: attempt.TS}
	if slot.ID == "" {
		var err error
		if slot, err = h.Broker.Reserve(ctx, p.ChannelID); err != nil {
			h.Log.Warn("reserving a message slot failed", "err", err)
			if p.Nonce != "" {
				if err := h.Sessions.ReleaseNonce(ctx, c.user.ID, p.Nonce, sessions.Ack{}, h.cfg.NonceTTL); err != nil {
					h.Log.Warn("releasing the nonce failed; its claim expires on its own", "err", err)
				}
			}
			return fail(apperr.New(apperr.Unavailable, "the service is temporarily unavailable, retry"))
		}
	}
	msg := model.Message{ID: slot.ID, ChannelID: p.ChannelID, AuthorID: c.user.ID, Author: c.user.Username,
		Text: p.Text, Nonce: p.Nonce, CreatedAt: time.UnixMilli(slot.TS).UTC()}
	h.inflight.Add(1)
	return &pendingSend{start: start, p: p, msg: msg, slot: slot}, nil
}

// completeSend makes a begun send durable (Kafka), fans it out and returns its ack.
// Sends of one connection may complete concurrently.
func (h *Hub) completeSend(c *client, ps *pendingSend) any {
	defer h.inflight.Done()
	p, msg := ps.p, ps.msg
	result := "ok"
	defer func() { h.sendDone(ps.start, result) }()
	fail := func(e *apperr.Error) any {
		result = e.Code
		return errorAck(e)
	}
	ctx, cancel := h.opContext(context.Background())
	defer cancel()
	queued := time.Now()
	h.Metrics.SendStageSeconds.WithLabelValues("accept").Observe(queued.Sub(ps.start).Seconds())
	err := h.Queue.Produce(ctx, msg)
	h.Metrics.SendStageSeconds.WithLabelValues("queue").Observe(time.Since(queued).Seconds())
	if err != nil {
		h.Log.Warn("queueing message failed", "err", err)
		if p.Nonce == "" {
			// Nothing can retry into this slot: the channel need not wait for it. The
			// send's own context may be spent by the failed produce.
			cctx, cancel := h.opContext(context.Background())
			if err := h.Broker.Cancel(cctx, ps.slot); err != nil {
				h.Log.Warn("cancelling the message slot failed; it is given up after the hold", "err", err)
			}
			cancel()
		} else {
			rctx, cancel := h.opContext(context.Background())
			failed := sessions.Ack{ID: msg.ID, TS: msg.CreatedAt.UnixMilli()}
			if err := h.Sessions.ReleaseNonce(rctx, c.user.ID, p.Nonce, failed, h.cfg.NonceTTL); err != nil {
				h.Log.Warn("recording the failed attempt failed; its claim expires on its own", "err", err)
			}
			cancel()
		}
		return fail(apperr.New(apperr.Unavailable, "the message was not confirmed as stored; retry it with the same nonce"))
	}
	wire := msg.Wire()
	data, _ := json.Marshal(wire)
	ev := broker.Event{Kind: broker.KindMessage, ChannelID: msg.ChannelID, Data: data}
	ack := sessions.Ack{ID: wire.ID, TS: wire.TS}
	published := time.Now()
	late, err := h.Broker.Commit(ctx, ps.slot, ev)
	h.Metrics.SendStageSeconds.WithLabelValues("publish").Observe(time.Since(published).Seconds())
	if late {
		h.Metrics.FanoutLate.Inc()
		h.Log.Warn("a message was committed after its slot was given up: delivered out of order", "id", msg.ID)
	}
	if err != nil {
		// The message is durable, so the ack is true; the fan-out is retried in the
		// background until the bus is back (members get it live, late, in id order).
		h.Metrics.FanoutErrors.Inc()
		h.Log.Warn("fan-out failed for a stored message; retrying in the background", "id", msg.ID, "err", err)
		h.queueFanout(pendingFanout{slot: ps.slot, ev: ev, userID: c.user.ID, nonce: p.Nonce, ack: ack, since: time.Now()})
		return map[string]any{"id": wire.ID, "ts": wire.TS}
	}
	if p.Nonce != "" {
		if err := h.Sessions.CompleteNonce(ctx, c.user.ID, p.Nonce, ack, h.cfg.NonceTTL); err != nil {
			h.Log.Warn("recording nonce failed", "err", err)
		}
	}
	return map[string]any{"id": wire.ID, "ts": wire.TS}
}
