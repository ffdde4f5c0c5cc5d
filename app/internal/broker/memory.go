package broker

import (
	"context"
	"errors"
	"slices"
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

	hold time.Duration

	mu     sync.Mutex
	seq    uint64
	log    []logEntry // ascending offsets
	subs   map[int]memorySub
	nextID int
	closed bool
	// Per channel: the last id's clock and the slots not yet delivered, ascending.
	clocks  map[string]clock
	pending map[string][]*memSlot
	timers  map[string]*time.Timer // a release when a channel's head slot is given up
}

// memSlot is a reserved slot; ev is set once committed.
type memSlot struct {
	id       string
	deadline time.Time
	ev       *Event
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
	// Hold is how long a reserved slot holds back later messages (DefaultHold when 0).
	Hold time.Duration
}

// withDefaults fills the fields left zero that have a default.
func (c MemoryConfig) withDefaults() MemoryConfig {
	if c.Hold == 0 {
		c.Hold = DefaultHold
	}
	return c
}

// Validate rejects impossible values.
func (c MemoryConfig) Validate() error {
	if c.Window <= 0 {
		return errors.New("broker: recovery window must be positive")
	}
	if c.Hold < 0 {
		return errors.New("broker: hold must not be negative")
	}
	return nil
}

// NewMemory returns an in-process broker.
func NewMemory(cfg MemoryConfig) (*Memory, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	epoch := strconv.FormatInt(time.Now().UnixNano(), 36)
	return &Memory{window: cfg.Window, hold: cfg.Hold, now: time.Now, epoch: epoch, subs: map[int]memorySub{},
		clocks: map[string]clock{}, pending: map[string][]*memSlot{}, timers: map[string]*time.Timer{}}, nil
}

// Reserve implements Broker.
func (m *Memory) Reserve(_ context.Context, channelID string) (Slot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Slot{}, errors.New("broker: closed")
	}
	now := m.now()
	c := m.clocks[channelID].next(now.UnixMilli())
	m.clocks[channelID] = c
	sl := &memSlot{id: slotID(c), deadline: now.Add(m.hold)}
	m.pending[channelID] = append(m.pending[channelID], sl)
	return Slot{ChannelID: channelID, ID: sl.id, TS: c.ms}, nil
}

// Commit implements Broker.
func (m *Memory) Commit(_ context.Context, s Slot, ev Event) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false, errors.New("broker: closed")
	}
	ev.ChannelID = s.ChannelID
	if i := m.slotIndex(s); i >= 0 {
		m.pending[s.ChannelID][i].ev = &ev
		m.releaseLocked(s.ChannelID)
		return false, nil
	}
	m.publishLocked(ev, true) // given up already: deliver now, out of order
	return true, nil
}

// Cancel implements Broker.
func (m *Memory) Cancel(_ context.Context, s Slot) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if q, i := m.pending[s.ChannelID], m.slotIndex(s); i >= 0 {
		m.pending[s.ChannelID] = append(q[:i:i], q[i+1:]...)
	}
	m.releaseLocked(s.ChannelID)
	return nil
}

// slotIndex is where s waits in its channel's queue, or -1.
func (m *Memory) slotIndex(s Slot) int {
	return slices.IndexFunc(m.pending[s.ChannelID], func(sl *memSlot) bool { return sl.id == s.ID })
}

// releaseLocked delivers the channel's committed slots from the head, dropping heads
// past their deadline, and arms a timer for a head still waiting. Callers hold m.mu.
func (m *Memory) releaseLocked(channelID string) {
	q := m.pending[channelID]
	now := m.now()
	for len(q) > 0 {
		head := q[0]
		switch {
		case head.ev != nil:
			m.publishLocked(*head.ev, true)
		case !now.Before(head.deadline): // given up
		default:
			m.pending[channelID] = q
			m.armLocked(channelID, head.deadline.Sub(now))
			return
		}
		q = q[1:]
	}
	delete(m.pending, channelID)
	if t := m.timers[channelID]; t != nil {
		t.Stop()
		delete(m.timers, channelID)
	}
}

func (m *Memory) armLocked(channelID string, after time.Duration) {
	if t := m.timers[channelID]; t != nil {
		t.Stop()
	}
	m.timers[channelID] = time.AfterFunc(after+time.Millisecond, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		delete(m.timers, channelID)
		if !m.closed {
			m.releaseLocked(channelID)
		}
	})
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
	return m.publishLocked(ev, logged), nil
}

func (m *Memory) publishLocked(ev Event, logged bool) string {
	if logged {
		m.seq++
		now := m.now()
		ev.Offset, ev.PublishedAt = m.formatOffset(m.seq), now
		m.trim(now)
		m.log = append(m.log, logEntry{seq: m.seq, at: now, ev: ev})
	}
	for _, sub := range m.subs {
		if sub.ctx.Err() == nil {
			sub.fn([]Event{ev})
		}
	}
	return ev.Offset
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

// Head implements Broker.
func (m *Memory) Head(context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.formatOffset(m.seq), nil
}

// Ping always succeeds in process.
func (m *Memory) Ping(context.Context) error { return nil }

// Close stops publishing.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	for _, t := range m.timers {
		t.Stop()
	}
	return nil
}
