package store

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/quibly/quibly/app/internal/dbauth"
	"github.com/quibly/quibly/app/internal/redact"
)

// roleLockKey serialises SetupRole across nodes that start at once ("qrole" in ASCII).
const roleLockKey int64 = 0x71726f6c65

// RoleSetup is what SetupRole needs: the database, an administrator's login (the
// master user) and the login the servers use.
type RoleSetup struct {
	// URL is DATABASE_URL; its user and password, if any, are not used.
	URL   string
	Admin dbauth.Source
	App   dbauth.Source
}

// SetupRole makes the app's role exist with the app's current password and the rights
// the server needs on this database: connect, create its tables in the public schema
// (which it then owns) and temporary tables. It runs as the administrator before each
// start of a server, so it also carries a rotated app password to the database.
// The password is sent as a SCRAM verifier, so the statement never holds it.
func SetupRole(ctx context.Context, rs RoleSetup) error {
	shown := redact.DatabaseURL(rs.URL)
	cc, err := pgx.ParseConfig(strings.TrimSpace(rs.URL))
	if err != nil {
		return fmt.Errorf("store: DATABASE_URL %s is not a valid PostgreSQL URL or key=value string", shown)
	}
	admin, err := rs.Admin.Credentials(ctx)
	if err != nil {
		return err
	}
	app, err := rs.App.Credentials(ctx)
	if err != nil {
		return err
	}
	if app.User == admin.User {
		return fmt.Errorf("store: the app's login is the administrator's (%s): give the app its own role", app.User)
	}
	verifier, err := scramVerifier(app.Password)
	if err != nil {
		return err
	}
	cc.User, cc.Password = admin.User, admin.Password
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = defaultPGConnectTimeout
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return fmt.Errorf("store: connecting to %s as the administrator %s: %s", shown, admin.User, scrub(err, admin.Password))
	}
	defer conn.Close(context.WithoutCancel(ctx))

	role := pgx.Identifier{app.User}.Sanitize()
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, roleLockKey); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, app.User).Scan(&exists); err != nil {
			return err
		}
		verb := "ALTER"
		if !exists {
			verb = "CREATE"
		}
		// Role statements take no parameters: the verifier is a quoted literal (base64,
		// '$' and ':' only), the name a quoted identifier. A new role has no other
		// attribute (NOSUPERUSER, NOCREATEDB, NOCREATEROLE are the defaults).
		if _, err := tx.Exec(ctx, fmt.Sprintf(`%s ROLE %s WITH LOGIN PASSWORD '%s'`,
			verb, role, verifier)); err != nil {
			return err
		}
		var db string
		if err := tx.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
			return err
		}
		for _, grant := range []string{
			fmt.Sprintf(`GRANT CONNECT, CREATE, TEMPORARY ON DATABASE %s TO %s`, pgx.Identifier{db}.Sanitize(), role),
			fmt.Sprintf(`GRANT USAGE, CREATE ON SCHEMA public TO %s`, role),
		} {
			if _, err := tx.Exec(ctx, grant); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: setting up role %s on %s: %s", app.User, shown, scrub(err, app.Password))
	}
	return nil
}

// scramVerifier is what PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5802 and
// 7677, as libpq's PQencryptPasswordConn makes it): the server accepts it in place of
// the password and never learns the password itself.
func scramVerifier(password string) (string, error) {
	// PostgreSQL SASLprep-normalises the password first, which changes only non-ASCII.
	if password == "" || strings.ContainsFunc(password, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		return "", errors.New("store: the app's password must be printable ASCII (generated ones are hex)")
	}
	const iterations = 4096
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", err
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(stored[:]), b64(mac(salted, "Server Key"))), nil
}
