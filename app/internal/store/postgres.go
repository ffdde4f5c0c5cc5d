package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/quibly/quibly/app/internal/dbauth"
	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/redact"
)

// PostgresConfig configures the clustered store.
type PostgresConfig struct {
	// URL is DATABASE_URL: a postgres:// URL or a key=value string. It may carry a
	// password, so it never appears in errors or logs; redact.DatabaseURL shows what may.
	URL string
	// MaxConns caps the pool. 0 keeps pgxpool's default (the larger of 4 and the CPU count).
	MaxConns int32
	// ConnectTimeout bounds the first connection and each later dial. 0 means 10 s.
	ConnectTimeout time.Duration
	// Schema, when set, holds every table (it becomes the search_path and is created
	// when missing). Empty uses the server's default search_path. Tests use one per run.
	Schema string
	// Credentials, when set, give the user and password of each new connection (in
	// place of the URL's), so a rotated password reaches the pool (DATABASE_SECRET_ARN).
	Credentials dbauth.Source
	// MaxConnLifetime closes connections older than this. 0 keeps pgxpool's hour.
	MaxConnLifetime time.Duration
}

// withDefaults fills the fields left zero that have a default of Quibly's (the others
// keep pgxpool's).
func (c PostgresConfig) withDefaults() PostgresConfig {
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = defaultPGConnectTimeout
	}
	return c
}

// Validate rejects impossible values; the URL is checked when it is parsed.
func (c PostgresConfig) Validate() error {
	if c.MaxConns < 0 {
		return fmt.Errorf("store: postgres max connections must not be negative, got %d", c.MaxConns)
	}
	if c.MaxConnLifetime < 0 {
		return fmt.Errorf("store: postgres connection lifetime must not be negative, got %s", c.MaxConnLifetime)
	}
	return nil
}

// defaultPGConnectTimeout is long enough for a database that is still starting, short
// enough that a wrong DATABASE_URL stops start-up quickly with a clear error.
const defaultPGConnectTimeout = 10 * time.Second

// migrationLockKey serialises schema migrations of every Quibly node on one database:
// pg_advisory_xact_lock(migrationLockKey) is held until the migration commits.
// It is "quibly" in ASCII, so it is unlikely to collide with another application.
const migrationLockKey int64 = 0x717569626c79

// pgMaxWriteAttempts bounds retries of a batch that lost a deadlock: two writers
// inserting overlapping batches in different orders can each wait on the other.
const pgMaxWriteAttempts = 3

// pgMigrateTimeout bounds the migration when the caller's context has no deadline, so
// a node stuck behind another node's lock fails start-up instead of hanging.
const pgMigrateTimeout = 5 * time.Minute

// Postgres is the clustered Store on a pgx connection pool.
type Postgres struct {
	pool *pgPool
}

var _ Store = (*Postgres)(nil)

// NewPostgres connects to cfg.URL, checks that the database answers within
// cfg.ConnectTimeout and brings the schema up to date. Several nodes may call it at
// the same time: the migration runs under an advisory lock.
// statementCacheCapacity bounds pgx's per-connection caches of prepared statements
// and statement descriptions: above the store's distinct statements, far below
// pgx's 512.
const statementCacheCapacity = 128

func NewPostgres(ctx context.Context, cfg PostgresConfig) (*Postgres, error) {
	raw := strings.TrimSpace(cfg.URL)
	if raw == "" {
		return nil, errors.New("store: DATABASE_URL is empty")
	}
	shown := redact.DatabaseURL(raw)
	// Never wrap the parse error: pgx redacts the password only on a best-effort
	// basis, and the underlying url error quotes the raw string.
	pcfg, err := pgxpool.ParseConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("store: DATABASE_URL %s is not a valid PostgreSQL URL or key=value string", shown)
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxConns > 0 {
		pcfg.MaxConns = cfg.MaxConns
		pcfg.MinConns = min(pcfg.MinConns, cfg.MaxConns)
	}
	// pgx preallocates a 512-entry statement and description cache per connection
	// (~60 KB); the store runs a few dozen distinct statements (34 call sites), and the pool fills
	// during a connect burst. A URL that sets the capacities keeps its own.
	if !strings.Contains(raw, "statement_cache_capacity") {
		pcfg.ConnConfig.StatementCacheCapacity = statementCacheCapacity
	}
	if !strings.Contains(raw, "description_cache_capacity") {
		pcfg.ConnConfig.DescriptionCacheCapacity = statementCacheCapacity
	}
	timeout := cfg.ConnectTimeout
	pcfg.ConnConfig.ConnectTimeout = timeout
	if cfg.MaxConnLifetime > 0 {
		pcfg.MaxConnLifetime = cfg.MaxConnLifetime
	}
	if cfg.Credentials != nil {
		useCredentials(pcfg, cfg.Credentials)
	}
	secret := pcfg.ConnConfig.Password
	if cfg.Schema != "" {
		// Runtime parameters are sent with every new connection of the pool.
		pcfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{cfg.Schema}.Sanitize()
	}
	if pcfg.ConnConfig.RuntimeParams["application_name"] == "" {
		pcfg.ConnConfig.RuntimeParams["application_name"] = "quibly"
	}

	pgxPool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("store: DATABASE_URL %s: %s", shown, scrub(err, secret))
	}
	pool := &pgPool{Pool: pgxPool, creds: cfg.Credentials}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: cannot connect to DATABASE_URL %s within %s: %s", shown, timeout, scrub(err, secret))
	}
	s := &Postgres{pool: pool}
	if err := s.migrate(ctx, cfg.Schema); err != nil {
		pool.Close()
		return nil, errors.New(scrub(err, secret))
	}
	return s, nil
}

