package chat

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/quibly/quibly/app/internal/broker"
	"github.com/quibly/quibly/app/internal/model"
)

// A bus read of several events reaches each client as its own events, in bus order,
// with their offsets; typing is not echoed to its origin. The clients are recovering,
// so what they are sent is held where the test can read it.
func TestDeliverBatchGroupsEventsPerClient(t *testing.T) {
	f := newSendFixture(t)
	newClient := func(id string, channels ...string) *client {
		c := &client{user: model.User{ID: id, Username: id}, recovering: true}
		for _, ch := range channels {
			c.channels.add(ch)
		}
		f.hub.register(c)
		return c
	}
	alice := newClient("alice", "a")
	bob := newClient("bob", "a", "b")
	carol := newClient("carol", "b")
	msg := func(ch, text, offset string) broker.Event {
		return broker.Event{Kind: broker.KindMessage, ChannelID: ch, Data: json.RawMessage(`{"text":"` + text + `"}`), Offset: offset}
	}
	f.hub.deliver([]broker.Event{
		msg("a", "a1", "e-1"),
		msg("b", "b1", "e-2"),
		{Kind: broker.KindTyping, ChannelID: "a", Data: json.RawMessage(`{"userId":"alice"}`), Origin: "alice"},
		msg("a", "a2", "e-3"),
		{Kind: broker.KindPresence, Data: json.RawMessage(`{"userId":"dave","status":"online"}`)},
	})
	for _, tc := range []struct {
		c    *client
		want []string // offsets, or the kind for unlogged events
	}{
		{alice, []string{"e-1", "e-3", "presence"}},
		{bob, []string{"e-1", "e-2", "typing", "e-3", "presence"}},
		{carol, []string{"e-2", "presence"}},
	} {
		var got []string
		for _, hp := range tc.c.held {
			switch {
			case hp.offset != "":
				got = append(got, hp.offset)
				if !strings.Contains(hp.packet, `"`+hp.offset+`"`) {
					t.Errorf("%s: packet %s does not carry its offset %s", tc.c.user.ID, hp.packet, hp.offset)
				}
			case strings.Contains(hp.packet, `"typing"`):
				got = append(got, "typing")
			case strings.Contains(hp.packet, `"presence"`):
				got = append(got, "presence")
			default:
				got = append(got, hp.packet)
			}
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s got %v, want %v", tc.c.user.ID, got, tc.want)
		}
	}
}
