package dbauth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/quibly/quibly/app/internal/testenv"
)

func TestCache(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	fetches, value := 0, "p1"
	var fail error
	c := cache{ttl: time.Minute, now: func() time.Time { return now }, fetch: func(context.Context) (Credentials, error) {
		fetches++
		return Credentials{User: "app", Password: value}, fail
	}}
	get := func(want string, wantFetches int) {
		t.Helper()
		got, err := c.get(context.Background())
		if err != nil || got.Password != want || fetches != wantFetches {
			t.Fatalf("get = %q, %v after %d fetches; want %q after %d", got.Password, err, fetches, want, wantFetches)
		}
	}
	get("p1", 1)
	value = "p2"
	now = now.Add(59 * time.Second)
	get("p1", 1) // within the TTL: cached
	now = now.Add(time.Second)
	get("p2", 2) // the TTL is up
	value = "p3"
	c.drop() // a refusal right after a read: that read is as fresh as it gets
	get("p2", 2)
	now = now.Add(minRefetch)
	c.drop()
	get("p3", 3)
	fail = errors.New("unreachable")
	now = now.Add(minRefetch)
	c.drop()
	if _, err := c.get(context.Background()); err == nil {
		t.Fatal("a failed read returned credentials")
	}
	fail = nil
	get("p3", 5) // the failure was not cached
}

func TestParseSecret(t *testing.T) {
	for _, tc := range []struct{ secret, err string }{
		{`{"username":"app","password":"pw"}`, ""},
		{`{"username":"app","password":"pw","engine":"postgres","host":"h"}`, ""}, // RDS's form
		{`not json: hunter2`, "not a JSON object"},
		{`{"username":"app"}`, "lacks a username or a password"},
		{`{"username":"","password":"hunter2"}`, "lacks a username or a password"},
	} {
		c, err := parseSecret("arn:x", tc.secret)
		switch {
		case tc.err == "" && (err != nil || c != Credentials{User: "app", Password: "pw"}):
			t.Errorf("parseSecret(%s) = %+v, %v", tc.secret, c, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parseSecret(%s) error = %v, want %q", tc.secret, err, tc.err)
		case err != nil && strings.Contains(err.Error(), "hunter2"):
			t.Errorf("the error quotes the secret: %v", err)
		}
	}
}

// The same table against Memory and a real Secrets Manager API (moto): a source gives
// what was set, and after Refresh what was set since.
func TestSources(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T, first Credentials) (Source, func(Credentials))
	}{
		{"memory", func(t *testing.T, first Credentials) (Source, func(Credentials)) {
			m := NewMemory(first)
			return m, m.Set
		}},
		{"secretsmanager", func(t *testing.T, first Credentials) (Source, func(Credentials)) {
			id, put := testenv.AWSSecret(t, first.User, first.Password)
			s, err := NewSecretsManager(context.Background(), SecretsManagerConfig{SecretID: id})
			if err != nil {
				t.Fatal(err)
			}
			return s, func(c Credentials) { put(c.User, c.Password) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			src, set := tc.open(t, Credentials{User: "quibly_app", Password: "first"})
			if c, err := src.Credentials(ctx); err != nil || c.Password != "first" || c.User != "quibly_app" {
				t.Fatalf("Credentials = %+v, %v", c, err)
			}
			set(Credentials{User: "quibly_app", Password: "second"})
			time.Sleep(minRefetch)
			src.Refresh()
			if c, err := src.Credentials(ctx); err != nil || c.Password != "second" {
				t.Fatalf("after a rotation and Refresh, Credentials = %+v, %v; want the second password", c, err)
			}
		})
	}
	t.Run("secretsmanager/missing", func(t *testing.T) {
		testenv.AWS(t)
		s, err := NewSecretsManager(context.Background(), SecretsManagerConfig{SecretID: "quibly-test/no-such-secret"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Credentials(context.Background()); err == nil || !strings.Contains(err.Error(), "quibly-test/no-such-secret") {
			t.Errorf("reading a missing secret: %v, want an error naming it", err)
		}
	})
}
