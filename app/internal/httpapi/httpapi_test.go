package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/quibly/quibly/app/internal/apperr"
	"github.com/quibly/quibly/app/internal/auth"
	"github.com/quibly/quibly/app/internal/limit"
	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/store"
)

var testSecret = []byte("httpapi-test-secret-0123456789abcdef")

const (
	alicePassword = "alice-password-1"
	testMaxBody   = 1024
)

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fixture struct {
	srv        *httptest.Server
	st         *store.SQLite
	logs       *syncBuffer
	alice      model.User
	aliceToken string
	general    model.Channel
	random     model.Channel
	history    []model.Message // general's messages, oldest first
	secrets    []string        // must never appear in logs
}

// newFixture serves the API over a fresh SQLite store holding user alice, channels
// general and random, and five messages in general.
func newFixture(t *testing.T, configure ...func(*Config)) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := store.NewSQLite(ctx, store.SQLiteConfig{Path: filepath.Join(t.TempDir(), "q.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	au, err := auth.NewAuth(auth.Config{Secret: testSecret, TokenTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	mux := http.NewServeMux()
	cfg := Config{MaxBodyBytes: testMaxBody}
	for _, c := range configure {
		c(&cfg)
	}
	New(cfg, st, au, log).Register(mux)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)

	var reg authResponse
	f.mustJSON(t, "POST", "/api/auth/register", "", fmt.Sprintf(`{"username":"alice","password":%q}`, alicePassword), http.StatusCreated, &reg)
	f.alice, f.aliceToken = reg.User, reg.Token
	f.secrets = []string{alicePassword, f.aliceToken, string(testSecret)}

	if f.general, err = st.EnsureChannel(ctx, "general"); err != nil {
		t.Fatal(err)
	}
	if f.random, err = st.CreateChannel(ctx, "random", model.KindPublic, f.alice.ID); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		id, _ := uuid.NewV7()
		f.history = append(f.history, model.Message{ID: id.String(), ChannelID: f.general.ID, AuthorID: f.alice.ID,
			Author: "alice", Text: fmt.Sprint("hello ", i), Nonce: fmt.Sprint("n", i), CreatedAt: time.Now()})
	}
	if n, err := st.WriteMessages(ctx, f.history); err != nil || n != 5 {
		t.Fatalf("WriteMessages = %d, %v", n, err)
	}
	return f
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request; a non-empty token is sent as the whole Authorization value.
func (f *fixture) do(t *testing.T, method, path, authz, body string, chunked bool) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
		if chunked {
			rd = io.MultiReader(rd) // hides the length, so the client streams it chunked
		}
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	res, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

func (f *fixture) mustJSON(t *testing.T, method, path, authz, body string, want int, v any) response {
	t.Helper()
	res := f.do(t, method, path, authz, body, false)
	if res.status != want {
		t.Fatalf("%s %s = %d %s, want %d", method, path, res.status, res.body, want)
	}
	if v != nil {
		if err := json.Unmarshal(res.body, v); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, res.body, err)
		}
	}
	return res
}

func (f *fixture) bearer() string { return "Bearer " + f.aliceToken }

