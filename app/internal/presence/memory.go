package presence

import (
	"context"
	"sort"
	"sync"

	"github.com/quibly/quibly/app/internal/model"
)

var _ Tracker = (*Memory)(nil)

// Memory tracks presence within one process.
type Memory struct {
	mu    sync.Mutex
	users map[string]*entry
}

type entry struct {
	user  model.User
	conns map[string]struct{}
}

// NewMemory returns an empty tracker.
func NewMemory() *Memory { return &Memory{users: map[string]*entry{}} }

func (m *Memory) Connect(_ context.Context, u model.User, connID string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.users[u.ID]
	if e == nil {
		e = &entry{user: u, conns: map[string]struct{}{}}
		m.users[u.ID] = e
	}
	e.conns[connID] = struct{}{}
	return len(e.conns) == 1, nil
}

func (m *Memory) Disconnect(_ context.Context, u model.User, connID string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.users[u.ID]
	if e == nil {
		return false, nil
	}
	delete(e.conns, connID)
	if len(e.conns) == 0 {
		delete(m.users, u.ID)
		return true, nil
	}
	return false, nil
}

func (m *Memory) Online(context.Context) ([]model.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]model.User, 0, len(m.users))
	for _, e := range m.users {
		out = append(out, e.user)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Username < out[j].Username })
	return out, nil
}

func (m *Memory) IsOnline(_ context.Context, userID string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.users[userID] != nil, nil
}

func (m *Memory) Close() error { return nil }
