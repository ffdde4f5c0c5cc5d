package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/quibly/quibly/app/internal/broker"
	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/sessions"
	"github.com/quibly/quibly/app/internal/socketio"
)

// A restored client gets, before any live event: the events it missed, from the log,
// then the live events that arrived while the log was read, each once and in order,
// although one event reached it both ways.
func TestRecoveryOrder(t *testing.T) {
	f := newSendFixture(t)
	ctx := context.Background()
	publish := func(text string) string {
		off, err := f.hub.Broker.Publish(ctx, broker.Event{Kind: broker.KindMessage, ChannelID: f.chID,
			Data: json.RawMessage(fmt.Sprintf(`{"text":%q}`, text))}, true)
		if err != nil {
			t.Fatal(err)
		}
		return off
	}
	seen := publish("seen before the drop")
	missed1, missed2 := publish("missed 1"), publish("missed 2")

	for _, tc := range []struct {
		name, pid, offset string
		user              model.User
		restored          bool
	}{
		{"another user's pid", "pid-1", seen, model.User{ID: "mallory", Username: "mallory"}, false},
		{"an offset the log no longer holds", "pid-2", "0-1", f.alice.user, false},
		{"the owner, from its last offset", "pid-3", seen, f.alice.user, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// alice's session, saved when she dropped
			if err := f.hub.Sessions.Save(ctx, tc.pid, sessions.Session{SID: "sid-1", UserID: f.alice.user.ID, Channels: []string{f.chID}}, time.Minute); err != nil {
				t.Fatal(err)
			}
			s := &socketio.Socket{}
			c := &client{sock: s, user: tc.user}
			if got := f.hub.restore(ctx, s, c, tc.pid, tc.offset); got != tc.restored {
				t.Fatalf("restore = %v, want %v", got, tc.restored)
			}
			if !tc.restored {
				if len(c.channels) != 0 || c.recovering || s.Recovered {
					t.Fatalf("a refused restore changed the client: channels %v, recovering %v", c.channels, c.recovering)
				}
				return
			}
			if !s.Recovered || s.ID != "sid-1" || s.PID != tc.pid {
				t.Fatalf("socket after restore: %+v", s)
			}
			// Live events while the client is being restored: one the log also had, and a new one.
			live := publish("live")
			f.hub.deliver([]broker.Event{
				{Kind: broker.KindMessage, ChannelID: f.chID, Data: json.RawMessage(`{"text":"missed 2"}`), Offset: missed2},
				{Kind: broker.KindMessage, ChannelID: f.chID, Data: json.RawMessage(`{"text":"live"}`), Offset: live},
			})
			c.mu.Lock()
			packets := c.recoveryPacketsLocked()
			c.mu.Unlock()
			var got []string
			for _, p := range packets {
				for _, off := range []string{seen, missed1, missed2, live} {
					if strings.Contains(p, `"`+off+`"`) {
						got = append(got, off)
					}
				}
			}
			want := []string{missed1, missed2, live}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("recovery sends %v, want %v (missed, then held, each once)", got, want)
			}
		})
	}
}

// A session is recoverable from its first moment: on a node that has delivered no
// logged event since it started, a client that joins and drops recovers, and gets what
// was published while it was away. (Its position used to be empty, and an empty
// position was never recovered: every client of a freshly started node lost its session.)
func TestSessionIsRecoverableBeforeAnyEvent(t *testing.T) {
	f := newSendFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := f.hub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	token, err := f.hub.Auth.IssueToken(f.alice.user)
	if err != nil {
		t.Fatal(err)
	}
	connect := func(fields map[string]string) *socketio.Socket {
		t.Helper()
		raw, _ := json.Marshal(fields)
		s := &socketio.Socket{}
		if err := f.hub.Connect(s, raw); err != nil {
			t.Fatal(err)
		}
		return s
	}
	first := connect(map[string]string{"token": token})
	join, _ := json.Marshal(map[string]string{"channelId": f.chID})
	if ack, _ := json.Marshal(f.hub.join(first.Data.(*client), []json.RawMessage{join})); string(ack) != `{"ok":true}` {
		t.Fatalf("join: %s", ack)
	}
	f.hub.Disconnected(first, "transport close") // before any event reached this node
	if _, err := f.hub.Broker.Publish(ctx, broker.Event{Kind: broker.KindMessage, ChannelID: f.chID,
		Data: json.RawMessage(`{"text":"while away"}`)}, true); err != nil {
		t.Fatal(err)
	}
	second := connect(map[string]string{"token": token, "pid": first.PID})
	if !second.Recovered {
		t.Fatal("a session that began before any event was not recovered")
	}
	c := second.Data.(*client)
	if len(c.replay) != 1 || !strings.Contains(string(c.replay[0].Data), "while away") {
		t.Fatalf("replayed %d events, want the one published while away", len(c.replay))
	}
}
