package chat

// Changes of a message after it was sent: its author edits it, its author or the
// channel's owners and admins delete it, members react to it. Each takes a message's
// path (the sender's rate limit, its nonce, a place in the channel's order, Kafka,
// the bus, the batch writer) as an entry of kind message:update, message:delete or
// reaction, which members get in the channel's order, recovery replays and the store
// folds into the message (store/effects.go).

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/quibly/quibly/app/internal/apperr"
	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/store"
	"github.com/quibly/quibly/app/internal/text"
)

// Client events that change a message.
const (
	EventEdit           = "message:edit"
	EventDelete         = "message:delete"
	EventReactionAdd    = "reaction:add"
	EventReactionRemove = "reaction:remove"
)

// Reactions per message are bounded: distinct emoji, and reactions of one user.
const (
	MaxEmojiPerMessage  = 20
	MaxReactionsPerUser = 10
)

// storeWait is how long a change waits for a new message it names to reach the store:
// a message is acked once Kafka has it, the batch writer stores it a moment later.
// Only a message id of the last storeRecent is waited for; older ones are stored.
const (
	storeWait   = 2 * time.Second
	storeRecent = 30 * time.Second
)

type editPayload struct {
	ID    string `json:"id"`
	Text  string `json:"text"`
	Nonce string `json:"nonce"`
}

type deletePayload struct {
	ID    string `json:"id"`
	Nonce string `json:"nonce"`
}

type reactionPayload struct {
	MessageID string `json:"messageId"`
	Emoji     string `json:"emoji"`
	Nonce     string `json:"nonce"`
}

var errNoMessage = apperr.New(apperr.NotFound, "no such message")

// beginEdit is beginSend for message:edit.
func (h *Hub) beginEdit(c *client, args []json.RawMessage) (*pendingSend, any) {
	var p editPayload
	return h.beginChange(c, args, &p, func() (string, string, *apperr.Error) { return p.ID, p.Nonce, h.checkText(p.Text) },
		func(ctx context.Context, st model.MessageState) (string, any, *apperr.Error) {
			if st.AuthorID != c.user.ID {
				return "", nil, apperr.New(apperr.Forbidden, "only its author edits a message")
			}
			return model.EventMessageUpdate, model.MessageEdit{ID: st.ID, ChannelID: st.ChannelID, Text: p.Text}, nil
		})
}

// beginDelete is beginSend for message:delete.
func (h *Hub) beginDelete(c *client, args []json.RawMessage) (*pendingSend, any) {
	var p deletePayload
	return h.beginChange(c, args, &p, func() (string, string, *apperr.Error) { return p.ID, p.Nonce, nil },
		func(ctx context.Context, st model.MessageState) (string, any, *apperr.Error) {
			if st.AuthorID != c.user.ID {
				role, err := h.Store.Member(ctx, st.ChannelID, c.user.ID)
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					return "", nil, apperr.New(apperr.Unavailable, "the service is temporarily unavailable, retry")
				}
				if role != model.RoleOwner && role != model.RoleAdmin {
					return "", nil, apperr.New(apperr.Forbidden, "only its author or the channel's owners and admins delete a message")
				}
			}
			return model.EventMessageDelete, model.MessageDeletion{ID: st.ID, ChannelID: st.ChannelID}, nil
		})
}

// reactionTTL is how long a reaction's latest state is kept apart from the database
// (sessions.Store.SetReaction): far longer than the batch writer ever lags.
const reactionTTL = 24 * time.Hour

// beginReaction is beginSend for reaction:add (add) and reaction:remove. A reaction
// the user already has (or has not, to remove) is answered ok with no entry; which it
// is, the sessions store decides at once for every node (the database lags an add of
// a moment ago), so that clients can count each add and remove as a change.
func (h *Hub) beginReaction(c *client, args []json.RawMessage, add bool) (*pendingSend, any) {
	var p reactionPayload
	check := func() (string, string, *apperr.Error) {
		if !text.Emoji(p.Emoji) {
			return "", "", apperr.New(apperr.Invalid, "emoji must be one emoji, or a name such as :shipit:")
		}
		return p.MessageID, p.Nonce, nil
	}
	return h.beginChange(c, args, &p, check,
		func(ctx context.Context, st model.MessageState) (string, any, *apperr.Error) {
			op := model.ReactionRemove
			switch {
			case add && !st.Reacted[p.Emoji] && st.Counts[p.Emoji] == 0 && st.Emoji >= MaxEmojiPerMessage:
				return "", nil, apperr.New(apperr.TooLarge, "a message takes at most %d different emoji", MaxEmojiPerMessage)
			case add && !st.Reacted[p.Emoji] && st.Mine >= MaxReactionsPerUser:
				return "", nil, apperr.New(apperr.TooLarge, "one user puts at most %d reactions on a message", MaxReactionsPerUser)
			case add:
				op = model.ReactionAdd
			}
			changed, err := h.Sessions.SetReaction(ctx, c.user.ID, st.ID, p.Emoji, add, st.Reacted[p.Emoji], reactionTTL)
			if err != nil {
				h.Log.Warn("recording a reaction failed", "err", err)
				return "", nil, apperr.New(apperr.Unavailable, "the service is temporarily unavailable, retry")
			}
			if !changed {
				return "", nil, nil // so already
			}
			return model.EventReaction, model.Reaction{MessageID: st.ID, ChannelID: st.ChannelID, Emoji: p.Emoji, UserID: c.user.ID, Op: op}, nil
		})
}

