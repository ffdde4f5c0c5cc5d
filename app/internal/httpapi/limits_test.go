package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quibly/quibly/app/internal/auth"
	"github.com/quibly/quibly/app/internal/clientip"
	"github.com/quibly/quibly/app/internal/limit"
	"github.com/quibly/quibly/app/internal/store"
)

// apiWithAlice is an API over a SQLite store holding alice (alicePassword), configured by cfg.
func apiWithAlice(t *testing.T, cfg Config) (*API, *http.ServeMux) {
	t.Helper()
	st, err := store.NewSQLite(context.Background(), store.SQLiteConfig{Path: filepath.Join(t.TempDir(), "q.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	au, err := auth.NewAuth(auth.Config{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	hash, err := auth.HashPassword(alicePassword)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(context.Background(), "alice", hash); err != nil {
		t.Fatal(err)
	}
	a := New(cfg, st, au, nil)
	mux := http.NewServeMux()
	a.Register(mux)
	return a, mux
}

func post(mux *http.ServeMux, path, peer, xff, body string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	req.RemoteAddr = peer
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	mux.ServeHTTP(rec, req)
	return rec
}

// Login and register are limited per client address (behind a trusted proxy, the
// address it forwards) and login per username, with 429 rate_limited and Retry-After.
func TestAuthRateLimits(t *testing.T) {
	trusted, _ := clientip.Parse("10.0.0.0/8")
	wrong := `{"username":"alice","password":"wrong-password"}`
	for _, tc := range []struct {
		name     string
		requests func(i int) (path, peer, xff, body string)
		cfg      Config
		allowed  int // of 6
	}{
		{"logins from one address", func(i int) (string, string, string, string) {
			return "/api/auth/login", "203.0.113.1:1", "", fmt.Sprintf(`{"username":"user%d","password":"wrong-password"}`, i)
		}, Config{AuthPerIP: limit.Spec{Burst: 3}}, 3},
		{"registrations from one address", func(i int) (string, string, string, string) {
			return "/api/auth/register", "203.0.113.1:1", "", fmt.Sprintf(`{"username":"new%d","password":"long-enough"}`, i)
		}, Config{AuthPerIP: limit.Spec{Burst: 4}}, 4},
		{"clients behind the load balancer are told apart", func(i int) (string, string, string, string) {
			return "/api/auth/login", "10.0.0.5:80", fmt.Sprintf("198.51.100.%d", i), wrong
		}, Config{AuthPerIP: limit.Spec{Burst: 1}, ClientIP: trusted}, 6},
		{"an untrusted peer's header is ignored", func(i int) (string, string, string, string) {
			return "/api/auth/login", "203.0.113.1:1", fmt.Sprintf("198.51.100.%d", i), wrong
		}, Config{AuthPerIP: limit.Spec{Burst: 1}, ClientIP: trusted}, 1},
		{"one username from many addresses", func(i int) (string, string, string, string) {
			return "/api/auth/login", fmt.Sprintf("203.0.113.%d:1", i), "", wrong
		}, Config{AuthPerUser: limit.Spec{Burst: 2}}, 2},
		{"addresses of one IPv6 /64 share a limit", func(i int) (string, string, string, string) {
			return "/api/auth/login", fmt.Sprintf("[2001:db8:0:1::%x]:1", i+1), "", wrong
		}, Config{AuthPerIP: limit.Spec{Burst: 1}}, 1},
		{"addresses of different /64s do not", func(i int) (string, string, string, string) {
			return "/api/auth/login", fmt.Sprintf("[2001:db8:0:%x::1]:1", i+1), "", wrong
		}, Config{AuthPerIP: limit.Spec{Burst: 1}}, 6},
		{"a full table of addresses does not lock newcomers out", func(i int) (string, string, string, string) {
			return "/api/auth/login", "10.0.0.5:80", fmt.Sprintf("198.51.100.%d", i), wrong
		}, Config{AuthPerIP: limit.Spec{Burst: 1, MaxKeys: 2}, ClientIP: trusted}, 6},
		{"a username's case does not reset its limit", func(i int) (string, string, string, string) {
			return "/api/auth/login", fmt.Sprintf("203.0.113.%d:1", i), "", fmt.Sprintf(`{"username":"%s","password":"wrong-password"}`, []string{"alice", "ALICE", "Alice"}[i%3])
		}, Config{AuthPerUser: limit.Spec{Burst: 2}}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, mux := apiWithAlice(t, tc.cfg)
			allowed := 0
			for i := range 6 {
				path, peer, xff, body := tc.requests(i)
				rec := post(mux, path, peer, xff, body)
				switch rec.Code {
				case http.StatusTooManyRequests:
					if rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), `"rate_limited"`) {
						t.Fatalf("429 without Retry-After or rate_limited: %v %s", rec.Header(), rec.Body)
					}
				case http.StatusUnauthorized, http.StatusCreated:
					allowed++
				default:
					t.Fatalf("request %d: %d %s", i, rec.Code, rec.Body)
				}
			}
			if allowed != tc.allowed {
				t.Fatalf("%d of 6 got through, want %d", allowed, tc.allowed)
			}
		})
	}
}

// At most HashSlots bcrypt computations run at once, however many logins arrive. The
// logins may wait as long as they need (bcrypt is many times slower under the race
// detector): what is measured is the bound, not the wait.
func TestHashSlotsBoundBcryptWork(t *testing.T) {
	a, mux := apiWithAlice(t, Config{HashSlots: 2, HashWait: time.Minute})
	var running, peak atomic.Int32
	a.checkPassword = func(hash, pw string) bool {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		defer running.Add(-1)
		return auth.CheckPassword(hash, pw)
	}
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := post(mux, "/api/auth/login", fmt.Sprintf("203.0.113.%d:1", i), "", `{"username":"alice","password":"wrong-password"}`)
			if rec.Code != http.StatusUnauthorized {
				t.Errorf("login %d: %d %s", i, rec.Code, rec.Body)
			}
		}()
	}
	wg.Wait()
	if p := peak.Load(); p != 2 {
		t.Fatalf("peak concurrent bcrypt checks %d, want 2 (the slots)", p)
	}
}
