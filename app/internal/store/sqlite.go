package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/quibly/quibly/app/internal/model"
	"modernc.org/sqlite" // registers the pure-Go "sqlite" driver; standalone mode needs no cgo
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLiteConfig configures the standalone store.
type SQLiteConfig struct {
	// Path is the database file. Its directory is created when missing.
	Path string
}

// SQLite is the standalone Store: one file, one writer connection and a pool of
// readers. WAL lets the readers run while the writer commits, so history loads are
// not queued behind the batch writer.
type SQLite struct {
	w         *sql.DB // exactly one connection: SQLite allows one writer at a time anyway
	r         *sql.DB // query_only pool for reads
	closeOnce sync.Once
	closeErr  error
}

var _ Store = (*SQLite)(nil)

// busyTimeoutMS bounds how long a connection waits for a lock before SQLITE_BUSY.
// Checkpoints and the migration at start are the only expected waits.
const busyTimeoutMS = 10000

// NewSQLite opens (creating when needed) the database at cfg.Path and brings its
// schema up to date.
func NewSQLite(ctx context.Context, cfg SQLiteConfig) (*SQLite, error) {
	p := strings.TrimSpace(cfg.Path)
	switch {
	case p == "":
		return nil, errors.New("store: sqlite path is required")
	case p == ":memory:" || strings.HasPrefix(p, "file:"):
		// The reader and writer pools must share one file; an in-memory or URI
		// database would silently give each connection its own copy.
		return nil, fmt.Errorf("store: sqlite path %q must be a plain file path", p)
	case strings.ContainsAny(p, "?#"):
		// The driver splits its DSN at the first '?', so such a path cannot be expressed.
		return nil, fmt.Errorf("store: sqlite path %q must not contain '?' or '#'", p)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil { // it holds the password hashes
		return nil, fmt.Errorf("store: create directory for %s: %w", p, err)
	}
	// Create the file ourselves so it is private: it holds password hashes.
	// SQLite gives the -wal and -shm files the same mode.
	if f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", p, err)
	} else if err := f.Close(); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", p, err)
	}

	common := url.Values{}
	common.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
	common.Add("_pragma", "foreign_keys(1)")

	wq := cloneValues(common)
	wq.Add("_pragma", "journal_mode(WAL)")
	// FULL fsyncs the WAL on every commit: an acknowledged message survives power loss.
	wq.Add("_pragma", "synchronous(FULL)")
	// BEGIN IMMEDIATE takes the write lock up front instead of failing on upgrade.
	wq.Set("_txlock", "immediate")

	w, err := sql.Open("sqlite", p+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", p, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &SQLite{w: w}
	if err := w.PingContext(ctx); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("store: open %s: %w", p, err)
	}
	if err := s.migrate(ctx); err != nil {
		_ = w.Close()
		return nil, err
	}

	rq := cloneValues(common)
	rq.Add("_pragma", "query_only(1)") // a bug cannot turn a read into a second writer
	r, err := sql.Open("sqlite", p+"?"+rq.Encode())
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("store: open %s: %w", p, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	if err := r.PingContext(ctx); err != nil {
		_ = r.Close()
		_ = w.Close()
		return nil, fmt.Errorf("store: open %s: %w", p, err)
	}
	s.r = r
	return s, nil
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// migrate applies every pending step in one transaction, so a crash mid-way leaves
// the previous schema intact and the next start simply retries. The single writer
// connection and BEGIN IMMEDIATE keep two processes from migrating at once.
//
// Foreign keys are off while it runs (SQLite's way to rebuild a table that others
// refer to; the pragma is a no-op inside a transaction) and are checked before the
// commit, so a step that breaks a reference fails whole.
func (s *SQLite) migrate(ctx context.Context) error {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA foreign_keys = OFF`); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	defer func() { _, _ = conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA foreign_keys = ON`) }()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := migrateTx(ctx, sqliteMigrationTx{tx}, "migrations/sqlite"); err != nil {
		return err
	}
	var table string
	switch err := tx.QueryRowContext(ctx, `PRAGMA foreign_key_check`).Scan(&table); {
	case err == nil:
		return fmt.Errorf("store: migrate: a row of %s refers to one that does not exist", table)
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("store: migrate: foreign key check: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
}

// sqliteMigrationTx adapts a database/sql transaction to the shared migration runner.
type sqliteMigrationTx struct{ tx *sql.Tx }

func (m sqliteMigrationTx) ensureTable(ctx context.Context) error {
	_, err := m.tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL)`)
	return err
}

func (m sqliteMigrationTx) appliedVersions(ctx context.Context) ([]int, error) {
	rows, err := m.tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func (m sqliteMigrationTx) apply(ctx context.Context, step migration) error {
	if _, err := m.tx.ExecContext(ctx, step.SQL); err != nil {
		return err
	}
	_, err := m.tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		step.Version, step.Name, time.Now().UnixMilli())
	return err
}

// newID returns a UUIDv7 in canonical text form, so text order is time order.
func newID() (string, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("store: new id: %w", err)
	}
	return id.String(), nil
}

// nowMS is the current time at the precision the store keeps, so what a create
// returns equals what a later read returns.
func nowMS() time.Time { return time.UnixMilli(time.Now().UnixMilli()).UTC() }

func fromMS(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// CreateUser implements Store.
func (s *SQLite) CreateUser(ctx context.Context, username, passwordHash string) (model.User, error) {
	if username == "" || passwordHash == "" {
		return model.User{}, errors.New("store: create user: username and password hash are required")
	}
	id, err := newID()
	if err != nil {
		return model.User{}, err
	}
	u := model.User{ID: id, Username: username, CreatedAt: nowMS()}
	res, err := s.w.ExecContext(ctx, `INSERT INTO users (id, username, password_hash, created_at)
		VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`, u.ID, u.Username, passwordHash, u.CreatedAt.UnixMilli())
	if err != nil {
		return model.User{}, fmt.Errorf("store: create user: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return model.User{}, fmt.Errorf("store: create user: %w", err)
	} else if n == 0 {
		return model.User{}, ErrConflict
	}
	return u, nil
}

// UserByName implements Store. The match ignores ASCII case.
func (s *SQLite) UserByName(ctx context.Context, username string) (model.User, string, error) {
	var (
		u    model.User
		hash string
		ms   int64
	)
	err := s.r.QueryRowContext(ctx, `SELECT id, username, password_hash, created_at, token_version FROM users WHERE username = ?`,
		username).Scan(&u.ID, &u.Username, &hash, &ms, &u.TokenVersion)
	if errors.Is(err, sql.ErrNoRows) {
		return model.User{}, "", ErrNotFound
	}
	if err != nil {
		return model.User{}, "", fmt.Errorf("store: user by name: %w", err)
	}
	u.CreatedAt = fromMS(ms)
	return u, hash, nil
}

// TokenVersion implements Store.
func (s *SQLite) TokenVersion(ctx context.Context, id string) (int64, bool, error) {
	var v int64
	err := s.r.QueryRowContext(ctx, `SELECT token_version FROM users WHERE id = ?`, id).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("store: token version: %w", err)
	}
	return v, true, nil
}

// RevokeTokens implements Store.
func (s *SQLite) RevokeTokens(ctx context.Context, id string) error {
	res, err := s.w.ExecContext(ctx, `UPDATE users SET token_version = token_version + 1 WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("store: revoke tokens: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: revoke tokens: %w", err)
	} else if n == 0 {
		return ErrNotFound
	}
	return nil
}

