package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	secret := strings.Repeat("s", 32)
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string // substring; empty means success
		check   func(t *testing.T, c Config)
	}{
		{name: "defaults are standalone on 5000", check: func(t *testing.T, c Config) {
			if c.Mode() != Standalone || c.Port != 5000 || c.RedisPort != 6379 || c.ServerID == "" {
				t.Fatalf("unexpected defaults: %+v", c)
			}
		}},
		{name: "bad port names the variable", env: map[string]string{"PORT": "abc"}, wantErr: "PORT"},
		{name: "port out of range", env: map[string]string{"PORT": "70000"}, wantErr: "PORT: must be between"},
		{name: "partial cluster names what is missing", env: map[string]string{"REDIS_STRING": "localhost", "JWT_SECRET": secret},
			wantErr: "missing DATABASE_URL, KAFKA_BROKERS"},
		{name: "cluster needs a JWT secret", env: map[string]string{"REDIS_STRING": "r", "KAFKA_BROKERS": "k:9092", "DATABASE_URL": "postgres://x"},
			wantErr: "JWT_SECRET: is required"},
		{name: "short JWT secret", env: map[string]string{"JWT_SECRET": "short"}, wantErr: "JWT_SECRET: must be at least 32"},
		{name: "short metrics token", env: map[string]string{"METRICS_TOKEN": "a"}, wantErr: "METRICS_TOKEN: must be at least 16 characters, got 1"},
		{name: "no channel creation at all", env: map[string]string{"CHANNELS_PER_USER_HOUR": "0"}, wantErr: "CHANNELS_PER_USER_HOUR: must be at least 1"},
		{name: "tokens that never last", env: map[string]string{"TOKEN_TTL": "0s"}, wantErr: "TOKEN_TTL: must be a positive duration"},
		{name: "full cluster", env: map[string]string{"REDIS_STRING": "r", "KAFKA_BROKERS": "k1:9092, k2:9092", "DATABASE_URL": "postgres://x", "JWT_SECRET": secret},
			check: func(t *testing.T, c Config) {
				if c.Mode() != Clustered || len(c.Brokers()) != 2 || c.Brokers()[1] != "k2:9092" {
					t.Fatalf("unexpected: mode %s brokers %q", c.Mode(), c.Brokers())
				}
			}},
		{name: "bad bool names the variable", env: map[string]string{"REDIS_TLS": "perhaps"}, wantErr: "REDIS_TLS"},
		{name: "bad duration names the variable", env: map[string]string{"PING_INTERVAL": "soon"}, wantErr: "PING_INTERVAL"},
		{name: "bad frontend url", env: map[string]string{"FRONTEND_URL": "app.example.com"}, wantErr: "FRONTEND_URL"},
		{name: "SASL needs both halves", env: map[string]string{"REDIS_STRING": "r", "KAFKA_BROKERS": "k", "DATABASE_URL": "postgres://x", "JWT_SECRET": secret, "KAFKA_USERNAME": "u"},
			wantErr: "KAFKA_USERNAME"},
		{name: "database secret by ARN", env: map[string]string{"REDIS_STRING": "r", "KAFKA_BROKERS": "k", "DATABASE_URL": "postgres://app@db/quibly", "JWT_SECRET": secret,
			"DATABASE_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:quibly-small/db-app-20261203-AbCdEf"},
			check: func(t *testing.T, c Config) {
				if !strings.HasSuffix(c.DatabaseSecretARN, "AbCdEf") {
					t.Fatalf("DATABASE_SECRET_ARN = %q", c.DatabaseSecretARN)
				}
			}},
		{name: "database secret that is no secret id", env: map[string]string{"REDIS_STRING": "r", "KAFKA_BROKERS": "k", "DATABASE_URL": "postgres://x", "JWT_SECRET": secret,
			"DATABASE_SECRET_ARN": "arn:aws:s3:::bucket/key with space"}, wantErr: "DATABASE_SECRET_ARN"},
		{name: "admin secret that is no secret id", env: map[string]string{"REDIS_STRING": "r", "KAFKA_BROKERS": "k", "DATABASE_URL": "postgres://x", "JWT_SECRET": secret,
			"DATABASE_ADMIN_SECRET_ARN": "$(id)"}, wantErr: "DATABASE_ADMIN_SECRET_ARN"},
		{name: "shutdown above 30s", env: map[string]string{"SHUTDOWN_TIMEOUT": "45s"}, wantErr: "SHUTDOWN_TIMEOUT"},
		{name: "kafka topic with a slash", env: map[string]string{"KAFKA_TOPIC": "a/b"}, wantErr: "KAFKA_TOPIC"},
		{name: "zero partitions", env: map[string]string{"KAFKA_PARTITIONS": "0"}, wantErr: "KAFKA_PARTITIONS"},
		{name: "zero replication", env: map[string]string{"KAFKA_REPLICATION_FACTOR": "0"}, wantErr: "KAFKA_REPLICATION_FACTOR"},
		{name: "zero in-sync replicas", env: map[string]string{"KAFKA_MIN_INSYNC_REPLICAS": "0"}, wantErr: "KAFKA_MIN_INSYNC_REPLICAS"},
		{name: "consumer group with a space", env: map[string]string{"KAFKA_GROUP_ID": "batch writer"}, wantErr: "KAFKA_GROUP_ID"},
		{name: "one DB connection", env: map[string]string{"DB_MAX_CONNS": "1"}, wantErr: "DB_MAX_CONNS"},
		{name: "bad lease", env: map[string]string{"LEADER_LEASE": "0s"}, wantErr: "LEADER_LEASE"},
		{name: "small payload limit", env: map[string]string{"MAX_PAYLOAD_BYTES": "100"}, wantErr: "MAX_PAYLOAD_BYTES: must be at least 1024, got 100"},
		{name: "no connections per user", env: map[string]string{"MAX_CONNECTIONS_PER_USER": "0"}, wantErr: "MAX_CONNECTIONS_PER_USER: must be at least 1"},
		{name: "zero per-username login rate", env: map[string]string{"AUTH_USER_RATE": "0"}, wantErr: "AUTH_USER_RATE: must be positive"},
		{name: "zero send queue", env: map[string]string{"SEND_QUEUE_SIZE": "0"}, wantErr: "SEND_QUEUE_SIZE"},
		{name: "bad trusted proxy", env: map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8,proxy"}, wantErr: "TRUSTED_PROXIES"},
		{name: "clustered tuning defaults", check: func(t *testing.T, c Config) {
			if c.KafkaTopic != "quibly.messages" || c.KafkaPartitions != 12 || c.KafkaReplicationFactor != 3 || c.LeaderLease.Seconds() != 10 ||
				c.KafkaMinInsyncReplicas != 2 || c.KafkaGroupID != "quibly-batch-writer" {
				t.Fatalf("unexpected clustered defaults: %+v", c)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range keys() {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			c, err := Load("")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("want error containing %q, got %v", tt.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestEnvFileAndPrecedence(t *testing.T) {
	for _, k := range keys() {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	f := filepath.Join(t.TempDir(), ".env")
	if err := os.WriteFile(f, []byte("PORT=6001\nSERVER_ID=from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SERVER_ID", "from-env")
	c, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 6001 || c.ServerID != "from-env" {
		t.Fatalf("got port %d id %q", c.Port, c.ServerID)
	}
}

func TestRedactedHidesSecrets(t *testing.T) {
	for _, dbURL := range []string{
		"postgres://u:dbpass@h/db",
		"postgres://u@h/db?password=dbpass",       // a password as a parameter
		"host=h user=u password=dbpass dbname=db", // the key=value form pgx also takes
	} {
		c := Config{RedisPassword: "rp", KafkaPassword: "kp", JWTSecret: "js", DatabaseURL: dbURL, MetricsToken: "mt"}
		all := fmt.Sprintf("%+v", c.Redacted())
		for _, secret := range []string{"rp", "kp", "js", "dbpass", "mt"} {
			if strings.Contains(all, secret) {
				t.Errorf("secret %q visible in %q", secret, all)
			}
		}
	}
}

// The reference's configuration table names every variable the server reads.
func TestReferenceListsEveryVariable(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/REFERENCE.md")
	if err != nil {
		t.Fatal(err)
	}
	table := string(doc)[strings.Index(string(doc), "## Configuration"):]
	for _, k := range keys() {
		if !strings.Contains(table, "`"+k+"`") {
			t.Errorf("docs/REFERENCE.md, Configuration, does not list %s", k)
		}
	}
}
