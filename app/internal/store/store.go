// Package store persists users, channels and messages.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/quibly/quibly/app/internal/model"
)

var (
	// ErrNotFound is returned when the requested row does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict is returned when a unique name is already taken.
	ErrConflict = errors.New("already exists")
	// ErrRejected marks a write the store refuses for good (a message whose author or
	// channel no longer exists, or data a column cannot hold): a retry cannot help.
	ErrRejected = errors.New("rejected")
)

// Cursor is a place in the channel list: after the channel with this name and id. A
// cursor with a name and no id is after every channel of that name.
type Cursor struct{ Name, ID string }

// CursorAfter is the cursor just past c.
func CursorAfter(c model.Channel) Cursor { return Cursor{Name: c.Name, ID: c.ID} }

// MaxUnread caps an unread count: past it a client shows "99+", and the count needs
// no scan of a long-unread channel's whole history.
const MaxUnread = 100

// Receipts reports whether the members of channel id (of kind) get each other's read
// markers: a private channel or DM of at most model.ReceiptMembers members. Public
// channels have no member list, and their members are not read.
func Receipts(ctx context.Context, st Store, id, kind string) (bool, error) {
	if kind == model.KindPublic {
		return false, nil
	}
	members, err := st.Members(ctx, id)
	if err != nil {
		return false, err
	}
	return len(members) <= model.ReceiptMembers, nil
}

