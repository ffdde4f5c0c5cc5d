package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/quibly/quibly/app/internal/dbauth"
	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/testenv"
)

// countingSource counts the refreshes a refused login causes.
type countingSource struct {
	dbauth.Source
	refreshes atomic.Int64
}

func (c *countingSource) Refresh() { c.refreshes.Add(1); c.Source.Refresh() }

// The app's password is rotated twice while the store writes and reads under load,
// once the database first and once the secret first, each step 400 ms after the other:
// every call succeeds, every written message is there, and the old password no longer
// logs in. The same table runs with the login in memory and in Secrets Manager (moto).
func TestPasswordRotationUnderLoad(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T, c dbauth.Credentials) (dbauth.Source, func(dbauth.Credentials))
	}{
		{"memory", func(t *testing.T, c dbauth.Credentials) (dbauth.Source, func(dbauth.Credentials)) {
			m := dbauth.NewMemory(c)
			return m, m.Set
		}},
		{"secretsmanager", func(t *testing.T, c dbauth.Credentials) (dbauth.Source, func(dbauth.Credentials)) {
			id, put := testenv.AWSSecret(t, c.User, c.Password)
			s, err := dbauth.NewSecretsManager(context.Background(), dbauth.SecretsManagerConfig{SecretID: id})
			if err != nil {
				t.Fatal(err)
			}
			return s, func(c dbauth.Credentials) { put(c.User, c.Password) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { rotateUnderLoad(t, tc.open) })
	}
}

func rotateUnderLoad(t *testing.T, open func(*testing.T, dbauth.Credentials) (dbauth.Source, func(dbauth.Credentials))) {
	ctx := ctxT(t)
	adminURL := testenv.DatabaseURL(t)
	adminCfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		t.Fatal(err)
	}
	admin := dbauth.NewMemory(dbauth.Credentials{User: adminCfg.User, Password: adminCfg.Password})
	suffix := strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	role, schema := "quibly_app_"+suffix, "rot_"+suffix
	password := func(n int) dbauth.Credentials {
		return dbauth.Credentials{User: role, Password: fmt.Sprintf("pw-%d-%s", n, suffix)}
	}
	src, setSecret := open(t, password(1))
	creds := &countingSource{Source: src}

	// The role as production makes it, from the secret; then a schema it may create in.
	if err := SetupRole(ctx, RoleSetup{URL: adminURL, Admin: admin, App: creds}); err != nil {
		t.Fatalf("SetupRole: %v", err)
	}
	adminConn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c := context.Background()
		for _, q := range []string{`DROP SCHEMA IF EXISTS ` + schema + ` CASCADE`, `REVOKE ALL ON DATABASE ` + adminCfg.Database + ` FROM ` + role,
			`REVOKE ALL ON SCHEMA public FROM ` + role, `DROP ROLE IF EXISTS ` + role} {
			if _, err := adminConn.Exec(c, q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
		adminConn.Close(c)
	})
	for _, q := range []string{`CREATE SCHEMA ` + schema, `GRANT USAGE, CREATE ON SCHEMA ` + schema + ` TO ` + role} {
		if _, err := adminConn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}

	// DATABASE_URL's own login is the administrator's: the source must win.
	st, err := NewPostgres(ctx, PostgresConfig{URL: adminURL, Schema: schema, MaxConns: 6,
		Credentials: creds, MaxConnLifetime: 150 * time.Millisecond})
	if err != nil {
		t.Fatalf("NewPostgres with the app's login: %v", err)
	}
	defer st.Close()
	author, err := st.CreateUser(ctx, "rotator", "hash")
	if err != nil {
		t.Fatal(err)
	}
	ch, err := st.CreateChannel(ctx, "rotation", model.KindPublic, author.ID)
	if err != nil {
		t.Fatal(err)
	}

	var written, calls atomic.Int64
	var errMu sync.Mutex
	var errs []string
	fail := func(what string, err error) {
		errMu.Lock()
		defer errMu.Unlock()
		if len(errs) < 5 {
			errs = append(errs, fmt.Sprintf("%s: %v", what, err))
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				calls.Add(1)
				if w%3 == 2 { // a third of the load reads
					if _, err := st.Messages(ctx, ch.ID, "", 20); err != nil {
						fail("Messages", err)
					}
					continue
				}
				batch := make([]model.Message, 5)
				for j := range batch {
					batch[j] = msg(t, ch, author, fmt.Sprintf("w%d-%d-%d", w, i, j), fmt.Sprintf("n%d-%d-%d", w, i, j))
				}
				if n, err := st.WriteMessages(ctx, batch); err != nil {
					fail("WriteMessages", err)
				} else {
					written.Add(int64(n))
				}
			}
		}()
	}
	setRole := func(c dbauth.Credentials) {
		if err := SetupRole(ctx, RoleSetup{URL: adminURL, Admin: admin, App: dbauth.NewMemory(c)}); err != nil {
			t.Errorf("SetupRole: %v", err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	setRole(password(2)) // the database first, then the secret
	time.Sleep(400 * time.Millisecond)
	setSecret(password(2))
	time.Sleep(700 * time.Millisecond)
	setSecret(password(3)) // the secret first, then the database
	time.Sleep(400 * time.Millisecond)
	setRole(password(3))
	time.Sleep(700 * time.Millisecond)
	close(stop)
	wg.Wait()

	if len(errs) > 0 {
		t.Fatalf("calls failed during the rotations (%d calls):\n%s", calls.Load(), strings.Join(errs, "\n"))
	}
	// Counted as the app, with the last password: the tables are the app's.
	appCfg, _ := pgx.ParseConfig(adminURL)
	appCfg.User, appCfg.Password = role, password(3).Password
	appConn, err := pgx.ConnectConfig(ctx, appCfg)
	if err != nil {
		t.Fatalf("logging in with the last password: %v", err)
	}
	defer appConn.Close(ctx)
	var stored int64
	if err := appConn.QueryRow(ctx, `SELECT count(*) FROM `+schema+`.messages`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != written.Load() || stored == 0 {
		t.Fatalf("%d messages acknowledged, %d stored", written.Load(), stored)
	}
	if creds.refreshes.Load() == 0 {
		t.Fatalf("no connection was refused during %d calls: the rotation windows were not exercised", calls.Load())
	}
	oldCfg, _ := pgx.ParseConfig(adminURL)
	oldCfg.User, oldCfg.Password = role, password(1).Password
	if c, err := pgx.ConnectConfig(ctx, oldCfg); err == nil {
		c.Close(ctx)
		t.Fatal("the first password still logs in: nothing was rotated")
	} else if !refusedLogin(err) {
		t.Fatalf("logging in with the old password: %v, want a refusal (28P01)", err)
	}
	t.Logf("%d calls, %d messages written, %d refused logins retried, no call failed", calls.Load(), stored, creds.refreshes.Load())
}

func TestSetupRoleRefuses(t *testing.T) {
	admin := dbauth.NewMemory(dbauth.Credentials{User: "quibly", Password: "admin-pw"})
	for _, tc := range []struct {
		name string
		app  dbauth.Credentials
		want string
	}{
		{"the administrator's own login", dbauth.Credentials{User: "quibly", Password: "x"}, "give the app its own role"},
		{"a password PostgreSQL would normalise", dbauth.Credentials{User: "app", Password: "pässwort-secret"}, "printable ASCII"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Refused before any connection: the URL points nowhere.
			err := SetupRole(ctxT(t), RoleSetup{URL: "postgres://127.0.0.1:1/quibly", Admin: admin, App: dbauth.NewMemory(tc.app)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("SetupRole: %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), tc.app.Password) || strings.Contains(err.Error(), "admin-pw") {
				t.Fatalf("the error quotes a password: %v", err)
			}
		})
	}
}
