package chat

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/quibly/quibly/app/internal/auth"
	"github.com/quibly/quibly/app/internal/batch"
	"github.com/quibly/quibly/app/internal/broker"
	"github.com/quibly/quibly/app/internal/metrics"
	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/presence"
	"github.com/quibly/quibly/app/internal/queue"
	"github.com/quibly/quibly/app/internal/sessions"
	"github.com/quibly/quibly/app/internal/store"
)

// flakyQueue fails the next Produce calls, either before the message reaches the
// queue (refused) or after it did (the ack was lost, as on a Kafka timeout).
type flakyQueue struct {
	queue.Producer
	refuse, loseAck atomic.Int32
}

func (q *flakyQueue) Produce(ctx context.Context, m model.Message) error {
	if q.refuse.Add(-1) >= 0 {
		return errors.New("queue unreachable")
	}
	if err := q.Producer.Produce(ctx, m); err != nil {
		return err
	}
	if q.loseAck.Add(-1) >= 0 {
		return errors.New("ack lost")
	}
	return nil
}

type sendFixture struct {
	hub   *Hub
	q     *flakyQueue
	st    store.Store
	alice *client
	chID  string
}

func newSendFixture(t *testing.T) *sendFixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := store.NewSQLite(ctx, store.SQLiteConfig{Path: filepath.Join(t.TempDir(), "q.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	ch, err := st.EnsureChannel(ctx, "general")
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.CreateUser(ctx, "alice", "x")
	if err != nil {
		t.Fatal(err)
	}
	br, err := broker.NewMemory(broker.MemoryConfig{Window: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	mem := queue.NewMemory()
	t.Cleanup(func() { _ = mem.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := metrics.New(func() float64 { return 0 })
	w, err := batch.NewWriter(batch.Config{MaxBatch: 100}, mem, st, log, m)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = w.Run(ctx) }()
	au, err := auth.NewAuth(auth.Config{Secret: []byte(strings.Repeat("k", 32))})
	if err != nil {
		t.Fatal(err)
	}
	q := &flakyQueue{Producer: mem}
	hub, err := NewHub(Config{MaxMessageChars: 100, MessageRate: 100, MessageBurst: 100, RecoveryWindow: time.Minute, SendTimeout: 2 * time.Second},
		Deps{Store: st, Broker: br, Queue: q, Presence: presence.NewMemory(), Sessions: sessions.NewMemory(), Auth: au, Metrics: m, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	alice := &client{user: u, channels: channelSet{ch.ID}}
	return &sendFixture{hub: hub, q: q, st: st, alice: alice, chID: ch.ID}
}

func (f *sendFixture) send(t *testing.T, text, nonce string) map[string]any {
	t.Helper()
	raw, _ := json.Marshal(map[string]string{"channelId": f.chID, "text": text, "nonce": nonce})
	res, _ := json.Marshal(f.hub.send(f.alice, []json.RawMessage{raw}))
	var out map[string]any
	if err := json.Unmarshal(res, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func errorCode(ack map[string]any) string {
	e, _ := ack["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func TestSendRetriesKeepOneID(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(q *flakyQueue)
	}{
		{"the queue refused the first attempt", func(q *flakyQueue) { q.refuse.Store(1) }},
		{"the first attempt reached the queue but its ack was lost", func(q *flakyQueue) { q.loseAck.Store(1) }},
		{"two attempts failed in different ways", func(q *flakyQueue) { q.loseAck.Store(1); q.refuse.Store(1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSendFixture(t)
			tc.setup(f.q)
			var ack map[string]any
			for attempt := 1; ; attempt++ {
				ack = f.send(t, "hello", "nonce-1")
				if ack["id"] != nil {
					break
				}
				if code := errorCode(ack); code != "unavailable" || attempt > 3 {
					t.Fatalf("attempt %d: want an unavailable error before success, got %v", attempt, ack)
				}
			}
			again := f.send(t, "hello", "nonce-1")
			if again["id"] != ack["id"] || again["ts"] != ack["ts"] {
				t.Fatalf("a retry after success returned %v, the first ack was %v", again, ack)
			}
			msgs, err := f.st.Messages(context.Background(), f.chID, "", 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) != 1 || msgs[0].ID != ack["id"] {
				t.Fatalf("stored %+v, want exactly the acked id %v", msgs, ack["id"])
			}
			if got := msgs[0].CreatedAt.UnixMilli(); float64(got) != ack["ts"] {
				t.Fatalf("stored time %d, acked ts %v", got, ack["ts"])
			}
		})
	}
}

// A send without a nonce that the queue refused gives its place up at once: the next
// message of the channel is delivered without waiting out the broker's hold.
func TestFailedSendWithoutNonceDoesNotHoldTheChannel(t *testing.T) {
	f := newSendFixture(t)
	delivered := make(chan broker.Event, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := f.hub.Broker.Subscribe(ctx, func(evs []broker.Event) {
		for _, ev := range evs {
			delivered <- ev
		}
	}); err != nil {
		t.Fatal(err)
	}
	f.q.refuse.Store(1)
	if code := errorCode(f.send(t, "lost", "")); code != "unavailable" {
		t.Fatalf("a refused send answered %q, want unavailable", code)
	}
	ack := f.send(t, "next", "")
	select {
	case ev := <-delivered:
		var m struct{ ID string }
		if err := json.Unmarshal(ev.Data, &m); err != nil || m.ID != ack["id"] {
			t.Fatalf("delivered %s, want the acked %v", ev.Data, ack["id"])
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the next message waited for the refused send's place (the broker's hold is 10 s)")
	}
}

// A send is timed by stage (queue, publish) and its delivery from the bus to this
// node's clients, once per message whatever the number of clients.
func TestSendStagesAndDeliveryAreTimed(t *testing.T) {
	f := newSendFixture(t)
	m := f.hub.Metrics
	if ack := f.send(t, "timed", "nonce-timed"); ack["id"] == nil {
		t.Fatalf("send: %v", ack)
	}
	count := func(h prometheus.Histogram) uint64 {
		var d dto.Metric
		if err := h.Write(&d); err != nil {
			t.Fatal(err)
		}
		return d.GetHistogram().GetSampleCount()
	}
	for _, stage := range []string{"accept", "queue", "publish"} {
		if n := count(m.SendStageSeconds.WithLabelValues(stage).(prometheus.Histogram)); n != 1 {
			t.Fatalf("stage %s: %d observations; want 1", stage, n)
		}
	}
	// Two local clients in the channel; one logged message, one typing event.
	for _, id := range []string{"u1", "u2"} {
		c := &client{user: model.User{ID: id, Username: id}, recovering: true}
		c.channels.add(f.chID)
		f.hub.register(c)
	}
	before := count(m.DeliverySeconds)
	f.hub.deliver([]broker.Event{
		{Kind: broker.KindMessage, ChannelID: f.chID, Data: json.RawMessage(`{}`), Offset: "x-1", PublishedAt: time.Now().Add(-30 * time.Millisecond)},
		{Kind: broker.KindTyping, ChannelID: f.chID, Data: json.RawMessage(`{}`)},
	})
	if got := count(m.DeliverySeconds) - before; got != 1 {
		t.Fatalf("%d delivery observations for one message to two clients, want 1", got)
	}
}
