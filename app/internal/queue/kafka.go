package queue

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/quibly/quibly/app/internal/model"
)

var (
	_ Producer = (*KafkaProducer)(nil)
	_ Consumer = (*KafkaConsumer)(nil)
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
	backoff := 20 * time.Millisecond
	for {
		err := op()
		var kerr kafka.Error
		if err == nil || !errors.As(err, &kerr) || !kerr.Temporary() {
			return err
		}
		if !sleepCtx(ctx, backoff) {
			return err
		}
		backoff = min(2*backoff, 500*time.Millisecond)
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
		if !sleepCtx(ctx, 100*time.Millisecond) {
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

// wireMessage is the Kafka record value. model.Message hides CreatedAt from JSON
// (clients get ts in milliseconds), but the store needs the exact time.
type wireMessage struct {
	ID        string    `json:"id"`
	ChannelID string    `json:"channelId"`
	AuthorID  string    `json:"authorId"`
	Author    string    `json:"author"`
	Text      string    `json:"text"`
	Nonce     string    `json:"nonce,omitempty"`
	TS        time.Time `json:"ts"`
}

func encodeMessage(m model.Message) ([]byte, error) {
	return json.Marshal(wireMessage{ID: m.ID, ChannelID: m.ChannelID, AuthorID: m.AuthorID, Author: m.Author,
		Text: m.Text, Nonce: m.Nonce, TS: m.CreatedAt.UTC()})
}

func decodeMessage(b []byte) (model.Message, error) {
	var w wireMessage
	if err := json.Unmarshal(b, &w); err != nil {
		return model.Message{}, err
	}
	if w.ID == "" || w.ChannelID == "" {
		return model.Message{}, errors.New("message without id or channelId")
	}
	return model.Message{ID: w.ID, ChannelID: w.ChannelID, AuthorID: w.AuthorID, Author: w.Author,
		Text: w.Text, Nonce: w.Nonce, CreatedAt: w.TS.UTC()}, nil
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
	backoff := 25 * time.Millisecond
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
		if permanentProduceError(err) || !sleepCtx(ctx, backoff) {
			return fmt.Errorf("kafka: producing message %s to %s: %w", msg.ID, p.kc.cfg.Topic, err)
		}
		backoff = min(2*backoff, 250*time.Millisecond)
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

// sleepCtx waits d unless ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
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

// KafkaConsumer feeds the batch writer. It reads every partition of the topic with
// its own reader and records progress as the consumer group's committed offsets,
// without joining the group: leadership comes from the elector, so there is no
// rebalance to wait for and a new leader reads from the committed offsets at once.
// Two leaders overlapping for a moment read the same messages twice, which the
// idempotent store absorbs; a commit only ever covers stored messages.
//
// One KafkaConsumer lives as long as the node. Fetch opens the readers lazily, from
// the committed offsets; when a Fetch's context ends (leadership lost) it closes
// them, so the next term starts again from what is committed. Lag is refreshed in
// the background on every node, leader or not.
type KafkaConsumer struct {
	kc     *kafkaConn
	tr     *kafka.Transport
	client *kafka.Client

	mu      sync.Mutex
	session *readSession
	closed  bool

	lag       atomic.Int64
	stopLag   context.CancelFunc
	lagDone   chan struct{}
	closeOnce sync.Once
}

// readSession is one leadership term's set of partition readers.
type readSession struct {
	ctx     context.Context
	cancel  context.CancelFunc
	readers []*kafka.Reader
	msgs    chan kafka.Message
	errs    chan error
	wg      sync.WaitGroup
}

// kafkaToken is what Commit needs: per partition, the offset after the last message.
type kafkaToken struct{ next map[int]int64 }

// NewKafkaConsumer ensures the topic exists and starts refreshing Lag; it opens no
// reader until the first Fetch.
func NewKafkaConsumer(ctx context.Context, cfg KafkaConfig, log *slog.Logger) (*KafkaConsumer, error) {
	kc, err := newKafkaConn(cfg, log)
	if err != nil {
		return nil, err
	}
	if err := kc.ensureTopic(ctx); err != nil {
		return nil, err
	}
	tr := kc.transport()
	lctx, stop := context.WithCancel(context.Background())
	c := &KafkaConsumer{kc: kc, tr: tr, client: kc.client(tr), stopLag: stop, lagDone: make(chan struct{})}
	go c.refreshLagLoop(lctx)
	return c, nil
}

// Fetch waits for at least one message and returns up to max without waiting to
// fill the batch.
func (c *KafkaConsumer) Fetch(ctx context.Context, max int) (Batch, error) {
	if max < 1 {
		return Batch{}, fmt.Errorf("kafka: Fetch max must be positive, got %d", max)
	}
	for {
		s, err := c.openSession(ctx)
		if err != nil {
			return Batch{}, err
		}
		var raw []kafka.Message
		select {
		case m := <-s.msgs:
			raw = append(raw, m)
		case err := <-s.errs:
			c.endSession(s)
			return Batch{}, err
		case <-ctx.Done():
			// Leadership lost (or shutdown): release the readers; the next term
			// starts from the committed offsets.
			c.endSession(s)
			return Batch{}, ctx.Err()
		case <-s.ctx.Done():
			return Batch{}, ErrClosed
		}
	more:
		for len(raw) < max {
			select {
			case m := <-s.msgs:
				raw = append(raw, m)
			default:
				break more
			}
		}
		b := c.decode(raw)
		if len(b.Messages) > 0 {
			return b, nil
		}
		// Only undecodable records: commit past them so they do not block the queue.
		if err := c.Commit(ctx, b); err != nil {
			return Batch{}, err
		}
	}
}

func (c *KafkaConsumer) decode(raw []kafka.Message) Batch {
	tok := kafkaToken{next: map[int]int64{}}
	msgs := make([]model.Message, 0, len(raw))
	for _, r := range raw {
		tok.next[r.Partition] = max(tok.next[r.Partition], r.Offset+1)
		m, err := decodeMessage(r.Value)
		if err != nil {
			// Not written by Quibly's producer: nothing can store it. Skipping loudly
			// beats stopping every later message.
			c.kc.log.Error("skipping undecodable kafka record", "partition", r.Partition, "offset", r.Offset, "err", err)
			continue
		}
		msgs = append(msgs, m)
	}
	return Batch{Messages: msgs, Token: tok}
}

// openSession returns the current read session, opening readers at the committed
// offsets if there is none.
func (c *KafkaConsumer) openSession(ctx context.Context) (*readSession, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if c.session != nil {
		return c.session, nil
	}
	octx, cancel := withTimeout(ctx, 10*time.Second)
	defer cancel()
	var offsets map[int]int64
	err := retryTemporary(octx, func() (err error) { offsets, err = c.committed(octx); return err })
	if err != nil {
		return nil, fmt.Errorf("kafka: reading committed offsets of group %s: %w", c.kc.cfg.GroupID, err)
	}
	sctx, scancel := context.WithCancel(context.Background())
	s := &readSession{ctx: sctx, cancel: scancel, msgs: make(chan kafka.Message, 1024), errs: make(chan error, len(offsets))}
	for partition, off := range offsets {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: c.kc.cfg.Brokers, Topic: c.kc.cfg.Topic, Partition: partition, Dialer: c.kc.dialer,
			MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 500 * time.Millisecond,
			ReadLagInterval: -1, ErrorLogger: c.kc.errorLogger(),
		})
		if off < 0 {
			off = kafka.FirstOffset
		}
		if err := r.SetOffset(off); err != nil {
			_ = r.Close()
			c.stopReaders(s)
			return nil, fmt.Errorf("kafka: positioning reader of partition %d: %w", partition, err)
		}
		s.readers = append(s.readers, r)
		s.wg.Add(1)
		go s.pump(r, partition)
	}
	c.session = s
	return s, nil
}

// pump moves one partition's messages, in order, into the session's channel.
func (s *readSession) pump(r *kafka.Reader, partition int) {
	defer s.wg.Done()
	for {
		m, err := r.FetchMessage(s.ctx)
		if err != nil {
			if s.ctx.Err() == nil {
				s.errs <- fmt.Errorf("kafka: reading partition %d: %w", partition, err)
			}
			return
		}
		select {
		case s.msgs <- m:
		case <-s.ctx.Done():
			return
		}
	}
}

func (c *KafkaConsumer) endSession(s *readSession) {
	c.mu.Lock()
	if c.session == s {
		c.session = nil
	}
	c.mu.Unlock()
	c.stopReaders(s)
}

func (c *KafkaConsumer) stopReaders(s *readSession) {
	s.cancel()
	for _, r := range s.readers {
		_ = r.Close()
	}
	s.wg.Wait()
}

// committed returns every partition's committed offset (-1 when none).
func (c *KafkaConsumer) committed(ctx context.Context) (map[int]int64, error) {
	partitions, err := c.partitions(ctx)
	if err != nil {
		return nil, err
	}
	res, err := c.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: c.kc.cfg.GroupID,
		Topics: map[string][]int{c.kc.cfg.Topic: partitions}})
	if err != nil {
		return nil, err
	}
	if res.Error != nil {
		return nil, res.Error
	}
	out := make(map[int]int64, len(partitions))
	for _, p := range partitions {
		out[p] = -1
	}
	for _, p := range res.Topics[c.kc.cfg.Topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("partition %d: %w", p.Partition, p.Error)
		}
		out[p.Partition] = p.CommittedOffset
	}
	return out, nil
}

