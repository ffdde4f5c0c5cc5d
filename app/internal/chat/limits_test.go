package chat

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/quibly/quibly/app/internal/broker"
)

// Typing is limited per user, not per connection: fifty connections of one user
// cannot multiply the relay rate.
func TestTypingIsLimitedPerUserAcrossConnections(t *testing.T) {
	f := newSendFixture(t)
	var relayed atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := f.hub.Broker.Subscribe(ctx, func(evs []broker.Event) {
		for _, ev := range evs {
			if ev.Kind == broker.KindTyping {
				relayed.Add(1)
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(map[string]string{"channelId": f.chID})
	for range 50 {
		conn := &client{user: f.alice.user, channels: channelSet{f.chID}} // another connection of alice
		for range 10 {
			f.hub.typing(conn, []json.RawMessage{raw})
		}
	}
	if n := relayed.Load(); n < 1 || n > typingBurst+1 {
		t.Fatalf("500 typing events from 50 connections of one user: %d relayed, want at most the burst (%d) and the refill", n, typingBurst)
	}
}

// Joins of a connection are limited: a flood of random channel ids gets rate_limited
// past the allowance of a client joining all its channels at once.
func TestJoinFloodIsLimited(t *testing.T) {
	f := newSendFixture(t)
	conn := &client{user: f.alice.user}
	limited, notFound := 0, 0
	for range f.hub.cfg.MaxChannelsPerConn + 100 {
		raw, _ := json.Marshal(map[string]string{"channelId": uuid.NewString()})
		ack, _ := json.Marshal(f.hub.join(conn, []json.RawMessage{raw}))
		var res map[string]any
		_ = json.Unmarshal(ack, &res)
		switch errorCode(res) {
		case "rate_limited":
			limited++
		case "not_found":
			notFound++
		default:
			t.Fatalf("join of a random id answered %s", ack)
		}
	}
	if notFound < f.hub.cfg.MaxChannelsPerConn || limited < 50 {
		t.Fatalf("%d joins answered not_found and %d rate_limited; want the first %d answered and most of the rest limited",
			notFound, limited, f.hub.cfg.MaxChannelsPerConn)
	}
}