// CreateChannel implements Store.
func (s *SQLite) CreateChannel(ctx context.Context, name, kind, createdBy string) (model.Channel, error) {
	if name == "" {
		return model.Channel{}, errors.New("store: create channel: name is required")
	}
	if kind != model.KindPublic && kind != model.KindPrivate {
		return model.Channel{}, fmt.Errorf("store: create channel: kind %q is not public or private", kind)
	}
	id, err := newID()
	if err != nil {
		return model.Channel{}, err
	}
	c := model.Channel{ID: id, Name: name, Kind: kind, CreatedBy: createdBy, CreatedAt: nowMS()}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return model.Channel{}, fmt.Errorf("store: create channel: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `INSERT INTO channels (id, name, kind, created_by, created_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, c.ID, c.Name, c.Kind, nullIfEmpty(createdBy), c.CreatedAt.UnixMilli())
	if err != nil {
		return model.Channel{}, fmt.Errorf("store: create channel: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return model.Channel{}, fmt.Errorf("store: create channel: %w", err)
	} else if n == 0 {
		return model.Channel{}, ErrConflict
	}
	if createdBy != "" {
		if _, err := tx.ExecContext(ctx, `INSERT INTO channel_members (channel_id, user_id, role, added_at) VALUES (?, ?, ?, ?)`,
			c.ID, createdBy, model.RoleOwner, c.CreatedAt.UnixMilli()); err != nil {
			return model.Channel{}, fmt.Errorf("store: create channel: its owner: %w", err)
		}
		c.Role = model.RoleOwner
	}
	if err := tx.Commit(); err != nil {
		return model.Channel{}, fmt.Errorf("store: create channel: %w", err)
	}
	return c, nil
}

// DirectChannel implements Store.
func (s *SQLite) DirectChannel(ctx context.Context, a, b string) (model.Channel, bool, error) {
	key := model.DMKey(a, b)
	id, err := newID()
	if err != nil {
		return model.Channel{}, false, err
	}
	now := nowMS().UnixMilli()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return model.Channel{}, false, fmt.Errorf("store: direct channel: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	// A DM's name is "@" and its key: unique, and never a name a user can choose.
	res, err := tx.ExecContext(ctx, `INSERT INTO channels (id, name, kind, dm_key, created_by, created_at)
		VALUES (?, ?, 'dm', ?, ?, ?) ON CONFLICT DO NOTHING`, id, "@"+key, key, a, now)
	if isSQLiteConstraint(err) {
		return model.Channel{}, false, ErrNotFound // a user that does not exist
	}
	if err != nil {
		return model.Channel{}, false, fmt.Errorf("store: direct channel: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return model.Channel{}, false, fmt.Errorf("store: direct channel: %w", err)
	}
	created := n == 1
	if created {
		for _, u := range uniqueUsers(a, b) {
			_, err := tx.ExecContext(ctx, `INSERT INTO channel_members (channel_id, user_id, role, added_at) VALUES (?, ?, ?, ?)`,
				id, u, model.RoleMember, now)
			if isSQLiteConstraint(err) {
				return model.Channel{}, false, ErrNotFound
			}
			if err != nil {
				return model.Channel{}, false, fmt.Errorf("store: direct channel: %w", err)
			}
		}
	}
	c, err := scanChannel(tx.QueryRowContext(ctx, channelCols+` WHERE dm_key = ?`, key))
	if err != nil {
		return model.Channel{}, false, fmt.Errorf("store: direct channel: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return model.Channel{}, false, fmt.Errorf("store: direct channel: %w", err)
	}
	c.Role = model.RoleMember
	return c, created, nil
}

// uniqueUsers is the members of a DM: both users, or one for notes to self.
func uniqueUsers(a, b string) []string {
	if a == b {
		return []string{a}
	}
	return []string{a, b}
}

// Member implements Store.
func (s *SQLite) Member(ctx context.Context, channelID, userID string) (string, error) {
	var role string
	err := s.r.QueryRowContext(ctx, `SELECT role FROM channel_members WHERE channel_id = ? AND user_id = ?`, channelID, userID).Scan(&role)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("store: member: %w", err)
	}
	return role, nil
}

// SetMember implements Store.
func (s *SQLite) SetMember(ctx context.Context, channelID, userID, role string) (bool, error) {
	if !validRole(role) {
		return false, fmt.Errorf("store: set member: role %q is not owner, admin or member", role)
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO channel_members (channel_id, user_id, role, added_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (channel_id, user_id) DO UPDATE SET role = excluded.role WHERE role <> excluded.role`,
		channelID, userID, role, nowMS().UnixMilli())
	if isSQLiteConstraint(err) {
		return false, ErrNotFound // the channel or the user does not exist
	}
	if err != nil {
		return false, fmt.Errorf("store: set member: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: set member: %w", err)
	}
	return n > 0, nil
}

// RemoveMember implements Store.
func (s *SQLite) RemoveMember(ctx context.Context, channelID, userID string) (bool, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM channel_members WHERE channel_id = ? AND user_id = ?`, channelID, userID)
	if err != nil {
		return false, fmt.Errorf("store: remove member: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: remove member: %w", err)
	}
	return n > 0, nil
}

// Members implements Store.
func (s *SQLite) Members(ctx context.Context, channelID string) ([]model.Member, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT m.user_id, u.username, m.role, m.added_at FROM channel_members m
		JOIN users u ON u.id = m.user_id WHERE m.channel_id = ? ORDER BY m.added_at, m.user_id`, channelID)
	if err != nil {
		return nil, fmt.Errorf("store: members: %w", err)
	}
	defer rows.Close()
	out := []model.Member{}
	for rows.Next() {
		var m model.Member
		var ms int64
		if err := rows.Scan(&m.UserID, &m.Username, &m.Role, &ms); err != nil {
			return nil, fmt.Errorf("store: members: %w", err)
		}
		m.AddedAt = fromMS(ms)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: members: %w", err)
	}
	return out, nil
}

// EnsureChannel implements Store. Insert-then-select in one transaction makes it
// safe to call from every start-up.
func (s *SQLite) EnsureChannel(ctx context.Context, name string) (model.Channel, error) {
	if name == "" {
		return model.Channel{}, errors.New("store: ensure channel: name is required")
	}
	id, err := newID()
	if err != nil {
		return model.Channel{}, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return model.Channel{}, fmt.Errorf("store: ensure channel: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `INSERT INTO channels (id, name, kind, created_by, created_at)
		VALUES (?, ?, 'public', NULL, ?) ON CONFLICT (name) WHERE kind = 'public' DO NOTHING`, id, name, nowMS().UnixMilli()); err != nil {
		return model.Channel{}, fmt.Errorf("store: ensure channel: %w", err)
	}
	c, err := scanChannel(tx.QueryRowContext(ctx, channelCols+` WHERE name = ? AND kind = 'public'`, name))
	if err != nil {
		return model.Channel{}, fmt.Errorf("store: ensure channel: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return model.Channel{}, fmt.Errorf("store: ensure channel: %w", err)
	}
	return c, nil
}

const channelCols = `SELECT id, name, kind, COALESCE(created_by, ''), created_at, archived FROM channels`

type rowScanner interface{ Scan(dest ...any) error }

func scanChannel(r rowScanner) (model.Channel, error) {
	var (
		c  model.Channel
		ms int64
	)
	if err := r.Scan(&c.ID, &c.Name, &c.Kind, &c.CreatedBy, &ms, &c.Archived); err != nil {
		return model.Channel{}, err
	}
	c.CreatedAt = fromMS(ms)
	return c, nil
}

// Channel implements Store.
func (s *SQLite) Channel(ctx context.Context, id string) (model.Channel, error) {
	c, err := scanChannel(s.r.QueryRowContext(ctx, channelCols+` WHERE id = ? AND deleted_at IS NULL`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return model.Channel{}, ErrNotFound
	}
	if err != nil {
		return model.Channel{}, fmt.Errorf("store: channel: %w", err)
	}
	return c, nil
}

// UpdateChannel implements Store.
func (s *SQLite) UpdateChannel(ctx context.Context, id, name string, archived *bool) (model.Channel, bool, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return model.Channel{}, false, fmt.Errorf("store: update channel: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	c, err := scanChannel(tx.QueryRowContext(ctx, channelCols+` WHERE id = ? AND deleted_at IS NULL`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return model.Channel{}, false, ErrNotFound
	}
	if err != nil {
		return model.Channel{}, false, fmt.Errorf("store: update channel: %w", err)
	}
	next := c
	if name != "" {
		next.Name = name
	}
	if archived != nil {
		next.Archived = *archived
	}
	if next == c {
		return c, false, nil
	}
	_, err = tx.ExecContext(ctx, `UPDATE channels SET name = ?, archived = ? WHERE id = ?`, next.Name, next.Archived, id)
	if isSQLiteConstraint(err) {
		return model.Channel{}, false, ErrConflict // the name is taken by a public channel
	}
	if err != nil {
		return model.Channel{}, false, fmt.Errorf("store: update channel: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return model.Channel{}, false, fmt.Errorf("store: update channel: %w", err)
	}
	return next, true, nil
}

// DeleteChannel implements Store. The row stays (its messages refer to it), renamed
// to "~" and its id, a name no user can choose, so that the name is free again.
func (s *SQLite) DeleteChannel(ctx context.Context, id string) (bool, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE channels SET deleted_at = ?, name = '~' || id WHERE id = ? AND deleted_at IS NULL`,
		nowMS().UnixMilli(), id)
	if err != nil {
		return false, fmt.Errorf("store: delete channel: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: delete channel: %w", err)
	}
	return n > 0, nil
}

// ChannelsFor implements Store.
func (s *SQLite) ChannelsFor(ctx context.Context, userID string, after Cursor, limit int) ([]model.Channel, error) {
	// An id cursor of "" sorts before every id; "~" after every (ids are hex and dashes).
	afterID := after.ID
	if afterID == "" {
		afterID = "~"
	}
	rows, err := s.r.QueryContext(ctx, `SELECT c.id, c.name, c.kind, COALESCE(c.created_by, ''), c.created_at, c.archived, COALESCE(m.role, '')
		FROM channels c LEFT JOIN channel_members m ON m.channel_id = c.id AND m.user_id = ?
		WHERE (c.name, c.id) > (?, ?) AND c.deleted_at IS NULL AND (c.kind = 'public' OR m.user_id IS NOT NULL)
		ORDER BY c.name, c.id LIMIT ?`, userID, after.Name, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: channels: %w", err)
	}
	defer rows.Close()
	out := []model.Channel{}
	for rows.Next() {
		var c model.Channel
		var ms int64
		if err := rows.Scan(&c.ID, &c.Name, &c.Kind, &c.CreatedBy, &ms, &c.Archived, &c.Role); err != nil {
			return nil, fmt.Errorf("store: channels: %w", err)
		}
		c.CreatedAt = fromMS(ms)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: channels: %w", err)
	}
	return out, nil
}

// validateMessages rejects a batch before any row is written; the node always fills
// these fields, so a failure here is a bug upstream, not client input.
func validateMessages(msgs []model.Message) error {
	for i, m := range msgs {
		if m.ID == "" || m.ChannelID == "" || m.AuthorID == "" {
			return fmt.Errorf("store: write messages: message %d lacks id, channel id or author id: %w", i, ErrRejected)
		}
		if m.CreatedAt.IsZero() {
			return fmt.Errorf("store: write messages: message %s has no timestamp: %w", m.ID, ErrRejected)
		}
	}
	return nil
}

// WriteMessages implements Store. ON CONFLICT DO NOTHING without a target covers
// both the primary key and the (author_id, nonce) index, including duplicates
// inside the same batch, since each row sees the ones inserted before it.
func (s *SQLite) WriteMessages(ctx context.Context, msgs []model.Message) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	if err := validateMessages(msgs); err != nil {
		return 0, err
	}
	effects, err := effectsOf(msgs)
	if err != nil {
		return 0, err
	}
	targets := targetsOf(effects)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("store: write messages: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO messages (id, channel_id, author_id, author, text, nonce, created_at, kind, data, reply_to, mentions, target_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
	if err != nil {
		return 0, fmt.Errorf("store: write messages: %w", err)
	}
	defer stmt.Close()
	inserted := 0
	for _, m := range msgs {
		res, err := stmt.ExecContext(ctx, m.ID, m.ChannelID, m.AuthorID, m.Author, m.Text, m.Nonce, m.CreatedAt.UnixMilli(), m.Kind, string(m.Data),
			nullIfEmpty(m.ReplyTo), mentionsText(m.Mentions), nullIfEmpty(targets[m.ID]))
		if err != nil {
			if isSQLiteConstraint(err) {
				return 0, fmt.Errorf("store: write message %s: %w: %w", m.ID, ErrRejected, err)
			}
			return 0, fmt.Errorf("store: write message %s: %w", m.ID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("store: write messages: %w", err)
		}
		inserted += int(n)
	}
	for _, e := range effects {
		for _, st := range e.steps(sqliteID, sqliteMS, sqliteFlag) {
			if _, err := tx.ExecContext(ctx, st.sql, st.args...); err != nil {
				if isSQLiteConstraint(err) {
					return 0, fmt.Errorf("store: apply %s %s: %w: %w", e.kind, e.entryID, ErrRejected, err)
				}
				return 0, fmt.Errorf("store: apply %s %s: %w", e.kind, e.entryID, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("store: write messages: %w", err)
	}
	return inserted, nil
}

func sqliteID(id string) any { return id }
func sqliteMS(ms int64) any  { return ms }
func sqliteFlag(b bool) any  { return b }

// isSQLiteConstraint reports a constraint failure (a foreign key, NOT NULL, CHECK):
// the row can never be inserted as it is.
func isSQLiteConstraint(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_CONSTRAINT
}

// RejectMessage implements Store.
func (s *SQLite) RejectMessage(ctx context.Context, m model.Message, reason string) error {
	body, err := rejectedBody(m)
	if err != nil {
		return err
	}
	if _, err := s.w.ExecContext(ctx, `INSERT INTO rejected_messages (id, body, reason, rejected_at) VALUES (?, ?, ?, ?)
		ON CONFLICT DO NOTHING`, m.ID, body, reason, time.Now().UnixMilli()); err != nil {
		return fmt.Errorf("store: park rejected message %s: %w", m.ID, err)
	}
	return nil
}

// RejectedIDs implements Store.
func (s *SQLite) RejectedIDs(ctx context.Context) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id FROM rejected_messages ORDER BY rejected_at, id`)
	if err != nil {
		return nil, fmt.Errorf("store: rejected messages: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("store: rejected messages: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// Messages implements Store.
func (s *SQLite) Messages(ctx context.Context, channelID, before string, limit int) ([]model.Message, error) {
	if limit < 1 {
		return nil, fmt.Errorf("store: messages: limit must be positive, got %d", limit)
	}
	q := `SELECT ` + sqliteMessageCols + ` FROM messages WHERE channel_id = ? AND kind NOT IN (` + quotedKinds + `)`
	args := []any{channelID}
	if before != "" {
		q += ` AND id < ?`
		args = append(args, before)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: messages: %w", err)
	}
	return scanSQLiteMessages(rows, limit)
}

// sqliteMessageCols are the columns scanSQLiteMessages reads, in its order.
const sqliteMessageCols = `id, channel_id, author_id, author, text, nonce, created_at, kind, data, edited_at, deleted, COALESCE(reply_to, ''), mentions`

// scanSQLiteMessages reads rows of sqliteMessageCols.
func scanSQLiteMessages(rows *sql.Rows, limit int) ([]model.Message, error) {
	defer rows.Close()
	out := make([]model.Message, 0, min(limit, 128))
	for rows.Next() {
		var (
			m        model.Message
			ms       int64
			data     string
			edited   sql.NullInt64
			mentions string
		)
		if err := rows.Scan(&m.ID, &m.ChannelID, &m.AuthorID, &m.Author, &m.Text, &m.Nonce, &ms, &m.Kind, &data, &edited, &m.Deleted, &m.ReplyTo, &mentions); err != nil {
			return nil, fmt.Errorf("store: messages: %w", err)
		}
		m.CreatedAt, m.Data = fromMS(ms), rawOrNil(data)
		if edited.Valid {
			m.EditedAt = fromMS(edited.Int64)
		}
		m.Mentions = parseMentions(mentions)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: messages: %w", err)
	}
	return out, nil
}

// Ping implements Store: both pools must answer.
func (s *SQLite) Ping(ctx context.Context) error {
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping readers: %w", err)
	}
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping writer: %w", err)
	}
	return nil
}

// Close implements Store. It is safe to call more than once.
func (s *SQLite) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.r != nil {
			errs = append(errs, s.r.Close())
		}
		errs = append(errs, s.w.Close())
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

func nullIfEmpty(s string) sql.NullString {
	return sql.NullString{String: s, Valid: s != ""}
}

// MessageState implements Store.
func (s *SQLite) MessageState(ctx context.Context, messageID, userID string) (model.MessageState, error) {
	st := model.MessageState{ID: messageID, Reacted: map[string]bool{}}
	err := s.r.QueryRowContext(ctx, `SELECT channel_id, author_id, deleted FROM messages WHERE id = ? AND kind = ''`, messageID).
		Scan(&st.ChannelID, &st.AuthorID, &st.Deleted)
	if errors.Is(err, sql.ErrNoRows) {
		return model.MessageState{}, ErrNotFound
	}
	if err != nil {
		return model.MessageState{}, fmt.Errorf("store: message state: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT emoji, user_id FROM reactions WHERE message_id = ? AND present = 1`, messageID)
	if err != nil {
		return model.MessageState{}, fmt.Errorf("store: message state: %w", err)
	}
	defer rows.Close()
	var reactions [][2]string
	for rows.Next() {
		var r [2]string
		if err := rows.Scan(&r[0], &r[1]); err != nil {
			return model.MessageState{}, fmt.Errorf("store: message state: %w", err)
		}
		reactions = append(reactions, r)
	}
	if err := rows.Err(); err != nil {
		return model.MessageState{}, fmt.Errorf("store: message state: %w", err)
	}
	st.CountReactions(userID, reactions)
	return st, nil
}

// Reactions implements Store.
func (s *SQLite) Reactions(ctx context.Context, userID string, messageIDs []string) (map[string][]model.ReactionCount, error) {
	out := map[string][]model.ReactionCount{}
	if len(messageIDs) == 0 {
		return out, nil
	}
	args := make([]any, 0, len(messageIDs)+1)
	args = append(args, userID)
	for _, id := range messageIDs {
		args = append(args, id)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT message_id, emoji, COUNT(*), MAX(user_id = ?) FROM reactions
		WHERE present = 1 AND message_id IN (?`+strings.Repeat(", ?", len(messageIDs)-1)+`)
		GROUP BY message_id, emoji ORDER BY message_id, MIN(op_id)`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: reactions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id string
			r  model.ReactionCount
		)
		if err := rows.Scan(&id, &r.Emoji, &r.Count, &r.Me); err != nil {
			return nil, fmt.Errorf("store: reactions: %w", err)
		}
		out[id] = append(out[id], r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reactions: %w", err)
	}
	return out, nil
}

// Replies implements Store.
func (s *SQLite) Replies(ctx context.Context, channelID, parentID, before string, limit int) ([]model.Message, error) {
	if limit < 1 {
		return nil, fmt.Errorf("store: replies: limit must be positive, got %d", limit)
	}
	q := `SELECT ` + sqliteMessageCols + ` FROM messages WHERE reply_to = ? AND channel_id = ? AND kind = ''`
	args := []any{parentID, channelID}
	if before != "" {
		q += ` AND id < ?`
		args = append(args, before)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	rows, err := s.r.QueryContext(ctx, q, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("store: replies: %w", err)
	}
	return scanSQLiteMessages(rows, limit)
}

// ReadMarker implements Store.
func (s *SQLite) ReadMarker(ctx context.Context, userID, channelID string) (string, error) {
	var id string
	err := s.r.QueryRowContext(ctx, `SELECT message_id FROM read_markers WHERE user_id = ? AND channel_id = ?`, userID, channelID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: read marker: %w", err)
	}
	return id, nil
}

// ReadMarkers implements Store.
func (s *SQLite) ReadMarkers(ctx context.Context, channelID string, limit int) ([]model.ReadMarker, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT r.user_id, u.username, r.message_id FROM read_markers r JOIN users u ON u.id = r.user_id
		WHERE r.channel_id = ? ORDER BY r.message_id DESC, u.username LIMIT ?`, channelID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: read markers: %w", err)
	}
	defer rows.Close()
	out := []model.ReadMarker{}
	for rows.Next() {
		r := model.ReadMarker{ChannelID: channelID}
		if err := rows.Scan(&r.UserID, &r.Username, &r.MessageID); err != nil {
			return nil, fmt.Errorf("store: read markers: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read markers: %w", err)
	}
	return out, nil
}

// Unread implements Store.
func (s *SQLite) Unread(ctx context.Context, userID string, channelIDs []string) (map[string]model.Unread, error) {
	out := make(map[string]model.Unread, len(channelIDs))
	if len(channelIDs) == 0 {
		return out, nil
	}
	args := []any{userID, userID, MaxUnread, userID, userID}
	for _, id := range channelIDs {
		args = append(args, id)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT c.id, COALESCE(r.message_id, ''),
		CASE WHEN r.message_id IS NULL AND NOT EXISTS (SELECT 1 FROM channel_members cm WHERE cm.channel_id = c.id AND cm.user_id = ?) THEN 0 ELSE
			(SELECT COUNT(*) FROM (SELECT 1 FROM messages m WHERE m.channel_id = c.id AND m.id > COALESCE(r.message_id, '')
				AND m.kind = '' AND m.deleted = 0 AND m.author_id <> ? LIMIT ?)) END,
		(SELECT COUNT(*) FROM mentions x WHERE x.user_id = ? AND x.channel_id = c.id AND x.message_id > COALESCE(r.message_id, ''))
		FROM channels c LEFT JOIN read_markers r ON r.channel_id = c.id AND r.user_id = ?
		WHERE c.id IN (?`+strings.Repeat(", ?", len(channelIDs)-1)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: unread: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id string
			u  model.Unread
		)
		if err := rows.Scan(&id, &u.Marker, &u.Unread, &u.Mentions); err != nil {
			return nil, fmt.Errorf("store: unread: %w", err)
		}
		out[id] = u
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: unread: %w", err)
	}
	return out, nil
}