func (c *KafkaConsumer) partitions(ctx context.Context) ([]int, error) {
	meta, err := c.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{c.kc.cfg.Topic}})
	if err != nil {
		return nil, err
	}
	t := findTopic(meta, c.kc.cfg.Topic)
	if t == nil {
		return nil, kafka.UnknownTopicOrPartition
	}
	if t.Error != nil {
		return nil, t.Error
	}
	ids := make([]int, len(t.Partitions))
	for i, p := range t.Partitions {
		ids[i] = p.ID
	}
	return ids, nil
}

// Commit records a stored batch as the group's committed offsets. It commits as a
// standalone consumer (no generation, no member), which the coordinator accepts
// because no member ever joins the group.
func (c *KafkaConsumer) Commit(ctx context.Context, b Batch) error {
	tok, ok := b.Token.(kafkaToken)
	if !ok {
		return fmt.Errorf("kafka: Commit got a batch not fetched from Kafka (token %T)", b.Token)
	}
	if len(tok.next) == 0 {
		return nil
	}
	commits := make([]kafka.OffsetCommit, 0, len(tok.next))
	for p, off := range tok.next {
		commits = append(commits, kafka.OffsetCommit{Partition: p, Offset: off})
	}
	ctx, cancel := withTimeout(ctx, 10*time.Second)
	defer cancel()
	err := retryTemporary(ctx, func() error {
		res, err := c.client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{GroupID: c.kc.cfg.GroupID, GenerationID: -1,
			Topics: map[string][]kafka.OffsetCommit{c.kc.cfg.Topic: commits}})
		if err != nil {
			return err
		}
		// Partitions fail together (same coordinator), so the first error decides.
		for _, p := range res.Topics[c.kc.cfg.Topic] {
			if p.Error != nil {
				return fmt.Errorf("partition %d: %w", p.Partition, p.Error)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("kafka: committing offsets of group %s: %w", c.kc.cfg.GroupID, err)
	}
	return nil
}

// Lag is the number of messages in the topic beyond the committed offsets, as of
// the last refresh (every LagInterval). It keeps its last value while Kafka is
// unreachable; Ping reports that.
func (c *KafkaConsumer) Lag() int64 { return c.lag.Load() }

// RefreshLag computes Lag now: per partition, the high-water mark minus the
// committed offset (or minus the log start when nothing is committed).
func (c *KafkaConsumer) RefreshLag(ctx context.Context) (int64, error) {
	ctx, cancel := withTimeout(ctx, 5*time.Second)
	defer cancel()
	var lag int64
	err := retryTemporary(ctx, func() (err error) { lag, err = c.computeLag(ctx); return err })
	if err != nil {
		return 0, fmt.Errorf("kafka: computing lag of group %s: %w", c.kc.cfg.GroupID, err)
	}
	c.lag.Store(lag)
	return lag, nil
}

func (c *KafkaConsumer) computeLag(ctx context.Context) (int64, error) {
	committed, err := c.committed(ctx)
	if err != nil {
		return 0, err
	}
	first := make([]kafka.OffsetRequest, 0, len(committed))
	last := make([]kafka.OffsetRequest, 0, len(committed))
	for p := range committed {
		first = append(first, kafka.FirstOffsetOf(p))
		last = append(last, kafka.LastOffsetOf(p))
	}
	starts, err := c.listOffsets(ctx, first, func(po kafka.PartitionOffsets) int64 { return po.FirstOffset })
	if err != nil {
		return 0, err
	}
	ends, err := c.listOffsets(ctx, last, func(po kafka.PartitionOffsets) int64 { return po.LastOffset })
	if err != nil {
		return 0, err
	}
	var lag int64
	for p, off := range committed {
		from := max(off, starts[p])
		lag += max(0, ends[p]-from)
	}
	return lag, nil
}

// listOffsets asks for one kind of offset at a time: a partition may appear only
// once per ListOffsets request.
func (c *KafkaConsumer) listOffsets(ctx context.Context, reqs []kafka.OffsetRequest, pick func(kafka.PartitionOffsets) int64) (map[int]int64, error) {
	res, err := c.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{c.kc.cfg.Topic: reqs}})
	if err != nil {
		return nil, err
	}
	out := make(map[int]int64, len(reqs))
	for _, po := range res.Topics[c.kc.cfg.Topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("partition %d: %w", po.Partition, po.Error)
		}
		out[po.Partition] = pick(po)
	}
	if len(out) != len(reqs) {
		return nil, fmt.Errorf("kafka: offsets for %d of %d partitions", len(out), len(reqs))
	}
	return out, nil
}

func (c *KafkaConsumer) refreshLagLoop(ctx context.Context) {
	defer close(c.lagDone)
	t := time.NewTicker(c.kc.cfg.LagInterval)
	defer t.Stop()
	failing := false
	for {
		_, err := c.RefreshLag(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			c.kc.log.Warn("kafka consumer lag unavailable", "err", err)
			failing = true
		case err == nil && failing:
			c.kc.log.Info("kafka consumer lag available again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Ping checks that the cluster answers and the topic's partitions have leaders.
func (c *KafkaConsumer) Ping(ctx context.Context) error { return c.kc.ping(ctx) }

// Close stops the readers and the lag refresh; later Fetches return ErrClosed.
// Commit still works, so a drain can commit what it stored.
func (c *KafkaConsumer) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		s := c.session
		c.session = nil
		c.mu.Unlock()
		if s != nil {
			c.stopReaders(s)
		}
		c.stopLag()
		<-c.lagDone
		c.tr.CloseIdleConnections()
	})
	return nil
}
