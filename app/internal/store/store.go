// Package store persists users, channels and messages.
package store

import (
	"context"
	"errors"

	"github.com/quibly/quibly/app/internal/model"
)

var (
	// ErrNotFound is returned when the requested row does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict is returned when a unique name is already taken.
	ErrConflict = errors.New("already exists")
)

// Store is the system of record. Implementations: SQLite (standalone), PostgreSQL (clustered).
type Store interface {
	// CreateUser inserts a user; ErrConflict when the username is taken.
	CreateUser(ctx context.Context, username, passwordHash string) (model.User, error)
	// UserByName returns the user and its password hash; ErrNotFound when absent.
	UserByName(ctx context.Context, username string) (model.User, string, error)
	// CreateChannel inserts a channel; ErrConflict when the name is taken.
	CreateChannel(ctx context.Context, name, createdBy string) (model.Channel, error)
	// EnsureChannel returns the channel with that name, creating it when absent.
	EnsureChannel(ctx context.Context, name string) (model.Channel, error)
	// Channel returns one channel by id; ErrNotFound when absent.
	Channel(ctx context.Context, id string) (model.Channel, error)
	// Channels lists all channels ordered by name.
	Channels(ctx context.Context) ([]model.Channel, error)
	// WriteMessages stores a batch in one transaction. It is idempotent: a message whose
	// ID, or whose (AuthorID, Nonce) pair, is already stored is skipped. Returns rows inserted.
	WriteMessages(ctx context.Context, msgs []model.Message) (int, error)
	// Messages returns up to limit messages of a channel with ID < before (all when before
	// is empty), newest first.
	Messages(ctx context.Context, channelID, before string, limit int) ([]model.Message, error)
	// Ping reports whether the store can serve.
	Ping(ctx context.Context) error
	Close() error
}