func tokenWith(t *testing.T, secret []byte, m jwt.SigningMethod, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRoutes(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	expired := "Bearer " + tokenWith(t, testSecret, jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": f.alice.ID, "name": "alice", "iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()})
	foreign := "Bearer " + tokenWith(t, []byte("another-secret-another-secret-123"), jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": f.alice.ID, "name": "alice", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	okAuth := f.bearer()
	// Signed with the server's key for a user the store does not have (a restore, a reset).
	ghost := "Bearer " + tokenWith(t, testSecret, jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": uuid.NewString(), "name": "ghost", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	cred := func(u, p string) string { return fmt.Sprintf(`{"username":%q,"password":%q}`, u, p) }
	big := cred("biggie", strings.Repeat("x", 2*testMaxBody))
	msgsPath := "/api/channels/" + f.general.ID + "/messages"
	unknownChannel := "/api/channels/" + uuid.Must(uuid.NewV7()).String() + "/messages"

	for _, tc := range []struct {
		name   string
		method string
		path   string
		authz  string
		body   string
		status int
		code   string // expected error code; empty on success
	}{
		// register
		{"register ok", "POST", "/api/auth/register", "", cred("bob_1.x-y", "password8"), 201, ""},
		{"register 72-byte password", "POST", "/api/auth/register", "", cred("carol", strings.Repeat("p", 72)), 201, ""},
		{"register 32-char username", "POST", "/api/auth/register", "", cred(strings.Repeat("d", 32), "password8"), 201, ""},
		{"register taken", "POST", "/api/auth/register", "", cred("alice", "password8"), 409, apperr.Conflict},
		{"register taken other case", "POST", "/api/auth/register", "", cred("ALICE", "password8"), 409, apperr.Conflict},
		{"register username too short", "POST", "/api/auth/register", "", cred("ab", "password8"), 400, apperr.Invalid},
		{"register username too long", "POST", "/api/auth/register", "", cred(strings.Repeat("e", 33), "password8"), 400, apperr.Invalid},
		{"register username with space", "POST", "/api/auth/register", "", cred("al ice", "password8"), 400, apperr.Invalid},
		{"register username with @", "POST", "/api/auth/register", "", cred("al@ice", "password8"), 400, apperr.Invalid},
		{"register username non-ascii", "POST", "/api/auth/register", "", cred("ålice", "password8"), 400, apperr.Invalid},
		{"register password too short", "POST", "/api/auth/register", "", cred("frank", "1234567"), 400, apperr.Invalid},
		{"register password too long for bcrypt", "POST", "/api/auth/register", "", cred("frank", strings.Repeat("p", 73)), 400, apperr.Invalid},
		{"register missing fields", "POST", "/api/auth/register", "", `{}`, 400, apperr.Invalid},
		// Not replaced with U+FFFD: two byte strings must not become one password.
		{"register password not UTF-8", "POST", "/api/auth/register", "", "{\"username\":\"zed\",\"password\":\"pass\xffword\"}", 400, apperr.Invalid},
		{"login password not UTF-8", "POST", "/api/auth/login", "", "{\"username\":\"alice\",\"password\":\"pass\xffword\"}", 400, apperr.Invalid},
		{"register null body", "POST", "/api/auth/register", "", `null`, 400, apperr.Invalid},
		{"register empty body", "POST", "/api/auth/register", "", ``, 400, apperr.Invalid},
		{"register truncated JSON", "POST", "/api/auth/register", "", `{"username":`, 400, apperr.Invalid},
		{"register not JSON", "POST", "/api/auth/register", "", `username=frank`, 400, apperr.Invalid},
		{"register wrong type", "POST", "/api/auth/register", "", `{"username":42,"password":"password8"}`, 400, apperr.Invalid},
		{"register array body", "POST", "/api/auth/register", "", `[1,2]`, 400, apperr.Invalid},
		{"register trailing data", "POST", "/api/auth/register", "", cred("frank", "password8") + `{}`, 400, apperr.Invalid},
		{"register too large", "POST", "/api/auth/register", "", big, 413, apperr.TooLarge},
		{"register wrong method", "GET", "/api/auth/register", "", "", 405, apperr.Invalid},

		// login
		{"login ok", "POST", "/api/auth/login", "", cred("alice", alicePassword), 200, ""},
		{"login other case", "POST", "/api/auth/login", "", cred("Alice", alicePassword), 200, ""},
		{"login long password", "POST", "/api/auth/login", "", cred("carol", strings.Repeat("p", 72)), 200, ""},
		{"login wrong password", "POST", "/api/auth/login", "", cred("alice", "wrong-password"), 401, apperr.Unauthorized},
		{"login unknown user", "POST", "/api/auth/login", "", cred("nobody", alicePassword), 401, apperr.Unauthorized},
		{"login password over limit", "POST", "/api/auth/login", "", cred("alice", strings.Repeat("p", 200)), 401, apperr.Unauthorized},
		{"login missing password", "POST", "/api/auth/login", "", `{"username":"alice"}`, 400, apperr.Invalid},
		{"login malformed", "POST", "/api/auth/login", "", `{"username":"alice",`, 400, apperr.Invalid},
		{"login too large", "POST", "/api/auth/login", "", big, 413, apperr.TooLarge},
		{"login wrong method", "PUT", "/api/auth/login", "", cred("alice", alicePassword), 405, apperr.Invalid},

		// list channels
		{"channels ok", "GET", "/api/channels", okAuth, "", 200, ""},
		{"channels lowercase scheme", "GET", "/api/channels", "bearer " + f.aliceToken, "", 200, ""},
		{"channels no token", "GET", "/api/channels", "", "", 401, apperr.Unauthorized},
		{"channels token of a user that no longer exists", "GET", "/api/channels", ghost, "", 401, apperr.Unauthorized},
		{"create channel, token of a user that no longer exists", "POST", "/api/channels", ghost, `{"name":"haunted"}`, 401, apperr.Unauthorized},
		{"channels empty bearer", "GET", "/api/channels", "Bearer ", "", 401, apperr.Unauthorized},
		{"channels basic auth", "GET", "/api/channels", "Basic YWxpY2U6cHc=", "", 401, apperr.Unauthorized},
		{"channels token without scheme", "GET", "/api/channels", f.aliceToken, "", 401, apperr.Unauthorized},
		{"channels garbage token", "GET", "/api/channels", "Bearer not.a.jwt", "", 401, apperr.Unauthorized},
		{"channels expired token", "GET", "/api/channels", expired, "", 401, apperr.Unauthorized},
		{"channels foreign secret", "GET", "/api/channels", foreign, "", 401, apperr.Unauthorized},
		{"channels wrong method", "DELETE", "/api/channels", okAuth, "", 405, apperr.Invalid},

		// create channel
		{"create ok", "POST", "/api/channels", okAuth, `{"name":"dev-ops_2"}`, 201, ""},
		{"create trims spaces", "POST", "/api/channels", okAuth, `{"name":"  spaced  "}`, 201, ""},
		{"create 64 chars", "POST", "/api/channels", okAuth, fmt.Sprintf(`{"name":%q}`, strings.Repeat("c", 64)), 201, ""},
		{"create conflict", "POST", "/api/channels", okAuth, `{"name":"general"}`, 409, apperr.Conflict},
		{"create conflict after trim", "POST", "/api/channels", okAuth, `{"name":" random "}`, 409, apperr.Conflict},
		{"create uppercase", "POST", "/api/channels", okAuth, `{"name":"General"}`, 400, apperr.Invalid},
		{"create inner space", "POST", "/api/channels", okAuth, `{"name":"has space"}`, 400, apperr.Invalid},
		{"create dot", "POST", "/api/channels", okAuth, `{"name":"a.b"}`, 400, apperr.Invalid},
		{"create non-ascii", "POST", "/api/channels", okAuth, `{"name":"café"}`, 400, apperr.Invalid},
		{"create empty", "POST", "/api/channels", okAuth, `{"name":""}`, 400, apperr.Invalid},
		{"create blank", "POST", "/api/channels", okAuth, `{"name":"   "}`, 400, apperr.Invalid},
		{"create 65 chars", "POST", "/api/channels", okAuth, fmt.Sprintf(`{"name":%q}`, strings.Repeat("c", 65)), 400, apperr.Invalid},
		{"create wrong type", "POST", "/api/channels", okAuth, `{"name":["x"]}`, 400, apperr.Invalid},
		{"create malformed", "POST", "/api/channels", okAuth, `{"name":"x"`, 400, apperr.Invalid},
		{"create too large", "POST", "/api/channels", okAuth, fmt.Sprintf(`{"name":%q}`, strings.Repeat("c", 2*testMaxBody)), 413, apperr.TooLarge},
		{"create no token", "POST", "/api/channels", "", `{"name":"sneaky"}`, 401, apperr.Unauthorized},
		{"create expired token", "POST", "/api/channels", expired, `{"name":"sneaky"}`, 401, apperr.Unauthorized},

		// history
		{"messages ok", "GET", msgsPath, okAuth, "", 200, ""},
		{"messages limit 1", "GET", msgsPath + "?limit=1", okAuth, "", 200, ""},
		{"messages limit 100", "GET", msgsPath + "?limit=100", okAuth, "", 200, ""},
		{"messages empty params", "GET", msgsPath + "?limit=&before=", okAuth, "", 200, ""},
		{"messages before uppercase id", "GET", msgsPath + "?before=" + strings.ToUpper(f.history[2].ID), okAuth, "", 200, ""},
		{"messages limit 0", "GET", msgsPath + "?limit=0", okAuth, "", 400, apperr.Invalid},
		{"messages limit 101", "GET", msgsPath + "?limit=101", okAuth, "", 400, apperr.Invalid},
		{"messages limit negative", "GET", msgsPath + "?limit=-1", okAuth, "", 400, apperr.Invalid},
		{"messages limit not a number", "GET", msgsPath + "?limit=ten", okAuth, "", 400, apperr.Invalid},
		{"messages limit fractional", "GET", msgsPath + "?limit=1.5", okAuth, "", 400, apperr.Invalid},
		{"messages bad before", "GET", msgsPath + "?before=yesterday", okAuth, "", 400, apperr.Invalid},
		{"messages unknown channel", "GET", unknownChannel, okAuth, "", 404, apperr.NotFound},
		{"messages non-uuid channel", "GET", "/api/channels/general/messages", okAuth, "", 404, apperr.NotFound},
		{"messages no token", "GET", msgsPath, "", "", 401, apperr.Unauthorized},
		{"messages foreign token", "GET", msgsPath, foreign, "", 401, apperr.Unauthorized},
		{"messages wrong method", "POST", msgsPath, okAuth, `{}`, 405, apperr.Invalid},

		// anything else under /api/
		{"unknown route", "GET", "/api/nope", "", "", 404, apperr.NotFound},
		{"unknown nested route", "GET", "/api/channels/x/nope", okAuth, "", 404, apperr.NotFound},
		{"a channel that does not exist", "GET", "/api/channels/x", okAuth, "", 404, apperr.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := f.do(t, tc.method, tc.path, tc.authz, tc.body, false)
			if res.status != tc.status {
				t.Errorf("status = %d, want %d; body %s", res.status, tc.status, res.body)
			}
			if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q, want JSON", ct)
			}
			if cc := res.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
			var body struct {
				Error *apperr.Error `json:"error"`
			}
			if err := json.Unmarshal(res.body, &body); err != nil {
				t.Fatalf("body %q is not JSON: %v", res.body, err)
			}
			if tc.code == "" {
				if body.Error != nil {
					t.Errorf("unexpected error %+v", body.Error)
				}
				return
			}
			if body.Error == nil || body.Error.Code != tc.code || body.Error.Message == "" {
				t.Fatalf("error = %+v, want code %q with a message", body.Error, tc.code)
			}
			if tc.status != http.StatusMethodNotAllowed && apperr.HTTPStatus(tc.code) != res.status {
				t.Errorf("status %d does not match apperr.HTTPStatus(%q)", res.status, tc.code)
			}
			if tc.status == http.StatusMethodNotAllowed && res.header.Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
			if tc.status == http.StatusUnauthorized && strings.HasPrefix(tc.path, "/api/channels") &&
				!strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge")
			}
		})
	}
	assertNoSecretsLogged(t, f)
}

