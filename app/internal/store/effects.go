package store

import (
	"encoding/json"
	"fmt"

	"github.com/quibly/quibly/app/internal/model"
)

// effect is what a log entry that changes a message (model.EventMessageUpdate,
// EventMessageDelete, EventReaction) does to it, read from the entry's data. The
// writer applies effects in the transaction that stores their entries; each is
// guarded by the entry's id (its place in the channel's order), so the result is that
// of the channel's order whatever order the entries are written in, and writing an
// entry again changes nothing:
//   - an edit sets the text only of a message not deleted and not edited by a later
//     entry; an edit of a deleted message keeps no text either;
//   - a delete empties the text and the author's name, and the text of every edit of
//     the message, and drops its reactions: nothing of what was written stays;
//   - a reaction (add or remove) of a user with an emoji counts only if no later entry
//     set it, and none is kept on a deleted message;
//   - a read entry moves the user's marker in the channel forward, never back;
//   - a message that mentions users gets a row per user in mentions (gone with it).
type effect struct {
	kind, entryID, target string
	channel               string   // the entry's channel: the target must be of it
	text                  string   // edit
	editedAt              int64    // edit, Unix ms
	userID, emoji         string   // reaction, read
	add                   bool     // reaction
	users                 []string // mentions
}

// effectMentions is the effect of a message that mentions users: a row each, so that
// a user's mentions in a channel can be counted.
const effectMentions = "mentions"

// effectKinds lists the entries that change another message; history lists them no
// more (their message shows the result).
var effectKinds = []string{model.EventMessageUpdate, model.EventMessageDelete, model.EventReaction, model.EventRead}

// effectOf returns m's effect, ok false when m is not such an entry. An entry of such
// a kind whose data does not say what it changes can never be applied: ErrRejected.
func effectOf(m model.Message) (effect, bool, error) {
	e := effect{kind: m.Kind, entryID: m.ID, channel: m.ChannelID}
	bad := func(err error) (effect, bool, error) {
		return effect{}, false, fmt.Errorf("store: %s entry %s: %w: %v", m.Kind, m.ID, ErrRejected, err)
	}
	switch m.Kind {
	case model.EventMessageUpdate:
		var d model.MessageEdit
		if err := json.Unmarshal(m.Data, &d); err != nil || d.ID == "" {
			return bad(fmt.Errorf("data %q: %v", m.Data, err))
		}
		e.target, e.text, e.editedAt = d.ID, d.Text, d.EditedAt
	case model.EventMessageDelete:
		var d model.MessageDeletion
		if err := json.Unmarshal(m.Data, &d); err != nil || d.ID == "" {
			return bad(fmt.Errorf("data %q: %v", m.Data, err))
		}
		e.target = d.ID
	case model.EventReaction:
		var d model.Reaction
		if err := json.Unmarshal(m.Data, &d); err != nil || d.MessageID == "" || d.Emoji == "" || d.UserID == "" ||
			(d.Op != model.ReactionAdd && d.Op != model.ReactionRemove) {
			return bad(fmt.Errorf("data %q: %v", m.Data, err))
		}
		e.target, e.userID, e.emoji, e.add = d.MessageID, d.UserID, d.Emoji, d.Op == model.ReactionAdd
	case model.EventRead:
		var d model.ReadMarker
		if err := json.Unmarshal(m.Data, &d); err != nil || d.MessageID == "" || d.UserID == "" {
			return bad(fmt.Errorf("data %q: %v", m.Data, err))
		}
		e.target, e.userID = d.MessageID, d.UserID
	case "":
		if len(m.Mentions) == 0 {
			return effect{}, false, nil
		}
		e.kind, e.target, e.users = effectMentions, m.ID, m.Mentions
	default:
		return effect{}, false, nil
	}
	return e, true, nil
}

