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
	"github.com/quibly/quibly/app/internal/store"
	"github.com/quibly/quibly/app/internal/text"
)

// maxSendsInFlight is how many message:send events of one connection run at once.
const maxSendsInFlight = 16

type sendPayload struct {
	ChannelID string `json:"channelId"`
	Text      string `json:"text"`
	Nonce     string `json:"nonce"`
	ReplyTo   string `json:"replyTo"`
}

// send is the message path: validate, make durable, fan out, then ack.
func (h *Hub) send(c *client, args []json.RawMessage) any {
	ps, res := h.beginSend(c, args)
	if ps == nil {
		return res
	}
	return h.completeSend(c, ps)
}

// pendingSend is a validated send (a message, or a change of one: change.go) with its
// place in the channel, between beginSend and completeSend.
type pendingSend struct {
	start time.Time
	nonce string
	msg   model.Message
	slot  broker.Slot
	// reply makes the ack from the entry's id and time.
	reply func(id string, ts int64) any
	// to addresses the entry's event to one user (broker.Event.To).
	to string
	// undo, when set, takes back what the send's checks recorded, should it not be
	// queued.
	undo func()
}

// messageAck is a message's ack: its id and time.
func messageAck(id string, ts int64) any { return map[string]any{"id": id, "ts": ts} }

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
	var p sendPayload
	start, fail, e := h.opening(args, &p)
	if e != nil {
		return fail(e)
	}
	textErr := h.checkText(p.Text)
	switch {
	case p.ChannelID == "":
		return fail(apperr.New(apperr.Invalid, "channelId is required"))
	case textErr != nil:
		return fail(textErr)
	case len(p.Nonce) > h.cfg.MaxNonceLen:
		return fail(apperr.New(apperr.Invalid, "nonce is longer than %d bytes", h.cfg.MaxNonceLen))
	case !c.inChannel(p.ChannelID):
		return fail(apperr.New(apperr.Forbidden, "join the channel before sending to it"))
	case h.channels.archived(p.ChannelID):
		return fail(apperr.New(apperr.Forbidden, "the channel is archived: it takes no new messages"))
	}
	if e := h.allow(c); e != nil {
		return fail(e)
	}
	replyTo, mentions, e := h.references(c, p)
	if e != nil {
		return fail(e)
	}
	slot, done, ok := h.reserve(c, start, p.ChannelID, p.Nonce, messageAck)
	if !ok {
		return nil, done
	}
	msg := model.Message{ID: slot.ID, ChannelID: p.ChannelID, AuthorID: c.user.ID, Author: c.user.Username,
		Text: p.Text, Nonce: p.Nonce, CreatedAt: time.UnixMilli(slot.TS).UTC(), ReplyTo: replyTo, Mentions: mentions}
	h.inflight.Add(1)
	return &pendingSend{start: start, nonce: p.Nonce, msg: msg, slot: slot, reply: messageAck}, nil
}

// opening starts every entry's checks (a message, a change of one, a read marker):
// the clock its latency and result are counted from, fail (which counts a refusal and
// makes its ack), the drain check and the payload.
func (h *Hub) opening(args []json.RawMessage, payload any) (time.Time, func(*apperr.Error) (*pendingSend, any), *apperr.Error) {
	start := time.Now()
	fail := func(e *apperr.Error) (*pendingSend, any) {
		h.sendDone(start, e.Code)
		return nil, errorAck(e)
	}
	if h.draining.Load() {
		return start, fail, apperr.New(apperr.Unavailable, "server is shutting down, retry after reconnecting")
	}
	return start, fail, decodePayload(args, payload)
}

// allow takes one of the user's sends (messages and changes of them alike) from
// its rate limit.
func (h *Hub) allow(c *client) *apperr.Error {
	if ok, _ := h.limiters.Allow(c.user.ID); !ok {
		return apperr.New(apperr.RateLimited, "too many messages; slow down")
	}
	return nil
}

// reserve is the part of every entry's path after its own checks (and allow): the
// nonce claim and a place in channelID's order. ok false: answer done at
// once (a refusal, or a retry of an entry that succeeded, answered with reply).
func (h *Hub) reserve(c *client, start time.Time, channelID, nonce string, reply func(id string, ts int64) any) (slot broker.Slot, done any, ok bool) {
	fail := func(e *apperr.Error) (broker.Slot, any, bool) {
		h.sendDone(start, e.Code)
		return broker.Slot{}, errorAck(e), false
	}
	ctx, cancel := h.opContext(context.Background())
	defer cancel()
	// A retry after a failed attempt reuses that attempt's id and time: the attempt
	// may have reached the queue after all, and the store then keeps one message.
	var attempt sessions.Ack
	if nonce != "" {
		// The claim only needs to outlive one send; a node that dies holding it
		// must not block the retry for long.
		prev, claimed, err := h.Sessions.ClaimNonce(ctx, c.user.ID, nonce, 3*h.cfg.SendTimeout)
		attempt = prev
		switch {
		case errors.Is(err, sessions.ErrInFlight):
			return fail(apperr.New(apperr.Unavailable, "a send with this nonce is still in progress; retry shortly"))
		case err != nil:
			h.Log.Error("nonce claim failed", "err", err)
			return fail(apperr.New(apperr.Unavailable, "the service is temporarily unavailable, retry"))
		case !claimed:
			h.sendDone(start, "ok")
			return broker.Slot{}, reply(prev.ID, prev.TS), false // a retry of a send that already succeeded
		}
	}

	// A retry after a failed attempt keeps that attempt's slot (the attempt may have
	// reached the queue after all, and the store then keeps one message); the slot
	// stays reserved for it until the broker's hold runs out.
	slot = broker.Slot{ChannelID: channelID, ID: attempt.ID, TS: attempt.TS}
	if slot.ID == "" {
		var err error
		if slot, err = h.Broker.Reserve(ctx, channelID); err != nil {
			h.Log.Warn("reserving a message slot failed", "err", err)
			if nonce != "" {
				if err := h.Sessions.ReleaseNonce(ctx, c.user.ID, nonce, sessions.Ack{}, h.cfg.NonceTTL); err != nil {
					h.Log.Warn("releasing the nonce failed; its claim expires on its own", "err", err)
				}
			}
			return fail(apperr.New(apperr.Unavailable, "the service is temporarily unavailable, retry"))
		}
	}
	return slot, nil, true
}