// Without a Content-Length the limit is enforced while reading.
func TestChunkedBodyTooLarge(t *testing.T) {
	f := newFixture(t)
	for _, chunked := range []bool{false, true} {
		body := fmt.Sprintf(`{"username":"biggie","password":%q}`, strings.Repeat("x", 2*testMaxBody))
		res := f.do(t, "POST", "/api/auth/register", "", body, chunked)
		var out apperr.Body
		if err := json.Unmarshal(res.body, &out); err != nil || res.status != 413 || out.Error == nil || out.Error.Code != apperr.TooLarge {
			t.Errorf("chunked=%v: %d %s, want 413 too_large", chunked, res.status, res.body)
		}
	}
}

func assertNoSecretsLogged(t *testing.T, f *fixture) {
	t.Helper()
	logs := f.logs.String()
	for _, s := range f.secrets {
		if strings.Contains(logs, s) {
			t.Errorf("logs contain a secret: %q", s)
		}
	}
}

func TestRegisterAndLoginIssueWorkingTokens(t *testing.T) {
	f := newFixture(t)
	var reg authResponse
	res := f.mustJSON(t, "POST", "/api/auth/register", "", `{"username":"Bob.Builder","password":"can-we-fix-it"}`, 201, &reg)
	if reg.Token == "" || reg.User.ID == "" || reg.User.Username != "Bob.Builder" || reg.User.CreatedAt.IsZero() {
		t.Fatalf("register response = %s", res.body)
	}
	if bytes.Contains(res.body, []byte("password")) || bytes.Contains(res.body, []byte("$2a$")) {
		t.Errorf("register response leaks password material: %s", res.body)
	}
	var login authResponse
	f.mustJSON(t, "POST", "/api/auth/login", "", `{"username":"bob.builder","password":"can-we-fix-it"}`, 200, &login)
	if login.User.ID != reg.User.ID || login.User.Username != "Bob.Builder" {
		t.Errorf("login user = %+v, want %+v", login.User, reg.User)
	}
	for _, tok := range []string{reg.Token, login.Token} {
		var out struct{ Channels []model.Channel }
		f.mustJSON(t, "GET", "/api/channels", "Bearer "+tok, "", 200, &out)
	}
	// The channel creator is whoever the token names.
	var created struct{ Channel model.Channel }
	f.mustJSON(t, "POST", "/api/channels", "Bearer "+login.Token, `{"name":"builders"}`, 201, &created)
	if created.Channel.CreatedBy != reg.User.ID || created.Channel.Name != "builders" || created.Channel.ID == "" {
		t.Errorf("created channel = %+v", created.Channel)
	}
	f.secrets = append(f.secrets, "can-we-fix-it", reg.Token, login.Token)
	assertNoSecretsLogged(t, f)
}

