package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/testenv"
)

// freshSchema names a schema no other test uses and drops it when t ends. The schema
// itself is created by NewPostgres, as in production with Schema set.
func freshSchema(t *testing.T) (dbURL, schema string) {
	t.Helper()
	dbURL = testenv.DatabaseURL(t)
	schema = "t_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return dbURL, schema
}

// openPostgres opens a store on schema; the store is closed when t ends (Close is
// idempotent, so tests may close it earlier).
func openPostgres(t *testing.T, dbURL, schema string) *Postgres {
	t.Helper()
	st, err := NewPostgres(ctxT(t), PostgresConfig{URL: dbURL, Schema: schema, MaxConns: 8})
	if err != nil {
		t.Fatalf("NewPostgres: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func TestPostgresContract(t *testing.T) {
	runStoreContract(t, func(t *testing.T) func() Store {
		dbURL, schema := freshSchema(t)
		return func() Store {
			st, err := NewPostgres(ctxT(t), PostgresConfig{URL: dbURL, Schema: schema, MaxConns: 8})
			if err != nil {
				t.Fatalf("NewPostgres: %v", err)
			}
			return st
		}
	})
}

// Three nodes starting at once on an empty database: the advisory lock lets one
// migrate and the others find the schema done.
func TestPostgresConcurrentMigrations(t *testing.T) {
	dbURL, schema := freshSchema(t)
	// Create the schema up front, as in production where the tables go into an existing
	// schema, so the nodes race on the migration itself.
	conn, err := pgx.Connect(ctxT(t), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctxT(t), `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize())
	_ = conn.Close(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	steps, err := loadMigrations(migrationFS, "migrations/postgres")
	if err != nil {
		t.Fatal(err)
	}
	stores := make([]*Postgres, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() {
			stores[i], errs[i] = NewPostgres(ctxT(t), PostgresConfig{URL: dbURL, Schema: schema, MaxConns: 2})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: NewPostgres: %v", i, err)
		}
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	var n, maxV int
	if err := stores[0].pool.QueryRow(ctxT(t), `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &maxV); err != nil {
		t.Fatal(err)
	}
	if n != len(steps) || maxV != steps[len(steps)-1].Version {
		t.Errorf("%d migrations recorded (max %d), want %d", n, maxV, len(steps))
	}
	// Every node can use the schema.
	for i, st := range stores {
		if _, err := st.CreateUser(ctxT(t), fmt.Sprint("user", i), "h"); err != nil {
			t.Errorf("node %d: CreateUser: %v", i, err)
		}
	}
}

func TestPostgresConcurrentEnsureChannel(t *testing.T) {
	dbURL, schema := freshSchema(t)
	openPostgres(t, dbURL, schema) // migrate first: this test is about the channel race
	const nodes, callsPerNode = 3, 5
	stores := make([]*Postgres, nodes)
	for i := range stores {
		stores[i] = openPostgres(t, dbURL, schema)
	}
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		got = map[string]int{}
	)
	for _, st := range stores {
		for range callsPerNode {
			wg.Go(func() {
				c, err := st.EnsureChannel(ctxT(t), "general")
				if err != nil {
					t.Errorf("EnsureChannel: %v", err)
					return
				}
				mu.Lock()
				got[c.ID]++
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	if len(got) != 1 {
		t.Fatalf("EnsureChannel returned %d different channels, want 1: %v", len(got), got)
	}
	for id, n := range got {
		if n != nodes*callsPerNode {
			t.Errorf("channel %s returned %d times, want %d", id, n, nodes*callsPerNode)
		}
	}
	var rows int
	if err := stores[0].pool.QueryRow(ctxT(t), `SELECT COUNT(*) FROM channels WHERE name = 'general'`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Errorf("%d rows named general, want 1", rows)
	}
}

// A batch the size the batch writer sends, with duplicates inside it and across
// batches, by id and by (author, nonce): each message is stored exactly once.
func TestPostgresLargeBatchesWithDuplicates(t *testing.T) {
	dbURL, schema := freshSchema(t)
	st := openPostgres(t, dbURL, schema)
	ctx := ctxT(t)
	alice, bob := mustUser(t, st, "alice"), mustUser(t, st, "bob")
	ch := mustChannel(t, st, "general", alice.ID)

	const n = 5000
	unique := make([]model.Message, n)
	for i := range unique {
		au := alice
		if i%2 == 1 {
			au = bob
		}
		nonce := ""
		if i%3 != 0 {
			nonce = fmt.Sprint("n", i)
		}
		unique[i] = msg(t, ch, au, fmt.Sprint("m", i), nonce)
	}
	first := append([]model.Message(nil), unique[:n/2]...)
	for i := 0; i < n/2; i += 10 {
		first = append(first, unique[i]) // same id again inside the batch
		if unique[i].Nonce != "" {
			retry := msg(t, ch, alice, "retry", unique[i].Nonce) // new id, stored (author, nonce)
			retry.AuthorID, retry.Author = unique[i].AuthorID, unique[i].Author
			first = append(first, retry)
		}
	}
	// The second batch replays a quarter of the first and adds the rest, with its own
	// inner duplicates.
	second := append([]model.Message(nil), unique[n/4:]...)
	second = append(second, unique[n-100:]...)

	for _, step := range []struct {
		name  string
		batch []model.Message
		want  int
	}{
		{"first batch", first, n / 2},
		{"overlapping second batch", second, n - n/2},
		{"full replay", append(second, first...), 0},
	} {
		got, err := st.WriteMessages(ctx, step.batch)
		if err != nil {
			t.Fatalf("%s: WriteMessages: %v", step.name, err)
		}
		if got != step.want {
			t.Errorf("%s: inserted %d, want %d", step.name, got, step.want)
		}
	}

	var rows, distinct int
	if err := st.pool.QueryRow(ctx, `SELECT COUNT(*), COUNT(DISTINCT id) FROM messages`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != n || distinct != n {
		t.Errorf("stored %d rows (%d distinct ids), want %d", rows, distinct, n)
	}
	var retries int
	if err := st.pool.QueryRow(ctx, `SELECT COUNT(*) FROM messages WHERE text = 'retry'`).Scan(&retries); err != nil {
		t.Fatal(err)
	}
	if retries != 0 {
		t.Errorf("%d nonce retries stored, want none", retries)
	}
}

// A batch referring to a channel that does not exist fails as a whole.
func TestPostgresWriteUnknownChannelIsAtomic(t *testing.T) {
	dbURL, schema := freshSchema(t)
	st := openPostgres(t, dbURL, schema)
	ctx := ctxT(t)
	alice := mustUser(t, st, "alice")
	ch := mustChannel(t, st, "general", alice.ID)
	ghost := model.Channel{ID: newV7(t)}
	batch := []model.Message{msg(t, ch, alice, "good", "g"), msg(t, ghost, alice, "lost", "")}
	if _, err := st.WriteMessages(ctx, batch); err == nil {
		t.Fatal("WriteMessages accepted a message for an unknown channel")
	}
	if got, err := st.Messages(ctx, ch.ID, "", 10); err != nil || len(got) != 0 {
		t.Errorf("after the failed batch: %d messages, %v; want none", len(got), err)
	}
}

func TestPostgresIDForms(t *testing.T) {
	dbURL, schema := freshSchema(t)
	st := openPostgres(t, dbURL, schema)
	ctx := ctxT(t)
	alice := mustUser(t, st, "alice")
	ch := mustChannel(t, st, "general", alice.ID)
	m := msg(t, ch, alice, "hi\x00there \xff", "")
	if n, err := st.WriteMessages(ctx, []model.Message{m}); err != nil || n != 1 {
		t.Fatalf("WriteMessages = %d, %v", n, err)
	}
	for _, id := range []string{strings.ToUpper(ch.ID), "general", "", "x' OR '1'='1"} {
		if _, err := st.Channel(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Channel(%q) err = %v, want ErrNotFound", id, err)
		}
		if got, err := st.Messages(ctx, id, "", 10); err != nil || len(got) != 0 {
			t.Errorf("Messages(%q) = %d, %v; want none", id, len(got), err)
		}
	}
	if _, err := st.Messages(ctx, ch.ID, "not-an-id", 10); err == nil {
		t.Error("Messages with a non-id cursor succeeded, want error")
	}
	got, err := st.Messages(ctx, ch.ID, "", 10)
	if err != nil || len(got) != 1 {
		t.Fatalf("Messages = %d, %v", len(got), err)
	}
	if want := "hi\uFFFDthere \uFFFD"; got[0].Text != want {
		t.Errorf("text = %q, want %q (NUL and invalid UTF-8 replaced)", got[0].Text, want)
	}
}

func TestPostgresRefusesNewerSchema(t *testing.T) {
	dbURL, schema := freshSchema(t)
	st := openPostgres(t, dbURL, schema)
	if _, err := st.pool.Exec(ctxT(t), `INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future.sql')`); err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	if st2, err := NewPostgres(ctxT(t), PostgresConfig{URL: dbURL, Schema: schema}); err == nil {
		_ = st2.Close()
		t.Fatal("NewPostgres opened a database with a newer schema")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Errorf("error %q does not explain the version mismatch", err)
	}
}

func TestPostgresStats(t *testing.T) {
	dbURL, schema := freshSchema(t)
	st := openPostgres(t, dbURL, schema)
	ctx := ctxT(t)
	alice := mustUser(t, st, "alice")
	ch := mustChannel(t, st, "general", alice.ID)
	var batch []model.Message
	for i := range 100 {
		batch = append(batch, msg(t, ch, alice, fmt.Sprint("m", i), fmt.Sprint("n", i)))
	}
	if n, err := st.WriteMessages(ctx, batch); err != nil || n != 100 {
		t.Fatalf("WriteMessages = %d, %v", n, err)
	}
	if n, err := st.WriteMessages(ctx, batch); err != nil || n != 0 {
		t.Errorf("WriteMessages again = %d, %v; want 0 (already stored)", n, err)
	}
	s := st.Stats()
	if s.MaxConns != 8 || s.TotalConns < 1 || s.TotalConns > s.MaxConns || s.IdleConns+s.AcquiredConns > s.TotalConns || s.AcquireCount < 1 {
		t.Errorf("Stats() = %+v, want a pool of max 8 with at least one connection used", s)
	}
}

// Connection failures must name DATABASE_URL and must not leak its password. These
// need no database: nothing listens on port 1.
func TestPostgresErrorsHidePassword(t *testing.T) {
	const secret = "s3cr3t-Pa55"
	for _, tc := range []struct {
		name string
		url  string
	}{
		{"unreachable URL", "postgres://quibly:" + secret + "@127.0.0.1:1/quibly?sslmode=disable&connect_timeout=2"},
		{"password parameter", "postgres://quibly@127.0.0.1:1/quibly?sslmode=disable&password=" + secret},
		{"key=value", "host=127.0.0.1 port=1 user=quibly password=" + secret + " dbname=quibly sslmode=disable"},
		{"unparseable URL", "postgres://quibly:" + secret + "@127.0.0.1:notaport/quibly"},
		{"bad key=value", "host=127.0.0.1 password=" + secret + " sslmode=bogus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := NewPostgres(context.Background(), PostgresConfig{URL: tc.url, ConnectTimeout: 2 * time.Second})
			if err == nil {
				_ = st.Close()
				t.Fatal("NewPostgres succeeded, want error")
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error leaks the password: %v", err)
			}
			if !strings.Contains(err.Error(), "DATABASE_URL") {
				t.Errorf("error %q does not name DATABASE_URL", err)
			}
		})
	}
	for _, tc := range []struct {
		name string
		cfg  PostgresConfig
	}{
		{"empty URL", PostgresConfig{URL: "  "}},
		{"negative pool", PostgresConfig{URL: "postgres://127.0.0.1:1/x", MaxConns: -1}},
	} {
		if st, err := NewPostgres(context.Background(), tc.cfg); err == nil {
			_ = st.Close()
			t.Errorf("%s: NewPostgres succeeded, want error", tc.name)
		}
	}
}
