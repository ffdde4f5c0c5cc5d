package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/quibly/quibly/app/internal/dbauth"
	"github.com/quibly/quibly/app/internal/retry"
)

// A new connection refused for its password is retried after the source re-read the
// login, for about 11 s in all: enough for the two steps of a rotation (the role's
// password, the secret) to land one after the other, in either order.
const (
	pgAuthAttempts  = 10
	pgAuthFirstWait = 100 * time.Millisecond
	pgAuthMaxWait   = 2 * time.Second
)

// pgPool is the pgx pool of the store. When the login comes from a dbauth.Source, each
// new connection takes it from there, and a call whose new connection was refused for
// its password (SQLSTATE 28P01: it ran no statement) is made again once the source has
// re-read it, so a rotated password costs a short wait, never a failed call.
type pgPool struct {
	*pgxpool.Pool
	creds dbauth.Source
}

// useCredentials makes every new connection of pcfg log in with what creds holds then.
func useCredentials(pcfg *pgxpool.Config, creds dbauth.Source) {
	pcfg.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
		c, err := creds.Credentials(ctx)
		if err != nil {
			return err
		}
		cc.User, cc.Password = c.User, c.Password
		return nil
	}
}

// refusedLogin reports whether err is the server refusing a connection's password.
func refusedLogin(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "28P01" // invalid_password
}

func (p *pgPool) retry(ctx context.Context, op func() error) error {
	wait := retry.Backoff{Initial: pgAuthFirstWait, Max: pgAuthMaxWait}
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil || p.creds == nil || !refusedLogin(err) || attempt == pgAuthAttempts {
			return err
		}
		p.creds.Refresh()
		if !retry.Sleep(ctx, wait.Next()) {
			return err
		}
	}
}

func (p *pgPool) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	err := p.retry(ctx, func() (err error) { tag, err = p.Pool.Exec(ctx, sql, args...); return err })
	return tag, err
}

func (p *pgPool) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	var rows pgx.Rows
	err := p.retry(ctx, func() (err error) { rows, err = p.Pool.Query(ctx, sql, args...); return err })
	return rows, err
}

// QueryRow is Query read as one row: pgxpool's QueryRow reports a refused connection
// only at Scan, too late to make the call again.
func (p *pgPool) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := p.Query(ctx, sql, args...)
	return oneRow{rows: rows, err: err}
}

func (p *pgPool) Begin(ctx context.Context) (pgx.Tx, error) {
	var tx pgx.Tx
	err := p.retry(ctx, func() (err error) { tx, err = p.Pool.Begin(ctx); return err })
	return tx, err
}

func (p *pgPool) CopyFrom(ctx context.Context, table pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error) {
	var n int64
	err := p.retry(ctx, func() (err error) { n, err = p.Pool.CopyFrom(ctx, table, cols, src); return err })
	return n, err
}

func (p *pgPool) Ping(ctx context.Context) error {
	return p.retry(ctx, func() error { return p.Pool.Ping(ctx) })
}

// oneRow reads the first row of rows, as pgx.Row does.
type oneRow struct {
	rows pgx.Rows
	err  error
}

func (r oneRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}