// Logging out revokes every token of the user (issued by register and login alike);
// a new login works again.
func TestLogoutRevokesEveryToken(t *testing.T) {
	f := newFixture(t)
	var reg, login, again authResponse
	f.mustJSON(t, "POST", "/api/auth/register", "", `{"username":"carol","password":"carols-password"}`, 201, &reg)
	f.mustJSON(t, "POST", "/api/auth/login", "", `{"username":"carol","password":"carols-password"}`, 200, &login)
	if res := f.do(t, "POST", "/api/auth/logout", "Bearer "+login.Token, "", false); res.status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", res.status, res.body)
	}
	for name, tok := range map[string]string{"register's": reg.Token, "login's": login.Token} {
		res := f.do(t, "GET", "/api/channels", "Bearer "+tok, "", false)
		if res.status != http.StatusUnauthorized || !bytes.Contains(res.body, []byte("revoked")) {
			t.Errorf("%s token after logout: %d %s, want 401 naming the revocation", name, res.status, res.body)
		}
	}
	if res := f.do(t, "POST", "/api/auth/logout", "Bearer "+login.Token, "", false); res.status != http.StatusUnauthorized {
		t.Errorf("logout with a revoked token: %d, want 401", res.status)
	}
	f.mustJSON(t, "POST", "/api/auth/login", "", `{"username":"carol","password":"carols-password"}`, 200, &again)
	f.mustJSON(t, "GET", "/api/channels", "Bearer "+again.Token, "", 200, nil)
}

