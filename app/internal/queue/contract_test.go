package queue

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/quibly/quibly/app/internal/model"
)

// queueUnderTest is one implementation as the contract sees it.
type queueUnderTest struct {
	producer Producer
	consumer Consumer
	// lag reports the current lag, refreshing it first where it is cached.
	lag func(t *testing.T) int64
	// close closes producer and consumer.
	close func()
}

// runQueueContract runs the semantics every queue shares against fresh queues
// from open. Memory's Produce blocks until Commit and Kafka's until the broker
// acked, so producers run in goroutines while the test consumes.
func runQueueContract(t *testing.T, open func(t *testing.T) queueUnderTest) {
	cases := []struct {
		name string
		run  func(t *testing.T, q queueUnderTest)
	}{
		{"each message once in per-channel order", contractOrderAndOnce},
		{"fetch returns without filling the batch", contractFetchDoesNotWaitToFill},
		{"fetch respects max", contractFetchRespectsMax},
		{"fetch on an empty queue waits for the context", contractFetchWaitsForContext},
		{"lag counts produced but uncommitted messages", contractLag},
		{"closed queue refuses produce and fetch", contractClosed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := open(t)
			t.Cleanup(q.close)
			tc.run(t, q)
		})
	}
}

func testMessage(channel string, seq int) model.Message {
	return model.Message{ID: fmt.Sprintf("%s-%04d", channel, seq), ChannelID: channel, AuthorID: "u1",
		Author: "alice", Text: fmt.Sprintf("hello %d", seq), Nonce: fmt.Sprintf("n-%s-%d", channel, seq),
		CreatedAt: testEpoch.Add(time.Duration(seq) * time.Microsecond)}
}

// testEpoch stamps test messages with the present: Kafka records carry the message
// time, and the broker deletes records older than its retention (7 days locally) at
// its next retention check, which once fell in the middle of a test.
var testEpoch = time.Now().UTC().Truncate(time.Second)

// produceAsync sends msgs in order, each after the previous returned, and reports
// the first error on the returned channel.
func produceAsync(ctx context.Context, p Producer, msgs []model.Message) <-chan error {
	done := make(chan error, 1)
	go func() {
		for _, m := range msgs {
			if err := p.Produce(ctx, m); err != nil {
				done <- fmt.Errorf("produce %s: %w", m.ID, err)
				return
			}
		}
		done <- nil
	}()
	return done
}

// consumeN fetches and commits until n messages arrived or ctx ends.
func consumeN(ctx context.Context, t *testing.T, c Consumer, n, max int) []model.Message {
	t.Helper()
	var got []model.Message
	for len(got) < n {
		b, err := c.Fetch(ctx, max)
		if err != nil {
			t.Fatalf("fetch after %d of %d messages: %v", len(got), n, err)
		}
		if len(b.Messages) == 0 || len(b.Messages) > max {
			t.Fatalf("fetch returned %d messages, want 1..%d", len(b.Messages), max)
		}
		if err := c.Commit(ctx, b); err != nil {
			t.Fatalf("commit: %v", err)
		}
		got = append(got, b.Messages...)
	}
	return got
}

func contractOrderAndOnce(t *testing.T, q queueUnderTest) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const channels, perChannel = 5, 40
	var producers []<-chan error
	want := map[string]model.Message{}
	for c := range channels {
		var msgs []model.Message
		for i := range perChannel {
			m := testMessage(fmt.Sprintf("ch%d", c), i)
			msgs = append(msgs, m)
			want[m.ID] = m
		}
		producers = append(producers, produceAsync(ctx, q.producer, msgs))
	}
	got := consumeN(ctx, t, q.consumer, channels*perChannel, 17)
	for _, p := range producers {
		if err := <-p; err != nil {
			t.Fatal(err)
		}
	}
	lastSeq := map[string]string{}
	for _, m := range got {
		w, ok := want[m.ID]
		if !ok {
			t.Fatalf("message %s delivered twice or never produced", m.ID)
		}
		delete(want, m.ID)
		if !m.CreatedAt.Equal(w.CreatedAt) || !reflect.DeepEqual(withoutTime(m), withoutTime(w)) {
			t.Errorf("message %s = %+v, want %+v", m.ID, m, w)
		}
		if prev := lastSeq[m.ChannelID]; prev >= m.ID {
			t.Errorf("channel %s: %s after %s", m.ChannelID, m.ID, prev)
		}
		lastSeq[m.ChannelID] = m.ID
	}
	if len(want) != 0 {
		t.Errorf("%d messages never delivered", len(want))
	}
}

func withoutTime(m model.Message) model.Message { m.CreatedAt = time.Time{}; return m }

func contractFetchDoesNotWaitToFill(t *testing.T, q queueUnderTest) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	done := produceAsync(ctx, q.producer, []model.Message{testMessage("solo", 1)})
	b, err := q.consumer.Fetch(ctx, 1000)
	if err != nil || len(b.Messages) != 1 || b.Messages[0].ID != "solo-0001" {
		t.Fatalf("fetch = %+v, %v; want the one message", b.Messages, err)
	}
	if err := q.consumer.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func contractFetchRespectsMax(t *testing.T, q queueUnderTest) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var dones []<-chan error
	for i := range 5 {
		dones = append(dones, produceAsync(ctx, q.producer, []model.Message{testMessage(fmt.Sprintf("m%d", i), i)}))
	}
	got := consumeN(ctx, t, q.consumer, 5, 2) // consumeN fails on a batch above max
	if len(got) != 5 {
		t.Fatalf("got %d messages, want 5", len(got))
	}
	for _, d := range dones {
		if err := <-d; err != nil {
			t.Fatal(err)
		}
	}
}

func contractFetchWaitsForContext(t *testing.T, q queueUnderTest) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	b, err := q.consumer.Fetch(ctx, 10)
	if !errors.Is(err, context.DeadlineExceeded) || len(b.Messages) != 0 {
		t.Fatalf("fetch on empty queue = %d messages, %v; want context.DeadlineExceeded", len(b.Messages), err)
	}
}

func contractLag(t *testing.T, q queueUnderTest) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if lag := q.lag(t); lag != 0 {
		t.Fatalf("lag of an empty queue = %d", lag)
	}
	var dones []<-chan error
	for i := range 3 {
		dones = append(dones, produceAsync(ctx, q.producer, []model.Message{testMessage("lag", i)}))
	}
	waitForLag(ctx, t, q, 3)
	consumeN(ctx, t, q.consumer, 3, 10)
	waitForLag(ctx, t, q, 0)
	for _, d := range dones {
		if err := <-d; err != nil {
			t.Fatal(err)
		}
	}
}

func waitForLag(ctx context.Context, t *testing.T, q queueUnderTest, want int64) {
	t.Helper()
	var lag int64
	for {
		if lag = q.lag(t); lag == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("lag = %d, want %d", lag, want)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func contractClosed(t *testing.T, q queueUnderTest) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q.close()
	if err := q.producer.Produce(ctx, testMessage("closed", 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("produce after close: %v, want ErrClosed", err)
	}
	if _, err := q.consumer.Fetch(ctx, 10); !errors.Is(err, ErrClosed) {
		t.Fatalf("fetch from a closed, empty queue: %v, want ErrClosed", err)
	}
}

// closeOnce makes a close function safe to call from the test and its cleanup.
func closeOnce(f func()) func() {
	var once sync.Once
	return func() { once.Do(f) }
}
