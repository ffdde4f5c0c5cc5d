package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/quibly/quibly/app/internal/broker"
	"github.com/quibly/quibly/app/internal/limit"
	"github.com/quibly/quibly/app/internal/model"
)

// change runs one client event that changes a message (as Event would, without the
// socket) and returns its ack.
func (f *sendFixture) change(t *testing.T, c *client, event string, payload map[string]string) map[string]any {
	t.Helper()
	raw, _ := json.Marshal(payload)
	args := []json.RawMessage{raw}
	var ps *pendingSend
	var res any
	switch event {
	case EventEdit:
		ps, res = f.hub.beginEdit(c, args)
	case EventDelete:
		ps, res = f.hub.beginDelete(c, args)
	case EventReactionAdd, EventReactionRemove:
		ps, res = f.hub.beginReaction(c, args, event == EventReactionAdd)
	default:
		t.Fatalf("not a change: %s", event)
	}
	if ps != nil {
		res = f.hub.completeSend(c, ps)
	}
	out := map[string]any{}
	b, _ := json.Marshal(res)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// Who may change a message, and every bad input, each with its code; what is allowed
// lands in history as the channel's order says.
func TestMessageChangesAreAuthorizedAndKept(t *testing.T) {
	f := newSendFixture(t)
	ctx := context.Background()
	st := f.st
	mk := func(name string) model.User {
		u, err := st.CreateUser(ctx, name, "x")
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	bob, carol, dave := mk("bob"), mk("carol"), mk("dave")
	room, err := st.CreateChannel(ctx, "room", model.KindPublic, f.alice.user.ID) // alice owns it
	if err != nil {
		t.Fatal(err)
	}
	secret, err := st.CreateChannel(ctx, "secret", model.KindPrivate, f.alice.user.ID)
	if err != nil {
		t.Fatal(err)
	}
	joined := func(u model.User, chs ...string) *client { return &client{user: u, channels: channelSet(chs)} }
	alice, bobC, carolC, daveC := joined(f.alice.user, room.ID, secret.ID), joined(bob, room.ID), joined(carol, room.ID), joined(dave)
	say := func(c *client, ch, text string) string {
		raw, _ := json.Marshal(map[string]string{"channelId": ch, "text": text})
		res, _ := f.hub.send(c, []json.RawMessage{raw}).(map[string]any)
		id, _ := res["id"].(string)
		if id == "" {
			t.Fatalf("send: %v", res)
		}
		return id
	}
	byCarol, byBob, secretMsg := say(carolC, room.ID, "carol's"), say(bobC, room.ID, "bob's"), say(alice, secret.ID, "secret")
	notV7 := uuid.New().String() // not a new message: not waited for

	for _, tc := range []struct {
		name  string
		c     *client
		event string
		p     map[string]string
		want  string // the error code, or "ok"
	}{
		{"bob edits carol's message", bobC, EventEdit, map[string]string{"id": byCarol, "text": "mine now"}, "forbidden"},
		{"an empty edit", carolC, EventEdit, map[string]string{"id": byCarol, "text": " \u200b "}, "invalid"},
		{"an oversized edit", carolC, EventEdit, map[string]string{"id": byCarol, "text": strings.Repeat("x", 101)}, "too_large"},
		{"an edit of no message", carolC, EventEdit, map[string]string{"id": notV7, "text": "x"}, "not_found"},
		{"an edit of a malformed id", carolC, EventEdit, map[string]string{"id": "42", "text": "x"}, "not_found"},
		{"carol edits her message", carolC, EventEdit, map[string]string{"id": byCarol, "text": "carol's, edited", "nonce": "e1"}, "ok"},
		{"the same edit again (its nonce)", carolC, EventEdit, map[string]string{"id": byCarol, "text": "carol's, edited", "nonce": "e1"}, "ok"},
		{"a non-member edits in a private channel", daveC, EventEdit, map[string]string{"id": secretMsg, "text": "x"}, "not_found"},
		{"a non-member reacts in a private channel", daveC, EventReactionAdd, map[string]string{"messageId": secretMsg, "emoji": "👍"}, "not_found"},
		{"a member who has not joined", daveC, EventReactionAdd, map[string]string{"messageId": byCarol, "emoji": "👍"}, "forbidden"},
		{"a reaction that is no emoji", bobC, EventReactionAdd, map[string]string{"messageId": byCarol, "emoji": "ok"}, "invalid"},
		{"two emoji", bobC, EventReactionAdd, map[string]string{"messageId": byCarol, "emoji": "👍👍"}, "invalid"},
		{"bob reacts", bobC, EventReactionAdd, map[string]string{"messageId": byCarol, "emoji": "👍"}, "ok"},
		{"bob reacts again: already so", bobC, EventReactionAdd, map[string]string{"messageId": byCarol, "emoji": "👍"}, "ok"},
		{"alice reacts", alice, EventReactionAdd, map[string]string{"messageId": byCarol, "emoji": "🎉"}, "ok"},
		{"alice takes back what she never gave", alice, EventReactionRemove, map[string]string{"messageId": byCarol, "emoji": "👍"}, "ok"},
		{"bob deletes carol's message", bobC, EventDelete, map[string]string{"id": byCarol}, "forbidden"},
		{"bob deletes his own", bobC, EventDelete, map[string]string{"id": byBob}, "ok"},
		{"an edit of a deleted message", bobC, EventEdit, map[string]string{"id": byBob, "text": "back"}, "not_found"},
		{"a reaction on a deleted message", carolC, EventReactionAdd, map[string]string{"messageId": byBob, "emoji": "👍"}, "not_found"},
	} {
		ack := f.change(t, tc.c, tc.event, tc.p)
		got := errorCode(ack)
		if got == "" && ack["ok"] == true {
			got = "ok"
		}
		if got != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, ack, tc.want)
		}
	}
	// The owner of the channel deletes anyone's message after all that; a second
	// delete finds nothing.
	if ack := f.change(t, alice, EventDelete, map[string]string{"id": byCarol}); ack["ok"] != true {
		t.Fatalf("the owner's delete: %v", ack)
	}

	deadline := time.Now().Add(5 * time.Second)
	for {
		hist, err := st.Messages(ctx, room.ID, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]string, 0, len(hist))
		for _, m := range hist {
			got = append(got, fmt.Sprintf("%q/%v/%v", m.Text, m.Deleted, !m.EditedAt.IsZero()))
		}
		if fmt.Sprint(got) == `[""/true/false ""/true/false]` {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("history = %v, want both messages deleted", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The edit's ack gives its time, an edit a moment after its message (before the batch
// writer stored it) waits for it, and the edit reaches the bus as message:update.
func TestEditOfAMessageJustSent(t *testing.T) {
	f := newSendFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bus := make(chan model.Message, 8)
	if err := f.hub.Broker.Subscribe(ctx, func(evs []broker.Event) {
		for _, ev := range evs {
			bus <- model.Message{Kind: ev.Kind, Data: ev.Data}
		}
	}); err != nil {
		t.Fatal(err)
	}
	id, _ := f.send(t, "typo", "n-1")["id"].(string)
	ack := f.change(t, f.alice, EventEdit, map[string]string{"id": id, "text": "fixed", "nonce": "n-2"})
	editedAt, ok := ack["editedAt"].(float64)
	if ack["ok"] != true || !ok || editedAt <= 0 {
		t.Fatalf("edit ack %v", ack)
	}
	again := f.change(t, f.alice, EventEdit, map[string]string{"id": id, "text": "fixed", "nonce": "n-2"})
	if again["editedAt"] != ack["editedAt"] {
		t.Errorf("the retry's ack %v, want the first's %v", again, ack)
	}
	var kinds []string
	for len(kinds) < 2 {
		select {
		case ev := <-bus:
			kinds = append(kinds, ev.Kind)
			if ev.Kind == model.EventMessageUpdate && !strings.Contains(string(ev.Data), `"text":"fixed"`) {
				t.Errorf("message:update %s", ev.Data)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("the bus got %v", kinds)
		}
	}
	select {
	case ev := <-bus:
		t.Errorf("a third event %s: the retry was published again", ev.Kind)
	case <-time.After(200 * time.Millisecond):
	}
	if fmt.Sprint(kinds) != "[message message:update]" {
		t.Errorf("the bus: %v, want the message and one edit", kinds)
	}
}

// Replies must answer a message of their channel; @names of users who may read the
// channel become mentions, told to each of them alone; a read marker moves forward
// only, is addressed to its reader in a public channel, and refuses a message of
// another channel.
func TestRepliesMentionsAndReadMarkers(t *testing.T) {
	f := newSendFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bus := make(chan broker.Event, 64)
	if err := f.hub.Broker.Subscribe(ctx, func(evs []broker.Event) {
		for _, ev := range evs {
			bus <- ev
		}
	}); err != nil {
		t.Fatal(err)
	}
	next := func(kind string) broker.Event {
		t.Helper()
		for {
			select {
			case ev := <-bus:
				if ev.Kind == kind {
					return ev
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("no %s on the bus", kind)
			}
		}
	}
	bob, err := f.st.CreateUser(ctx, "bob", "x")
	if err != nil {
		t.Fatal(err)
	}
	other, err := f.st.CreateChannel(ctx, "other", model.KindPublic, f.alice.user.ID)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := f.st.CreateChannel(ctx, "secret", model.KindPrivate, f.alice.user.ID)
	if err != nil {
		t.Fatal(err)
	}
	f.alice.channels = channelSet{f.chID, other.ID, secret.ID}
	sendTo := func(ch, text, replyTo string) map[string]any {
		raw, _ := json.Marshal(map[string]string{"channelId": ch, "text": text, "replyTo": replyTo})
		out := map[string]any{}
		b, _ := json.Marshal(f.hub.send(f.alice, []json.RawMessage{raw}))
		_ = json.Unmarshal(b, &out)
		return out
	}
	parent, _ := sendTo(f.chID, "a question", "")["id"].(string)
	elsewhere, _ := sendTo(other.ID, "elsewhere", "")["id"].(string)
	for _, tc := range []struct {
		name, ch, text, replyTo, want string
	}{
		{"a reply", f.chID, "an answer", parent, "ok"},
		{"a reply to a message of another channel", f.chID, "x", elsewhere, "invalid"},
		{"a reply to no message", f.chID, "x", uuid.New().String(), "not_found"},
		{"a reply to a malformed id", f.chID, "x", "nope", "not_found"},
	} {
		res := sendTo(tc.ch, tc.text, tc.replyTo)
		got := errorCode(res)
		if got == "" && res["id"] != nil {
			got = "ok"
		}
		if got != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, res, tc.want)
		}
	}
	for _, kind := range []string{broker.KindMessage, broker.KindMessage} {
		next(kind)
	}
	if ev := next(broker.KindMessage); !strings.Contains(string(ev.Data), `"replyTo":"`+parent+`"`) {
		t.Errorf("the reply's event: %s", ev.Data)
	}

	// @bob names a user who may read a public channel; in the private one he may not.
	sendTo(f.chID, "hey @Bob and @nobody-here, also me @alice", "")
	ev := next(broker.KindMessage)
	if !strings.Contains(string(ev.Data), `"mentions":["`+bob.ID+`","`+f.alice.user.ID+`"]`) {
		t.Errorf("mentions in %s", ev.Data)
	}
	if m := next(EventMention); m.To != bob.ID || !strings.Contains(string(m.Data), f.chID) {
		t.Errorf("the mention event %+v %s: want it for bob alone", m, m.Data)
	}
	sendTo(secret.ID, "@bob cannot read this", "")
	if ev := next(broker.KindMessage); strings.Contains(string(ev.Data), "mentions") {
		t.Errorf("a mention of a non-member: %s", ev.Data)
	}

	// Read markers.
	bobC := &client{user: bob, channels: channelSet{f.chID}}
	read := func(c *client, ch, msg string) map[string]any {
		raw, _ := json.Marshal(map[string]string{"channelId": ch, "messageId": msg})
		ps, res := f.hub.beginRead(c, []json.RawMessage{raw})
		if ps != nil {
			res = f.hub.completeSend(c, ps)
		}
		out := map[string]any{}
		b, _ := json.Marshal(res)
		_ = json.Unmarshal(b, &out)
		return out
	}
	latest, _ := sendTo(f.chID, "the latest", "")["id"].(string)
	if res := read(bobC, f.chID, latest); res["ok"] != true || res["marker"] != latest {
		t.Fatalf("bob reads to the latest: %v", res)
	}
	if ev := next(model.EventRead); ev.To != bob.ID || ev.Origin != bob.ID || !strings.Contains(string(ev.Data), latest) {
		t.Errorf("a public channel's marker %+v: want it for its reader alone", ev)
	}
	for _, tc := range []struct {
		name, ch, msg, want string
	}{
		{"an older marker: no step back", f.chID, parent, "ok " + latest},
		{"the same marker again", f.chID, latest, "ok " + latest},
		{"a message of another channel", f.chID, elsewhere, "invalid"},
		{"a private channel bob is not in", secret.ID, latest, "not_found"},
		{"no message", f.chID, uuid.New().String(), "not_found"},
	} {
		res := read(bobC, tc.ch, tc.msg)
		got := errorCode(res)
		if got == "" {
			got = fmt.Sprint("ok ", res["marker"])
		}
		if got != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, res, tc.want)
		}
	}
	select {
	case ev := <-bus:
		if ev.Kind == model.EventRead {
			t.Errorf("a marker that did not move was published: %s", ev.Data)
		}
	case <-time.After(200 * time.Millisecond):
	}
}

// Changes and read markers draw on the sender's message rate like messages: past
// the burst each is refused rate_limited before it reads the store.
func TestChangesAreRateLimited(t *testing.T) {
	f := newSendFixture(t)
	id, _ := f.send(t, "limited", "")["id"].(string)
	f.hub.limiters = limit.NewKeyed(limit.Spec{Rate: 0.001, Burst: 3})
	codes := map[string]int{}
	for i := 0; i < 8; i++ {
		var ack map[string]any
		switch i % 4 {
		case 0:
			ack = f.change(t, f.alice, EventEdit, map[string]string{"id": id, "text": fmt.Sprint("v", i)})
		case 1:
			ack = f.change(t, f.alice, EventReactionAdd, map[string]string{"messageId": id, "emoji": "👍"})
		case 2:
			ack = f.change(t, f.alice, EventReactionRemove, map[string]string{"messageId": id, "emoji": "👍"})
		default:
			raw, _ := json.Marshal(map[string]string{"channelId": f.chID, "messageId": id})
			ps, res := f.hub.beginRead(f.alice, []json.RawMessage{raw})
			if ps != nil {
				res = f.hub.completeSend(f.alice, ps)
			}
			b, _ := json.Marshal(res)
			ack = map[string]any{}
			_ = json.Unmarshal(b, &ack)
		}
		code := errorCode(ack)
		if code == "" {
			code = "ok"
		}
		codes[code]++
	}
	if codes["ok"] != 3 || codes["rate_limited"] != 5 {
		t.Errorf("8 changes past a burst of 3: %v, want 3 ok and 5 rate_limited", codes)
	}
}