func TestLoginFailuresLookAlike(t *testing.T) {
	f := newFixture(t)
	a := f.do(t, "POST", "/api/auth/login", "", `{"username":"alice","password":"not-her-password"}`, false)
	b := f.do(t, "POST", "/api/auth/login", "", `{"username":"mallory","password":"not-her-password"}`, false)
	if a.status != 401 || b.status != 401 || !bytes.Equal(a.body, b.body) {
		t.Errorf("wrong password: %d %s; unknown user: %d %s; want identical 401s", a.status, a.body, b.status, b.body)
	}
}

// The channel list comes in pages by name, then id; following nextAfter and
// nextAfterId walks every channel once, those of one name too (a private channel may
// share a public one's name), and the last page says there is no next.
func TestChannelsListPagesByName(t *testing.T) {
	f := newFixture(t)
	for _, c := range []string{`{"name":"zeta"}`, `{"name":"alpha"}`, `{"name":"mid"}`, `{"name":"mid","private":true}`, `{"name":"alpha","private":true}`} {
		f.mustJSON(t, "POST", "/api/channels", f.bearer(), c, 201, nil)
	}
	type page struct {
		Channels    []model.Channel `json:"channels"`
		NextAfter   *string         `json:"nextAfter"`
		NextAfterID *string         `json:"nextAfterId"`
	}
	const all = "[alpha alpha general mid mid random zeta]"
	for _, tc := range []struct {
		limit string
		want  string
		pages int
	}{
		{"", all, 1},
		{"2", all, 4},
		{"7", all, 2}, // a full last page: one more, empty
		{"1", all, 8},
	} {
		var names []string
		pages, after, afterID := 0, "", ""
		for {
			q := "?after=" + url.QueryEscape(after) + "&afterId=" + afterID
			if tc.limit != "" {
				q += "&limit=" + tc.limit
			}
			var p page
			f.mustJSON(t, "GET", "/api/channels"+q, f.bearer(), "", 200, &p)
			pages++
			for _, c := range p.Channels {
				names = append(names, c.Name)
			}
			if p.NextAfter == nil || p.NextAfterID == nil {
				if p.NextAfter != nil || p.NextAfterID != nil {
					t.Fatalf("half a cursor: %v %v", p.NextAfter, p.NextAfterID)
				}
				break
			}
			if pages > 10 {
				t.Fatal("the pages never end")
			}
			after, afterID = *p.NextAfter, *p.NextAfterID
		}
		if got := fmt.Sprint(names); got != tc.want || pages != tc.pages {
			t.Errorf("limit %q: %s in %d pages, want %s in %d", tc.limit, got, pages, tc.want, tc.pages)
		}
	}
	for _, q := range []string{"limit=0", "limit=201", "limit=x", "after=" + strings.Repeat("a", 65), "after=mid&afterId=not-an-id"} {
		res := f.do(t, "GET", "/api/channels?"+q, f.bearer(), "", false)
		if res.status != 400 || !bytes.Contains(res.body, []byte(`"invalid"`)) {
			t.Errorf("GET /api/channels?%s: %d %s, want 400 invalid", q, res.status, res.body)
		}
	}
}

