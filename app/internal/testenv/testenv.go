// Package testenv tells integration tests where the real services listen, and
// waits for what they do asynchronously.
// `make services` starts them and the Makefile exports the variables below.
// Without a variable a test skips, except under CI=true, where it fails: CI
// must never pass by skipping what it was meant to prove.
package testenv

import (
	"os"
	"testing"
	"time"
)

// Variables naming the services, as the Makefile exports them.
const (
	RedisVar    = "QUIBLY_TEST_REDIS"        // host:port
	DatabaseVar = "QUIBLY_TEST_DATABASE_URL" // postgres://…
	KafkaVar    = "QUIBLY_TEST_KAFKA"        // host:port[,host:port]
)

// Redis returns the test Redis address.
func Redis(t testing.TB) string { return need(t, RedisVar) }

// DatabaseURL returns the test PostgreSQL URL.
func DatabaseURL(t testing.TB) string { return need(t, DatabaseVar) }

// Kafka returns the test Kafka bootstrap list.
func Kafka(t testing.TB) string { return need(t, KafkaVar) }

func need(t testing.TB, name string) string {
	t.Helper()
	if v := os.Getenv(name); v != "" {
		return v
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not set: under CI=true this test must run against the real service (run `make services`)", name)
	}
	t.Skipf("%s is not set; run `make services` and `make test` to run this test against the real service", name)
	return ""
}

// Eventually polls cond until it holds, and fails the test when it still does not
// after within.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
