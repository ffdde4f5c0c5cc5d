package sessions

import (
	"context"
	"sync"
	"time"
)

var _ Store = (*Memory)(nil)

// Memory is the in-process Store of standalone mode.
type Memory struct {
	now func() time.Time

	mu       sync.Mutex
	sessions map[string]expiring[Session]
	nonces   map[string]expiring[nonceState]
	reacts   map[string]expiring[bool]
	sweeps   int
}

type expiring[T any] struct {
	v   T
	exp time.Time
}

// NewMemory returns an empty in-process store.
func NewMemory() *Memory {
	return &Memory{now: time.Now, sessions: map[string]expiring[Session]{}, nonces: map[string]expiring[nonceState]{},
		reacts: map[string]expiring[bool]{}}
}

// sweep drops expired entries now and then, so memory stays bounded. Callers hold m.mu.
func (m *Memory) sweep() {
	m.sweeps++
	if m.sweeps%256 != 0 {
		return
	}
	now := m.now()
	for k, e := range m.sessions {
		if now.After(e.exp) {
			delete(m.sessions, k)
		}
	}
	for k, e := range m.nonces {
		if now.After(e.exp) {
			delete(m.nonces, k)
		}
	}
	for k, e := range m.reacts {
		if now.After(e.exp) {
			delete(m.reacts, k)
		}
	}
}

func (m *Memory) Save(_ context.Context, pid string, s Session, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep()
	m.sessions[pid] = expiring[Session]{v: s, exp: m.now().Add(ttl)}
	return nil
}

func (m *Memory) Take(_ context.Context, pid, userID string) (Session, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.sessions[pid]
	if !ok || m.now().After(e.exp) {
		delete(m.sessions, pid)
		return Session{}, false, nil
	}
	if e.v.UserID != userID {
		return Session{}, false, nil
	}
	delete(m.sessions, pid)
	return e.v, true, nil
}

func nonceKey(userID, nonce string) string { return userID + "\x00" + nonce }

// nonceState is pending (zero), a failed attempt to retry, or a completed ack.
type nonceState struct {
	ack         Ack
	done, retry bool
}

func (m *Memory) ClaimNonce(_ context.Context, userID, nonce string, ttl time.Duration) (Ack, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep()
	k := nonceKey(userID, nonce)
	var prev Ack
	if e, ok := m.nonces[k]; ok && !m.now().After(e.exp) {
		switch {
		case e.v.done:
			return e.v.ack, false, nil
		case !e.v.retry:
			return Ack{}, false, ErrInFlight
		}
		prev = e.v.ack
	}
	m.nonces[k] = expiring[nonceState]{exp: m.now().Add(ttl)}
	return prev, true, nil
}

func (m *Memory) CompleteNonce(_ context.Context, userID, nonce string, ack Ack, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nonces[nonceKey(userID, nonce)] = expiring[nonceState]{v: nonceState{ack: ack, done: true}, exp: m.now().Add(ttl)}
	return nil
}

func (m *Memory) ReleaseNonce(_ context.Context, userID, nonce string, attempt Ack, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Only a pending claim is released: a late release must not erase an ack.
	k := nonceKey(userID, nonce)
	if e, ok := m.nonces[k]; ok && !e.v.done && !e.v.retry {
		m.nonces[k] = expiring[nonceState]{v: nonceState{ack: attempt, retry: true}, exp: m.now().Add(ttl)}
	}
	return nil
}

func (m *Memory) Close() error { return nil }

func (m *Memory) SetReaction(_ context.Context, userID, messageID, emoji string, on, stored bool, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep()
	k := reactionKey(userID, messageID, emoji)
	cur := stored
	if e, ok := m.reacts[k]; ok && !m.now().After(e.exp) {
		cur = e.v
	}
	m.reacts[k] = expiring[bool]{v: on, exp: m.now().Add(ttl)}
	return cur != on, nil
}

// reactionKey is one user's reaction with one emoji on one message.
func reactionKey(userID, messageID, emoji string) string {
	return messageID + ":" + userID + ":" + emoji
}