// Channel creation is limited per user and on the node; the refusal is 429
// rate_limited with Retry-After, and another user is not held to the first's limit.
func TestChannelCreationIsLimited(t *testing.T) {
	for _, tc := range []struct {
		name        string
		cfg         Config
		alice, bob  int // channels each tries, one after the other
		wantCreated int
	}{
		{"per user", Config{ChannelsPerUser: limit.Spec{Rate: 1.0 / 3600, Burst: 3}}, 5, 2, 3 + 2},
		{"on the node", Config{ChannelsPerNode: limit.Spec{Rate: 1.0 / 60, Burst: 4}}, 3, 3, 4},
		{"no limit", Config{}, 5, 5, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, mux := apiWithAlice(t, tc.cfg)
			token := func(name string) string {
				u, err := a.st.CreateUser(context.Background(), name, "x")
				if err != nil {
					t.Fatal(err)
				}
				tok, err := a.au.IssueToken(u)
				if err != nil {
					t.Fatal(err)
				}
				return tok
			}
			created := 0
			for _, who := range []struct {
				name, tok string
				n         int
			}{{"a", token("creator-a"), tc.alice}, {"b", token("creator-b"), tc.bob}} {
				for i := range who.n {
					rec := httptest.NewRecorder()
					req := httptest.NewRequest("POST", "/api/channels", strings.NewReader(fmt.Sprintf(`{"name":"c%d-%s"}`, i, who.name)))
					req.Header.Set("Authorization", "Bearer "+who.tok)
					mux.ServeHTTP(rec, req)
					switch rec.Code {
					case http.StatusCreated:
						created++
					case http.StatusTooManyRequests:
						if rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), `"rate_limited"`) {
							t.Fatalf("429 without Retry-After or rate_limited: %s", rec.Body)
						}
					default:
						t.Fatalf("create: %d %s", rec.Code, rec.Body)
					}
				}
			}
			if created != tc.wantCreated {
				t.Fatalf("%d channels created, want %d", created, tc.wantCreated)
			}
		})
	}
}

