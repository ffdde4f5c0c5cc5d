package queue

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quibly/quibly/app/internal/model"
	"github.com/segmentio/kafka-go"
)

var _ Consumer = (*KafkaConsumer)(nil)

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