// completeSend makes a begun send durable (Kafka), fans it out and returns its ack.
// Sends of one connection may complete concurrently.
func (h *Hub) completeSend(c *client, ps *pendingSend) any {
	defer h.inflight.Done()
	nonce, msg := ps.nonce, ps.msg
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
		if nonce == "" {
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
			if err := h.Sessions.ReleaseNonce(rctx, c.user.ID, nonce, failed, h.cfg.NonceTTL); err != nil {
				h.Log.Warn("recording the failed attempt failed; its claim expires on its own", "err", err)
			}
			cancel()
		}
		if ps.undo != nil {
			ps.undo()
		}
		return fail(apperr.New(apperr.Unavailable, "the message was not confirmed as stored; retry it with the same nonce"))
	}
	wire := msg.Wire()
	ev := broker.Event{Kind: broker.KindMessage, ChannelID: msg.ChannelID, Data: msg.Data}
	if msg.Kind == "" {
		ev.Data, _ = json.Marshal(wire)
	} else { // a change of a message, or a read marker: its event is its entry's payload
		ev.Kind, ev.Origin, ev.To = msg.Kind, msg.AuthorID, ps.to
	}
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
		h.queueFanout(pendingFanout{slot: ps.slot, ev: ev, userID: c.user.ID, nonce: nonce, ack: ack, since: time.Now()})
		return ps.reply(wire.ID, wire.TS)
	}
	if nonce != "" {
		if err := h.Sessions.CompleteNonce(ctx, c.user.ID, nonce, ack, h.cfg.NonceTTL); err != nil {
			h.Log.Warn("recording nonce failed", "err", err)
		}
	}
	h.notifyMentions(ctx, msg)
	return ps.reply(wire.ID, wire.TS)
}

// checkText refuses a text no message may have (a message's or an edit's).
func (h *Hub) checkText(s string) *apperr.Error {
	switch {
	case text.Blank(s):
		return apperr.New(apperr.Invalid, "text must not be empty or only spaces and invisible characters")
	case !utf8.ValidString(s):
		return apperr.New(apperr.Invalid, "text must be valid UTF-8")
	case utf8.RuneCountInString(s) > h.cfg.MaxMessageChars:
		return apperr.New(apperr.TooLarge, "text is longer than %d characters", h.cfg.MaxMessageChars)
	}
	return nil
}

// MaxMentions is how many users one message may mention (more @names are text).
const MaxMentions = 20

// references checks what a message refers to, only when it refers to anything (the
// plain send path reads no store): the message it replies to must be a message of
// its channel, and each @name it mentions becomes a mention when it names a user who
// may be in the channel (anyone, for a public one; a member, otherwise).
func (h *Hub) references(c *client, p sendPayload) (string, []string, *apperr.Error) {
	names := text.Mentions(p.Text, MaxMentions)
	if p.ReplyTo == "" && len(names) == 0 {
		return "", nil, nil
	}
	ctx, cancel := h.opContext(context.Background())
	defer cancel()
	replyTo := ""
	if p.ReplyTo != "" {
		parent, e := h.target(ctx, c, p.ReplyTo)
		if e != nil {
			return "", nil, e
		}
		if parent.ChannelID != p.ChannelID {
			return "", nil, apperr.New(apperr.Invalid, "replyTo must be a message of the same channel")
		}
		replyTo = parent.ID
	}
	var mentions []string
	for _, name := range names {
		u, _, err := h.Store.UserByName(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			continue // an @word that names no one
		}
		if err != nil {
			return "", nil, apperr.New(apperr.Unavailable, "the service is temporarily unavailable, retry")
		}
		if _, err := h.admit(ctx, p.ChannelID, u.ID); err != nil {
			continue // not someone who may read the channel: no mention
		}
		mentions = append(mentions, u.ID)
	}
	return replyTo, mentions, nil
}

// EventMention tells a user a message mentions them.
const EventMention = "mention"

// notifyMentions tells each user msg mentions (but its author) on every connection,
// joined to the channel or not, with an event outside the channel's order: the
// message itself, with its mentions, is in the order and history.
func (h *Hub) notifyMentions(ctx context.Context, msg model.Message) {
	for _, u := range msg.Mentions {
		if u == msg.AuthorID {
			continue
		}
		data, _ := json.Marshal(map[string]string{"channelId": msg.ChannelID, "messageId": msg.ID})
		if _, err := h.Broker.Publish(ctx, broker.Event{Kind: EventMention, ChannelID: msg.ChannelID, Data: data, To: u}, false); err != nil {
			h.Log.Warn("telling a mentioned user failed; the mention still counts", "err", err)
		}
	}
}
