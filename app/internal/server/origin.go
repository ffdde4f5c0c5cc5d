package server

import (
	"net/http"
	"net/url"
	"strings"
)

// originChecker allows requests without an Origin (non-browser clients), from the
// page's own origin, and from FRONTEND_URL.
func originChecker(frontendURL string) func(r *http.Request) bool {
	frontend := strings.TrimRight(strings.ToLower(frontendURL), "/")
	return func(r *http.Request) bool {
		origin := r.Header.Get("Origin")
		if origin == "" {
			return true
		}
		if frontend != "" && strings.EqualFold(origin, frontend) {
			return true
		}
		u, err := url.Parse(origin)
		return err == nil && strings.EqualFold(u.Host, r.Host)
	}
}

// withCORS lets the configured frontend call the REST API from another origin.
func withCORS(next http.Handler, allowed func(*http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin != "" && strings.HasPrefix(r.URL.Path, "/api/") && allowed(r) {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Vary", "Origin")
			if r.Method == http.MethodOptions {
				h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
