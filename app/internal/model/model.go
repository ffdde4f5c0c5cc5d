// Package model holds the domain types shared by every layer of Quibly.
package model

import (
	"encoding/json"
	"time"
)

// User is a registered account. The password hash never leaves the store package.
type User struct {
	ID        string    `json:"id"`
	Username  string    `json:"username"`
	CreatedAt time.Time `json:"createdAt"`
	// TokenVersion is the version of the user's tokens (store) or the one a token
	// was issued under (auth); a token of an older version was revoked.
	TokenVersion int64 `json:"-"`
}

// Channel kinds.
const (
	// KindPublic: any signed-in user may see and join it.
	KindPublic = "public"
	// KindPrivate: only its members see it, join it or read it.
	KindPrivate = "private"
	// KindDM: the direct messages of two users (of one: notes to self); it never
	// gains members.
	KindDM = "dm"
)

// Member roles.
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// Channel is a named chat room.
type Channel struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Kind      string    `json:"kind"`
	CreatedBy string    `json:"createdBy,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	// Archived: the history stays, no message is taken.
	Archived bool `json:"archived,omitempty"`
	// Role is the role in it of the user a listing is for ("" for none).
	Role string `json:"role,omitempty"`
}

// Member is a user's membership of a channel.
type Member struct {
	UserID   string    `json:"userId"`
	Username string    `json:"username"`
	Role     string    `json:"role"`
	AddedAt  time.Time `json:"addedAt"`
}

// MemberChange is a change of a channel's membership, as its members are told of it
// (the events member:join, member:update and member:leave).
type MemberChange struct {
	// ID and TS are the change's place in the channel's order (its history id) and time.
	ID        string `json:"id,omitempty"`
	TS        int64  `json:"ts,omitempty"`
	ChannelID string `json:"channelId"`
	UserID    string `json:"userId"`
	Username  string `json:"username,omitempty"`
	// Role is the member's role after the change ("" when it left).
	Role string `json:"role,omitempty"`
	// By is the user who made the change (the member itself when it left), ByName
	// its username.
	By     string `json:"by"`
	ByName string `json:"byName,omitempty"`
	// Event is member:join, member:update or member:leave.
	Event string `json:"-"`
}

// Member change events.
const (
	EventMemberJoin   = "member:join"
	EventMemberUpdate = "member:update"
	EventMemberLeave  = "member:leave"
)

// Channel change events: renamed or (un)archived, and deleted.
const (
	EventChannelUpdate = "channel:update"
	EventChannelDelete = "channel:delete"
)

// ChannelChange is a change of a channel itself, as its members are told of it.
type ChannelChange struct {
	ID        string `json:"id,omitempty"`
	TS        int64  `json:"ts,omitempty"`
	ChannelID string `json:"channelId"`
	Name      string `json:"name,omitempty"`
	Archived  bool   `json:"archived"`
	By        string `json:"by"`
	ByName    string `json:"byName,omitempty"`
	Event     string `json:"-"`
}

// DMKey is what makes the DM of two users one channel, whichever of them asks.
func DMKey(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return a + ":" + b
}

// Message is one chat message. ID is a UUIDv7, so ordering by ID orders by time.
type Message struct {
	ID        string    `json:"id"`
	ChannelID string    `json:"channelId"`
	AuthorID  string    `json:"authorId"`
	Author    string    `json:"author"`
	Text      string    `json:"text"`
	Nonce     string    `json:"nonce,omitempty"`
	CreatedAt time.Time `json:"-"`
	// Kind is empty for what a user wrote; for a change of the channel's state kept in
	// its history (member:join, member:update, member:leave) it names the event, Data
	// holds its payload and AuthorID is the user who made the change.
	Kind string          `json:"kind,omitempty"`
	Data json.RawMessage `json:"data,omitempty"`
	// ReplyTo is the message of the same channel this one answers ("" for none);
	// Mentions the users its text names with @username (members of its channel).
	ReplyTo  string   `json:"replyTo,omitempty"`
	Mentions []string `json:"mentions,omitempty"`
	// EditedAt (zero: never), Deleted and Reactions are the message's state now, as
	// history shows it (see WireMessage).
	EditedAt  time.Time       `json:"-"`
	Deleted   bool            `json:"-"`
	Reactions []ReactionCount `json:"-"`
}

// WireMessage is the payload of the server → client `message` event.
type WireMessage struct {
	ID        string `json:"id"`
	ChannelID string `json:"channelId"`
	AuthorID  string `json:"authorId"`
	Author    string `json:"author"`
	Text      string `json:"text"`
	TS        int64  `json:"ts"` // Unix milliseconds
	Nonce     string `json:"nonce,omitempty"`
	// Kind and Data: a change of the channel's state (see Message).
	Kind string          `json:"kind,omitempty"`
	Data json.RawMessage `json:"data,omitempty"`
	// ReplyTo and Mentions: see Message.
	ReplyTo  string   `json:"replyTo,omitempty"`
	Mentions []string `json:"mentions,omitempty"`
	// What happened to the message since (history only): its last edit's time (Unix
	// ms), whether it was deleted (then its text and author's name are empty), and its
	// reactions.
	EditedAt  int64           `json:"editedAt,omitempty"`
	Deleted   bool            `json:"deleted,omitempty"`
	Reactions []ReactionCount `json:"reactions,omitempty"`
}

// Wire returns the client-facing form of m.
func (m Message) Wire() WireMessage {
	w := WireMessage{ID: m.ID, ChannelID: m.ChannelID, AuthorID: m.AuthorID, Author: m.Author,
		Text: m.Text, TS: m.CreatedAt.UnixMilli(), Nonce: m.Nonce, Kind: m.Kind, Data: m.Data,
		ReplyTo: m.ReplyTo, Mentions: m.Mentions, Deleted: m.Deleted, Reactions: m.Reactions}
	if !m.EditedAt.IsZero() {
		w.EditedAt = m.EditedAt.UnixMilli()
	}
	return w
}

// Events that change a message after it was sent. Each is an entry of the channel's
// order and of its log in the store (a Message whose Kind is the event and Data its
// payload, AuthorID who did it); the store folds it into the message it names, so
// history shows each message as it now is and lists these entries no more.
const (
	EventMessageUpdate = "message:update" // Data: MessageEdit
	EventMessageDelete = "message:delete" // Data: MessageDeletion
	EventReaction      = "reaction"       // Data: Reaction
	EventRead          = "read"           // Data: ReadMarker
)

// ReceiptMembers is the most members a private channel or DM may have for its
// members to get each other's read markers (read receipts); above it, and in public
// channels (which have no member list), only counts are kept.
const ReceiptMembers = 50

// ReadMarker is how far a user has read a channel: up to and including MessageID.
// Receipt says whether the channel's members are told (its members are few enough).
type ReadMarker struct {
	ChannelID string `json:"channelId"`
	UserID    string `json:"userId"`
	Username  string `json:"username,omitempty"`
	MessageID string `json:"messageId"`
	Receipt   bool   `json:"-"`
}

// Unread is a user's place in one channel: its read marker ("" before the first
// read), the messages after it by others, and those of them that mention the user.
type Unread struct {
	Marker   string `json:"marker,omitempty"`
	Unread   int    `json:"unread"`
	Mentions int    `json:"mentions"`
}

// MessageEdit is an edit: the message's new text.
type MessageEdit struct {
	ID        string `json:"id"` // the message edited
	ChannelID string `json:"channelId"`
	Text      string `json:"text"`
	EditedAt  int64  `json:"editedAt"` // Unix ms: the edit's place in the order
}

// MessageDeletion is a deletion: the message's text is gone for good.
type MessageDeletion struct {
	ID        string `json:"id"` // the message deleted
	ChannelID string `json:"channelId"`
}

// Reaction ops.
const (
	ReactionAdd    = "add"
	ReactionRemove = "remove"
)

// Reaction is one user's reaction added to or removed from a message.
type Reaction struct {
	MessageID string `json:"messageId"`
	ChannelID string `json:"channelId"`
	Emoji     string `json:"emoji"`
	UserID    string `json:"userId"`
	Op        string `json:"op"` // add or remove
}

// ReactionCount is how many users reacted to a message with one emoji, and whether
// the user it is shown to is one of them.
type ReactionCount struct {
	Emoji string `json:"emoji"`
	Count int    `json:"count"`
	Me    bool   `json:"me,omitempty"`
}

// MessageState is what the store knows of one message for authorizing a change of it.
type MessageState struct {
	ID, ChannelID, AuthorID string
	Deleted                 bool
	// Emoji is how many distinct emoji it has, Counts how many users gave each; Mine
	// how many reactions the asking user put on it, Reacted which.
	Emoji, Mine int
	Counts      map[string]int
	Reacted     map[string]bool
}

// CountReactions fills Emoji, Mine and Reacted from the message's present reactions
// ({emoji, user id} pairs), for userID.
func (s *MessageState) CountReactions(userID string, reactions [][2]string) {
	s.Counts, s.Reacted, s.Mine = map[string]int{}, map[string]bool{}, 0
	for _, r := range reactions {
		s.Counts[r[0]]++
		if r[1] == userID {
			s.Mine++
			s.Reacted[r[0]] = true
		}
	}
	s.Emoji = len(s.Counts)
}
