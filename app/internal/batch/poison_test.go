package batch

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quibly/quibly/app/internal/metrics"
	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/queue"
	"github.com/quibly/quibly/app/internal/store"
	"github.com/quibly/quibly/app/internal/testenv"
)

// A message whose author no longer exists (a token that outlived a database reset)
// among 1,000 good ones: every good one is stored, the bad one is parked and counted,
// the queue moves on, and the writer stays healthy. The same table runs against the
// standalone and the clustered store.
func TestPoisonMessageDoesNotBlockTheOthers(t *testing.T) {
	for _, tc := range storeBackends() {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			st, u, ch := openWithWriter(ctx, t, tc)
			q := queue.NewMemory()
			defer q.Close()
			const good = 1000
			ghost := uuid.NewString() // an author the store has never heard of
			var poison string
			// Produce returns once the message is stored (standalone acks wait for the
			// store), so every message is handed over first and the writer started once
			// all 1,001 wait: its first batch holds the poison among the good ones.
			produced := make(chan error, good+1)
			for i := range good + 1 {
				id, _ := uuid.NewV7()
				m := model.Message{ID: id.String(), ChannelID: ch.ID, AuthorID: u.ID, Author: u.Username,
					Text: fmt.Sprint("message ", i), CreatedAt: time.Now()}
				if i == good/2 {
					m.AuthorID, m.Author, poison = ghost, "ghost", m.ID
				}
				go func() { produced <- q.Produce(ctx, m) }()
			}
			testenv.Eventually(t, 10*time.Second, "all messages queued", func() bool { return q.Lag() == good+1 })
			reg := metrics.New(func() float64 { return 0 })
			w, err := NewWriter(Config{MaxBatch: good + 1}, q, st, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
			if err != nil {
				t.Fatal(err)
			}
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- w.Run(runCtx) }()
			testenv.Eventually(t, 30*time.Second, "the good messages stored", func() bool {
				msgs, err := st.Messages(ctx, ch.ID, "", 100)
				return err == nil && len(msgs) == 100 && testutil.ToFloat64(reg.MessagesRejected) == 1
			})
			for range good + 1 {
				if err := <-produced; err != nil {
					t.Fatalf("a produce was not confirmed: %v", err)
				}
			}
			stop()
			if err := <-done; err != nil {
				t.Fatalf("writer: %v", err)
			}
			stored := 0
			for before := ""; ; {
				page, err := st.Messages(ctx, ch.ID, before, 100)
				if err != nil {
					t.Fatal(err)
				}
				for _, msg := range page {
					if msg.ID == poison {
						t.Fatal("the poison message was stored")
					}
				}
				stored += len(page)
				if len(page) < 100 {
					break
				}
				before = page[len(page)-1].ID
			}
			if stored != good {
				t.Fatalf("stored %d of the %d good messages", stored, good)
			}
			if err := w.Healthy(); err != nil {
				t.Fatalf("the writer reports %v after parking the poison", err)
			}
			if lag := q.Lag(); lag != 0 {
				t.Fatalf("the queue still holds %d messages: the batch was not committed", lag)
			}
			parked, err := st.RejectedIDs(ctx)
			if err != nil || len(parked) != 1 || parked[0] != poison {
				t.Fatalf("parked %v (%v), want just the poison %s", parked, err, poison)
			}
		})
	}
}

// storeBackend opens a fresh store of one kind.
type storeBackend struct {
	name string
	open func(t *testing.T) store.Store
}

// openWithWriter opens tc's store, closed when the test ends, with the user "writer"
// and the channel "general" in it.
func openWithWriter(ctx context.Context, t *testing.T, tc storeBackend) (store.Store, model.User, model.Channel) {
	t.Helper()
	st := tc.open(t)
	t.Cleanup(func() { _ = st.Close() })
	u, err := st.CreateUser(ctx, "writer", "hash")
	if err != nil {
		t.Fatal(err)
	}
	ch, err := st.EnsureChannel(ctx, "general")
	if err != nil {
		t.Fatal(err)
	}
	return st, u, ch
}

// storeBackends are the standalone and the clustered store.
func storeBackends() []storeBackend {
	return []storeBackend{
		{"sqlite", func(t *testing.T) store.Store {
			st, err := store.NewSQLite(context.Background(), store.SQLiteConfig{Path: filepath.Join(t.TempDir(), "q.db")})
			if err != nil {
				t.Fatal(err)
			}
			return st
		}},
		{"postgres", func(t *testing.T) store.Store {
			url := testenv.DatabaseURL(t)
			schema := "poison_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
			st, err := store.NewPostgres(context.Background(), store.PostgresConfig{URL: url, Schema: schema, MaxConns: 4})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if conn, err := pgx.Connect(context.Background(), url); err == nil {
					_, _ = conn.Exec(context.Background(), `DROP SCHEMA `+schema+` CASCADE`)
					_ = conn.Close(context.Background())
				}
			})
			return st
		}},
	}
}

// A change that can never be applied (a reaction to a message that is not there) is
// parked like a poison message; the message and its edit around it are stored and
// applied.
func TestPoisonChangeIsParked(t *testing.T) {
	for _, tc := range storeBackends() {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			st, u, ch := openWithWriter(ctx, t, tc)
			newID := func() string { id, _ := uuid.NewV7(); return id.String() }
			m := model.Message{ID: newID(), ChannelID: ch.ID, AuthorID: u.ID, Author: u.Username, Text: "first", CreatedAt: time.Now()}
			entry := func(kind string, data string) model.Message {
				return model.Message{ID: newID(), ChannelID: ch.ID, AuthorID: u.ID, Author: u.Username, Kind: kind, Data: []byte(data), CreatedAt: time.Now()}
			}
			bad := entry(model.EventReaction, fmt.Sprintf(`{"messageId":%q,"channelId":%q,"emoji":"👍","userId":%q,"op":"add"}`, uuid.NewString(), ch.ID, u.ID))
			edit := entry(model.EventMessageUpdate, fmt.Sprintf(`{"id":%q,"channelId":%q,"text":"second","editedAt":1}`, m.ID, ch.ID))
			q := queue.NewMemory()
			defer q.Close()
			// Queued in this order (an edit comes after its message), then written as
			// one batch once the writer starts.
			produced := make(chan error, 3)
			for i, x := range []model.Message{m, bad, edit} {
				go func() { produced <- q.Produce(ctx, x) }()
				testenv.Eventually(t, 10*time.Second, "queued in order", func() bool { return q.Lag() == int64(i+1) })
			}
			reg := metrics.New(func() float64 { return 0 })
			w, err := NewWriter(Config{MaxBatch: 10}, q, st, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
			if err != nil {
				t.Fatal(err)
			}
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- w.Run(runCtx) }()
			testenv.Eventually(t, 30*time.Second, "the message stored with its edit, the reaction parked", func() bool {
				msgs, err := st.Messages(ctx, ch.ID, "", 10)
				return err == nil && len(msgs) == 1 && msgs[0].Text == "second" && testutil.ToFloat64(reg.MessagesRejected) == 1
			})
			for range 3 {
				if err := <-produced; err != nil {
					t.Fatalf("a produce was not confirmed: %v", err)
				}
			}
			stop()
			if err := <-done; err != nil {
				t.Fatalf("writer: %v", err)
			}
			if ids, err := st.RejectedIDs(ctx); err != nil || len(ids) != 1 || ids[0] != bad.ID {
				t.Errorf("parked %v, %v; want the reaction %s", ids, err, bad.ID)
			}
		})
	}
}
