package queue

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/quibly/quibly/app/internal/retry"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
)

// kafkaConn holds what every client of the cluster needs.
type kafkaConn struct {
	cfg    KafkaConfig
	sasl   sasl.Mechanism
	tls    *tls.Config
	log    *slog.Logger
	dialer *kafka.Dialer
}

func newKafkaConn(cfg KafkaConfig, log *slog.Logger) (*kafkaConn, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	mech, err := cfg.saslMechanism()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kc := &kafkaConn{cfg: cfg, sasl: mech, tls: cfg.tlsConfig(), log: log.With("component", "kafka", "topic", cfg.Topic)}
	kc.dialer = &kafka.Dialer{ClientID: cfg.ClientID, Timeout: cfg.DialTimeout, DualStack: true, TLS: kc.tls, SASLMechanism: mech}
	return kc, nil
}

// transport returns a new connection pool. Its metadata is cached, so checks that
// must see the cluster as it is now (topic creation, health) use a fresh one.
func (kc *kafkaConn) transport() *kafka.Transport {
	return &kafka.Transport{
		Dial:           (&net.Dialer{Timeout: kc.cfg.DialTimeout}).DialContext,
		DialTimeout:    kc.cfg.DialTimeout,
		ClientID:       kc.cfg.ClientID,
		TLS:            kc.tls,
		SASL:           kc.sasl,
		MetadataTopics: []string{kc.cfg.Topic},
	}
}

func (kc *kafkaConn) client(t *kafka.Transport) *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(kc.cfg.Brokers...), Transport: t, Timeout: 10 * time.Second}
}

// errorLogger routes kafka-go's retry noise to our logger at warn level.
func (kc *kafkaConn) errorLogger() kafka.Logger {
	return kafka.LoggerFunc(func(format string, args ...any) {
		kc.log.Warn(fmt.Sprintf(format, args...))
	})
}

// withTimeout bounds ctx by d unless it already ends sooner.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// retryTemporary runs op until it succeeds, fails for good, or ctx ends. Group and
// offset requests fail briefly while a coordinator or partition leader moves or
// loads (NOT_COORDINATOR, NOT_LEADER_OR_FOLLOWER, …); kafka-go marks those temporary.
func retryTemporary(ctx context.Context, op func() error) error {
	wait := retry.Backoff{Initial: 20 * time.Millisecond, Max: 500 * time.Millisecond}
	for {
		err := op()
		var kerr kafka.Error
		if err == nil || !errors.As(err, &kerr) || !kerr.Temporary() {
			return err
		}
		if !retry.Sleep(ctx, wait.Next()) {
			return err
		}
	}
}

// EnsureKafkaTopic creates the topic unless it exists (automatic topic creation is
// off here and on MSK), then waits until every partition has a leader. Nodes that
// start together may all call it: "already exists" is success.
func EnsureKafkaTopic(ctx context.Context, cfg KafkaConfig) error {
	kc, err := newKafkaConn(cfg, nil)
	if err != nil {
		return err
	}
	return kc.ensureTopic(ctx)
}

func (kc *kafkaConn) ensureTopic(ctx context.Context) error {
	ctx, cancel := withTimeout(ctx, 30*time.Second)
	defer cancel()
	topic := kc.cfg.Topic
	meta, err := kc.freshMetadata(ctx)
	if err != nil {
		return fmt.Errorf("kafka: reading cluster metadata from %v: %w", kc.cfg.Brokers, err)
	}
	t := findTopic(meta, topic)
	if t == nil || errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
		replicas := min(kc.cfg.ReplicationFactor, len(meta.Brokers))
		if replicas < 1 {
			return fmt.Errorf("kafka: creating topic %q: the cluster reports no live brokers", topic)
		}
		if err := kc.createTopic(ctx, replicas); err != nil {
			return err
		}
	} else if t.Error != nil {
		return fmt.Errorf("kafka: topic %q: %w", topic, t.Error)
	}
	return kc.waitForLeaders(ctx)
}

func (kc *kafkaConn) createTopic(ctx context.Context, replicas int) error {
	tc := kafka.TopicConfig{Topic: kc.cfg.Topic, NumPartitions: kc.cfg.Partitions, ReplicationFactor: replicas}
	if isr := min(kc.cfg.MinInSyncReplicas, replicas); isr > 0 {
		tc.ConfigEntries = []kafka.ConfigEntry{{ConfigName: "min.insync.replicas", ConfigValue: strconv.Itoa(isr)}}
	}
	tr := kc.transport()
	defer tr.CloseIdleConnections()
	// The transport sends CreateTopics to the controller.
	res, err := kc.client(tr).CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{tc}})
	if err == nil {
		err = res.Errors[kc.cfg.Topic]
	}
	if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("kafka: creating topic %q with %d partitions and replication factor %d: %w",
			kc.cfg.Topic, kc.cfg.Partitions, replicas, err)
	}
	if err == nil {
		kc.log.Info("created kafka topic", "partitions", kc.cfg.Partitions, "replication_factor", replicas)
	}
	return nil
}

// waitForLeaders polls until the topic's partitions all have leaders: creation is
// asynchronous, and the first produce would otherwise fail.
func (kc *kafkaConn) waitForLeaders(ctx context.Context) error {
	for {
		err := kc.checkTopic(ctx)
		if err == nil {
			return nil
		}
		if !retry.Sleep(ctx, 100*time.Millisecond) {
			return fmt.Errorf("kafka: topic %q is not ready: %w", kc.cfg.Topic, err)
		}
	}
}

// checkTopic reads live metadata and fails unless the topic exists and every
// partition has a leader.
func (kc *kafkaConn) checkTopic(ctx context.Context) error {
	meta, err := kc.freshMetadata(ctx)
	if err != nil {
		return err
	}
	t := findTopic(meta, kc.cfg.Topic)
	switch {
	case t == nil:
		return kafka.UnknownTopicOrPartition
	case t.Error != nil:
		return t.Error
	case len(t.Partitions) == 0:
		return errors.New("topic has no partitions")
	}
	for _, p := range t.Partitions {
		if p.Error != nil && !errors.Is(p.Error, kafka.ReplicaNotAvailable) {
			return fmt.Errorf("partition %d: %w", p.ID, p.Error)
		}
		if p.Leader.Host == "" {
			return fmt.Errorf("partition %d has no leader", p.ID)
		}
	}
	return nil
}

func (kc *kafkaConn) freshMetadata(ctx context.Context) (*kafka.MetadataResponse, error) {
	tr := kc.transport()
	defer tr.CloseIdleConnections()
	return kc.client(tr).Metadata(ctx, &kafka.MetadataRequest{Topics: []string{kc.cfg.Topic}})
}

func findTopic(meta *kafka.MetadataResponse, name string) *kafka.Topic {
	for i := range meta.Topics {
		if meta.Topics[i].Name == name {
			return &meta.Topics[i]
		}
	}
	return nil
}

// ping is the health check: live metadata, topic present, all partitions led.
func (kc *kafkaConn) ping(ctx context.Context) error {
	ctx, cancel := withTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := kc.checkTopic(ctx); err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	return nil
}
