package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func openSQLite(t *testing.T, path string) *SQLite {
	t.Helper()
	st, err := NewSQLite(ctxT(t), SQLiteConfig{Path: path})
	if err != nil {
		t.Fatalf("NewSQLite(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func TestSQLiteContract(t *testing.T) {
	runStoreContract(t, func(t *testing.T) func() Store {
		path := filepath.Join(t.TempDir(), "quibly.db")
		return func() Store {
			st, err := NewSQLite(ctxT(t), SQLiteConfig{Path: path})
			if err != nil {
				t.Fatalf("NewSQLite: %v", err)
			}
			return st
		}
	})
}

func TestSQLiteCreatesParentDirAndPrivateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "quibly.db")
	openSQLite(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("database file mode = %v, want no group/other access", perm)
	}
}

func TestSQLiteRejectsBadPath(t *testing.T) {
	for _, p := range []string{"", "   ", ":memory:", "file:x.db", "a?b.db", "a#b.db"} {
		if st, err := NewSQLite(context.Background(), SQLiteConfig{Path: p}); err == nil {
			_ = st.Close()
			t.Errorf("NewSQLite(%q) succeeded, want error", p)
		}
	}
}

func TestSQLitePragmas(t *testing.T) {
	st := openSQLite(t, filepath.Join(t.TempDir(), "q.db"))
	ctx := ctxT(t)
	for _, tc := range []struct {
		db     *sql.DB
		pragma string
		want   string
	}{
		{st.w, "journal_mode", "wal"},
		{st.w, "synchronous", "2"}, // FULL
		{st.w, "foreign_keys", "1"},
		{st.w, "busy_timeout", "10000"},
		{st.r, "journal_mode", "wal"},
		{st.r, "foreign_keys", "1"},
		{st.r, "query_only", "1"},
		{st.r, "busy_timeout", "10000"},
	} {
		var got string
		if err := tc.db.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
			t.Errorf("PRAGMA %s: %v", tc.pragma, err)
			continue
		}
		if !strings.EqualFold(got, tc.want) {
			t.Errorf("PRAGMA %s = %q, want %q", tc.pragma, got, tc.want)
		}
	}
}

func TestSQLiteMigrationsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	steps, err := loadMigrations(migrationFS, "migrations/sqlite")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // first start, then restarts
		st := openSQLite(t, path)
		var n, maxV int
		if err := st.r.QueryRow(`SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &maxV); err != nil {
			t.Fatal(err)
		}
		if n != len(steps) || maxV != steps[len(steps)-1].Version {
			t.Errorf("start %d: %d migrations recorded (max %d), want %d", i, n, maxV, len(steps))
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSQLiteRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	st := openSQLite(t, path)
	if _, err := st.w.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	if st2, err := NewSQLite(ctxT(t), SQLiteConfig{Path: path}); err == nil {
		_ = st2.Close()
		t.Fatal("NewSQLite opened a database with a newer schema")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Errorf("error %q does not explain the version mismatch", err)
	}
}

// A history read must not wait for an open write transaction (WAL + reader pool).
func TestSQLiteReadsNotBlockedByWriter(t *testing.T) {
	st := openSQLite(t, filepath.Join(t.TempDir(), "q.db"))
	ctx := ctxT(t)
	u := mustUser(t, st, "alice")
	tx, err := st.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `INSERT INTO channels (id, name, created_at) VALUES ('x', 'pending', 0)`); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, _, err := st.UserByName(rctx, u.Username); err != nil {
		t.Fatalf("read during write transaction: %v", err)
	}
	cs, err := st.ChannelsFor(rctx, "", Cursor{}, 100)
	if err != nil {
		t.Fatalf("Channels during write transaction: %v", err)
	}
	if len(cs) != 0 {
		t.Errorf("reader saw uncommitted channel: %+v", cs)
	}
}

func TestLoadMigrations(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	for _, tc := range []struct {
		name    string
		fs      fstest.MapFS
		want    string // versions in order
		wantErr bool
	}{
		{"ordered by number", fstest.MapFS{"m/0010_b.sql": file("b"), "m/0002_a.sql": file("a"), "m/README": file("x")}, "[2 10]", false},
		{"duplicate version", fstest.MapFS{"m/0001_a.sql": file("a"), "m/1_b.sql": file("b")}, "", true},
		{"bad name", fstest.MapFS{"m/init.sql": file("a")}, "", true},
		{"zero version", fstest.MapFS{"m/0000_a.sql": file("a")}, "", true},
		{"empty", fstest.MapFS{"m/README": file("x")}, "", true},
		{"missing dir", fstest.MapFS{}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := loadMigrations(tc.fs, "m")
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			var vs []int
			for _, m := range got {
				vs = append(vs, m.Version)
			}
			if got := fmt.Sprint(vs); got != tc.want {
				t.Errorf("versions = %s, want %s", got, tc.want)
			}
		})
	}
}
