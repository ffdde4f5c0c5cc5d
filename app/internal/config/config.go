// Package config loads Quibly's configuration from the environment and an optional
// .env file through one viper instance into one typed, validated struct.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/spf13/viper"

	"github.com/quibly/quibly/app/internal/clientip"
	"github.com/quibly/quibly/app/internal/redact"
)

// Mode is how the node runs.
type Mode string

const (
	// Standalone is one process with in-process backends and SQLite.
	Standalone Mode = "standalone"
	// Clustered uses Redis, Kafka and PostgreSQL.
	Clustered Mode = "clustered"
)

// Config is every setting of a Quibly node.
type Config struct {
	ServerID string `mapstructure:"SERVER_ID"`
	Port     int    `mapstructure:"PORT"`
	DataDir  string `mapstructure:"DATA_DIR"`
	LogLevel string `mapstructure:"LOG_LEVEL"`

	DatabaseURL string `mapstructure:"DATABASE_URL"`
	// DatabaseSecretARN names a Secrets Manager secret ({"username", "password"}) that
	// gives the login of each new database connection in place of DATABASE_URL's, so a
	// rotated password reaches a running server.
	DatabaseSecretARN string `mapstructure:"DATABASE_SECRET_ARN"`
	// DatabaseAdminSecretARN names the secret of the database's master user, read only
	// by `quibly -setup-db` to create the app's role (never by the server).
	DatabaseAdminSecretARN string `mapstructure:"DATABASE_ADMIN_SECRET_ARN"`
	RedisString            string `mapstructure:"REDIS_STRING"`
	RedisPort              int    `mapstructure:"REDIS_PORT_NO"`
	RedisPassword          string `mapstructure:"REDIS_PASSWORD"`
	RedisTLS               bool   `mapstructure:"REDIS_TLS"`
	KafkaBrokers           string `mapstructure:"KAFKA_BROKERS"`
	KafkaUsername          string `mapstructure:"KAFKA_USERNAME"`
	KafkaPassword          string `mapstructure:"KAFKA_PASSWORD"`
	KafkaTLS               bool   `mapstructure:"KAFKA_TLS"`
	// RedisCluster talks the Redis cluster protocol (ElastiCache cluster mode).
	RedisCluster bool `mapstructure:"REDIS_CLUSTER"`
	// The topic is created at start when missing (brokers don't auto-create).
	KafkaTopic             string `mapstructure:"KAFKA_TOPIC"`
	KafkaPartitions        int    `mapstructure:"KAFKA_PARTITIONS"`
	KafkaReplicationFactor int    `mapstructure:"KAFKA_REPLICATION_FACTOR"`
	// KafkaMinInsyncReplicas is the topic's min.insync.replicas when it is created: how
	// many replicas must have a message before it is acked (capped at the replication
	// the topic gets).
	KafkaMinInsyncReplicas int `mapstructure:"KAFKA_MIN_INSYNC_REPLICAS"`
	// KafkaGroupID is the batch writer's consumer group: its committed offsets are
	// what the store holds.
	KafkaGroupID string `mapstructure:"KAFKA_GROUP_ID"`
	DBMaxConns   int    `mapstructure:"DB_MAX_CONNS"`
	// LeaderLease is how long a dead batch-writer leader blocks a successor.
	LeaderLease time.Duration `mapstructure:"LEADER_LEASE"`

	FrontendURL string `mapstructure:"FRONTEND_URL"`
	JWTSecret   string `mapstructure:"JWT_SECRET"`

	// Limits.
	MaxMessageChars int           `mapstructure:"MAX_MESSAGE_CHARS"`
	MaxPayloadBytes int           `mapstructure:"MAX_PAYLOAD_BYTES"`
	MessageRate     float64       `mapstructure:"MESSAGE_RATE"`
	MessageBurst    int           `mapstructure:"MESSAGE_BURST"`
	SendQueueSize   int           `mapstructure:"SEND_QUEUE_SIZE"`
	PingInterval    time.Duration `mapstructure:"PING_INTERVAL"`
	PingTimeout     time.Duration `mapstructure:"PING_TIMEOUT"`
	RecoveryWindow  time.Duration `mapstructure:"RECOVERY_WINDOW"`
	ShutdownTimeout time.Duration `mapstructure:"SHUTDOWN_TIMEOUT"`
	// HTTPReadTimeout bounds reading one request, body included (a stalled upload).
	HTTPReadTimeout time.Duration `mapstructure:"HTTP_READ_TIMEOUT"`
	// HTTPIdleTimeout closes a keep-alive connection idle that long; keep it above the
	// load balancer's idle timeout, so the balancer never reuses a connection the
	// server is closing.
	HTTPIdleTimeout time.Duration `mapstructure:"HTTP_IDLE_TIMEOUT"`

	// Login and register attempts per client address (AuthRate per second after
	// AuthBurst at once) and login attempts per username.
	AuthRate      float64 `mapstructure:"AUTH_RATE"`
	AuthBurst     int     `mapstructure:"AUTH_BURST"`
	AuthUserRate  float64 `mapstructure:"AUTH_USER_RATE"`
	AuthUserBurst int     `mapstructure:"AUTH_USER_BURST"`
	// Channels one user may create in an hour (a burst, refilled over the hour) and
	// all users on one node in a minute.
	ChannelsPerUserHour   int `mapstructure:"CHANNELS_PER_USER_HOUR"`
	ChannelsPerNodeMinute int `mapstructure:"CHANNELS_PER_NODE_MINUTE"`
	// DMsPerUserHour bounds the direct-message channels one user opens in an hour;
	// MaxChannelMembers the members of one channel.
	DMsPerUserHour    int `mapstructure:"DMS_PER_USER_HOUR"`
	MaxChannelMembers int `mapstructure:"MAX_CHANNEL_MEMBERS"`
	// TokenTTL is how long a token from login or register admits its user; a socket
	// ends when its token expires.
	TokenTTL time.Duration `mapstructure:"TOKEN_TTL"`
	// Connections one client address, and one user, may hold on a node.
	MaxConnsPerIP   int `mapstructure:"MAX_CONNECTIONS_PER_IP"`
	MaxConnsPerUser int `mapstructure:"MAX_CONNECTIONS_PER_USER"`
	// TrustedProxies (comma-separated CIDRs) are the load balancers whose
	// X-Forwarded-For names the client; the stacks set the VPC's block.
	TrustedProxies string `mapstructure:"TRUSTED_PROXIES"`

	// CloudWatchNamespace, when set (the stacks set Quibly/<name>), is where the
	// counters the stacks alarm on are copied every minute.
	CloudWatchNamespace string `mapstructure:"CLOUDWATCH_NAMESPACE"`
	// MetricsToken, when set, lets a scraper elsewhere read /metrics with
	// "Authorization: Bearer <token>"; without it only this host may.
	MetricsToken string `mapstructure:"METRICS_TOKEN"`

	// PprofAddr, when set (e.g. 127.0.0.1:6060), serves net/http/pprof there for
	// profiling; keep it on localhost. Empty (the default) serves nothing.
	PprofAddr string `mapstructure:"PPROF_ADDR"`
}