// scrub returns err's text with the password removed: pgx's errors name the server
// and user, and a password must not reach a log even if some error quotes it.
func scrub(err error, secret string) string {
	msg := err.Error()
	if secret != "" {
		msg = strings.ReplaceAll(msg, secret, "xxxxx")
		if esc := url.QueryEscape(secret); esc != secret {
			msg = strings.ReplaceAll(msg, esc, "xxxxx")
		}
	}
	return msg
}

// migrate applies pending steps in one transaction holding an advisory lock, so three
// nodes starting at once migrate one after the other and the later ones find nothing
// to do. A crash mid-way rolls back to the previous schema.
func (s *Postgres) migrate(ctx context.Context, schema string) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, pgMigrateTimeout)
		defer cancel()
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLockKey); err != nil {
		return fmt.Errorf("store: migrate: take lock: %w", err)
	}
	if schema != "" {
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize()); err != nil {
			return fmt.Errorf("store: migrate: create schema: %w", err)
		}
	}
	if err := migrateTx(ctx, pgMigrationTx{tx}, "migrations/postgres"); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
}

// pgMigrationTx adapts a pgx transaction to the shared migration runner.
type pgMigrationTx struct{ tx pgx.Tx }

func (m pgMigrationTx) ensureTable(ctx context.Context) error {
	_, err := m.tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer     NOT NULL PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`)
	return err
}

func (m pgMigrationTx) appliedVersions(ctx context.Context) ([]int, error) {
	rows, err := m.tx.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int])
}

func (m pgMigrationTx) apply(ctx context.Context, step migration) error {
	// Without arguments pgx uses the simple protocol, which runs a multi-statement file.
	if _, err := m.tx.Exec(ctx, step.SQL); err != nil {
		return err
	}
	_, err := m.tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, step.Version, step.Name)
	return err
}

// parseID accepts an id only in the canonical form the store hands out. Ids are plain
// text in SQLite, where an upper-case spelling names nothing; this keeps it so here.
func parseID(s string) (uuid.UUID, bool) {
	u, err := uuid.Parse(s)
	if err != nil || u.String() != s {
		return uuid.UUID{}, false
	}
	return u, true
}

// toMS truncates t to the millisecond, the precision both stores keep.
func toMS(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }

// pgText makes s storable: PostgreSQL text cannot hold NUL or invalid UTF-8, and a
// batch must not fail for ever over one odd message. Both become U+FFFD, as Go's JSON
// decoder already does for invalid UTF-8.
func pgText(s string) string {
	if strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// CreateUser implements Store.
func (s *Postgres) CreateUser(ctx context.Context, username, passwordHash string) (model.User, error) {
	if username == "" || passwordHash == "" {
		return model.User{}, errors.New("store: create user: username and password hash are required")
	}
	id, err := uuid.NewV7()
	if err != nil {
		return model.User{}, fmt.Errorf("store: new id: %w", err)
	}
	u := model.User{ID: id.String(), Username: pgText(username), CreatedAt: nowMS()}
	tag, err := s.pool.Exec(ctx, `INSERT INTO users (id, username, password_hash, created_at)
		VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, [16]byte(id), u.Username, pgText(passwordHash), u.CreatedAt)
	if err != nil {
		return model.User{}, fmt.Errorf("store: create user: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return model.User{}, ErrConflict
	}
	return u, nil
}

// UserByName implements Store. The match ignores case.
func (s *Postgres) UserByName(ctx context.Context, username string) (model.User, string, error) {
	var (
		u    model.User
		hash string
	)
	err := s.pool.QueryRow(ctx, `SELECT id, username, password_hash, created_at, token_version FROM users
		WHERE lower(username) = lower($1)`, pgText(username)).Scan(&u.ID, &u.Username, &hash, &u.CreatedAt, &u.TokenVersion)
	if errors.Is(err, pgx.ErrNoRows) {
		return model.User{}, "", ErrNotFound
	}
	if err != nil {
		return model.User{}, "", fmt.Errorf("store: user by name: %w", err)
	}
	u.CreatedAt = u.CreatedAt.UTC()
	return u, hash, nil
}