// A lone surrogate escape would decode as U+FFFD, so "pass\ud800word1" would also log
// in as "pass\udc00word1": such a body is refused; a real pair (an emoji) is fine.
func TestLoneSurrogateEscapesAreRefused(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		body string
		want int
	}{
		{`{"username":"dave","password":"pass\ud800word1"}`, 400},
		{`{"username":"dave","password":"pass\udc00word1"}`, 400},
		{`{"username":"dave","password":"pass\ud83d\ude00word1"}`, 201},
	} {
		res := f.do(t, "POST", "/api/auth/register", "", tc.body, false)
		if res.status != tc.want {
			t.Errorf("register %s: %d %s, want %d", tc.body, res.status, res.body, tc.want)
		}
	}
}

// A logout hands the user to Revoked, which ends the user's sockets on every node.
func TestLogoutEndsTheUsersSockets(t *testing.T) {
	var revoked []string
	a, mux := apiWithAlice(t, Config{Revoked: func(_ context.Context, id string) error {
		revoked = append(revoked, id)
		return nil
	}})
	u, _, err := a.st.UserByName(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := a.au.IssueToken(u)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/api/auth/logout", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusNoContent || fmt.Sprint(revoked) != "["+u.ID+"]" {
		t.Fatalf("logout: %d; revoked %v, want [%s]", rec.Code, revoked, u.ID)
	}
}

func TestMessagesPagination(t *testing.T) {
	f := newFixture(t)
	base := "/api/channels/" + f.general.ID + "/messages"
	newestFirst := make([]model.Message, len(f.history))
	for i, m := range f.history {
		newestFirst[len(f.history)-1-i] = m
	}
	type page struct {
		Messages   []model.WireMessage `json:"messages"`
		NextBefore *string             `json:"nextBefore"`
	}
	for _, tc := range []struct {
		name     string
		query    string
		want     []model.Message
		wantNext string // "" means null
	}{
		{"default limit returns all", "", newestFirst, ""},
		{"first page", "?limit=2", newestFirst[:2], newestFirst[1].ID},
		{"second page", "?limit=2&before=" + newestFirst[1].ID, newestFirst[2:4], newestFirst[3].ID},
		{"last page short", "?limit=2&before=" + newestFirst[3].ID, newestFirst[4:], ""},
		{"exact fit still offers a cursor", "?limit=5", newestFirst, newestFirst[4].ID},
		{"past the oldest", "?before=" + newestFirst[4].ID, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p page
			res := f.mustJSON(t, "GET", base+tc.query, f.bearer(), "", 200, &p)
			if len(p.Messages) != len(tc.want) {
				t.Fatalf("got %d messages, want %d: %s", len(p.Messages), len(tc.want), res.body)
			}
			for i, m := range tc.want {
				if !reflect.DeepEqual(p.Messages[i], m.Wire()) {
					t.Errorf("message %d = %+v, want %+v", i, p.Messages[i], m.Wire())
				}
			}
			got := ""
			if p.NextBefore != nil {
				got = *p.NextBefore
			}
			if got != tc.wantNext {
				t.Errorf("nextBefore = %q, want %q", got, tc.wantNext)
			}
			if tc.wantNext == "" && !bytes.Contains(res.body, []byte(`"nextBefore":null`)) {
				t.Errorf("nextBefore not null in %s", res.body)
			}
			if !bytes.Contains(res.body, []byte(`"messages":[`)) {
				t.Errorf("messages is not an array in %s", res.body)
			}
		})
	}

	// An existing channel without messages answers an empty page.
	var p page
	f.mustJSON(t, "GET", "/api/channels/"+f.random.ID+"/messages", f.bearer(), "", 200, &p)
	if len(p.Messages) != 0 || p.NextBefore != nil {
		t.Errorf("empty channel page = %+v", p)
	}
}

