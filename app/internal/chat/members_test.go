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

func memberEvent(event, channel, user, offset string) broker.Event {
	data, _ := json.Marshal(model.MemberChange{ChannelID: channel, UserID: user, By: "owner", Event: event})
	return broker.Event{Kind: event, ChannelID: channel, Data: data, Offset: offset}
}

func offsetsHeld(c *client) []string {
	var got []string
	for _, hp := range c.held {
		got = append(got, hp.offset)
	}
	return got
}

// A member who leaves gets its member:leave and nothing of the channel after it, in
// one bus read or in separate ones; the others get everything, in order.
func TestMemberLeaveCutsDeliveryAtItsPlace(t *testing.T) {
	for _, batched := range []bool{true, false} {
		t.Run(fmt.Sprintf("one bus read: %v", batched), func(t *testing.T) {
			f := newSendFixture(t)
			newClient := func(id string) *client {
				c := &client{sock: &socketio.Socket{}, user: model.User{ID: id, Username: id}, recovering: true, channels: channelSet{"p"}}
				f.hub.register(c)
				return c
			}
			stays, leaves, leavesElsewhere := newClient("stays"), newClient("leaves"), newClient("leaves")
			msg := func(offset string) broker.Event {
				return broker.Event{Kind: broker.KindMessage, ChannelID: "p", Data: json.RawMessage(`{}`), Offset: offset}
			}
			evs := []broker.Event{msg("e-1"), memberEvent(model.EventMemberLeave, "p", "leaves", "e-2"), msg("e-3")}
			if batched {
				f.hub.deliver(evs)
			} else {
				for _, ev := range evs {
					f.hub.deliver([]broker.Event{ev})
				}
			}
			for _, tc := range []struct {
				c    *client
				want string
			}{
				{stays, "[e-1 e-2 e-3]"},
				{leaves, "[e-1 e-2]"},
				{leavesElsewhere, "[e-1 e-2]"}, // the user's every socket
			} {
				if got := fmt.Sprint(offsetsHeld(tc.c)); got != tc.want {
					t.Errorf("%s got %s, want %s", tc.c.user.ID, got, tc.want)
				}
			}
			if leaves.inChannel("p") {
				t.Error("the member who left is still in the channel")
			}
		})
	}
}