var defaults = map[string]any{
	"PORT":             5000,
	"DATA_DIR":         "data",
	"LOG_LEVEL":        "info",
	"REDIS_PORT_NO":    6379,
	"REDIS_TLS":        false,
	"KAFKA_TLS":        false,
	"REDIS_CLUSTER":    false,
	"KAFKA_TOPIC":      "quibly.messages",
	"KAFKA_PARTITIONS": 12,
	// Capped at start by the brokers present; 3 with min.insync.replicas 2 on MSK.
	"KAFKA_REPLICATION_FACTOR":  3,
	"KAFKA_MIN_INSYNC_REPLICAS": 2,
	"KAFKA_GROUP_ID":            "quibly-batch-writer",
	"DB_MAX_CONNS":              20,
	"LEADER_LEASE":              "10s",
	"MAX_MESSAGE_CHARS":         4000,
	"MAX_PAYLOAD_BYTES":         1_000_000,
	"MESSAGE_RATE":              10.0,
	"MESSAGE_BURST":             20,
	"SEND_QUEUE_SIZE":           256,
	"PING_INTERVAL":             "25s",
	"PING_TIMEOUT":              "20s",
	"RECOVERY_WINDOW":           "2m",
	"SHUTDOWN_TIMEOUT":          "25s",
	"HTTP_READ_TIMEOUT":         "30s",
	"HTTP_IDLE_TIMEOUT":         "180s",
	"PPROF_ADDR":                "",
	"METRICS_TOKEN":             "",
	"CLOUDWATCH_NAMESPACE":      "",
	"AUTH_RATE":                 1.0,
	"AUTH_BURST":                30,
	"AUTH_USER_RATE":            0.2,
	"AUTH_USER_BURST":           10,
	"TRUSTED_PROXIES":           "",
	"MAX_CONNECTIONS_PER_IP":    1000,
	"MAX_CONNECTIONS_PER_USER":  50,
	"CHANNELS_PER_USER_HOUR":    20,
	"CHANNELS_PER_NODE_MINUTE":  60,
	"DMS_PER_USER_HOUR":         60,
	"MAX_CHANNEL_MEMBERS":       1000,
	"TOKEN_TTL":                 "168h",
}

