package broker

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// backend is one broker deployment under test: two nodes on the same bus (the same
// instance for memory), the window they were built with, and how to let time pass
// beyond it (a fake clock for memory, a real wait for Redis).
type backend struct {
	a, b    Broker
	window  time.Duration
	hold    time.Duration // the brokers' Hold
	advance func(time.Duration)
}

// runBrokerContract is the behaviour every Broker must share.
func runBrokerContract(t *testing.T, newBackend func(t *testing.T) backend) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, be backend)
	}{
		{"order and replay", contractOrderAndReplay},
		{"window expires", contractWindowExpires},
		{"one order across nodes", contractOneOrder},
		{"subscription ends with its context", contractSubscriptionEnds},
		{"closed broker refuses to publish", contractClosed},
		{"reserved messages arrive in id order", contractReservedInOrder},
		{"a slot never settled is given up", contractSlotGivenUp},
		{"concurrent senders on two nodes: one ascending order", contractConcurrentReserved},
		{"the head covers what is logged after it, from an empty log on", contractHead},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newBackend(t)) })
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// collector records what a subscriber saw; wait blocks until it saw n events.
type collector struct {
	mu  sync.Mutex
	got []Event
	ch  chan struct{}
}

func newCollector() *collector { return &collector{ch: make(chan struct{}, 1)} }

func (c *collector) add(evs []Event) {
	c.mu.Lock()
	c.got = append(c.got, evs...)
	c.mu.Unlock()
	select {
	case c.ch <- struct{}{}:
	default:
	}
}

func (c *collector) events() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

func (c *collector) wait(t *testing.T, n int) []Event {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		if got := c.events(); len(got) >= n {
			return got
		}
		select {
		case <-c.ch:
		case <-deadline:
			t.Fatalf("waited for %d events, got %d: %v", n, len(c.events()), dataOf(c.events()))
		}
	}
}

func dataOf(evs []Event) []string {
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		out = append(out, string(e.Data))
	}
	return out
}

// subscribeBoth subscribes a collector on each node.
func subscribeBoth(t *testing.T, ctx context.Context, be backend) (onA, onB *collector) {
	t.Helper()
	onA, onB = newCollector(), newCollector()
	if err := be.a.Subscribe(ctx, onA.add); err != nil {
		t.Fatal(err)
	}
	if err := be.b.Subscribe(ctx, onB.add); err != nil {
		t.Fatal(err)
	}
	return onA, onB
}

func msg(channel, data string) Event {
	return Event{Kind: KindMessage, ChannelID: channel, Data: json.RawMessage(data)}
}

func mustPublish(t *testing.T, b Broker, ev Event, logged bool) string {
	t.Helper()
	off, err := b.Publish(testCtx(t), ev, logged)
	if err != nil {
		t.Fatal(err)
	}
	if logged == (off == "") {
		t.Fatalf("logged=%v publish returned offset %q", logged, off)
	}
	return off
}

