package chat

import (
	"context"
	"errors"
	"sync"

	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/store"
)

// knownChannels remembers the channels found in the store: their ids and kinds. A
// channel's kind never changes, so a join of a public channel (and a reconnect storm
// is a join per client) then needs no database query, and every member of a channel
// holds the one copy of its id.
type knownChannels struct {
	mu  sync.RWMutex
	ids map[string]knownChannel
}

type knownChannel struct {
	id, kind string
	archived bool
}

// maxKnownChannels bounds the memory; past it the set starts over.
const maxKnownChannels = 1 << 16

// lookup returns the remembered copy of id and its kind.
func (k *knownChannels) lookup(id string) (knownChannel, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	c, ok := k.ids[id]
	return c, ok
}

// add remembers channel c, found in the store, and returns the copy to keep.
func (k *knownChannels) add(c model.Channel) knownChannel {
	k.mu.Lock()
	defer k.mu.Unlock()
	if known, ok := k.ids[c.ID]; ok {
		return known
	}
	if k.ids == nil || len(k.ids) >= maxKnownChannels {
		k.ids = map[string]knownChannel{}
	}
	known := knownChannel{id: c.ID, kind: c.Kind, archived: c.Archived}
	k.ids[c.ID] = known
	return known
}

// setArchived records a channel:update (archived or not) for a channel known here.
func (k *knownChannels) setArchived(id string, archived bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if c, ok := k.ids[id]; ok {
		c.archived = archived
		k.ids[id] = c
	}
}

// forget drops a deleted channel: the next join of its id asks the store (not found).
func (k *knownChannels) forget(id string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.ids, id)
}

// archived reports whether a channel known here is archived.
func (k *knownChannels) archived(id string) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.ids[id].archived
}

// errNoChannel answers for a channel that does not exist and for a private one the
// user is not a member of alike, so that the answer reveals nothing.
var errNoChannel = errors.New("no such channel")

// admit returns the channel id names when userID may be in it: any public channel,
// a private channel or DM only for its members. errNoChannel otherwise.
func (h *Hub) admit(ctx context.Context, id, userID string) (string, error) {
	known, ok := h.channels.lookup(id)
	if !ok {
		c, err := h.Store.Channel(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return "", errNoChannel
		}
		if err != nil {
			return "", err
		}
		known = h.channels.add(c)
	}
	if known.kind == model.KindPublic {
		return known.id, nil
	}
	if _, err := h.Store.Member(ctx, known.id, userID); errors.Is(err, store.ErrNotFound) {
		return "", errNoChannel
	} else if err != nil {
		return "", err
	}
	return known.id, nil
}
