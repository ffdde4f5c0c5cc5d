package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/quibly/quibly/app/internal/apperr"
	"github.com/quibly/quibly/app/internal/httpapi"
)

// metricsGuard serves /metrics to a scraper on this host (the peer itself is
// loopback; a forwarded address does not count) and to requests that carry
// "Authorization: Bearer <token>" when a token is set. Metrics reveal load, users
// online and error rates: not for anyone on the internet.
func metricsGuard(next http.Handler, token string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if peerIsLoopback(r.RemoteAddr) || bearerMatches(r, token) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="quibly-metrics"`)
		httpapi.WriteError(w, apperr.New(apperr.Unauthorized,
			"/metrics needs Authorization: Bearer <METRICS_TOKEN>, or a request from this host"))
	})
}

func peerIsLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

func bearerMatches(r *http.Request, token string) bool {
	if token == "" {
		return false
	}
	scheme, got, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	// Digests of equal length, so the comparison's time says nothing of the token's
	// length either.
	gotSum, wantSum := sha256.Sum256([]byte(strings.TrimSpace(got))), sha256.Sum256([]byte(token))
	return strings.EqualFold(scheme, "Bearer") && subtle.ConstantTimeCompare(gotSum[:], wantSum[:]) == 1
}
