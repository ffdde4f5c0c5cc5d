package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quibly/quibly/app/internal/model"
)

// atSchema runs open with migrations stopped after version v.
func atSchema[S Store](t *testing.T, v int, open func() S) S {
	t.Helper()
	migrateUpTo = v
	defer func() { migrateUpTo = 0 }()
	return open()
}

// A database of the schema before membership (0003), with users, a user's channel, the
// system channel and messages in it, migrates on (0004 membership, 0005 message kinds,
// 0006 channel life):
// every channel is public, a creator owns its channel, the system channel has no
// owner, and the messages are untouched, messages still.
func TestMigrationToMembershipKeepsData(t *testing.T) {
	type seeded struct {
		alice, bob model.User
		general    string
		made       string
	}
	for _, tc := range migrationBackends() {
		t.Run(tc.name, func(t *testing.T) {
			open, exec := tc.setup(t)
			ctx := ctxT(t)
			old := atSchema(t, 3, open)
			var s seeded
			s.alice, s.bob = mustUser(t, old, "alice"), mustUser(t, old, "bob")
			s.general, s.made = newV7(t), newV7(t)
			now := time.Now().UTC().Truncate(time.Millisecond)
			ts := any(now.UnixMilli())
			if tc.name == "postgres" {
				ts = now
			}
			for _, row := range []struct {
				id, name string
				by       any
			}{{s.general, "general", nil}, {s.made, "made-by-alice", s.alice.ID}} {
				if err := exec(old, `INSERT INTO channels (id, name, created_by, created_at) VALUES (?, ?, ?, ?)`, row.id, row.name, row.by, ts); err != nil {
					t.Fatalf("seeding channel %s: %v", row.name, err)
				}
			}
			for i, ch := range []string{s.general, s.made, s.made} {
				if err := exec(old, `INSERT INTO messages (id, channel_id, author_id, author, text, nonce, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
					newV7(t), ch, s.bob.ID, "bob", fmt.Sprint("before the migration ", i), fmt.Sprint("n", i), ts); err != nil {
					t.Fatalf("seeding message %d: %v", i, err)
				}
			}
			_ = old.Close()

			st := open() // every migration
			cs, err := st.ChannelsFor(ctx, s.alice.ID, Cursor{}, 10)
			if err != nil {
				t.Fatal(err)
			}
			if names(cs) != "[general made-by-alice:owner]" {
				t.Errorf("alice's channels after the migration: %s", names(cs))
			}
			for _, c := range cs {
				if c.Kind != model.KindPublic {
					t.Errorf("channel %s became %q, want public", c.Name, c.Kind)
				}
			}
			if cs, _ := st.ChannelsFor(ctx, s.bob.ID, Cursor{}, 10); names(cs) != "[general made-by-alice]" {
				t.Errorf("bob's channels after the migration: %s", names(cs))
			}
			if ms, err := st.Members(ctx, s.general); err != nil || len(ms) != 0 {
				t.Errorf("the system channel's members: %+v, %v; want none", ms, err)
			}
			for ch, want := range map[string]int{s.general: 1, s.made: 2} {
				got, err := st.Messages(ctx, ch, "", 10)
				if err != nil || len(got) != want {
					t.Fatalf("messages of %s after the migration: %d, %v; want %d", ch, len(got), err, want)
				}
				for _, m := range got {
					if m.Author != "bob" || m.AuthorID != s.bob.ID || m.Kind != "" || m.Data != nil {
						t.Errorf("message changed by the migration: %+v", m)
					}
				}
			}
			// And the new schema works on the old data.
			if changed, err := st.SetMember(ctx, s.made, s.bob.ID, model.RoleAdmin); err != nil || !changed {
				t.Errorf("SetMember on a migrated channel: %v, %v", changed, err)
			}
		})
	}
}

// migrationBackend opens a backend's store and runs SQL with "?" placeholders on it,
// to build a database at an earlier schema by hand.
type migrationBackend struct {
	name  string
	setup func(t *testing.T) (open func() Store, exec func(st Store, sql string, args ...any) error)
}

func migrationBackends() []migrationBackend {
	return []migrationBackend{
		{"sqlite", func(t *testing.T) (func() Store, func(Store, string, ...any) error) {
			path := filepath.Join(t.TempDir(), "quibly.db")
			return func() Store { return openSQLite(t, path) },
				func(st Store, q string, args ...any) error {
					_, err := st.(*SQLite).w.Exec(q, args...)
					return err
				}
		}},
		{"postgres", func(t *testing.T) (func() Store, func(Store, string, ...any) error) {
			dbURL, schema := freshSchema(t)
			return func() Store { return openPostgres(t, dbURL, schema) },
				func(st Store, q string, args ...any) error {
					for i := range args { // "?" to "$n"
						q = strings.Replace(q, "?", fmt.Sprintf("$%d", i+1), 1)
					}
					_, err := st.(*Postgres).pool.Exec(context.Background(), q, args...)
					return err
				}
		}},
	}
}

// A database at schema 0006 with every kind of channel (public, private, a DM, an
// archived and a deleted one), members and messages migrates to 0007: every row and
// field is kept, references are still enforced on the rebuilt table, and a private
// channel no longer holds its name against a public one.
func TestMigrationToPrivateNamesKeepsChannels(t *testing.T) {
	for _, tc := range migrationBackends() {
		t.Run(tc.name, func(t *testing.T) {
			open, exec := tc.setup(t)
			ctx := ctxT(t)
			old := atSchema(t, 6, open)
			alice, bob := mustUser(t, old, "alice"), mustUser(t, old, "bob")
			pub := mustChannel(t, old, "lobby", alice.ID)
			priv, err := old.CreateChannel(ctx, "plans", model.KindPrivate, alice.ID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := old.SetMember(ctx, priv.ID, bob.ID, model.RoleAdmin); err != nil {
				t.Fatal(err)
			}
			dm, _, err := old.DirectChannel(ctx, alice.ID, bob.ID)
			if err != nil {
				t.Fatal(err)
			}
			yes := true
			if _, _, err := old.UpdateChannel(ctx, pub.ID, "", &yes); err != nil {
				t.Fatal(err)
			}
			gone := mustChannel(t, old, "gone", alice.ID)
			if _, err := old.DeleteChannel(ctx, gone.ID); err != nil {
				t.Fatal(err)
			}
			for _, ch := range []model.Channel{pub, priv, dm} { // as the store of schema 0006 wrote them
				m := msg(t, ch, alice, "kept in "+ch.ID, "n-"+ch.ID)
				if err := exec(old, `INSERT INTO messages (id, channel_id, author_id, author, text, nonce, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
					m.ID, m.ChannelID, m.AuthorID, m.Author, m.Text, m.Nonce, timeArg(tc.name)); err != nil {
					t.Fatal(err)
				}
			}
			before := map[string][]model.Channel{}
			for _, u := range []model.User{alice, bob} {
				before[u.ID], err = old.ChannelsFor(ctx, u.ID, Cursor{}, 100)
				if err != nil {
					t.Fatal(err)
				}
			}
			_ = old.Close()

			st := open() // 0007
			for _, u := range []model.User{alice, bob} {
				after, err := st.ChannelsFor(ctx, u.ID, Cursor{}, 100)
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprintf("%+v", after) != fmt.Sprintf("%+v", before[u.ID]) {
					t.Errorf("%s's channels changed:\n before %+v\n after  %+v", u.Username, before[u.ID], after)
				}
			}
			if _, err := st.Channel(ctx, gone.ID); !errors.Is(err, ErrNotFound) {
				t.Errorf("the deleted channel came back: %v", err)
			}
			if role, err := st.Member(ctx, priv.ID, bob.ID); err != nil || role != model.RoleAdmin {
				t.Errorf("bob in plans = %q, %v; want admin", role, err)
			}
			for _, ch := range []string{pub.ID, priv.ID, dm.ID} {
				if ms, err := st.Messages(ctx, ch, "", 10); err != nil || len(ms) != 1 || ms[0].Text != "kept in "+ch {
					t.Errorf("messages of %s after the migration: %+v, %v", ch, ms, err)
				}
			}
			if again, created, err := st.DirectChannel(ctx, bob.ID, alice.ID); err != nil || created || again.ID != dm.ID {
				t.Errorf("the DM of the pair after the migration = %s (created %v), %v; want %s", again.ID, created, err, dm.ID)
			}
			if err := exec(st, `INSERT INTO channel_members (channel_id, user_id, role, added_at) VALUES (?, ?, 'member', ?)`,
				newV7(t), bob.ID, timeArg(tc.name)); err == nil {
				t.Error("a member of a channel that does not exist was stored: references are not enforced")
			}
			if _, err := st.CreateChannel(ctx, "plans", model.KindPublic, bob.ID); err != nil {
				t.Errorf("a public channel under a private one's name: %v", err)
			}
			if _, err := st.CreateChannel(ctx, "lobby", model.KindPublic, bob.ID); !errors.Is(err, ErrConflict) {
				t.Errorf("a second public lobby: %v, want ErrConflict", err)
			}
		})
	}
}

// timeArg is a time in the form the backend's columns take.
func timeArg(backend string) any {
	now := time.Now().UTC().Truncate(time.Millisecond)
	if backend == "postgres" {
		return now
	}
	return now.UnixMilli()
}

// A database at schema 0007 with messages and membership events migrates to 0008:
// history reads the same (nothing edited, deleted or reacted to), and the messages
// can then be edited, reacted to and deleted.
func TestMigrationToMessageLifeKeepsHistory(t *testing.T) {
	for _, tc := range migrationBackends() {
		t.Run(tc.name, func(t *testing.T) {
			open, exec := tc.setup(t)
			ctx := ctxT(t)
			old := atSchema(t, 7, open)
			alice := mustUser(t, old, "alice")
			ch := mustChannel(t, old, "kept", alice.ID)
			join := entry(t, ch, alice, model.EventMemberJoin, model.MemberChange{ChannelID: ch.ID, UserID: alice.ID, Role: model.RoleOwner, By: alice.ID})
			m1, m2 := msg(t, ch, alice, "one", "n1"), msg(t, ch, alice, "two", "n2")
			for _, m := range []model.Message{join, m1, m2} { // as the store of schema 0007 wrote them
				if err := exec(old, `INSERT INTO messages (id, channel_id, author_id, author, text, nonce, created_at, kind, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
					m.ID, m.ChannelID, m.AuthorID, m.Author, m.Text, m.Nonce, timeArg(tc.name), m.Kind, string(m.Data)); err != nil {
					t.Fatal(err)
				}
			}
			_ = old.Close()

			st := open() // 0008
			after, err := st.Messages(ctx, ch.ID, "", 10)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range after {
				got = append(got, fmt.Sprintf("%s/%s/%s/%v/%v", m.ID, m.Kind, m.Text, m.Deleted, m.EditedAt.IsZero()))
			}
			want := []string{m2.ID + "//two/false/true", m1.ID + "//one/false/true", join.ID + "/" + model.EventMemberJoin + "//false/true"}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("history after the migration = %v, want %v", got, want)
			}
			if rs, err := st.Reactions(ctx, alice.ID, []string{m1.ID, m2.ID}); err != nil || len(rs) != 0 {
				t.Errorf("reactions after the migration: %v, %v; want none", rs, err)
			}
			life := []model.Message{
				entry(t, ch, alice, model.EventMessageUpdate, model.MessageEdit{ID: m1.ID, ChannelID: ch.ID, Text: "one, edited", EditedAt: 5}),
				entry(t, ch, alice, model.EventReaction, model.Reaction{MessageID: m1.ID, ChannelID: ch.ID, Emoji: "👍", UserID: alice.ID, Op: model.ReactionAdd}),
				entry(t, ch, alice, model.EventMessageDelete, model.MessageDeletion{ID: m2.ID, ChannelID: ch.ID}),
			}
			if _, err := st.WriteMessages(ctx, life); err != nil {
				t.Fatal(err)
			}
			hist, err := st.Messages(ctx, ch.ID, "", 10)
			if err != nil || len(hist) != 3 || hist[0].Text != "" || !hist[0].Deleted || hist[1].Text != "one, edited" || hist[2].Kind != model.EventMemberJoin {
				t.Errorf("history after editing and deleting migrated messages: %+v, %v", hist, err)
			}
		})
	}
}

// A database at schema 0008 with messages, an edit and a reaction migrates to 0009:
// history reads the same (no replies, no mentions), nobody has a marker, and replies,
// mentions and markers then work on the old messages.
func TestMigrationToRepliesAndMarkersKeepsHistory(t *testing.T) {
	for _, tc := range migrationBackends() {
		t.Run(tc.name, func(t *testing.T) {
			open, exec := tc.setup(t)
			ctx := ctxT(t)
			old := atSchema(t, 8, open)
			alice, bob := mustUser(t, old, "alice"), mustUser(t, old, "bob")
			ch := mustChannel(t, old, "kept", alice.ID)
			m1 := msg(t, ch, alice, "one", "n1")
			edit := entry(t, ch, alice, model.EventMessageUpdate, model.MessageEdit{ID: m1.ID, ChannelID: ch.ID, Text: "one, edited", EditedAt: 7})
			for _, m := range []model.Message{m1, edit} { // as the store of schema 0008 wrote them
				if err := exec(old, `INSERT INTO messages (id, channel_id, author_id, author, text, nonce, created_at, kind, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
					m.ID, m.ChannelID, m.AuthorID, m.Author, m.Text, m.Nonce, timeArg(tc.name), m.Kind, string(m.Data)); err != nil {
					t.Fatal(err)
				}
			}
			if err := exec(old, `UPDATE messages SET text = ?, edited_at = ?, edit_id = ? WHERE id = ?`, "one, edited", timeArg(tc.name), edit.ID, m1.ID); err != nil {
				t.Fatal(err)
			}
			_ = old.Close()

			st := open() // 0009
			hist, err := st.Messages(ctx, ch.ID, "", 10)
			if err != nil || len(hist) != 1 || hist[0].Text != "one, edited" || hist[0].EditedAt.IsZero() || hist[0].ReplyTo != "" || hist[0].Mentions != nil {
				t.Fatalf("history after the migration: %+v, %v", hist, err)
			}
			if n, err := st.Unread(ctx, bob.ID, []string{ch.ID}); err != nil || n[ch.ID] != (model.Unread{}) {
				t.Errorf("bob's unread after the migration: %+v, %v", n, err)
			}
			reply := msg(t, ch, bob, "@alice yes", "n2")
			reply.ReplyTo, reply.Mentions = m1.ID, []string{alice.ID}
			mark := entry(t, ch, bob, model.EventRead, model.ReadMarker{ChannelID: ch.ID, UserID: bob.ID, MessageID: reply.ID})
			if _, err := st.WriteMessages(ctx, []model.Message{reply, mark}); err != nil {
				t.Fatal(err)
			}
			if rs, err := st.Replies(ctx, ch.ID, m1.ID, "", 10); err != nil || len(rs) != 1 || rs[0].ID != reply.ID {
				t.Errorf("replies to a migrated message: %+v, %v", rs, err)
			}
			if n, _ := st.Unread(ctx, alice.ID, []string{ch.ID}); n[ch.ID].Unread != 1 || n[ch.ID].Mentions != 1 {
				t.Errorf("alice's unread: %+v", n[ch.ID])
			}
		})
	}
}
