package store

import (
	"context"
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
	for _, tc := range []struct {
		name string
		// open opens the backend's store; exec runs SQL with "?" placeholders on it.
		setup func(t *testing.T) (open func() Store, exec func(st Store, sql string, args ...any) error)
	}{
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
	} {
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
			cs, err := st.ChannelsFor(ctx, s.alice.ID, "", 10)
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
			if cs, _ := st.ChannelsFor(ctx, s.bob.ID, "", 10); names(cs) != "[general made-by-alice]" {
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