// MinMetricsTokenLen is the shortest METRICS_TOKEN: it guards /metrics from the whole
// network, so it must not be guessable.
const MinMetricsTokenLen = 16

// Load reads the environment and, when present, envFile (ignored when it does not
// exist), and validates the result. Environment variables win over the file.
func Load(envFile string) (Config, error) {
	cfg, err := Read(envFile)
	if err != nil {
		return Config{}, err
	}
	return cfg, cfg.Validate()
}

// Read is Load without the validation, for a command that needs only some settings.
func Read(envFile string) (Config, error) {
	v := viper.New()
	for k, d := range defaults {
		v.SetDefault(k, d)
	}
	for _, k := range keys() {
		if err := v.BindEnv(k); err != nil {
			return Config{}, err
		}
	}
	if envFile != "" {
		if _, err := os.Stat(envFile); err == nil {
			v.SetConfigFile(envFile)
			v.SetConfigType("env")
			if err := v.ReadInConfig(); err != nil {
				return Config{}, fmt.Errorf("reading %s: %w", envFile, err)
			}
		}
	}
	var cfg Config
	// mapstructure's errors name the key ('PORT' cannot parse value ...), which is the variable.
	if err := v.Unmarshal(&cfg); err != nil {
		return Config{}, fmt.Errorf("invalid configuration: %w", err)
	}
	if cfg.ServerID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "server"
		}
		cfg.ServerID = host
	}
	return cfg, nil
}

// secretID is what Secrets Manager accepts as a SecretId: an ARN or a name.
var secretID = regexp.MustCompile(`^(arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:)?[A-Za-z0-9/_+=.@!-]{1,512}$`)

// Mode reports standalone or clustered from which backends are configured.
func (c Config) Mode() Mode {
	if c.DatabaseURL != "" || c.RedisString != "" || c.KafkaBrokers != "" {
		return Clustered
	}
	return Standalone
}