// TokenVersion implements Store.
func (s *Postgres) TokenVersion(ctx context.Context, id string) (int64, bool, error) {
	u, ok := parseID(id)
	if !ok {
		return 0, false, nil // not an id the store hands out
	}
	var v int64
	err := s.pool.QueryRow(ctx, `SELECT token_version FROM users WHERE id = $1`, [16]byte(u)).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("store: token version: %w", err)
	}
	return v, true, nil
}

// RevokeTokens implements Store.
func (s *Postgres) RevokeTokens(ctx context.Context, id string) error {
	u, ok := parseID(id)
	if !ok {
		return ErrNotFound
	}
	tag, err := s.pool.Exec(ctx, `UPDATE users SET token_version = token_version + 1 WHERE id = $1`, [16]byte(u))
	if err != nil {
		return fmt.Errorf("store: revoke tokens: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// CreateChannel implements Store.
func (s *Postgres) CreateChannel(ctx context.Context, name, kind, createdBy string) (model.Channel, error) {
	if name == "" {
		return model.Channel{}, errors.New("store: create channel: name is required")
	}
	if kind != model.KindPublic && kind != model.KindPrivate {
		return model.Channel{}, fmt.Errorf("store: create channel: kind %q is not public or private", kind)
	}
	by, err := optionalID(createdBy)
	if err != nil {
		return model.Channel{}, fmt.Errorf("store: create channel: creator %w", err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return model.Channel{}, fmt.Errorf("store: new id: %w", err)
	}
	c := model.Channel{ID: id.String(), Name: pgText(name), Kind: kind, CreatedBy: createdBy, CreatedAt: nowMS()}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO channels (id, name, kind, created_by, created_at)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`, [16]byte(id), c.Name, c.Kind, by, c.CreatedAt)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrConflict
		}
		if by == nil {
			return nil
		}
		_, err = tx.Exec(ctx, `INSERT INTO channel_members (channel_id, user_id, role, added_at) VALUES ($1, $2, $3, $4)`,
			[16]byte(id), by, model.RoleOwner, c.CreatedAt)
		return err
	})
	if errors.Is(err, ErrConflict) {
		return model.Channel{}, ErrConflict
	}
	if err != nil {
		return model.Channel{}, fmt.Errorf("store: create channel: %w", err)
	}
	if by != nil {
		c.Role = model.RoleOwner
	}
	return c, nil
}

// optionalID is a user id as the database takes it: nil for "", else its 16 bytes.
func optionalID(id string) (*[16]byte, error) {
	if id == "" {
		return nil, nil
	}
	u, ok := parseID(id)
	if !ok {
		return nil, fmt.Errorf("%q is not a user id", id)
	}
	b := [16]byte(u)
	return &b, nil
}

// isPGForeignKey reports a foreign key violation: a row names one that does not exist.
func isPGForeignKey(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23503"
}

// DirectChannel implements Store.
func (s *Postgres) DirectChannel(ctx context.Context, a, b string) (model.Channel, bool, error) {
	ua, okA := parseID(a)
	ub, okB := parseID(b)
	if !okA || !okB {
		return model.Channel{}, false, ErrNotFound
	}
	key := model.DMKey(ua.String(), ub.String())
	id, err := uuid.NewV7()
	if err != nil {
		return model.Channel{}, false, fmt.Errorf("store: new id: %w", err)
	}
	now := nowMS()
	var c model.Channel
	created := false
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// A DM's name is "@" and its key: unique, and never a name a user can choose.
		tag, err := tx.Exec(ctx, `INSERT INTO channels (id, name, kind, dm_key, created_by, created_at)
			VALUES ($1, $2, 'dm', $3, $4, $5) ON CONFLICT DO NOTHING`, [16]byte(id), "@"+key, key, [16]byte(ua), now)
		if err != nil {
			return err
		}
		if created = tag.RowsAffected() == 1; created {
			for _, u := range uniqueUsers(ua.String(), ub.String()) {
				uid, _ := parseID(u)
				if _, err := tx.Exec(ctx, `INSERT INTO channel_members (channel_id, user_id, role, added_at) VALUES ($1, $2, $3, $4)`,
					[16]byte(id), [16]byte(uid), model.RoleMember, now); err != nil {
					return err
				}
			}
		}
		c, err = scanPGChannel(tx.QueryRow(ctx, pgChannelCols+` WHERE dm_key = $1`, key))
		return err
	})
	if isPGForeignKey(err) {
		return model.Channel{}, false, ErrNotFound // a user that does not exist
	}
	if err != nil {
		return model.Channel{}, false, fmt.Errorf("store: direct channel: %w", err)
	}
	c.Role = model.RoleMember
	return c, created, nil
}

// memberKey parses a channel and a user id; ok is false when either is no id (then
// no such membership can exist).
func memberKey(channelID, userID string) (ch, user [16]byte, ok bool) {
	c, okC := parseID(channelID)
	u, okU := parseID(userID)
	return [16]byte(c), [16]byte(u), okC && okU
}

// Member implements Store.
func (s *Postgres) Member(ctx context.Context, channelID, userID string) (string, error) {
	ch, user, ok := memberKey(channelID, userID)
	if !ok {
		return "", ErrNotFound
	}
	var role string
	err := s.pool.QueryRow(ctx, `SELECT role FROM channel_members WHERE channel_id = $1 AND user_id = $2`, ch, user).Scan(&role)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("store: member: %w", err)
	}
	return role, nil
}

// SetMember implements Store.
func (s *Postgres) SetMember(ctx context.Context, channelID, userID, role string) (bool, error) {
	if !validRole(role) {
		return false, fmt.Errorf("store: set member: role %q is not owner, admin or member", role)
	}
	ch, user, ok := memberKey(channelID, userID)
	if !ok {
		return false, ErrNotFound
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO channel_members (channel_id, user_id, role, added_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (channel_id, user_id) DO UPDATE SET role = excluded.role WHERE channel_members.role <> excluded.role`,
		ch, user, role, nowMS())
	if isPGForeignKey(err) {
		return false, ErrNotFound // the channel or the user does not exist
	}
	if err != nil {
		return false, fmt.Errorf("store: set member: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

// RemoveMember implements Store.
func (s *Postgres) RemoveMember(ctx context.Context, channelID, userID string) (bool, error) {
	ch, user, ok := memberKey(channelID, userID)
	if !ok {
		return false, nil
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM channel_members WHERE channel_id = $1 AND user_id = $2`, ch, user)
	if err != nil {
		return false, fmt.Errorf("store: remove member: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

// Members implements Store.
func (s *Postgres) Members(ctx context.Context, channelID string) ([]model.Member, error) {
	ch, ok := parseID(channelID)
	if !ok {
		return []model.Member{}, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT m.user_id::text, u.username, m.role, m.added_at FROM channel_members m
		JOIN users u ON u.id = m.user_id WHERE m.channel_id = $1 ORDER BY m.added_at, m.user_id`, [16]byte(ch))
	if err != nil {
		return nil, fmt.Errorf("store: members: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (model.Member, error) {
		var m model.Member
		err := r.Scan(&m.UserID, &m.Username, &m.Role, &m.AddedAt)
		m.AddedAt = m.AddedAt.UTC()
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: members: %w", err)
	}
	if out == nil {
		out = []model.Member{}
	}
	return out, nil
}

// EnsureChannel implements Store. Two statements, not one: under READ COMMITTED the
// SELECT takes a new snapshot, so it sees the row of a node that won the race, and
// the INSERT waits for that node's commit instead of failing.
func (s *Postgres) EnsureChannel(ctx context.Context, name string) (model.Channel, error) {
	if name == "" {
		return model.Channel{}, errors.New("store: ensure channel: name is required")
	}
	name = pgText(name)
	id, err := uuid.NewV7()
	if err != nil {
		return model.Channel{}, fmt.Errorf("store: new id: %w", err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO channels (id, name, kind, created_by, created_at)
		VALUES ($1, $2, 'public', NULL, $3) ON CONFLICT (name) WHERE kind = 'public' DO NOTHING`, [16]byte(id), name, nowMS()); err != nil {
		return model.Channel{}, fmt.Errorf("store: ensure channel: %w", err)
	}
	c, err := scanPGChannel(s.pool.QueryRow(ctx, pgChannelCols+` WHERE name = $1 AND kind = 'public'`, name))
	if err != nil {
		return model.Channel{}, fmt.Errorf("store: ensure channel: %w", err)
	}
	return c, nil
}

const pgChannelCols = `SELECT id, name, kind, COALESCE(created_by::text, ''), created_at, archived FROM channels`

func scanPGChannel(r pgx.Row) (model.Channel, error) {
	var c model.Channel
	if err := r.Scan(&c.ID, &c.Name, &c.Kind, &c.CreatedBy, &c.CreatedAt, &c.Archived); err != nil {
		return model.Channel{}, err
	}
	c.CreatedAt = c.CreatedAt.UTC()
	return c, nil
}

// Channel implements Store.
func (s *Postgres) Channel(ctx context.Context, id string) (model.Channel, error) {
	u, ok := parseID(id)
	if !ok {
		return model.Channel{}, ErrNotFound
	}
	c, err := scanPGChannel(s.pool.QueryRow(ctx, pgChannelCols+` WHERE id = $1 AND deleted_at IS NULL`, [16]byte(u)))
	if errors.Is(err, pgx.ErrNoRows) {
		return model.Channel{}, ErrNotFound
	}
	if err != nil {
		return model.Channel{}, fmt.Errorf("store: channel: %w", err)
	}
	return c, nil
}

// UpdateChannel implements Store.
func (s *Postgres) UpdateChannel(ctx context.Context, id, name string, archived *bool) (model.Channel, bool, error) {
	u, ok := parseID(id)
	if !ok {
		return model.Channel{}, false, ErrNotFound
	}
	var c, next model.Channel
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		c, err = scanPGChannel(tx.QueryRow(ctx, pgChannelCols+` WHERE id = $1 AND deleted_at IS NULL FOR UPDATE`, [16]byte(u)))
		if err != nil {
			return err
		}
		next = c
		if name != "" {
			next.Name = pgText(name)
		}
		if archived != nil {
			next.Archived = *archived
		}
		if next == c {
			return nil
		}
		_, err = tx.Exec(ctx, `UPDATE channels SET name = $1, archived = $2 WHERE id = $3`, next.Name, next.Archived, [16]byte(u))
		return err
	})
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return model.Channel{}, false, ErrNotFound
	case errors.As(err, &pgErr) && pgErr.Code == "23505":
		return model.Channel{}, false, ErrConflict // the name is taken by a public channel
	case err != nil:
		return model.Channel{}, false, fmt.Errorf("store: update channel: %w", err)
	}
	return next, next != c, nil
}

// DeleteChannel implements Store. The row stays (its messages refer to it), renamed
// to "~" and its id, a name no user can choose, so that the name is free again.
func (s *Postgres) DeleteChannel(ctx context.Context, id string) (bool, error) {
	u, ok := parseID(id)
	if !ok {
		return false, nil
	}
	tag, err := s.pool.Exec(ctx, `UPDATE channels SET deleted_at = $1, name = '~' || id::text WHERE id = $2 AND deleted_at IS NULL`,
		nowMS(), [16]byte(u))
	if err != nil {
		return false, fmt.Errorf("store: delete channel: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

// ChannelsFor implements Store.
func (s *Postgres) ChannelsFor(ctx context.Context, userID string, after Cursor, limit int) ([]model.Channel, error) {
	var user [16]byte // no user: the zero id, a member of nothing
	if u, ok := parseID(userID); ok {
		user = [16]byte(u)
	}
	// A cursor without an id is after every channel of its name: the highest id.
	afterID := [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	if after.ID != "" {
		id, ok := parseID(after.ID)
		if !ok {
			return nil, fmt.Errorf("store: channels: cursor id %q: %w", after.ID, ErrNotFound)
		}
		afterID = [16]byte(id)
	}
	// COLLATE "C" orders by bytes, as SQLite does, whatever the database's locale.
	rows, err := s.pool.Query(ctx, `SELECT c.id, c.name, c.kind, COALESCE(c.created_by::text, ''), c.created_at, c.archived, COALESCE(m.role, '')
		FROM channels c LEFT JOIN channel_members m ON m.channel_id = c.id AND m.user_id = $1
		WHERE (c.name COLLATE "C", c.id) > ($2, $3) AND c.deleted_at IS NULL AND (c.kind = 'public' OR m.user_id IS NOT NULL)
		ORDER BY c.name COLLATE "C", c.id LIMIT $4`, user, after.Name, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: channels: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (model.Channel, error) {
		var c model.Channel
		err := r.Scan(&c.ID, &c.Name, &c.Kind, &c.CreatedBy, &c.CreatedAt, &c.Archived, &c.Role)
		c.CreatedAt = c.CreatedAt.UTC()
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: channels: %w", err)
	}
	if out == nil {
		out = []model.Channel{}
	}
	return out, nil
}

var messageCopyCols = []string{"id", "channel_id", "author_id", "author", "text", "nonce", "created_at", "kind", "data", "reply_to", "mentions", "target_id"}

// messageRows validates a batch and converts it to COPY rows, before anything is
// written. When withOrd is set each row starts with its position in the batch.
func messageRows(msgs []model.Message, withOrd bool, targets map[string]string) ([][]any, error) {
	if err := validateMessages(msgs); err != nil {
		return nil, err
	}
	rows := make([][]any, len(msgs))
	for i, m := range msgs {
		id, ok1 := parseID(m.ID)
		ch, ok2 := parseID(m.ChannelID)
		au, ok3 := parseID(m.AuthorID)
		if !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("store: write messages: message %d has an id, channel id or author id that is not a canonical UUID: %w", i, ErrRejected)
		}
		row := make([]any, 0, 10)
		if withOrd {
			row = append(row, int32(i))
		}
		var replyTo any // NULL
		if m.ReplyTo != "" {
			r, ok := parseID(m.ReplyTo)
			if !ok {
				return nil, fmt.Errorf("store: write messages: message %d replies to %q, not a canonical UUID: %w", i, m.ReplyTo, ErrRejected)
			}
			replyTo = [16]byte(r)
		}
		rows[i] = append(row, [16]byte(id), [16]byte(ch), [16]byte(au),
			pgText(m.Author), pgText(m.Text), pgText(m.Nonce), toMS(m.CreatedAt), pgText(m.Kind), pgText(string(m.Data)),
			replyTo, mentionsText(m.Mentions), pgIDArg(targets[m.ID]))
	}
	return rows, nil
}

// WriteMessages implements Store. The batch is COPYed into a temporary table, then
// inserted with ON CONFLICT DO NOTHING. Without a conflict target that clause skips a
// row that clashes on any unique index: the primary key and the (author_id, nonce)
// index alike, and also a row clashing with one inserted earlier by the same statement,
// so duplicates inside the batch are fine. Rows go in batch order: the first wins.
func (s *Postgres) WriteMessages(ctx context.Context, msgs []model.Message) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	effects, err := effectsOf(msgs)
	if err != nil {
		return 0, err
	}
	rows, err := messageRows(msgs, true, targetsOf(effects))
	if err != nil {
		return 0, err
	}
	for attempt := 1; ; attempt++ {
		n, err := s.writeBatch(ctx, rows, effects)
		var pgErr *pgconn.PgError
		if err != nil && attempt < pgMaxWriteAttempts && errors.As(err, &pgErr) &&
			(pgErr.Code == "40P01" || pgErr.Code == "40001") && ctx.Err() == nil {
			continue // deadlock_detected or serialization_failure: the transaction rolled back whole
		}
		if err != nil {
			if isPGRejection(err) {
				return 0, fmt.Errorf("store: write messages: %w: %w", ErrRejected, err)
			}
			return 0, fmt.Errorf("store: write messages: %w", err)
		}
		return n, nil
	}
}

// isPGRejection reports an error no retry can mend: an integrity constraint (class
// 23: a foreign key, NOT NULL, CHECK) or data a column cannot hold (class 22).
func isPGRejection(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "23") || strings.HasPrefix(pgErr.Code, "22"))
}

// RejectedIDs implements Store.
func (s *Postgres) RejectedIDs(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM rejected_messages ORDER BY rejected_at, id`)
	if err != nil {
		return nil, fmt.Errorf("store: rejected messages: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: rejected messages: %w", err)
	}
	return ids, nil
}

// RejectMessage implements Store.
func (s *Postgres) RejectMessage(ctx context.Context, m model.Message, reason string) error {
	body, err := rejectedBody(m)
	if err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO rejected_messages (id, body, reason, rejected_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT DO NOTHING`, m.ID, body, pgText(reason), time.Now().UTC()); err != nil {
		return fmt.Errorf("store: park rejected message %s: %w", m.ID, err)
	}
	return nil
}

func (s *Postgres) writeBatch(ctx context.Context, rows [][]any, effects []effect) (int, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// No constraints on the staging table, so COPY never fails on a duplicate. It is
	// created once per connection and emptied at each commit: creating and dropping it
	// per batch wrote and deleted a dozen catalog rows each time.
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS incoming_messages (
		ord        integer     NOT NULL,
		id         uuid        NOT NULL,
		channel_id uuid        NOT NULL,
		author_id  uuid        NOT NULL,
		author     text        NOT NULL,
		text       text        NOT NULL,
		nonce      text        NOT NULL,
		created_at timestamptz NOT NULL,
		kind       text        NOT NULL,
		data       text        NOT NULL,
		reply_to   uuid,
		mentions   text        NOT NULL,
		target_id  uuid) ON COMMIT DELETE ROWS`); err != nil {
		return 0, err
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"incoming_messages"}, append([]string{"ord"}, messageCopyCols...),
		pgx.CopyFromRows(rows)); err != nil {
		return 0, err
	}
	tag, err := tx.Exec(ctx, `INSERT INTO messages (id, channel_id, author_id, author, text, nonce, created_at, kind, data, reply_to, mentions, target_id)
		SELECT id, channel_id, author_id, author, text, nonce, created_at, kind, data, reply_to, mentions, target_id FROM incoming_messages ORDER BY ord
		ON CONFLICT DO NOTHING`)
	if err != nil {
		return 0, err
	}
	if len(effects) > 0 {
		// One round trip for all of them, in batch order.
		b := &pgx.Batch{}
		for _, e := range effects {
			for _, st := range e.steps(pgIDArg, pgMSArg, pgFlagArg) {
				b.Queue(numbered(st.sql), st.args...)
			}
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return 0, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

// pgIDArg, pgMSArg and pgFlagArg convert effect arguments to PostgreSQL's column
// types. A malformed id becomes NULL, which matches no row.
func pgIDArg(id string) any {
	if u, ok := parseID(id); ok {
		return [16]byte(u)
	}
	return nil
}
func pgMSArg(ms int64) any { return time.UnixMilli(ms).UTC() }
func pgFlagArg(b bool) any { return b }

// numbered turns "?" placeholders into PostgreSQL's $1, $2, ….
func numbered(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Messages implements Store.
func (s *Postgres) Messages(ctx context.Context, channelID, before string, limit int) ([]model.Message, error) {
	if limit < 1 {
		return nil, fmt.Errorf("store: messages: limit must be positive, got %d", limit)
	}
	ch, ok := parseID(channelID)
	if !ok {
		return []model.Message{}, nil // not an id the store hands out: no such channel
	}
	q := `SELECT ` + pgMessageCols + ` FROM messages WHERE channel_id = $1 AND kind NOT IN (` + quotedKinds + `)`
	args := []any{[16]byte(ch)}
	if before != "" {
		b, ok := parseID(before)
		if !ok {
			return nil, fmt.Errorf("store: messages: cursor %q is not a message id", before)
		}
		q += ` AND id < $2`
		args = append(args, [16]byte(b))
	}
	q += fmt.Sprintf(` ORDER BY id DESC LIMIT $%d`, len(args)+1)
	args = append(args, limit)
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: messages: %w", err)
	}
	defer rows.Close()
	return scanPGMessages(rows, limit)
}

// pgMessageCols are the columns scanPGMessages reads, in its order.
const pgMessageCols = `id, channel_id, author_id, author, text, nonce, created_at, kind, data, edited_at, deleted, reply_to, mentions`

// scanPGMessages reads rows of pgMessageCols.
func scanPGMessages(rows pgx.Rows, limit int) ([]model.Message, error) {
	defer rows.Close()
	out := make([]model.Message, 0, min(limit, 128))
	for rows.Next() {
		var (
			m        model.Message
			data     string
			edited   *time.Time
			replyTo  *[16]byte
			mentions string
		)
		if err := rows.Scan(&m.ID, &m.ChannelID, &m.AuthorID, &m.Author, &m.Text, &m.Nonce, &m.CreatedAt, &m.Kind, &data, &edited, &m.Deleted, &replyTo, &mentions); err != nil {
			return nil, fmt.Errorf("store: messages: %w", err)
		}
		m.CreatedAt, m.Data = m.CreatedAt.UTC(), rawOrNil(data)
		if edited != nil {
			m.EditedAt = edited.UTC()
		}
		if replyTo != nil {
			m.ReplyTo = uuid.UUID(*replyTo).String()
		}
		m.Mentions = parseMentions(mentions)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: messages: %w", err)
	}
	return out, nil
}

// Ping implements Store: a connection must be acquired and answer.
func (s *Postgres) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("store: ping postgres: %w", err)
	}
	return nil
}

// Close implements Store. It waits for acquired connections to be released and is
// safe to call more than once.
func (s *Postgres) Close() error {
	s.pool.Close()
	return nil
}

// PoolStats is a snapshot of the connection pool, for /metrics.
type PoolStats struct {
	MaxConns      int32 // the configured cap
	TotalConns    int32 // open connections, idle + acquired + being opened
	IdleConns     int32
	AcquiredConns int32 // in use by a query or transaction right now
	// AcquireCount and EmptyAcquireCount are cumulative: the second counts acquires
	// that found no idle connection and had to wait or dial, a sign the pool is small.
	AcquireCount      int64
	EmptyAcquireCount int64
	AcquireDuration   time.Duration // cumulative time spent acquiring
}

// Stats returns the current pool statistics.
func (s *Postgres) Stats() PoolStats {
	st := s.pool.Stat()
	return PoolStats{
		MaxConns:          st.MaxConns(),
		TotalConns:        st.TotalConns(),
		IdleConns:         st.IdleConns(),
		AcquiredConns:     st.AcquiredConns(),
		AcquireCount:      st.AcquireCount(),
		EmptyAcquireCount: st.EmptyAcquireCount(),
		AcquireDuration:   st.AcquireDuration(),
	}
}

// MessageState implements Store.
func (s *Postgres) MessageState(ctx context.Context, messageID, userID string) (model.MessageState, error) {
	id, ok := parseID(messageID)
	if !ok {
		return model.MessageState{}, ErrNotFound
	}
	st := model.MessageState{ID: messageID, Reacted: map[string]bool{}}
	err := s.pool.QueryRow(ctx, `SELECT channel_id::text, author_id::text, deleted FROM messages WHERE id = $1 AND kind = ''`, [16]byte(id)).
		Scan(&st.ChannelID, &st.AuthorID, &st.Deleted)
	if errors.Is(err, pgx.ErrNoRows) {
		return model.MessageState{}, ErrNotFound
	}
	if err != nil {
		return model.MessageState{}, fmt.Errorf("store: message state: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT emoji, user_id::text FROM reactions WHERE message_id = $1 AND present`, [16]byte(id))
	if err != nil {
		return model.MessageState{}, fmt.Errorf("store: message state: %w", err)
	}
	reactions, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var p [2]string
		err := r.Scan(&p[0], &p[1])
		return p, err
	})
	if err != nil {
		return model.MessageState{}, fmt.Errorf("store: message state: %w", err)
	}
	st.CountReactions(userID, reactions)
	return st, nil
}

// Reactions implements Store.
func (s *Postgres) Reactions(ctx context.Context, userID string, messageIDs []string) (map[string][]model.ReactionCount, error) {
	out := map[string][]model.ReactionCount{}
	ids := make([][16]byte, 0, len(messageIDs))
	for _, m := range messageIDs {
		if u, ok := parseID(m); ok {
			ids = append(ids, [16]byte(u))
		}
	}
	if len(ids) == 0 {
		return out, nil
	}
	var user [16]byte
	if u, ok := parseID(userID); ok {
		user = [16]byte(u)
	}
	rows, err := s.pool.Query(ctx, `SELECT message_id::text, emoji, COUNT(*), bool_or(user_id = $1) FROM reactions
		WHERE present AND message_id = ANY($2) GROUP BY message_id, emoji ORDER BY message_id, MIN(op_id::text)`, user, ids)
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
func (s *Postgres) Replies(ctx context.Context, channelID, parentID, before string, limit int) ([]model.Message, error) {
	if limit < 1 {
		return nil, fmt.Errorf("store: replies: limit must be positive, got %d", limit)
	}
	ch, ok1 := parseID(channelID)
	parent, ok2 := parseID(parentID)
	if !ok1 || !ok2 {
		return []model.Message{}, nil
	}
	q := `SELECT ` + pgMessageCols + ` FROM messages WHERE reply_to = $1 AND channel_id = $2 AND kind = ''`
	args := []any{[16]byte(parent), [16]byte(ch)}
	if before != "" {
		b, ok := parseID(before)
		if !ok {
			return nil, fmt.Errorf("store: replies: cursor %q is not a message id", before)
		}
		q += ` AND id < $3`
		args = append(args, [16]byte(b))
	}
	q += fmt.Sprintf(` ORDER BY id DESC LIMIT $%d`, len(args)+1)
	rows, err := s.pool.Query(ctx, q, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("store: replies: %w", err)
	}
	return scanPGMessages(rows, limit)
}

// ReadMarker implements Store.
func (s *Postgres) ReadMarker(ctx context.Context, userID, channelID string) (string, error) {
	u, ok1 := parseID(userID)
	c, ok2 := parseID(channelID)
	if !ok1 || !ok2 {
		return "", nil
	}
	var id string
	err := s.pool.QueryRow(ctx, `SELECT message_id::text FROM read_markers WHERE user_id = $1 AND channel_id = $2`, [16]byte(u), [16]byte(c)).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: read marker: %w", err)
	}
	return id, nil
}

// ReadMarkers implements Store.
func (s *Postgres) ReadMarkers(ctx context.Context, channelID string, limit int) ([]model.ReadMarker, error) {
	c, ok := parseID(channelID)
	if !ok {
		return []model.ReadMarker{}, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT r.user_id::text, u.username, r.message_id::text FROM read_markers r JOIN users u ON u.id = r.user_id
		WHERE r.channel_id = $1 ORDER BY r.message_id DESC, u.username LIMIT $2`, [16]byte(c), limit)
	if err != nil {
		return nil, fmt.Errorf("store: read markers: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (model.ReadMarker, error) {
		m := model.ReadMarker{ChannelID: channelID}
		err := r.Scan(&m.UserID, &m.Username, &m.MessageID)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: read markers: %w", err)
	}
	if out == nil {
		out = []model.ReadMarker{}
	}
	return out, nil
}

// Unread implements Store.
func (s *Postgres) Unread(ctx context.Context, userID string, channelIDs []string) (map[string]model.Unread, error) {
	out := make(map[string]model.Unread, len(channelIDs))
	ids := make([][16]byte, 0, len(channelIDs))
	for _, c := range channelIDs {
		if u, ok := parseID(c); ok {
			ids = append(ids, [16]byte(u))
		}
	}
	u, ok := parseID(userID)
	if !ok || len(ids) == 0 {
		return out, nil
	}
	// The zero uuid is before every message id: no marker, everything is after it.
	rows, err := s.pool.Query(ctx, `SELECT c.id::text, COALESCE(r.message_id::text, ''),
		CASE WHEN r.message_id IS NULL AND NOT EXISTS (SELECT 1 FROM channel_members cm WHERE cm.channel_id = c.id AND cm.user_id = $1) THEN 0 ELSE
			(SELECT COUNT(*) FROM (SELECT 1 FROM messages m WHERE m.channel_id = c.id
				AND m.id > COALESCE(r.message_id, '00000000-0000-0000-0000-000000000000'::uuid)
				AND m.kind = '' AND NOT m.deleted AND m.author_id <> $1 LIMIT $2) s) END,
		(SELECT COUNT(*) FROM mentions x WHERE x.user_id = $1 AND x.channel_id = c.id
			AND x.message_id > COALESCE(r.message_id, '00000000-0000-0000-0000-000000000000'::uuid))
		FROM channels c LEFT JOIN read_markers r ON r.channel_id = c.id AND r.user_id = $1
		WHERE c.id = ANY($3)`, [16]byte(u), MaxUnread, ids)
	if err != nil {
		return nil, fmt.Errorf("store: unread: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id string
			n  model.Unread
		)
		if err := rows.Scan(&id, &n.Marker, &n.Unread, &n.Mentions); err != nil {
			return nil, fmt.Errorf("store: unread: %w", err)
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: unread: %w", err)
	}
	return out, nil
}
