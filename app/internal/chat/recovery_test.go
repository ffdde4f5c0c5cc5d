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