func contractOrderAndReplay(t *testing.T, be backend) {
	m := be.a
	ctx := testCtx(t)
	sub := newCollector()
	if err := m.Subscribe(ctx, sub.add); err != nil {
		t.Fatal(err)
	}
	first := mustPublish(t, m, msg("a", `1`), true)
	// Ephemeral and logged events travel apart in Redis: wait for each, so the order
	// seen is the order published.
	sub.wait(t, 1)
	mustPublish(t, m, Event{Kind: KindTyping, ChannelID: "a", Data: json.RawMessage(`{}`)}, false)
	sub.wait(t, 2)
	mustPublish(t, m, msg("b", `2`), true)
	mustPublish(t, m, msg("a", `3`), true)
	got := sub.wait(t, 4)
	if len(got) != 4 || got[1].Offset != "" || got[0].Offset != first || got[1].Kind != KindTyping {
		t.Fatalf("subscriber saw %+v", got)
	}
	// Logged events carry when they were published (subscribers time delivery by it),
	// ephemeral ones nothing.
	for i, ev := range got {
		logged := ev.Offset != ""
		if logged == ev.PublishedAt.IsZero() {
			t.Fatalf("event %d (logged %v) published at %v", i, logged, ev.PublishedAt)
		}
	}
	tests := []struct {
		name     string
		offset   string
		channels []string
		want     []string
		wantErr  error
	}{
		{"after first, channel a", first, []string{"a"}, []string{"3"}, nil},
		{"after first, both", first, []string{"a", "b"}, []string{"2", "3"}, nil},
		{"latest", got[3].Offset, []string{"a", "b"}, nil, nil},
		{"other channel only", first, []string{"c"}, nil, nil},
		{"foreign offset", "zzz-1", []string{"a"}, nil, ErrOffsetExpired},
		{"foreign epoch", "zzz:1:1-0", []string{"a"}, nil, ErrOffsetExpired},
		{"garbage", "nope", []string{"a"}, nil, ErrOffsetExpired},
		{"empty", "", []string{"a"}, nil, ErrOffsetExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := m.Since(ctx, tt.offset, tt.channels)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v want %v", err, tt.wantErr)
			}
			if data := dataOf(evs); !slices.Equal(data, tt.want) && len(data)+len(tt.want) > 0 {
				t.Fatalf("got %v want %v", data, tt.want)
			}
			for _, e := range evs {
				if e.Offset == "" || e.Kind != KindMessage {
					t.Fatalf("replayed event without offset: %+v", e)
				}
			}
		})
	}
	// The replay carries the same offsets the live delivery did.
	evs, err := m.Since(ctx, first, []string{"a", "b"})
	if err != nil || len(evs) != 2 || evs[0].Offset != got[2].Offset || evs[1].Offset != got[3].Offset {
		t.Fatalf("replayed offsets %+v differ from delivered %+v (%v)", evs, got[2:], err)
	}
}

func contractWindowExpires(t *testing.T, be backend) {
	m := be.a
	ctx := testCtx(t)
	first := mustPublish(t, m, msg("a", `1`), true)
	second := mustPublish(t, m, msg("a", `2`), true)
	be.advance(2 * be.window)
	third := mustPublish(t, m, msg("a", `3`), true)
	if _, err := m.Since(ctx, first, []string{"a"}); !errors.Is(err, ErrOffsetExpired) {
		t.Fatalf("offset older than the window must be expired, got %v", err)
	}
	// The event after second is within the window, so second is still covered.
	if evs, err := m.Since(ctx, second, []string{"a"}); err != nil || !slices.Equal(dataOf(evs), []string{"3"}) {
		t.Fatalf("offset whose next event is retained: %v %v", dataOf(evs), err)
	}
	if evs, err := m.Since(ctx, third, []string{"a"}); err != nil || len(evs) != 0 {
		t.Fatalf("the newest offset is covered: %v %v", evs, err)
	}
}

// contractOneOrder publishes from both nodes at once: every subscriber must see the
// same sequence, with offsets that only grow.
func contractOneOrder(t *testing.T, be backend) {
	ctx := testCtx(t)
	subA, subB := subscribeBoth(t, ctx, be)
	const perNode = 50
	var wg sync.WaitGroup
	for n, node := range []Broker{be.a, be.b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perNode {
				if _, err := node.Publish(ctx, msg("a", fmt.Sprintf(`"%d-%d"`, n, i)), true); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	gotA, gotB := subA.wait(t, 2*perNode), subB.wait(t, 2*perNode)
	if !slices.Equal(dataOf(gotA), dataOf(gotB)) {
		t.Fatalf("subscribers saw different orders:\n%v\n%v", dataOf(gotA), dataOf(gotB))
	}
	for i := range gotA {
		if gotA[i].Offset != gotB[i].Offset {
			t.Fatalf("event %d has offsets %q and %q", i, gotA[i].Offset, gotB[i].Offset)
		}
	}
	// The log replays that very order.
	evs, err := be.a.Since(ctx, gotA[0].Offset, []string{"a"})
	if err != nil || !slices.Equal(dataOf(evs), dataOf(gotA[1:])) {
		t.Fatalf("replay %v differs from delivery (%v)", dataOf(evs), err)
	}
}

func contractSubscriptionEnds(t *testing.T, be backend) {
	ctx, cancel := context.WithCancel(testCtx(t))
	sub := newCollector()
	if err := be.a.Subscribe(ctx, sub.add); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, be.a, msg("a", `1`), true)
	sub.wait(t, 1)
	cancel()
	// A second, live subscriber proves the later events were published and delivered.
	live := newCollector()
	if err := be.a.Subscribe(testCtx(t), live.add); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, be.a, msg("a", `2`), true)
	mustPublish(t, be.a, msg("a", `3`), true)
	live.wait(t, 2)
	if got := sub.events(); len(got) != 1 {
		t.Fatalf("cancelled subscriber still received %v", dataOf(got))
	}
}

