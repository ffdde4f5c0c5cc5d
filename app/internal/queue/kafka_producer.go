package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/retry"
	"github.com/segmentio/kafka-go"
)

var _ Producer = (*KafkaProducer)(nil)

// kafkaRecord is the Kafka record value: the message's fields as clients see them,
// plus its exact time (model.Message keeps CreatedAt out of JSON, and clients get ts
// in milliseconds, but the store needs all of it).
type kafkaRecord struct {
	model.Message
	TS time.Time `json:"ts"`
}

func encodeMessage(m model.Message) ([]byte, error) {
	return json.Marshal(kafkaRecord{Message: m, TS: m.CreatedAt.UTC()})
}

func decodeMessage(b []byte) (model.Message, error) {
	var r kafkaRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return model.Message{}, err
	}
	if r.ID == "" || r.ChannelID == "" {
		return model.Message{}, errors.New("message without id or channelId")
	}
	m := r.Message
	m.CreatedAt = r.TS.UTC()
	return m, nil
}

// KafkaProducer writes messages to Kafka, keyed by channel so that one channel's
// messages stay in order on one partition.
type KafkaProducer struct {
	kc     *kafkaConn
	tr     *kafka.Transport
	writer *kafka.Writer
	closed atomic.Bool
}

// NewKafkaProducer ensures the topic exists and returns a producer. Produce
// returns once all in-sync replicas acked.
func NewKafkaProducer(ctx context.Context, cfg KafkaConfig, log *slog.Logger) (*KafkaProducer, error) {
	p, err := newKafkaProducer(cfg, log)
	if err != nil {
		return nil, err
	}
	if err := p.kc.ensureTopic(ctx); err != nil {
		_ = p.writer.Close()
		return nil, err
	}
	return p, nil
}

// newKafkaProducer builds the writer without touching the network.
func newKafkaProducer(cfg KafkaConfig, log *slog.Logger) (*KafkaProducer, error) {
	kc, err := newKafkaConn(cfg, log)
	if err != nil {
		return nil, err
	}
	tr := kc.transport()
	w := &kafka.Writer{
		Addr:         kafka.TCP(kc.cfg.Brokers...),
		Topic:        kc.cfg.Topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: kc.cfg.BatchTimeout,
		Async:        false,
		// Retries stay within ProduceTimeout, which bounds every Produce.
		MaxAttempts:     10,
		WriteBackoffMin: 20 * time.Millisecond,
		WriteBackoffMax: 500 * time.Millisecond,
		ErrorLogger:     kc.errorLogger(),
		Transport:       tr,
	}
	return &KafkaProducer{kc: kc, tr: tr, writer: w}, nil
}

// Produce returns nil only when Kafka acked msg; on error or timeout the message
// may still have been written, and the client's retry with the same nonce is
// deduplicated by the store.
func (p *KafkaProducer) Produce(ctx context.Context, msg model.Message) error {
	if p.closed.Load() {
		return ErrClosed
	}
	if msg.ChannelID == "" {
		return fmt.Errorf("kafka: message %s has no channel id to key it by", msg.ID)
	}
	value, err := encodeMessage(msg)
	if err != nil {
		return fmt.Errorf("kafka: encoding message %s: %w", msg.ID, err)
	}
	ctx, cancel := withTimeout(ctx, p.kc.cfg.ProduceTimeout)
	defer cancel()
	record := kafka.Message{Key: []byte(msg.ChannelID), Value: value, Time: msg.CreatedAt}
	wait := retry.Backoff{Initial: 25 * time.Millisecond, Max: 250 * time.Millisecond}
	for {
		err = p.writer.WriteMessages(ctx, record)
		if err == nil {
			return nil
		}
		if errors.Is(err, io.ErrClosedPipe) {
			return ErrClosed
		}
		// The writer retries broker errors itself but fails at once when it cannot
		// reach a broker for metadata; a broker restart should not cost a send, so
		// retry within the timeout (a duplicate is deduplicated by the store).
		if permanentProduceError(err) || !retry.Sleep(ctx, wait.Next()) {
			return fmt.Errorf("kafka: producing message %s to %s: %w", msg.ID, p.kc.cfg.Topic, err)
		}
	}
}

// permanentProduceError reports errors a retry cannot fix.
func permanentProduceError(err error) bool {
	var we kafka.WriteErrors
	if errors.As(err, &we) && len(we) == 1 {
		err = we[0]
	}
	var tooLarge kafka.MessageTooLargeError
	var kerr kafka.Error
	return errors.As(err, &tooLarge) || (errors.As(err, &kerr) && !kerr.Temporary()) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// Ping checks that the cluster answers and the topic's partitions have leaders.
func (p *KafkaProducer) Ping(ctx context.Context) error { return p.kc.ping(ctx) }

// Close waits for in-flight batches and refuses new messages.
func (p *KafkaProducer) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	err := p.writer.Close()
	p.tr.CloseIdleConnections()
	return err
}