// A private channel admits its members only; to anyone else it does not exist, on
// join and on recovery, where nothing of it is replayed.
func TestPrivateChannelsAdmitMembersOnly(t *testing.T) {
	f := newSendFixture(t)
	ctx := context.Background()
	bob, err := f.st.CreateUser(ctx, "bob", "x")
	if err != nil {
		t.Fatal(err)
	}
	priv, err := f.st.CreateChannel(ctx, "secret", model.KindPrivate, f.alice.user.ID)
	if err != nil {
		t.Fatal(err)
	}
	join := func(u model.User, channelID string) string {
		raw, _ := json.Marshal(map[string]string{"channelId": channelID})
		res, _ := json.Marshal(f.hub.join(&client{sock: &socketio.Socket{}, user: u}, []json.RawMessage{raw}))
		return string(res)
	}
	if res := join(bob, priv.ID); !strings.Contains(res, `"not_found"`) {
		t.Fatalf("a non-member's join of a private channel: %s, want not_found", res)
	}
	if res := join(f.alice.user, priv.ID); res != `{"ok":true}` {
		t.Fatalf("the owner's join: %s", res)
	}
	if _, err := f.st.SetMember(ctx, priv.ID, bob.ID, model.RoleMember); err != nil {
		t.Fatal(err)
	}
	if res := join(bob, priv.ID); res != `{"ok":true}` {
		t.Fatalf("a member's join: %s", res)
	}

	// bob drops; while away a message is published and bob is removed: his recovery
	// keeps the public channel and replays nothing of the private one.
	first, err := f.hub.Broker.Publish(ctx, broker.Event{Kind: broker.KindMessage, ChannelID: f.chID, Data: json.RawMessage(`{}`)}, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.hub.Sessions.Save(ctx, "pid-bob", sessionOf(bob.ID, f.chID, priv.ID), time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []string{priv.ID, f.chID} {
		if _, err := f.hub.Broker.Publish(ctx, broker.Event{Kind: broker.KindMessage, ChannelID: ch, Data: json.RawMessage(`{}`)}, true); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.st.RemoveMember(ctx, priv.ID, bob.ID); err != nil {
		t.Fatal(err)
	}
	s := &socketio.Socket{}
	c := &client{sock: s, user: bob}
	if !f.hub.restore(ctx, s, c, "pid-bob", first) {
		t.Fatal("bob's session was not recovered")
	}
	if c.channels.has(priv.ID) || !c.channels.has(f.chID) {
		t.Fatalf("recovered channels %v: want the public one only", c.channels)
	}
	for _, ev := range c.replay {
		if ev.ChannelID == priv.ID {
			t.Fatal("recovery replayed an event of a channel bob was removed from")
		}
	}
	if len(c.replay) != 1 {
		t.Fatalf("replayed %d events, want the public channel's one", len(c.replay))
	}
}

func sessionOf(userID string, channels ...string) sessions.Session {
	return sessions.Session{SID: "sid-" + userID, UserID: userID, Channels: channels}
}

// A membership change is queued like a message (the batch writer keeps it in the
// channel's history, by the user who made it) and committed to the bus in its place;
// one that is not a member event is refused.
func TestMembershipChangeIsKeptInHistoryAndDelivered(t *testing.T) {
	f := newSendFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan broker.Event, 4)
	if err := f.hub.Broker.Subscribe(ctx, func(evs []broker.Event) {
		for _, ev := range evs {
			got <- ev
		}
	}); err != nil {
		t.Fatal(err)
	}
	change := model.MemberChange{ChannelID: f.chID, UserID: "someone", Username: "someone", Role: model.RoleMember,
		By: f.alice.user.ID, ByName: "alice", Event: model.EventMemberJoin}
	if err := f.hub.MembershipChanged(ctx, change); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-got:
		if ev.Kind != model.EventMemberJoin || ev.ChannelID != f.chID || ev.Offset == "" || !strings.Contains(string(ev.Data), `"id":"`) {
			t.Fatalf("bus event %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the change never reached the bus")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		msgs, err := f.st.Messages(ctx, f.chID, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 1 {
			m := msgs[0]
			if m.Kind != model.EventMemberJoin || m.AuthorID != f.alice.user.ID || m.Author != "alice" || !strings.Contains(string(m.Data), `"userId":"someone"`) {
				t.Fatalf("kept as %+v", m)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the change is not in the history: %v", msgs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	change.Event = "channel:explode"
	if err := f.hub.MembershipChanged(ctx, change); err == nil {
		t.Fatal("a change that is no member event was taken")
	}
}

// An archived channel takes no message, from the channel:update on; a deleted one
// loses every socket at its channel:delete, which they get, and nothing after it.
func TestChannelUpdateAndDeleteInOrder(t *testing.T) {
	f := newSendFixture(t)
	f.hub.channels.add(model.Channel{ID: f.chID, Kind: model.KindPublic})
	change := func(event string, archived bool, offset string) broker.Event {
		data, _ := json.Marshal(model.ChannelChange{ChannelID: f.chID, Archived: archived, By: "owner", Event: event})
		return broker.Event{Kind: event, ChannelID: f.chID, Data: data, Offset: offset}
	}
	f.hub.deliver([]broker.Event{change(model.EventChannelUpdate, true, "e-1")})
	if res := f.send(t, "while archived", "n-archived"); errorCode(res) != "forbidden" {
		t.Fatalf("a send to an archived channel: %v, want forbidden", res)
	}
	f.hub.deliver([]broker.Event{change(model.EventChannelUpdate, false, "e-2")})
	if res := f.send(t, "unarchived", "n-unarchived"); errorCode(res) != "" {
		t.Fatalf("a send after unarchiving: %v", res)
	}
	a := &client{sock: &socketio.Socket{}, user: model.User{ID: "a"}, recovering: true, channels: channelSet{f.chID}}
	b := &client{sock: &socketio.Socket{}, user: model.User{ID: "b"}, recovering: true, channels: channelSet{f.chID}}
	f.hub.register(a)
	f.hub.register(b)
	msg := broker.Event{Kind: broker.KindMessage, ChannelID: f.chID, Data: json.RawMessage(`{}`), Offset: "e-4"}
	f.hub.deliver([]broker.Event{change(model.EventChannelDelete, false, "e-3"), msg})
	for _, c := range []*client{a, b} {
		if got := fmt.Sprint(offsetsHeld(c)); got != "[e-3]" || c.inChannel(f.chID) {
			t.Errorf("%s got %s (still in: %v), want [e-3] and out", c.user.ID, got, c.inChannel(f.chID))
		}
	}
	if _, ok := f.hub.channels.lookup(f.chID); ok {
		t.Error("the deleted channel is still known to the node")
	}
}

// A change whose event never reached the channel's order (its node died between the
// store and the queue) is repaired by the recheck: a removed member's sockets get a
// member:leave and leave, a deleted channel's sockets a channel:delete, an archive
// refuses sends; members who stay get nothing.
func TestRecheckRepairsChangesWhoseEventWasLost(t *testing.T) {
	f := newSendFixture(t)
	ctx := context.Background()
	bob, err := f.st.CreateUser(ctx, "bob", "x")
	if err != nil {
		t.Fatal(err)
	}
	priv, err := f.st.CreateChannel(ctx, "secret", model.KindPrivate, f.alice.user.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.SetMember(ctx, priv.ID, bob.ID, model.RoleMember); err != nil {
		t.Fatal(err)
	}
	gone, err := f.st.CreateChannel(ctx, "gone", model.KindPublic, f.alice.user.ID)
	if err != nil {
		t.Fatal(err)
	}
	newClient := func(u model.User, channels ...string) *client {
		c := &client{sock: &socketio.Socket{}, user: u, recovering: true, channels: channelSet(channels)}
		f.hub.register(c)
		return c
	}
	owner, member, elsewhere := newClient(f.alice.user, priv.ID, gone.ID), newClient(bob, priv.ID), newClient(bob, gone.ID)
	f.hub.recheck(ctx)
	for _, c := range []*client{owner, member, elsewhere} {
		if len(c.held) != 0 {
			t.Fatalf("nothing changed, yet %s got %v", c.user.Username, c.held)
		}
	}

	// The store changes; no event is ever published.
	if _, err := f.st.RemoveMember(ctx, priv.ID, bob.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.DeleteChannel(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	yes := true
	if _, _, err := f.st.UpdateChannel(ctx, f.chID, "", &yes); err != nil {
		t.Fatal(err)
	}
	f.hub.channels.add(model.Channel{ID: f.chID, Kind: model.KindPublic}) // known, as not archived
	f.hub.register(&client{sock: &socketio.Socket{}, user: f.alice.user, recovering: true, channels: channelSet{f.chID}})
	f.hub.recheck(ctx)

	held := func(c *client) string {
		var out []string
		for _, hp := range c.held {
			out = append(out, hp.packet)
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		what   string
		c      *client
		want   []string
		out    string // the channel it must have left
		stayIn string
	}{
		{"the removed member", member, []string{`"member:leave"`, priv.ID, bob.ID}, priv.ID, ""},
		{"a socket in the deleted channel", elsewhere, []string{`"channel:delete"`, gone.ID}, gone.ID, ""},
		{"the owner", owner, []string{`"channel:delete"`}, gone.ID, priv.ID},
	} {
		got := held(tc.c)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s got %q, want it to hold %s", tc.what, got, w)
			}
		}
		if tc.c.inChannel(tc.out) {
			t.Errorf("%s is still in %s", tc.what, tc.out)
		}
		if tc.stayIn != "" && !tc.c.inChannel(tc.stayIn) {
			t.Errorf("%s was taken out of %s", tc.what, tc.stayIn)
		}
	}
	if strings.Contains(held(owner), "member:leave") {
		t.Error("the owner, still a member, got a member:leave")
	}
	if res := f.send(t, "after the archive", "n-archived"); errorCode(res) != "forbidden" {
		t.Errorf("a send to a channel archived without an event: %v, want forbidden after the recheck", res)
	}
}