// Brokers returns the Kafka bootstrap list.
func (c Config) Brokers() []string {
	var out []string
	for _, b := range strings.Split(c.KafkaBrokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// Validate checks every value and names the variable at fault.
func (c Config) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	if c.Port < 1 || c.Port > 65535 {
		bad("PORT", "must be between 1 and 65535, got %d", c.Port)
	}
	if c.RedisPort < 1 || c.RedisPort > 65535 {
		bad("REDIS_PORT_NO", "must be between 1 and 65535, got %d", c.RedisPort)
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		bad("LOG_LEVEL", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.FrontendURL != "" {
		u, err := url.Parse(c.FrontendURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("FRONTEND_URL", "must be an http(s) origin like https://app.example.com, got %q", c.FrontendURL)
		}
	}
	if c.Mode() == Clustered {
		var missing []string
		for name, val := range map[string]string{"DATABASE_URL": c.DatabaseURL, "REDIS_STRING": c.RedisString, "KAFKA_BROKERS": c.KafkaBrokers} {
			if val == "" {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			sort.Strings(missing)
			errs = append(errs, fmt.Errorf("clustered mode needs DATABASE_URL, REDIS_STRING and KAFKA_BROKERS together; missing %s", strings.Join(missing, ", ")))
		}
		if c.JWTSecret == "" {
			bad("JWT_SECRET", "is required in clustered mode (every node must sign tokens with the same secret)")
		}
		if c.DatabaseSecretARN != "" && !secretID.MatchString(c.DatabaseSecretARN) {
			bad("DATABASE_SECRET_ARN", "must be a Secrets Manager secret ARN or name, got %q", c.DatabaseSecretARN)
		}
		if c.DatabaseAdminSecretARN != "" && !secretID.MatchString(c.DatabaseAdminSecretARN) {
			bad("DATABASE_ADMIN_SECRET_ARN", "must be a Secrets Manager secret ARN or name, got %q", c.DatabaseAdminSecretARN)
		}
		if (c.KafkaUsername == "") != (c.KafkaPassword == "") {
			bad("KAFKA_USERNAME", "and KAFKA_PASSWORD must be set together")
		}
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		bad("JWT_SECRET", "must be at least 32 characters")
	}
	if c.MetricsToken != "" && len(c.MetricsToken) < MinMetricsTokenLen {
		// The length is safe to report; the token itself never is.
		bad("METRICS_TOKEN", "must be at least %d characters, got %d", MinMetricsTokenLen, len(c.MetricsToken))
	}
	if c.KafkaTopic == "" || strings.ContainsAny(c.KafkaTopic, " /\\,") {
		bad("KAFKA_TOPIC", "must be a topic name without spaces, slashes or commas, got %q", c.KafkaTopic)
	}
	if c.KafkaGroupID == "" || strings.ContainsAny(c.KafkaGroupID, " /\\,") {
		bad("KAFKA_GROUP_ID", "must be a consumer group name without spaces, slashes or commas, got %q", c.KafkaGroupID)
	}
	if _, err := clientip.Parse(c.TrustedProxies); err != nil {
		bad("TRUSTED_PROXIES", "%v", err)
	}
	for _, n := range []struct {
		name       string
		value, min int
	}{
		{"KAFKA_PARTITIONS", c.KafkaPartitions, 1}, {"KAFKA_REPLICATION_FACTOR", c.KafkaReplicationFactor, 1},
		{"KAFKA_MIN_INSYNC_REPLICAS", c.KafkaMinInsyncReplicas, 1}, {"DB_MAX_CONNS", c.DBMaxConns, 2},
		{"MAX_MESSAGE_CHARS", c.MaxMessageChars, 1}, {"MAX_PAYLOAD_BYTES", c.MaxPayloadBytes, 1024},
		{"MESSAGE_BURST", c.MessageBurst, 1}, {"AUTH_BURST", c.AuthBurst, 1}, {"AUTH_USER_BURST", c.AuthUserBurst, 1},
		{"MAX_CONNECTIONS_PER_IP", c.MaxConnsPerIP, 1}, {"MAX_CONNECTIONS_PER_USER", c.MaxConnsPerUser, 1},
		{"SEND_QUEUE_SIZE", c.SendQueueSize, 1},
		{"CHANNELS_PER_USER_HOUR", c.ChannelsPerUserHour, 1}, {"CHANNELS_PER_NODE_MINUTE", c.ChannelsPerNodeMinute, 1},
		{"DMS_PER_USER_HOUR", c.DMsPerUserHour, 1}, {"MAX_CHANNEL_MEMBERS", c.MaxChannelMembers, 2},
	} {
		if n.value < n.min {
			bad(n.name, "must be at least %d, got %d", n.min, n.value)
		}
	}
	for name, rate := range map[string]float64{"MESSAGE_RATE": c.MessageRate, "AUTH_RATE": c.AuthRate, "AUTH_USER_RATE": c.AuthUserRate} {
		if rate <= 0 {
			bad(name, "must be positive, got %v", rate)
		}
	}
	for name, d := range map[string]time.Duration{"PING_INTERVAL": c.PingInterval, "PING_TIMEOUT": c.PingTimeout,
		"RECOVERY_WINDOW": c.RecoveryWindow, "SHUTDOWN_TIMEOUT": c.ShutdownTimeout, "LEADER_LEASE": c.LeaderLease,
		"HTTP_READ_TIMEOUT": c.HTTPReadTimeout, "HTTP_IDLE_TIMEOUT": c.HTTPIdleTimeout, "TOKEN_TTL": c.TokenTTL} {
		if d <= 0 {
			bad(name, "must be a positive duration like 25s, got %v", d)
		}
	}
	if c.ShutdownTimeout > 30*time.Second {
		bad("SHUTDOWN_TIMEOUT", "must be at most 30s so a drain fits the load balancer's deregistration delay, got %v", c.ShutdownTimeout)
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errors.Join(errs...)
}

// Redacted returns the config with secrets replaced, for logging.
func (c Config) Redacted() Config {
	hide := func(s string) string {
		if s == "" {
			return ""
		}
		return "[redacted]"
	}
	c.RedisPassword = hide(c.RedisPassword)
	c.KafkaPassword = hide(c.KafkaPassword)
	c.JWTSecret = hide(c.JWTSecret)
	c.MetricsToken = hide(c.MetricsToken)
	c.DatabaseURL = redact.DatabaseURL(c.DatabaseURL)
	return c
}

// keys lists every variable name, taken from the struct tags so the two cannot drift.
func keys() []string {
	t := reflect.TypeOf(Config{})
	out := make([]string, 0, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		out = append(out, t.Field(i).Tag.Get("mapstructure"))
	}
	return out
}
