package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, target string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestIndexServedAtRoot(t *testing.T) {
	h := Handler()
	for _, target := range []string{"/", "/index.html"} {
		r := get(t, h, http.MethodGet, target, nil)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d", target, r.StatusCode)
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("GET %s: content type %q", target, ct)
		}
		if cc := r.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s: cache-control %q", target, cc)
		}
		if r.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s: no content security policy", target)
		}
		b := body(t, r)
		for _, want := range []string{`<title>Quibly</title>`, `id="messages"`, `id="conn-state"`, `src="/app.js"`, `href="/style.css"`} {
			if !strings.Contains(b, want) {
				t.Errorf("GET %s: page lacks %s", target, want)
			}
		}
	}
}

func TestAssetsServedWithTypes(t *testing.T) {
	h := Handler()
	cases := map[string]string{
		"/app.js":      "text/javascript",
		"/app/chat.js": "text/javascript", // the modules app.js imports
		"/client.js":   "text/javascript",
		"/style.css":   "text/css",
		"/favicon.svg": "image/svg+xml",
	}
	for target, wantType := range cases {
		r := get(t, h, http.MethodGet, target, nil)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d", target, r.StatusCode)
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, wantType) {
			t.Errorf("GET %s: content type %q, want %s", target, ct, wantType)
		}
		if r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", target)
		}
		if len(body(t, r)) == 0 {
			t.Errorf("GET %s: empty body", target)
		}
	}
}

func TestConditionalAndHead(t *testing.T) {
	h := Handler()
	r := get(t, h, http.MethodGet, "/app.js", nil)
	etag := r.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	r = get(t, h, http.MethodGet, "/app.js", map[string]string{"If-None-Match": etag})
	if r.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation: status %d, want 304", r.StatusCode)
	}
	r = get(t, h, http.MethodHead, "/", nil)
	if r.StatusCode != http.StatusOK || body(t, r) != "" {
		t.Errorf("HEAD /: status %d", r.StatusCode)
	}
}

func TestUnknownPathsAndMethods(t *testing.T) {
	h := Handler()
	for _, target := range []string{"/nope.js", "/static/app.js", "/../web.go", "/api/unknown"} {
		if r := get(t, h, http.MethodGet, target, nil); r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", target, r.StatusCode)
		}
	}
	if r := get(t, h, http.MethodPost, "/", nil); r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: status %d, want 405", r.StatusCode)
	}
}

// The client must never put user data into innerHTML/outerHTML/insertAdjacentHTML
// or document.write: all user text goes through textContent.
func TestClientAvoidsHTMLInjectionSinks(t *testing.T) {
	sink := regexp.MustCompile(`\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function\(`)
	entries, err := os.ReadDir("static")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".js") {
			continue
		}
		b, err := os.ReadFile("static/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		if loc := sink.FindIndex(b); loc != nil {
			t.Errorf("%s uses an HTML injection sink: %q", e.Name(), b[loc[0]:loc[1]])
		}
	}
}