// effectsOf returns the effects of a batch in batch order.
func effectsOf(msgs []model.Message) ([]effect, error) {
	var out []effect
	for _, m := range msgs {
		e, ok, err := effectOf(m)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// effectSQL is the SQL for applying effects; "?" placeholders in
// the order their apply passes arguments. One list serves both backends (PostgreSQL
// numbers the placeholders), so their rules cannot drift apart.
var effectSQL = struct {
	edit, scrubEdit, delete, scrubEdits, dropReactions, dropMentions, react, unreact, read, mention string
}{
	// args: text, edited_at, entry, target, channel, entry
	edit: `UPDATE messages SET text = ?, edited_at = ?, edit_id = ?
		WHERE id = ? AND channel_id = ? AND kind = '' AND deleted = FALSE AND (edit_id IS NULL OR edit_id < ?)`,
	// An edit of a deleted message keeps no text. args: entry, target
	scrubEdit: `UPDATE messages SET data = '' WHERE id = ? AND EXISTS (SELECT 1 FROM messages t WHERE t.id = ? AND t.deleted = TRUE)`,
	// args: target, channel
	delete: `UPDATE messages SET text = '', author = '', deleted = TRUE, edited_at = NULL, edit_id = NULL
		WHERE id = ? AND channel_id = ? AND kind = ''`,
	// args: target
	scrubEdits:    `UPDATE messages SET data = '' WHERE target_id = ? AND kind = 'message:update'`,
	dropReactions: `DELETE FROM reactions WHERE message_id = ?`,
	dropMentions:  `DELETE FROM mentions WHERE message_id = ?`,
	// A marker only moves forward. args: user, channel, message
	read: `INSERT INTO read_markers (user_id, channel_id, message_id) VALUES (?, ?, ?)
		ON CONFLICT (user_id, channel_id) DO UPDATE SET message_id = excluded.message_id
		WHERE excluded.message_id > read_markers.message_id`,
	// args: user, channel, message. (A delete of the message is accepted only once it
	// is stored, so its entry always comes later.)
	mention: `INSERT INTO mentions (user_id, channel_id, message_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
	// args: target, user, emoji, present, entry. (VALUES, not SELECT … WHERE: there
	// PostgreSQL takes the parameters' types from the columns.)
	react: `INSERT INTO reactions (message_id, user_id, emoji, present, op_id) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (message_id, user_id, emoji) DO UPDATE SET present = excluded.present, op_id = excluded.op_id
		WHERE excluded.op_id > reactions.op_id`,
	// No reaction stays on a deleted message or one of another channel. args: target,
	// user, emoji, target, channel
	unreact: `DELETE FROM reactions WHERE message_id = ? AND user_id = ? AND emoji = ?
		AND EXISTS (SELECT 1 FROM messages WHERE id = ? AND (deleted = TRUE OR channel_id <> ?))`,
}

// effectStep is one statement of an effect with its arguments.
type effectStep struct {
	sql  string
	args []any
}

// steps lists the statements that apply e. id, ts and flag convert an id, a Unix ms
// time and a boolean to the backend's column types.
func (e effect) steps(id func(string) any, ts func(int64) any, flag func(bool) any) []effectStep {
	ch := e.channel
	switch e.kind {
	case effectMentions: // a message, not an entry acting on one
		out := make([]effectStep, 0, len(e.users))
		for _, u := range e.users {
			out = append(out, effectStep{effectSQL.mention, []any{id(u), id(ch), id(e.entryID)}})
		}
		return out
	case model.EventRead:
		return []effectStep{{effectSQL.read, []any{id(e.userID), id(ch), id(e.target)}}}
	}
	var out []effectStep
	switch e.kind {
	case model.EventMessageUpdate:
		out = append(out,
			effectStep{effectSQL.edit, []any{e.text, ts(e.editedAt), id(e.entryID), id(e.target), id(ch), id(e.entryID)}},
			effectStep{effectSQL.scrubEdit, []any{id(e.entryID), id(e.target)}})
	case model.EventMessageDelete:
		out = append(out,
			effectStep{effectSQL.delete, []any{id(e.target), id(ch)}},
			effectStep{effectSQL.scrubEdits, []any{id(e.target)}},
			effectStep{effectSQL.dropReactions, []any{id(e.target)}},
			effectStep{effectSQL.dropMentions, []any{id(e.target)}})
	case model.EventReaction:
		out = append(out,
			effectStep{effectSQL.react, []any{id(e.target), id(e.userID), e.emoji, flag(e.add), id(e.entryID)}},
			effectStep{effectSQL.unreact, []any{id(e.target), id(e.userID), e.emoji, id(e.target), id(ch)}})
	}
	return out
}

// quotedKinds is effectKinds as an SQL list of literals.
var quotedKinds = func() string {
	out := ""
	for i, k := range effectKinds {
		if i > 0 {
			out += ", "
		}
		out += "'" + k + "'"
	}
	return out
}()

// mentionsText is a message's mentions as stored: a JSON array, "" for none.
func mentionsText(users []string) string {
	if len(users) == 0 {
		return ""
	}
	b, _ := json.Marshal(users) // strings always encode
	return string(b)
}

// parseMentions reads what mentionsText stored (nil for none or unreadable).
func parseMentions(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	if json.Unmarshal([]byte(s), &out) != nil {
		return nil
	}
	return out
}

// targetsOf maps each entry of a batch that acts on a message (an edit, a deletion,
// a reaction) to that message, the target_id its row is inserted with: a deletion
// finds the message's edits by it.
func targetsOf(effects []effect) map[string]string {
	out := map[string]string{}
	for _, e := range effects {
		switch e.kind {
		case model.EventMessageUpdate, model.EventMessageDelete, model.EventReaction:
			out[e.entryID] = e.target
		}
	}
	return out
}