func TestStoreFailureIs503AndLogged(t *testing.T) {
	f := newFixture(t)
	if err := f.st.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ method, path, authz, body string }{
		{"GET", "/api/channels", f.bearer(), ""},
		{"GET", "/api/channels/" + f.general.ID + "/messages", f.bearer(), ""},
		{"POST", "/api/channels", f.bearer(), `{"name":"down"}`},
		{"POST", "/api/auth/login", "", fmt.Sprintf(`{"username":"alice","password":%q}`, alicePassword)},
		{"POST", "/api/auth/register", "", `{"username":"newbie","password":"secret-pass-9"}`},
	} {
		res := f.do(t, tc.method, tc.path, tc.authz, tc.body, false)
		var body apperr.Body
		if err := json.Unmarshal(res.body, &body); err != nil || res.status != 503 || body.Error == nil || body.Error.Code != apperr.Unavailable {
			t.Errorf("%s %s = %d %s, want 503 unavailable", tc.method, tc.path, res.status, res.body)
		}
		if bytes.Contains(res.body, []byte("sql")) || bytes.Contains(res.body, []byte("closed")) {
			t.Errorf("%s %s leaks internal detail: %s", tc.method, tc.path, res.body)
		}
	}
	logs := f.logs.String()
	if strings.Count(logs, "request failed") != 5 {
		t.Errorf("want 5 logged failures, logs:\n%s", logs)
	}
	f.secrets = append(f.secrets, "secret-pass-9")
	assertNoSecretsLogged(t, f)
}

func TestWriteHelpers(t *testing.T) {
	for _, tc := range []struct {
		name     string
		write    func(w http.ResponseWriter)
		status   int
		wantBody string
	}{
		{"json value", func(w http.ResponseWriter) { WriteJSON(w, 200, map[string]int{"a": 1}) }, 200, `{"a":1}`},
		{"unencodable value", func(w http.ResponseWriter) { WriteJSON(w, 200, map[string]any{"c": make(chan int)}) }, 503,
			`{"error":{"code":"unavailable","message":"the service is temporarily unavailable, retry"}}`},
		{"app error", func(w http.ResponseWriter) { WriteError(w, apperr.New(apperr.RateLimited, "slow down")) }, 429,
			`{"error":{"code":"rate_limited","message":"slow down"}}`},
		{"wrapped app error", func(w http.ResponseWriter) {
			WriteError(w, fmt.Errorf("ctx: %w", apperr.New(apperr.Forbidden, "not a member")))
		}, 403, `{"error":{"code":"forbidden","message":"not a member"}}`},
		{"internal error hides detail", func(w http.ResponseWriter) { WriteError(w, errors.New("dial tcp 10.0.0.5: refused")) }, 503,
			`{"error":{"code":"unavailable","message":"the service is temporarily unavailable, retry"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tc.write(rec)
			if rec.Code != tc.status {
				t.Errorf("status = %d, want %d", rec.Code, tc.status)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
			if got := strings.TrimSpace(rec.Body.String()); got != tc.wantBody {
				t.Errorf("body = %s, want %s", got, tc.wantBody)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	a := New(Config{}, nil, nil, nil)
	if a.maxBody != DefaultMaxBodyBytes || a.log == nil {
		t.Errorf("defaults not applied: maxBody=%d log=%v", a.maxBody, a.log)
	}
}

// Every login path, known user or not, short or over-long password, costs exactly one
// bcrypt check, so its timing tells nothing about the account.
func TestLoginCostsOneCheckOnEveryPath(t *testing.T) {
	a, mux := apiWithAlice(t, Config{})
	var checks int
	a.checkPassword = func(hash, pw string) bool { checks++; return auth.CheckPassword(hash, pw) }
	for _, tc := range []struct {
		name, user, password string
		status               int
	}{
		{"right password", "alice", alicePassword, http.StatusOK},
		{"wrong password", "alice", "wrong-password", http.StatusUnauthorized},
		{"over-long password, known user", "alice", strings.Repeat("p", 200), http.StatusUnauthorized},
		{"over-long password, unknown user", "nobody", strings.Repeat("p", 200), http.StatusUnauthorized},
		{"unknown user", "nobody", alicePassword, http.StatusUnauthorized},
	} {
		checks = 0
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/api/auth/login", strings.NewReader(fmt.Sprintf(`{"username":%q,"password":%q}`, tc.user, tc.password)))
		mux.ServeHTTP(rec, req)
		if rec.Code != tc.status || checks != 1 {
			t.Errorf("%s: status %d after %d bcrypt checks, want %d after exactly 1", tc.name, rec.Code, checks, tc.status)
		}
	}
}