// Store is the system of record. Implementations: SQLite (standalone), PostgreSQL (clustered).
type Store interface {
	// CreateUser inserts a user; ErrConflict when the username is taken.
	CreateUser(ctx context.Context, username, passwordHash string) (model.User, error)
	// UserByName returns the user and its password hash; ErrNotFound when absent.
	UserByName(ctx context.Context, username string) (model.User, string, error)
	// TokenVersion returns the user's token version and whether the user exists (a
	// signed token may outlive its user, e.g. after a restore).
	TokenVersion(ctx context.Context, id string) (version int64, exists bool, err error)
	// RevokeTokens raises the user's token version, so every token issued before is
	// refused; ErrNotFound when there is no such user.
	RevokeTokens(ctx context.Context, id string) error
	// CreateChannel inserts a public or private channel; its creator (when not
	// empty) becomes its owner. ErrConflict when the name is taken.
	CreateChannel(ctx context.Context, name, kind, createdBy string) (model.Channel, error)
	// DirectChannel returns the DM channel of users a and b (a == b: notes to self),
	// creating it with both as members; created reports whether it is new.
	// ErrNotFound when a user does not exist.
	DirectChannel(ctx context.Context, a, b string) (c model.Channel, created bool, err error)
	// Member returns userID's role in channelID; ErrNotFound when not a member.
	Member(ctx context.Context, channelID, userID string) (string, error)
	// SetMember makes userID a member of channelID with role, or gives it that role;
	// changed is false when it already had it. ErrNotFound for an unknown channel or user.
	SetMember(ctx context.Context, channelID, userID, role string) (changed bool, err error)
	// RemoveMember ends userID's membership; removed is false when there was none.
	RemoveMember(ctx context.Context, channelID, userID string) (removed bool, err error)
	// Members lists a channel's members in the order they were added.
	Members(ctx context.Context, channelID string) ([]model.Member, error)
	// UpdateChannel renames a channel (name "" keeps it) and archives or unarchives it
	// (archived nil keeps it); changed is false when it was so already. ErrNotFound,
	// and ErrConflict for a name that is taken.
	UpdateChannel(ctx context.Context, id, name string, archived *bool) (c model.Channel, changed bool, err error)
	// DeleteChannel deletes a channel for everyone: it is no longer found, listed or
	// joined, and its name is free again; deleted is false when it was gone already.
	DeleteChannel(ctx context.Context, id string) (deleted bool, err error)
	// EnsureChannel returns the channel with that name, creating it when absent.
	EnsureChannel(ctx context.Context, name string) (model.Channel, error)
	// Channel returns one channel by id; ErrNotFound when absent.
	Channel(ctx context.Context, id string) (model.Channel, error)
	// ChannelsFor lists up to limit of the channels userID may see (the public ones
	// and those it is a member of), each with userID's role, ordered by name (by
	// bytes) and then id, those after the cursor (the zero cursor: from the first).
	// Names are unique among public channels only, hence the id.
	ChannelsFor(ctx context.Context, userID string, after Cursor, limit int) ([]model.Channel, error)
	// MessageState returns what authorizing a change of a message needs: its channel,
	// author, whether it is deleted, and its reactions as userID sees them; ErrNotFound
	// when no message has that id (the entries of changes are not messages).
	MessageState(ctx context.Context, messageID, userID string) (model.MessageState, error)
	// Reactions returns the reactions of each of messageIDs that has any, per emoji in
	// the order they were first given, with Me set where userID is among them.
	Reactions(ctx context.Context, userID string, messageIDs []string) (map[string][]model.ReactionCount, error)
	// Replies returns up to limit of the messages that reply to parentID in channelID,
	// with ID < before (all when before is empty), newest first, as Messages does.
	Replies(ctx context.Context, channelID, parentID, before string, limit int) ([]model.Message, error)
	// ReadMarker returns how far userID has read channelID ("" before any read).
	ReadMarker(ctx context.Context, userID, channelID string) (string, error)
	// ReadMarkers lists every member's marker in channelID, with their usernames,
	// furthest first, up to limit.
	ReadMarkers(ctx context.Context, channelID string, limit int) ([]model.ReadMarker, error)
	// Unread returns userID's marker and counts in each of channelIDs: messages after
	// the marker by others, not deleted (counted up to MaxUnread), and those of them
	// that mention userID. A channel userID never read and is no member of counts none.
	Unread(ctx context.Context, userID string, channelIDs []string) (map[string]model.Unread, error)
	// WriteMessages stores a batch in one transaction. It is idempotent: a message whose
	// ID, or whose (AuthorID, Nonce) pair, is already stored is skipped. Returns rows
	// inserted. An error wrapping ErrRejected means some message of the batch can never
	// be stored; nothing of the batch was. Entries that change a message (edits,
	// deletions, reactions: see effects.go) are applied to it in the same transaction,
	// with the result the channel's order gives, whatever order they come in.
	WriteMessages(ctx context.Context, msgs []model.Message) (int, error)
	// RejectMessage parks a message the store refused for good, with the reason, so the
	// rest can go on (idempotent by message id).
	RejectMessage(ctx context.Context, m model.Message, reason string) error
	// RejectedIDs lists the parked messages' ids, oldest first.
	RejectedIDs(ctx context.Context) ([]string, error)
	// Messages returns up to limit messages of a channel with ID < before (all when before
	// is empty), newest first, each as it now is (edited, or a deleted tombstone); the
	// entries of edits, deletions and reactions are not listed.
	Messages(ctx context.Context, channelID, before string, limit int) ([]model.Message, error)
	// Ping reports whether the store can serve.
	Ping(ctx context.Context) error
	Close() error
}

// rawOrNil is a stored JSON payload, nil for none.
func rawOrNil(data string) json.RawMessage {
	if data == "" {
		return nil
	}
	return json.RawMessage(data)
}

func validRole(role string) bool {
	return role == model.RoleOwner || role == model.RoleAdmin || role == model.RoleMember
}

// rejectedBody is a parked message as JSON, every field kept (the time in Unix ms).
func rejectedBody(m model.Message) ([]byte, error) {
	b, err := json.Marshal(struct {
		model.Message
		CreatedAtMS int64 `json:"createdAtMs"`
	}{m, m.CreatedAt.UnixMilli()})
	if err != nil {
		return nil, fmt.Errorf("store: encoding rejected message %s: %w", m.ID, err)
	}
	return b, nil
}
