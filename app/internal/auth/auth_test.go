package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/quibly/quibly/app/internal/apperr"
	"github.com/quibly/quibly/app/internal/model"
)

var (
	testSecret  = []byte("0123456789abcdef0123456789abcdef") // exactly 32 bytes
	otherSecret = []byte("fedcba9876543210fedcba9876543210")
	alice       = model.User{ID: "0190a8c2-0000-7000-8000-000000000001", Username: "alice"}
)

func newTestAuth(t *testing.T, secret []byte, ttl time.Duration, now time.Time) *Auth {
	t.Helper()
	a, err := NewAuth(Config{Secret: secret, TokenTTL: ttl})
	if err != nil {
		t.Fatalf("NewAuth: %v", err)
	}
	a.now = func() time.Time { return now }
	return a
}

func TestNewAuth(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
		wantTTL time.Duration
	}{
		{"nil secret", Config{}, "at least 32 bytes", 0},
		{"31 bytes", Config{Secret: testSecret[:31]}, "at least 32 bytes, got 31", 0},
		{"negative ttl", Config{Secret: testSecret, TokenTTL: -time.Second}, "negative", 0},
		{"32 bytes, default ttl", Config{Secret: testSecret}, "", DefaultTokenTTL},
		{"explicit ttl", Config{Secret: append(testSecret, 'x'), TokenTTL: time.Hour}, "", time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := NewAuth(tc.cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
				}
				if len(tc.cfg.Secret) > 0 && strings.Contains(err.Error(), string(tc.cfg.Secret)) {
					t.Errorf("error message leaks the secret")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.ttl != tc.wantTTL {
				t.Errorf("ttl = %s, want %s", a.ttl, tc.wantTTL)
			}
		})
	}
}

func TestNewAuthCopiesSecret(t *testing.T) {
	secret := append([]byte(nil), testSecret...)
	a := newTestAuth(t, secret, 0, time.Now())
	tok, err := a.IssueToken(alice)
	if err != nil {
		t.Fatal(err)
	}
	copy(secret, otherSecret) // the caller reuses its buffer
	if _, err := a.ParseToken(tok); err != nil {
		t.Errorf("token no longer verifies after caller changed its buffer: %v", err)
	}
}

func TestPasswords(t *testing.T) {
	max := strings.Repeat("x", MaxPasswordBytes)
	for _, tc := range []struct {
		name   string
		stored string
		try    string
		want   bool
	}{
		{"match", "correct horse", "correct horse", true},
		{"wrong", "correct horse", "correct horsE", false},
		{"empty attempt", "correct horse", "", false},
		{"72 bytes", max, max, true},
		{"72 bytes, last differs", max, max[:71] + "z", false},
		{"72 bytes and one more", max, max + "x", false},
		{"unicode", "pässwörd-☃", "pässwörd-☃", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := HashPassword(tc.stored)
			if err != nil {
				t.Fatalf("HashPassword: %v", err)
			}
			if strings.Contains(h, tc.stored) {
				t.Fatal("hash contains the password")
			}
			if cost, err := bcrypt.Cost([]byte(h)); err != nil || cost != bcrypt.DefaultCost {
				t.Errorf("bcrypt cost = %d, %v; want %d", cost, err, bcrypt.DefaultCost)
			}
			if got := CheckPassword(h, tc.try); got != tc.want {
				t.Errorf("CheckPassword = %v, want %v", got, tc.want)
			}
		})
	}
	for _, bad := range []string{"", "not-a-hash", "$2a$10$short"} {
		if CheckPassword(bad, "anything") {
			t.Errorf("CheckPassword(%q) = true for a malformed hash", bad)
		}
	}
	// Longer passwords are refused, not pre-hashed: a pre-hash would log in too.
	if _, err := HashPassword(max + "y"); err == nil {
		t.Error("HashPassword took a password over 72 bytes")
	}
}

func TestIssueTokenClaims(t *testing.T) {
	now := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	a := newTestAuth(t, testSecret, 2*time.Hour, now)
	tok, err := a.IssueToken(alice)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	var header, body map[string]any
	decodePart(t, parts[0], &header)
	decodePart(t, parts[1], &body)
	if header["alg"] != "HS256" {
		t.Errorf("alg = %v, want HS256", header["alg"])
	}
	want := map[string]any{"sub": alice.ID, "name": "alice", "iat": float64(now.Unix()), "exp": float64(now.Add(2 * time.Hour).Unix())}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("claim %s = %v, want %v", k, body[k], v)
		}
	}

	for _, u := range []model.User{{ID: alice.ID}, {Username: "alice"}} {
		if _, err := a.IssueToken(u); err == nil {
			t.Errorf("IssueToken(%+v) succeeded without id or username", u)
		}
	}
}