func contractClosed(t *testing.T, be backend) {
	if err := be.a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := be.a.Publish(testCtx(t), msg("a", `1`), true); err == nil {
		t.Fatal("publish on a closed broker must fail")
	}
	if err := be.b.Ping(testCtx(t)); err != nil && be.b != be.a {
		t.Fatalf("the other node is still up: %v", err)
	}
}

func reserve(t *testing.T, b Broker, channel string) Slot {
	t.Helper()
	s, err := b.Reserve(testCtx(t), channel)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func commit(t *testing.T, b Broker, s Slot) bool {
	t.Helper()
	late, err := b.Commit(testCtx(t), s, msg(s.ChannelID, `"`+s.ID+`"`))
	if err != nil {
		t.Fatal(err)
	}
	return late
}

// idsOf is the slot ids the events carry (the tests put each event's id in its data).
func idsOf(evs []Event) []string {
	var out []string
	for _, e := range evs {
		var id string
		_ = json.Unmarshal(e.Data, &id)
		out = append(out, id)
	}
	return out
}

func contractReservedInOrder(t *testing.T, be backend) {
	ctx := testCtx(t)
	sub := newCollector()
	if err := be.a.Subscribe(ctx, sub.add); err != nil {
		t.Fatal(err)
	}
	// Ids grow per channel and are UUIDv7s whose time is the slot's.
	s1, s2, s3, s4 := reserve(t, be.a, "a"), reserve(t, be.b, "a"), reserve(t, be.a, "a"), reserve(t, be.b, "a")
	other := reserve(t, be.a, "b")
	for i, s := range []Slot{s1, s2, s3, s4} {
		u, err := uuid.Parse(s.ID)
		if err != nil || u.Version() != 7 || u.String() != s.ID {
			t.Fatalf("slot %d id %q is not a canonical UUIDv7", i, s.ID)
		}
		if ms := int64(binary.BigEndian.Uint64(u[0:8]) >> 16); ms != s.TS {
			t.Fatalf("slot %d: id time %d, TS %d", i, ms, s.TS)
		}
		if i > 0 && s.ID <= []Slot{s1, s2, s3, s4}[i-1].ID {
			t.Fatalf("slot ids do not grow: %v", []Slot{s1, s2, s3, s4})
		}
	}
	// Committed out of order, delivered in order; another channel is not held back.
	if commit(t, be.b, s3) || commit(t, be.a, s2) {
		t.Fatal("a commit within the hold reported late")
	}
	commit(t, be.a, other)
	if got := sub.wait(t, 1); len(got) != 1 || idsOf(got)[0] != other.ID {
		t.Fatalf("with the head of channel a open, the subscriber saw %v, want only channel b's message", idsOf(got))
	}
	commit(t, be.b, s1)
	got := sub.wait(t, 4)
	if want := []string{other.ID, s1.ID, s2.ID, s3.ID}; !slices.Equal(idsOf(got), want) {
		t.Fatalf("delivered %v, want %v", idsOf(got), want)
	}
	// A cancelled head lets the ones behind it through.
	s5 := reserve(t, be.a, "a")
	commit(t, be.a, s5)
	if err := be.b.Cancel(ctx, s4); err != nil {
		t.Fatal(err)
	}
	got = sub.wait(t, 5)
	if idsOf(got)[4] != s5.ID {
		t.Fatalf("after cancelling %s, delivered %v", s4.ID, idsOf(got))
	}
	evs, err := be.a.Since(ctx, got[0].Offset, []string{"a"})
	if err != nil || !slices.Equal(idsOf(evs), []string{s1.ID, s2.ID, s3.ID, s5.ID}) {
		t.Fatalf("the log replays %v (%v), want the delivery order", idsOf(evs), err)
	}
}

func contractSlotGivenUp(t *testing.T, be backend) {
	ctx := testCtx(t)
	sub := newCollector()
	if err := be.a.Subscribe(ctx, sub.add); err != nil {
		t.Fatal(err)
	}
	dead, next := reserve(t, be.a, "a"), reserve(t, be.b, "a") // dead's node never settles it
	commit(t, be.b, next)
	time.Sleep(be.hold / 4)
	if got := sub.events(); len(got) != 0 {
		t.Fatalf("delivered %v while an earlier slot was held", idsOf(got))
	}
	be.advance(be.hold)
	if got := sub.wait(t, 1); idsOf(got)[0] != next.ID {
		t.Fatalf("after the hold, delivered %v, want %s", idsOf(got), next.ID)
	}
	if !commit(t, be.a, dead) {
		t.Fatal("a commit after its slot was given up did not report late")
	}
	if got := sub.wait(t, 2); idsOf(got)[1] != dead.ID {
		t.Fatalf("a late commit was not delivered: %v", idsOf(got))
	}
}

// Two nodes, four senders each committing after a random delay (as Kafka acks come
// back): both subscribers see every message once, in one order, ascending by id.
func contractConcurrentReserved(t *testing.T, be backend) {
	ctx := testCtx(t)
	subA, subB := subscribeBoth(t, ctx, be)
	const senders, each = 8, 40
	var wg sync.WaitGroup
	for n := range senders {
		node := []Broker{be.a, be.b}[n%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			var inflight sync.WaitGroup
			for range each {
				s, err := node.Reserve(ctx, "a")
				if err != nil {
					t.Error(err)
					return
				}
				inflight.Add(1)
				go func() {
					defer inflight.Done()
					time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
					if _, err := node.Commit(ctx, s, msg("a", `"`+s.ID+`"`)); err != nil {
						t.Error(err)
					}
				}()
			}
			inflight.Wait()
		}()
	}
	wg.Wait()
	a, b := idsOf(subA.wait(t, senders*each)), idsOf(subB.wait(t, senders*each))
	if !slices.Equal(a, b) {
		t.Fatal("the two subscribers saw different orders")
	}
	if !slices.IsSorted(a) || len(slices.Compact(slices.Clone(a))) != senders*each {
		t.Fatalf("delivery is not strictly ascending by id: %v", a)
	}
}

// A session can begin before anything was logged, or long after the last event: the
// head taken then replays exactly what is logged after it, on either node.
func contractHead(t *testing.T, be backend) {
	ctx := testCtx(t)
	empty, err := be.a.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if evs, err := be.b.Since(ctx, empty, []string{"a"}); err != nil || len(evs) != 0 {
		t.Fatalf("Since(head of an empty log) = %v, %v; want nothing, no error", dataOf(evs), err)
	}
	publish := func(data string) {
		t.Helper()
		if _, err := be.a.Publish(ctx, Event{Kind: KindMessage, ChannelID: "a", Data: json.RawMessage(data)}, true); err != nil {
			t.Fatal(err)
		}
	}
	publish("1")
	if evs, err := be.b.Since(ctx, empty, []string{"a"}); err != nil || !slices.Equal(dataOf(evs), []string{"1"}) {
		t.Fatalf("Since(head of an empty log) after one event = %v, %v; want [1]", dataOf(evs), err)
	}
	mid, err := be.b.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if evs, err := be.a.Since(ctx, mid, []string{"a"}); err != nil || len(evs) != 0 {
		t.Fatalf("Since(head) with nothing after it = %v, %v; want nothing", dataOf(evs), err)
	}
	publish("2")
	publish("3")
	if evs, err := be.a.Since(ctx, mid, []string{"a"}); err != nil || !slices.Equal(dataOf(evs), []string{"2", "3"}) {
		t.Fatalf("Since(head) = %v, %v; want [2 3]", dataOf(evs), err)
	}
	// Taken again with nothing new, the head is the same position.
	again, err := be.a.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again2, _ := be.b.Head(ctx); again != again2 {
		t.Fatalf("two nodes read different heads: %q and %q", again, again2)
	}
}
