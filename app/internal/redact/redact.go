// Package redact removes secrets from what may be logged or shown, in one place for
// every package that logs a setting.
package redact

import (
	"net/url"
	"strings"
)

// DatabaseURL returns a DATABASE_URL in a form fit for logs and errors: the password
// (in the user info or as a password/sslpassword parameter) is replaced by xxxxx.
// A string that is not a URL is reduced to its host and database, or to a placeholder.
func DatabaseURL(raw string) string {
	raw = strings.TrimSpace(raw)
	if strings.HasPrefix(raw, "postgres://") || strings.HasPrefix(raw, "postgresql://") {
		u, err := url.Parse(raw)
		if err != nil {
			return "(unparseable URL)"
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		q := u.Query()
		for k := range q {
			if strings.Contains(strings.ToLower(k), "password") {
				q.Set(k, "xxxxx")
			}
		}
		u.RawQuery = q.Encode()
		return u.Redacted() // Redacted keeps the xxxxx we set; it never shows a password
	}
	// key=value form: keep only settings that cannot be secret.
	var kept []string
	for _, f := range strings.Fields(raw) {
		k, _, ok := strings.Cut(f, "=")
		switch strings.ToLower(k) {
		case "host", "port", "dbname", "user", "sslmode":
			if ok {
				kept = append(kept, f)
			}
		}
	}
	if len(kept) == 0 {
		return "(key=value string)"
	}
	return strings.Join(kept, " ")
}
