package broker

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"
)

var _ Broker = (*Memory)(nil)

// Memory is the in-process bus of standalone mode. Its log keeps logged events for
// the recovery window.
type Memory struct {
	window time.Duration
	now    func() time.Time
	// epoch prefixes offsets so that an offset from before a restart never matches.
	epoch string

	mu     sync.Mutex
	seq    uint64
	log    []logEntry // ascending offsets
	subs   map[int]memorySub
	nextID int
	closed bool
}

// memorySub is one Subscribe call; its ctx is checked on delivery because the
// removal from subs happens asynchronously.
type memorySub struct {
	ctx context.Context
	fn  func([]Event)
}

type logEntry struct {
	seq uint64
	at  time.Time
	ev  Event
}

// MemoryConfig sets how long logged events stay replayable.
type MemoryConfig struct {
	Window time.Duration
}

// NewMemory returns an in-process broker.
func NewMemory(cfg MemoryConfig) (*Memory, error) {
	if cfg.Window <= 0 {
		return nil, errors.New("broker: recovery window must be positive")
	}
	epoch := strconv.FormatInt(time.Now().UnixNano(), 36)
	return &Memory{window: cfg.Window, now: time.Now, epoch: epoch, subs: map[int]memorySub{}}, nil
}

func (m *Memory) formatOffset(seq uint64) string { return m.epoch + "-" + strconv.FormatUint(seq, 10) }

func (m *Memory) parseOffset(offset string) (uint64, bool) {
	rest, ok := strings.CutPrefix(offset, m.epoch+"-")
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(rest, 10, 64)
	return seq, err == nil
}

// Publish delivers ev to every subscriber under one lock, so all see one order.
func (m *Memory) Publish(_ context.Context, ev Event, logged bool) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return "", errors.New("broker: closed")
	}
	if logged {
		m.seq++
		ev.Offset = m.formatOffset(m.seq)
		now := m.now()
		m.trim(now)
		m.log = append(m.log, logEntry{seq: m.seq, at: now, ev: ev})
	}
	for _, sub := range m.subs {
		if sub.ctx.Err() == nil {
			sub.fn([]Event{ev})
		}
	}
	return ev.Offset, nil
}

// trim drops entries older than the window. Callers hold m.mu.
func (m *Memory) trim(now time.Time) {
	cut := 0
	for cut < len(m.log) && now.Sub(m.log[cut].at) > m.window {
		cut++
	}
	if cut > 0 {
		m.log = append(m.log[:0:0], m.log[cut:]...)
	}
}

// Subscribe registers fn until ctx ends.
func (m *Memory) Subscribe(ctx context.Context, fn func([]Event)) error {
	m.mu.Lock()
	id := m.nextID
	m.nextID++
	m.subs[id] = memorySub{ctx: ctx, fn: fn}
	m.mu.Unlock()
	go func() {
		<-ctx.Done()
		m.mu.Lock()
		delete(m.subs, id)
		m.mu.Unlock()
	}()
	return nil
}

// Since returns logged events after offset in the given channels.
func (m *Memory) Since(_ context.Context, offset string, channels []string) ([]Event, error) {
	after, ok := m.parseOffset(offset)
	if !ok {
		return nil, ErrOffsetExpired
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.trim(m.now())
	// The offset must still be covered: the entry right after it has to be retained.
	if after > m.seq {
		return nil, ErrOffsetExpired
	}
	if len(m.log) > 0 && m.log[0].seq > after+1 {
		return nil, ErrOffsetExpired
	}
	if len(m.log) == 0 && after < m.seq {
		return nil, ErrOffsetExpired
	}
	want := make(map[string]bool, len(channels))
	for _, c := range channels {
		want[c] = true
	}
	var out []Event
	for _, e := range m.log {
		if e.seq > after && want[e.ev.ChannelID] {
			out = append(out, e.ev)
		}
	}
	return out, nil
}

// Ping always succeeds in process.
func (m *Memory) Ping(context.Context) error { return nil }

// Close stops publishing.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
