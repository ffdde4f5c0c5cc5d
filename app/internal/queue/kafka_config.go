package queue

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// Defaults of KafkaConfig; a zero field takes its default.
const (
	DefaultKafkaTopic          = "quibly.messages"
	DefaultKafkaGroupID        = "quibly-batch-writer"
	DefaultKafkaClientID       = "quibly"
	DefaultKafkaPartitions     = 6
	DefaultKafkaReplication    = 3
	DefaultKafkaBatchTimeout   = 2 * time.Millisecond
	DefaultKafkaProduceTimeout = 5 * time.Second
	DefaultKafkaDialTimeout    = 5 * time.Second
	DefaultKafkaLagInterval    = 5 * time.Second
)

// KafkaConfig configures the Kafka producer and consumer. The environment
// variable a field comes from is named where there is one.
type KafkaConfig struct {
	// Brokers is the bootstrap list, host:port each (KAFKA_BROKERS).
	Brokers []string
	// Topic carries every chat message, keyed by channel.
	Topic string
	// Partitions and ReplicationFactor are used only when the topic is created;
	// the replication factor is capped at the number of live brokers.
	Partitions        int
	ReplicationFactor int
	// MinInSyncReplicas, when positive, is set on the topic at creation (capped at
	// the replication factor); zero keeps the cluster's default.
	MinInSyncReplicas int
	// Username and Password enable SASL/SCRAM-SHA-512 (KAFKA_USERNAME, KAFKA_PASSWORD).
	Username string
	Password string
	// TLS encrypts every connection (KAFKA_TLS). It is independent of SASL so that
	// local tests can use SCRAM over plaintext; MSK wants SCRAM over TLS, so set both
	// there.
	TLS bool
	// ClientID names this node in broker logs and quotas (e.g. "quibly-server-1").
	ClientID string
	// GroupID is the consumer group whose committed offsets track what is stored.
	GroupID string
	// BatchTimeout is how long the producer waits to fill a batch. kafka-go's
	// default of 1 s would be added to every send→ack; a few ms keeps acks fast
	// while concurrent sends still share a request.
	BatchTimeout time.Duration
	// ProduceTimeout bounds one Produce when the caller's context allows longer.
	ProduceTimeout time.Duration
	// DialTimeout bounds connecting (TCP, TLS and SASL) to one broker.
	DialTimeout time.Duration
	// LagInterval is how often the consumer refreshes Lag.
	LagInterval time.Duration
}

// String leaves the password out, so a logged config never leaks it.
func (c KafkaConfig) String() string {
	pw := ""
	if c.Password != "" {
		pw = "<redacted>"
	}
	return fmt.Sprintf("KafkaConfig{Brokers:%v Topic:%s Partitions:%d ReplicationFactor:%d Username:%s Password:%s TLS:%t GroupID:%s}",
		c.Brokers, c.Topic, c.Partitions, c.ReplicationFactor, c.Username, pw, c.TLS, c.GroupID)
}

func (c KafkaConfig) withDefaults() KafkaConfig {
	if c.Topic == "" {
		c.Topic = DefaultKafkaTopic
	}
	if c.GroupID == "" {
		c.GroupID = DefaultKafkaGroupID
	}
	if c.ClientID == "" {
		c.ClientID = DefaultKafkaClientID
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultKafkaPartitions
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = DefaultKafkaReplication
	}
	if c.BatchTimeout == 0 {
		c.BatchTimeout = DefaultKafkaBatchTimeout
	}
	if c.ProduceTimeout == 0 {
		c.ProduceTimeout = DefaultKafkaProduceTimeout
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultKafkaDialTimeout
	}
	if c.LagInterval == 0 {
		c.LagInterval = DefaultKafkaLagInterval
	}
	return c
}

var validTopic = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// Validate reports the first invalid field; zero fields are valid (they take defaults).
func (c KafkaConfig) Validate() error {
	c = c.withDefaults()
	if len(c.Brokers) == 0 {
		return errors.New("kafka: KAFKA_BROKERS is empty: give at least one host:port")
	}
	for _, b := range c.Brokers {
		host, port, err := net.SplitHostPort(strings.TrimSpace(b))
		if err != nil || host == "" {
			return fmt.Errorf("kafka: KAFKA_BROKERS entry %q is not host:port", b)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("kafka: KAFKA_BROKERS entry %q has an invalid port", b)
		}
	}
	if !validTopic.MatchString(c.Topic) || c.Topic == "." || c.Topic == ".." {
		return fmt.Errorf("kafka: topic %q is not a valid Kafka topic name", c.Topic)
	}
	if c.Partitions < 1 {
		return fmt.Errorf("kafka: Partitions must be at least 1, got %d", c.Partitions)
	}
	if c.ReplicationFactor < 1 || c.ReplicationFactor > 32767 {
		return fmt.Errorf("kafka: ReplicationFactor must be between 1 and 32767, got %d", c.ReplicationFactor)
	}
	if c.MinInSyncReplicas < 0 || c.MinInSyncReplicas > c.ReplicationFactor {
		return fmt.Errorf("kafka: MinInSyncReplicas must be between 0 and ReplicationFactor (%d), got %d", c.ReplicationFactor, c.MinInSyncReplicas)
	}
	if (c.Username == "") != (c.Password == "") {
		return errors.New("kafka: KAFKA_USERNAME and KAFKA_PASSWORD must be set together")
	}
	for name, d := range map[string]time.Duration{"BatchTimeout": c.BatchTimeout, "ProduceTimeout": c.ProduceTimeout,
		"DialTimeout": c.DialTimeout, "LagInterval": c.LagInterval} {
		if d < 0 {
			return fmt.Errorf("kafka: %s must not be negative, got %v", name, d)
		}
	}
	return nil
}

// saslMechanism is SCRAM-SHA-512 when credentials are set, as MSK requires.
func (c KafkaConfig) saslMechanism() (sasl.Mechanism, error) {
	if c.Username == "" {
		return nil, nil
	}
	m, err := scram.Mechanism(scram.SHA512, c.Username, c.Password)
	if err != nil {
		return nil, fmt.Errorf("kafka: building SASL/SCRAM-SHA-512 for user %q: %w", c.Username, err)
	}
	return m, nil
}

func (c KafkaConfig) tlsConfig() *tls.Config {
	if !c.TLS {
		return nil
	}
	return &tls.Config{MinVersion: tls.VersionTLS12}
}