func decodePart(t *testing.T, s string, v any) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// sign builds a token by hand for the cases IssueToken would never produce.
func sign(t *testing.T, m jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseToken(t *testing.T) {
	now := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	a := newTestAuth(t, testSecret, time.Hour, now)
	valid, err := a.IssueToken(alice)
	if err != nil {
		t.Fatal(err)
	}
	older := newTestAuth(t, testSecret, time.Hour, now.Add(-2*time.Hour))
	expired, err := older.IssueToken(alice)
	if err != nil {
		t.Fatal(err)
	}
	other := newTestAuth(t, otherSecret, time.Hour, now)
	wrongSecret, err := other.IssueToken(alice)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	good := func() jwt.MapClaims {
		return jwt.MapClaims{"sub": alice.ID, "name": "alice", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	}
	without := func(k string) jwt.MapClaims { c := good(); delete(c, k); return c }
	with := func(k string, v any) jwt.MapClaims { c := good(); c[k] = v; return c }

	parts := strings.Split(valid, ".")
	tamperedBody := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(
		`{"sub":"`+alice.ID+`","name":"admin","iat":`+jsonNum(now.Unix())+`,"exp":`+jsonNum(now.Add(time.Hour).Unix())+`}`)) + "." + parts[2]
	sig := []byte(parts[2])
	sig[5] ^= 1
	tamperedSig := parts[0] + "." + parts[1] + "." + string(sig)

	for _, tc := range []struct {
		name        string
		token       string
		wantUser    model.User
		wantMessage string // substring; empty for success
	}{
		{"round trip", valid, alice, ""},
		{"hand-made HS256", sign(t, jwt.SigningMethodHS256, testSecret, good()), alice, ""},
		{"expired", expired, model.User{}, "expired"},
		{"tampered payload", tamperedBody, model.User{}, "invalid"},
		{"tampered signature", tamperedSig, model.User{}, "invalid"},
		{"signature stripped", parts[0] + "." + parts[1] + ".", model.User{}, "invalid"},
		{"wrong secret", wrongSecret, model.User{}, "invalid"},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good()), model.User{}, "invalid"},
		{"alg HS512 with right secret", sign(t, jwt.SigningMethodHS512, testSecret, good()), model.User{}, "invalid"},
		{"alg HS384 with right secret", sign(t, jwt.SigningMethodHS384, testSecret, good()), model.User{}, "invalid"},
		{"alg RS256", sign(t, jwt.SigningMethodRS256, rsaKey, good()), model.User{}, "invalid"},
		{"no exp", sign(t, jwt.SigningMethodHS256, testSecret, without("exp")), model.User{}, "invalid"},
		{"no iat", sign(t, jwt.SigningMethodHS256, testSecret, without("iat")), model.User{}, "invalid"},
		{"lifetime past what the server issues", sign(t, jwt.SigningMethodHS256, testSecret,
			with("exp", now.Add(10*365*24*time.Hour).Unix())), model.User{}, "invalid"},
		{"lifetime at the TTL plus skew", sign(t, jwt.SigningMethodHS256, testSecret,
			with("exp", now.Add(time.Hour+maxClockSkew).Unix())), alice, ""},
		{"no sub", sign(t, jwt.SigningMethodHS256, testSecret, without("sub")), model.User{}, "invalid"},
		{"no name", sign(t, jwt.SigningMethodHS256, testSecret, without("name")), model.User{}, "invalid"},
		{"name not a string", sign(t, jwt.SigningMethodHS256, testSecret, with("name", 42)), model.User{}, "invalid"},
		{"issued in the future", sign(t, jwt.SigningMethodHS256, testSecret, with("iat", now.Add(time.Hour).Unix())), model.User{}, "invalid"},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, testSecret, with("nbf", now.Add(time.Minute).Unix())), model.User{}, "invalid"},
		{"empty", "", model.User{}, "invalid"},
		{"garbage", "not a token", model.User{}, "invalid"},
		{"three garbage parts", "a.b.c", model.User{}, "invalid"},
		{"bearer prefix left on", "Bearer " + valid, model.User{}, "invalid"},
		{"json not jwt", `{"sub":"x"}`, model.User{}, "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := a.ParseToken(tc.token)
			if tc.wantMessage == "" {
				if err != nil {
					t.Fatalf("ParseToken: %v", err)
				}
				if u != tc.wantUser {
					t.Errorf("user = %+v, want %+v", u, tc.wantUser)
				}
				return
			}
			var ae *apperr.Error
			if !errors.As(err, &ae) || ae.Code != apperr.Unauthorized {
				t.Fatalf("err = %#v, want *apperr.Error with code unauthorized", err)
			}
			if !strings.Contains(ae.Message, tc.wantMessage) {
				t.Errorf("message = %q, want containing %q", ae.Message, tc.wantMessage)
			}
			if u != (model.User{}) {
				t.Errorf("user = %+v on failure, want zero", u)
			}
		})
	}
}

func jsonNum(n int64) string { b, _ := json.Marshal(n); return string(b) }

type versions map[string]int64

func (v versions) TokenVersion(_ context.Context, id string) (int64, bool, error) {
	if id == "broken" {
		return 0, false, errors.New("store down")
	}
	n, ok := v[id]
	return n, ok, nil
}

func TestCurrent(t *testing.T) {
	st := versions{"alice": 2}
	for _, tc := range []struct {
		name     string
		user     model.User
		wantCode string // "" for nil; "store" for the store's own error
	}{
		{"current token", model.User{ID: "alice", TokenVersion: 2}, ""},
		{"token from before a logout", model.User{ID: "alice", TokenVersion: 1}, apperr.Unauthorized},
		{"user gone", model.User{ID: "ghost"}, apperr.Unauthorized},
		{"store down", model.User{ID: "broken"}, "store"},
	} {
		err := Current(context.Background(), st, tc.user)
		var ae *apperr.Error
		switch {
		case tc.wantCode == "" && err != nil,
			tc.wantCode == "store" && (err == nil || errors.As(err, &ae)),
			tc.wantCode == apperr.Unauthorized && (!errors.As(err, &ae) || ae.Code != apperr.Unauthorized):
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
