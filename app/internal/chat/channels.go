package chat

import "sync"

// knownChannels remembers ids of channels found in the store. Channels are never
// deleted, so an id once found stays valid: a join (and a reconnect storm is a join
// per client) then needs no PostgreSQL query, and every member of a channel holds
// the one copy of its id.
type knownChannels struct {
	mu  sync.RWMutex
	ids map[string]string
}

// maxKnownChannels bounds the memory; past it the set starts over.
const maxKnownChannels = 1 << 16

// lookup returns the remembered copy of id.
func (k *knownChannels) lookup(id string) (string, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	canonical, ok := k.ids[id]
	return canonical, ok
}

// add remembers id, found in the store, and returns the copy to keep.
func (k *knownChannels) add(id string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if canonical, ok := k.ids[id]; ok {
		return canonical
	}
	if k.ids == nil || len(k.ids) >= maxKnownChannels {
		k.ids = map[string]string{}
	}
	k.ids[id] = id
	return id
}