// beginChange runs a change's checks in the connection's order: the payload (check
// returns the message's id and the nonce, or a refusal), the message it names (see
// target), then decide, which returns the entry's kind and
// payload (kind "" for nothing to do: answered ok), or a refusal. Then the change
// takes its place in the channel's order, as a send does.
func (h *Hub) beginChange(c *client, args []json.RawMessage, payload any, check func() (id, nonce string, e *apperr.Error),
	decide func(context.Context, model.MessageState) (string, any, *apperr.Error)) (*pendingSend, any) {
	start, fail, e := h.opening(args, payload)
	if e != nil {
		return fail(e)
	}
	id, nonce, e := check()
	if e != nil {
		return fail(e)
	}
	if len(nonce) > h.cfg.MaxNonceLen {
		return fail(apperr.New(apperr.Invalid, "nonce is longer than %d bytes", h.cfg.MaxNonceLen))
	}
	if e := h.allow(c); e != nil {
		return fail(e)
	}
	ctx, cancel := h.opContext(context.Background())
	defer cancel()
	st, e := h.target(ctx, c, id)
	if e != nil {
		return fail(e)
	}
	kind, data, e := decide(ctx, st)
	if e != nil {
		return fail(e)
	}
	if kind == "" {
		h.sendDone(start, "ok")
		return nil, map[string]any{"ok": true}
	}
	reply := func(_ string, ts int64) any { return map[string]any{"ok": true} }
	if kind == model.EventMessageUpdate {
		reply = func(_ string, ts int64) any { return map[string]any{"ok": true, "editedAt": ts} }
	}
	// A reaction recorded by decide but never queued is put back, so that the user's
	// retry is not taken for a repeat.
	var undo func()
	if r, ok := data.(model.Reaction); ok {
		undo = func() {
			uctx, cancel := h.opContext(context.Background())
			defer cancel()
			if _, err := h.Sessions.SetReaction(uctx, r.UserID, r.MessageID, r.Emoji, r.Op != model.ReactionAdd, r.Op == model.ReactionAdd, reactionTTL); err != nil {
				h.Log.Warn("putting back a reaction that was not queued failed", "err", err)
			}
		}
	}
	slot, done, ok := h.reserve(c, start, st.ChannelID, nonce, reply)
	if !ok {
		if undo != nil {
			undo()
		}
		return nil, done
	}
	if edit, ok := data.(model.MessageEdit); ok {
		edit.EditedAt = slot.TS // the edit's place in the order is its time
		data = edit
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return fail(apperr.New(apperr.Invalid, "the change cannot be encoded"))
	}
	msg := model.Message{ID: slot.ID, ChannelID: st.ChannelID, AuthorID: c.user.ID, Author: c.user.Username,
		Nonce: nonce, CreatedAt: time.UnixMilli(slot.TS).UTC(), Kind: kind, Data: raw}
	h.inflight.Add(1)
	return &pendingSend{start: start, nonce: nonce, msg: msg, slot: slot, reply: reply, undo: undo}, nil
}

// target finds the message id names for c to change: not_found when there is none,
// it is deleted, or c's user may not be in its channel (the same answer, so that
// nothing of a private channel shows); forbidden when c has not joined the channel or
// it is archived. A message sent a moment ago may not be stored yet: it is waited for
// (storeWait).
func (h *Hub) target(ctx context.Context, c *client, id string) (model.MessageState, *apperr.Error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return model.MessageState{}, errNoMessage
	}
	id = u.String()
	st, err := h.Store.MessageState(ctx, id, c.user.ID)
	if errors.Is(err, store.ErrNotFound) && recentID(u) {
		deadline := time.Now().Add(storeWait)
		for errors.Is(err, store.ErrNotFound) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			st, err = h.Store.MessageState(ctx, id, c.user.ID)
		}
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return model.MessageState{}, errNoMessage
	case err != nil:
		h.Log.Warn("reading a message's state failed", "err", err)
		return model.MessageState{}, apperr.New(apperr.Unavailable, "the service is temporarily unavailable, retry")
	}
	if !c.inChannel(st.ChannelID) {
		if _, err := h.admit(ctx, st.ChannelID, c.user.ID); errors.Is(err, errNoChannel) {
			return model.MessageState{}, errNoMessage
		} else if err != nil {
			return model.MessageState{}, apperr.New(apperr.Unavailable, "the service is temporarily unavailable, retry")
		}
		return model.MessageState{}, apperr.New(apperr.Forbidden, "join the channel before changing its messages")
	}
	if st.Deleted {
		return model.MessageState{}, errNoMessage
	}
	if h.channels.archived(st.ChannelID) {
		return model.MessageState{}, apperr.New(apperr.Forbidden, "the channel is archived: its messages no longer change")
	}
	return st, nil
}

// recentID reports whether a UUIDv7 was made in the last storeRecent (or a little
// in the future: clocks differ).
func recentID(u uuid.UUID) bool {
	if u.Version() != 7 {
		return false
	}
	sec, nsec := u.Time().UnixTime()
	age := time.Since(time.Unix(sec, nsec))
	return age < storeRecent && age > -5*time.Second
}
