package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/quibly/quibly/app/internal/model"
)

// entry makes a log entry of kind by author with data, id and time from the order.
func entry(t *testing.T, ch model.Channel, author model.User, kind string, data any) model.Message {
	t.Helper()
	raw, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	return model.Message{ID: newV7(t), ChannelID: ch.ID, AuthorID: author.ID, Author: author.Username,
		Kind: kind, Data: raw, CreatedAt: time.Now()}
}

// rawData is the stored data of an entry, read past the store's API: what a deleted
// message must not leave behind.
func rawData(t *testing.T, st Store, id string) string {
	t.Helper()
	var data string
	var err error
	switch s := st.(type) {
	case *SQLite:
		err = s.r.QueryRow(`SELECT data FROM messages WHERE id = ?`, id).Scan(&data)
	case *Postgres:
		u, _ := parseID(id)
		err = s.pool.QueryRow(context.Background(), `SELECT data FROM messages WHERE id = $1`, [16]byte(u)).Scan(&data)
	default:
		t.Fatalf("rawData: unknown store %T", st)
	}
	if err != nil {
		t.Fatalf("rawData(%s): %v", id, err)
	}
	return data
}

// Edits, deletions and reactions written out of the channel's order end as the order
// says; writing them again changes nothing; history shows each message as it now is
// and lists no entry; a deleted message keeps no text anywhere.
func contractMessageLife(t *testing.T, open func() Store) {
	st := open()
	ctx := ctxT(t)
	alice, bob := mustUser(t, st, "alice"), mustUser(t, st, "bob")
	ch, other := mustChannel(t, st, "life", alice.ID), mustChannel(t, st, "other", alice.ID)
	m1, m2 := msg(t, ch, alice, "first", "n1"), msg(t, ch, bob, "second", "n2")
	if _, err := st.WriteMessages(ctx, []model.Message{m1, m2}); err != nil {
		t.Fatal(err)
	}
	edit := func(m model.Message, text string) model.Message {
		return entry(t, ch, alice, model.EventMessageUpdate, model.MessageEdit{ID: m.ID, ChannelID: ch.ID, Text: text, EditedAt: time.Now().UnixMilli()})
	}
	react := func(c model.Channel, u model.User, m model.Message, emoji, op string) model.Message {
		return entry(t, c, u, model.EventReaction, model.Reaction{MessageID: m.ID, ChannelID: c.ID, Emoji: emoji, UserID: u.ID, Op: op})
	}
	// Made in the channel's order (ids ascending), written in another.
	e1, e2 := edit(m1, "v1"), edit(m1, "v2")
	bobUp, bobDown := react(ch, bob, m1, "👍", model.ReactionAdd), react(ch, bob, m1, "👍", model.ReactionRemove)
	party, bobParty, aliceUp := react(ch, alice, m1, "🎉", model.ReactionAdd), react(ch, bob, m1, "🎉", model.ReactionAdd), react(ch, alice, m1, "👍", model.ReactionAdd)
	elsewhere := react(other, bob, m1, "🙃", model.ReactionAdd) // an entry of another channel
	editBeforeDelete := entry(t, ch, bob, model.EventMessageUpdate, model.MessageEdit{ID: m2.ID, ChannelID: ch.ID, Text: "secret v2", EditedAt: 1})
	del := entry(t, ch, bob, model.EventMessageDelete, model.MessageDeletion{ID: m2.ID, ChannelID: ch.ID})
	editAfterDelete := entry(t, ch, bob, model.EventMessageUpdate, model.MessageEdit{ID: m2.ID, ChannelID: ch.ID, Text: "resurrected", EditedAt: 2})
	reactAfterDelete := react(ch, alice, m2, "👀", model.ReactionAdd)
	batches := [][]model.Message{
		{e2, bobDown, editBeforeDelete},
		{e1, bobUp, party, elsewhere},
		{bobParty, aliceUp, react(ch, alice, m2, "😢", model.ReactionAdd)},
		{del, editAfterDelete, reactAfterDelete},
	}
	check := func(when string) {
		t.Helper()
		hist, err := st.Messages(ctx, ch.ID, "", 50)
		if err != nil {
			t.Fatal(err)
		}
		if len(hist) != 2 || hist[0].ID != m2.ID || hist[1].ID != m1.ID {
			t.Fatalf("%s: history lists %d entries, want the two messages only: %+v", when, len(hist), hist)
		}
		got1, got2 := hist[1], hist[0]
		if got1.Text != "v2" || got1.Deleted || got1.EditedAt.IsZero() {
			t.Errorf("%s: m1 = %q deleted %v edited %v; want v2, the later edit, edited", when, got1.Text, got1.Deleted, got1.EditedAt)
		}
		if got2.Text != "" || got2.Author != "" || !got2.Deleted || got2.AuthorID != bob.ID {
			t.Errorf("%s: m2 = %+v; want a tombstone (no text, no author's name, deleted)", when, got2)
		}
		for _, e := range []model.Message{editBeforeDelete, editAfterDelete} {
			if d := rawData(t, st, e.ID); d != "" {
				t.Errorf("%s: an edit of the deleted message keeps %q", when, d)
			}
		}
		rs, err := st.Reactions(ctx, alice.ID, []string{m1.ID, m2.ID})
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(rs[m1.ID]); got != "[{🎉 2 true} {👍 1 true}]" {
			t.Errorf("%s: m1's reactions for alice = %s, want 🎉 by both, 👍 by alice only (bob's taken back)", when, got)
		}
		if len(rs[m2.ID]) != 0 {
			t.Errorf("%s: the deleted message has reactions %v", when, rs[m2.ID])
		}
		if rs, _ := st.Reactions(ctx, bob.ID, []string{m1.ID}); fmt.Sprint(rs[m1.ID]) != "[{🎉 2 true} {👍 1 false}]" {
			t.Errorf("%s: m1's reactions for bob = %v", when, rs[m1.ID])
		}
		s1, err := st.MessageState(ctx, m1.ID, alice.ID)
		if err != nil || s1.ChannelID != ch.ID || s1.AuthorID != alice.ID || s1.Deleted || s1.Emoji != 2 || s1.Mine != 2 || !s1.Reacted["👍"] {
			t.Errorf("%s: MessageState(m1, alice) = %+v, %v", when, s1, err)
		}
		if s2, err := st.MessageState(ctx, m2.ID, alice.ID); err != nil || !s2.Deleted || s2.Emoji != 0 {
			t.Errorf("%s: MessageState(m2) = %+v, %v; want deleted, no reactions", when, s2, err)
		}
	}
	for _, b := range batches {
		if _, err := st.WriteMessages(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	check("written out of order")
	for _, b := range batches { // a replay (the writer retries whole batches)
		if n, err := st.WriteMessages(ctx, b); err != nil || n != 0 {
			t.Fatalf("replay wrote %d, %v", n, err)
		}
	}
	check("written again")

	if _, err := st.MessageState(ctx, e1.ID, alice.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("MessageState of an edit entry: %v, want ErrNotFound (it is no message)", err)
	}
	if _, err := st.MessageState(ctx, newV7(t), alice.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("MessageState of nothing: %v, want ErrNotFound", err)
	}
	bad := entry(t, ch, alice, model.EventReaction, map[string]string{"messageId": m1.ID})
	if _, err := st.WriteMessages(ctx, []model.Message{bad}); !errors.Is(err, ErrRejected) {
		t.Errorf("a reaction without emoji, user or op: %v, want ErrRejected", err)
	}
}

// Replies page a thread; mentions and read markers give each user's unread and
// mention counts; a marker only moves forward; a deleted message counts no more.
func contractThreadsReadsMentions(t *testing.T, open func() Store) {
	st := open()
	ctx := ctxT(t)
	alice, bob, carol := mustUser(t, st, "alice"), mustUser(t, st, "bob"), mustUser(t, st, "carol")
	ch, other := mustChannel(t, st, "threads", alice.ID), mustChannel(t, st, "other", alice.ID)
	p := msg(t, ch, alice, "a question", "p")
	r1, r2 := msg(t, ch, bob, "an answer", "r1"), msg(t, ch, carol, "another", "r2")
	r1.ReplyTo, r2.ReplyTo = p.ID, p.ID
	m3, m4 := msg(t, ch, bob, "@alice look", "m3"), msg(t, ch, carol, "@alice @bob look", "m4")
	m3.Mentions, m4.Mentions = []string{alice.ID}, []string{alice.ID, bob.ID}
	if _, err := st.WriteMessages(ctx, []model.Message{p, r1, r2, m3, m4}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		channel, before string
		want            []string
	}{
		{ch.ID, "", []string{r2.ID, r1.ID}},
		{ch.ID, r2.ID, []string{r1.ID}},
		{other.ID, "", nil},
	} {
		got, err := st.Replies(ctx, tc.channel, p.ID, tc.before, 10)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range got {
			ids = append(ids, m.ID)
			if m.ReplyTo != p.ID {
				t.Errorf("a reply's replyTo = %q", m.ReplyTo)
			}
		}
		if fmt.Sprint(ids) != fmt.Sprint(tc.want) {
			t.Errorf("Replies(%s, before %q) = %v, want %v", tc.channel, tc.before, ids, tc.want)
		}
	}
	hist, err := st.Messages(ctx, ch.ID, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if hist[0].ID != m4.ID || fmt.Sprint(hist[0].Mentions) != fmt.Sprint(m4.Mentions) || hist[3].ReplyTo != p.ID {
		t.Errorf("history lost mentions or replyTo: %+v", hist)
	}
	unread := func(u model.User, want string) {
		t.Helper()
		got, err := st.Unread(ctx, u.ID, []string{ch.ID, other.ID})
		if err != nil {
			t.Fatal(err)
		}
		c := got[ch.ID]
		s := fmt.Sprintf("marker=%v unread=%d mentions=%d", c.Marker != "", c.Unread, c.Mentions)
		if s != want {
			t.Errorf("%s's unread: %s, want %s", u.Username, s, want)
		}
		if got[other.ID].Unread != 0 || got[other.ID].Mentions != 0 {
			t.Errorf("%s's unread in an empty channel: %+v", u.Username, got[other.ID])
		}
	}
	unread(alice, "marker=false unread=4 mentions=2") // the owner: a member, nothing read yet
	unread(bob, "marker=false unread=0 mentions=1")   // no member and no marker: only mentions count
	read := func(u model.User, m model.Message) model.Message {
		return entry(t, ch, u, model.EventRead, model.ReadMarker{ChannelID: ch.ID, UserID: u.ID, MessageID: m.ID})
	}
	forward, back := read(alice, m3), read(alice, r1)
	if _, err := st.WriteMessages(ctx, []model.Message{forward, back, read(bob, m4)}); err != nil {
		t.Fatal(err)
	}
	if got, err := st.ReadMarker(ctx, alice.ID, ch.ID); err != nil || got != m3.ID {
		t.Errorf("alice's marker = %q, %v; want m3 (a marker only moves forward)", got, err)
	}
	unread(alice, "marker=true unread=1 mentions=1")
	unread(bob, "marker=true unread=0 mentions=0")
	if got, _ := st.ReadMarker(ctx, carol.ID, ch.ID); got != "" {
		t.Errorf("carol's marker = %q, want none", got)
	}
	marks, err := st.ReadMarkers(ctx, ch.ID, 10)
	if err != nil || fmt.Sprint(marks) != fmt.Sprint([]model.ReadMarker{
		{ChannelID: ch.ID, UserID: bob.ID, Username: "bob", MessageID: m4.ID},
		{ChannelID: ch.ID, UserID: alice.ID, Username: "alice", MessageID: m3.ID}}) {
		t.Errorf("ReadMarkers = %+v, %v", marks, err)
	}
	del := entry(t, ch, carol, model.EventMessageDelete, model.MessageDeletion{ID: m4.ID, ChannelID: ch.ID})
	if _, err := st.WriteMessages(ctx, []model.Message{del}); err != nil {
		t.Fatal(err)
	}
	unread(alice, "marker=true unread=0 mentions=0")
	if hist, _ := st.Messages(ctx, ch.ID, "", 10); len(hist) != 5 {
		t.Errorf("history lists %d entries, want the 5 messages (no read entries)", len(hist))
	}
}
