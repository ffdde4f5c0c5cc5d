// Package testenv tells integration tests where the real services listen, and
// waits for what they do asynchronously.
// `make services` starts them and the Makefile exports the variables below.
// Without a variable a test skips, except under CI=true, where it fails: CI
// must never pass by skipping what it was meant to prove.
package testenv

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/google/uuid"
)

// Variables naming the services, as the Makefile exports them.
const (
	RedisVar    = "QUIBLY_TEST_REDIS"        // host:port
	DatabaseVar = "QUIBLY_TEST_DATABASE_URL" // postgres://…
	KafkaVar    = "QUIBLY_TEST_KAFKA"        // host:port[,host:port]
	AWSVar      = "QUIBLY_TEST_AWS_ENDPOINT" // http://host:port of the local AWS API (scripts/aws-local.sh)
)

// Redis returns the test Redis address.
func Redis(t testing.TB) string { return need(t, RedisVar) }

// DatabaseURL returns the test PostgreSQL URL.
func DatabaseURL(t testing.TB) string { return need(t, DatabaseVar) }

// Kafka returns the test Kafka bootstrap list.
func Kafka(t testing.TB) string { return need(t, KafkaVar) }

// AWS points the AWS SDK of this test at the local AWS API, with dummy credentials,
// and returns its endpoint. The test must not be parallel (it sets the environment).
func AWS(t testing.TB) string {
	endpoint := need(t, AWSVar)
	for k, v := range map[string]string{"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
		"AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1", "AWS_CONFIG_FILE": "/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_EC2_METADATA_DISABLED": "true"} {
		t.Setenv(k, v)
	}
	return endpoint
}

// AWSSecret creates a database login secret ({"username", "password"}) in the local
// AWS API and returns its ARN and a function that rotates it (put-secret-value).
func AWSSecret(t testing.TB, user, password string) (string, func(user, password string)) {
	t.Helper()
	AWS(t)
	ctx := context.Background()
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	client := secretsmanager.NewFromConfig(cfg)
	body := func(user, password string) *string {
		b, _ := json.Marshal(map[string]string{"username": user, "password": password})
		return aws.String(string(b))
	}
	out, err := client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String("quibly-test/db-" + uuid.NewString()), SecretString: body(user, password)})
	if err != nil {
		t.Fatalf("creating a secret in the local AWS API: %v", err)
	}
	return aws.ToString(out.ARN), func(user, password string) {
		if _, err := client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: out.ARN, SecretString: body(user, password)}); err != nil {
			t.Errorf("rotating the secret: %v", err)
		}
	}
}

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
