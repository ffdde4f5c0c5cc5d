package redact

import "testing"

func TestDatabaseURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://quibly:pw@db:5432/quibly?sslmode=disable", "postgres://quibly:xxxxx@db:5432/quibly?sslmode=disable"},
		{"postgres://quibly@db/quibly?password=pw", "postgres://quibly@db/quibly?password=xxxxx"},
		{"postgresql://db/quibly", "postgresql://db/quibly"},
		{"host=db user=quibly password=pw dbname=quibly", "host=db user=quibly dbname=quibly"},
		{"password=pw", "(key=value string)"},
	} {
		if got := DatabaseURL(tc.in); got != tc.want {
			t.Errorf("DatabaseURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
