package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestMetricsGuard(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("quibly_up 1\n")) })
	for _, tc := range []struct {
		name, token, peer, authz, xff string
		want                          int
	}{
		{"a scraper on this host", "", "127.0.0.1:4000", "", "", 200},
		{"IPv6 loopback", "", "[::1]:4000", "", "", 200},
		{"a remote request without a token configured", "", "203.0.113.9:1", "", "", 401},
		{"a remote request without the token", "s3cret-token", "10.0.1.5:1", "", "", 401},
		{"a remote request with a wrong token", "s3cret-token", "10.0.1.5:1", "Bearer s3cret-tokeN", "", 401},
		{"a remote request with the token", "s3cret-token", "10.0.1.5:1", "Bearer s3cret-token", "", 200},
		{"an empty bearer never matches an unset token", "", "10.0.1.5:1", "Bearer ", "", 401},
		{"a forwarded loopback address does not count", "", "10.0.1.5:1", "", "127.0.0.1", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/metrics", nil)
			req.RemoteAddr = tc.peer
			if tc.authz != "" {
				req.Header.Set("Authorization", tc.authz)
			}
			if tc.xff != "" {
				req.Header.Set("X-Forwarded-For", tc.xff)
			}
			rec := httptest.NewRecorder()
			metricsGuard(ok, tc.token).ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tc.want, rec.Body)
			}
		})
	}
}
