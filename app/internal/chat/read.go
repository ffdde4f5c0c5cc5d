package chat

// Read markers: channel:read {channelId, messageId} moves the caller's marker in a
// channel forward (never back). It is an entry of the channel's log like a message
// (rate limit, nonce, order, Kafka, recovery; the store keeps the furthest marker):
// the reader's every connection gets it as read {channelId, userId, messageId}, so
// unread counts agree on every device; in a private channel or DM of at most
// model.ReceiptMembers members every member gets it (read receipts). Above that, and in
// public channels, which have no member list, only counts are kept.

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/quibly/quibly/app/internal/apperr"
	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/store"
)

// EventRead is the client event that moves a read marker.
const EventRead = "channel:read"

type readPayload struct {
	ChannelID string `json:"channelId"`
	MessageID string `json:"messageId"`
	Nonce     string `json:"nonce"`
}

// beginRead is beginSend for channel:read. A marker at or before the caller's is
// answered ok with no entry.
func (h *Hub) beginRead(c *client, args []json.RawMessage) (*pendingSend, any) {
	var p readPayload
	start, fail, e := h.opening(args, &p)
	if e != nil {
		return fail(e)
	}
	if len(p.Nonce) > h.cfg.MaxNonceLen {
		return fail(apperr.New(apperr.Invalid, "nonce is longer than %d bytes", h.cfg.MaxNonceLen))
	}
	msgID, err := uuid.Parse(p.MessageID)
	if err != nil {
		return fail(errNoMessage)
	}
	if e := h.allow(c); e != nil {
		return fail(e)
	}
	ctx, cancel := h.opContext(context.Background())
	defer cancel()
	ch, err := h.admit(ctx, p.ChannelID, c.user.ID)
	if errors.Is(err, errNoChannel) {
		return fail(apperr.New(apperr.NotFound, "no such channel"))
	}
	if err != nil {
		return fail(apperr.New(apperr.Unavailable, "the service is temporarily unavailable, retry"))
	}
	st, err := h.Store.MessageState(ctx, msgID.String(), c.user.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fail(errNoMessage)
	case err != nil:
		return fail(apperr.New(apperr.Unavailable, "the service is temporarily unavailable, retry"))
	case st.ChannelID != ch:
		return fail(apperr.New(apperr.Invalid, "messageId must be a message of channelId"))
	}
	marker, err := h.Store.ReadMarker(ctx, c.user.ID, ch)
	if err != nil {
		return fail(apperr.New(apperr.Unavailable, "the service is temporarily unavailable, retry"))
	}
	if st.ID <= marker { // ids of a channel grow: a marker only moves forward
		h.sendDone(start, "ok")
		return nil, map[string]any{"ok": true, "marker": marker}
	}
	receipt, err := h.receipts(ctx, ch)
	if err != nil {
		return fail(apperr.New(apperr.Unavailable, "the service is temporarily unavailable, retry"))
	}
	reply := func(string, int64) any { return map[string]any{"ok": true, "marker": st.ID} }
	slot, done, ok := h.reserve(c, start, ch, p.Nonce, reply)
	if !ok {
		return nil, done
	}
	data, _ := json.Marshal(model.ReadMarker{ChannelID: ch, UserID: c.user.ID, Username: c.user.Username, MessageID: st.ID})
	msg := model.Message{ID: slot.ID, ChannelID: ch, AuthorID: c.user.ID, Author: c.user.Username,
		Nonce: p.Nonce, CreatedAt: time.UnixMilli(slot.TS).UTC(), Kind: model.EventRead, Data: data}
	to := c.user.ID
	if receipt {
		to = ""
	}
	h.inflight.Add(1)
	return &pendingSend{start: start, nonce: p.Nonce, msg: msg, slot: slot, reply: reply, to: to}, nil
}

// receipts reports whether ch's members get each other's read markers
// (store.Receipts), for a channel this node knows (admit learnt it).
func (h *Hub) receipts(ctx context.Context, ch string) (bool, error) {
	known, ok := h.channels.lookup(ch)
	if !ok {
		return false, nil
	}
	return store.Receipts(ctx, h.Store, ch, known.kind)
}
