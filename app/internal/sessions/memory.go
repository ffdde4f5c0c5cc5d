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
	nonces   map[string]expiring[*Ack] // nil Ack: claimed, not yet complete
	sweeps   int
}

type expiring[T any] struct {
	v   T
	exp time.Time
}

// NewMemory returns an empty in-process store.
func NewMemory() *Memory {
	return &Memory{now: time.Now, sessions: map[string]expiring[Session]{}, nonces: map[string]expiring[*Ack]{}}
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
}

func (m *Memory) Save(_ context.Context, pid string, s Session, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep()
	m.sessions[pid] = expiring[Session]{v: s, exp: m.now().Add(ttl)}
	return nil
}

func (m *Memory) Take(_ context.Context, pid string) (Session, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.sessions[pid]
	delete(m.sessions, pid)
	if !ok || m.now().After(e.exp) {
		return Session{}, false, nil
	}
	return e.v, true, nil
}

func nonceKey(userID, nonce string) string { return userID + "\x00" + nonce }

func (m *Memory) ClaimNonce(_ context.Context, userID, nonce string, ttl time.Duration) (Ack, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep()
	k := nonceKey(userID, nonce)
	if e, ok := m.nonces[k]; ok && !m.now().After(e.exp) {
		if e.v == nil {
			return Ack{}, false, ErrInFlight
		}
		return *e.v, false, nil
	}
	m.nonces[k] = expiring[*Ack]{exp: m.now().Add(ttl)}
	return Ack{}, true, nil
}

func (m *Memory) CompleteNonce(_ context.Context, userID, nonce string, ack Ack, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nonces[nonceKey(userID, nonce)] = expiring[*Ack]{v: &ack, exp: m.now().Add(ttl)}
	return nil
}

func (m *Memory) ReleaseNonce(_ context.Context, userID, nonce string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Only a pending claim is released: a late release must not erase an ack.
	k := nonceKey(userID, nonce)
	if e, ok := m.nonces[k]; ok && e.v == nil {
		delete(m.nonces, k)
	}
	return nil
}

func (m *Memory) Close() error { return nil }
