package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/testenv"
)

var unsafeTopicChars = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// kafkaTestConfig returns a config with a topic and group of its own, both deleted
// when the test ends.
func kafkaTestConfig(t testing.TB) KafkaConfig {
	t.Helper()
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	name := fmt.Sprintf("quibly.test.%s.%s", unsafeTopicChars.ReplaceAllString(t.Name(), "_"), hex.EncodeToString(suffix[:]))
	if len(name) > 200 {
		name = name[len(name)-200:]
	}
	cfg := KafkaConfig{Brokers: strings.Split(testenv.Kafka(t), ","), Topic: name, GroupID: name,
		Partitions: 4, ReplicationFactor: 3, LagInterval: 50 * time.Millisecond}
	t.Cleanup(func() { deleteTopicAndGroup(t, cfg) })
	return cfg
}

func deleteTopicAndGroup(t testing.TB, cfg KafkaConfig) {
	kc, err := newKafkaConn(cfg, nil)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := kc.transport()
	defer tr.CloseIdleConnections()
	cl := kc.client(tr)
	res, err := cl.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{cfg.Topic}})
	if err == nil {
		err = res.Errors[cfg.Topic]
	}
	if err != nil && !errors.Is(err, kafka.UnknownTopicOrPartition) {
		t.Errorf("cleanup: deleting topic %s: %v", cfg.Topic, err)
	}
	gres, err := cl.DeleteGroups(ctx, &kafka.DeleteGroupsRequest{GroupIDs: []string{cfg.GroupID}})
	if err == nil {
		err = gres.Errors[cfg.GroupID]
	}
	if err != nil && !errors.Is(err, kafka.GroupIdNotFound) {
		t.Errorf("cleanup: deleting group %s: %v", cfg.GroupID, err)
	}
}

func openKafka(t testing.TB, cfg KafkaConfig) (*KafkaProducer, *KafkaConsumer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := NewKafkaProducer(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	c, err := NewKafkaConsumer(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return p, c
}

func TestKafkaContract(t *testing.T) {
	testenv.Kafka(t)
	runQueueContract(t, func(t *testing.T) queueUnderTest {
		p, c := openKafka(t, kafkaTestConfig(t))
		return queueUnderTest{producer: p, consumer: c,
			lag: func(t *testing.T) int64 {
				lag, err := c.RefreshLag(context.Background())
				if err != nil {
					t.Fatalf("lag: %v", err)
				}
				return lag
			},
			close: closeOnce(func() { _ = p.Close(); _ = c.Close() })}
	})
}

// A leader that crashes after storing but before committing, or that loses
// leadership mid-batch, leaves its batch to the next leader; committed batches
// are never handed out again.
func TestKafkaRedeliversOnlyUncommitted(t *testing.T) {
	cfg := kafkaTestConfig(t)
	p, leader1 := openKafka(t, cfg)
	// Generous: on a fresh broker under a loaded machine the phases below have
	// taken over 25 s together; this bounds a hang, it does not measure speed.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	produce := func(channel string, n int) map[string]bool {
		ids := map[string]bool{}
		for i := range n {
			m := testMessage(channel, i)
			if err := p.Produce(ctx, m); err != nil {
				t.Fatal(err)
			}
			ids[m.ID] = true
		}
		return ids
	}
	fetchAll := func(c *KafkaConsumer, n int, commit bool) map[string]bool {
		got := map[string]bool{}
		for len(got) < n {
			b, err := c.Fetch(ctx, 100)
			if err != nil {
				t.Fatalf("fetch after %d of %d: %v", len(got), n, err)
			}
			for _, m := range b.Messages {
				if got[m.ID] {
					t.Fatalf("%s fetched twice by one consumer", m.ID)
				}
				got[m.ID] = true
			}
			if commit {
				if err := c.Commit(ctx, b); err != nil {
					t.Fatal(err)
				}
			}
		}
		return got
	}
	expectNothingMore := func(c *KafkaConsumer) {
		t.Helper()
		short, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
		defer cancel()
		if b, err := c.Fetch(short, 100); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("expected nothing more, got %d messages (%v)", len(b.Messages), err)
		}
	}

	committed := produce("a", 20)
	if got := fetchAll(leader1, 20, true); !mapsEqual(got, committed) {
		t.Fatalf("first leader got %v", got)
	}
	uncommitted := produce("b", 20)
	if got := fetchAll(leader1, 20, false); !mapsEqual(got, uncommitted) {
		t.Fatalf("first leader got %v", got)
	}

	// The same node losing and regaining leadership starts over from the commits.
	lost, lose := context.WithCancel(ctx)
	lose()
	if _, err := leader1.Fetch(lost, 100); !errors.Is(err, context.Canceled) {
		t.Fatalf("fetch after leadership loss: %v", err)
	}
	if got := fetchAll(leader1, 20, false); !mapsEqual(got, uncommitted) {
		t.Fatalf("after regaining leadership got %v, want only the uncommitted batch", got)
	}

	// Leader crash: no Close, no commit; another node takes over.
	start := time.Now()
	leader2, err := NewKafkaConsumer(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer leader2.Close()
	got := fetchAll(leader2, 20, true)
	t.Logf("new leader had the uncommitted batch %v after taking over", time.Since(start).Round(time.Millisecond))
	if !mapsEqual(got, uncommitted) {
		t.Fatalf("new leader got %v, want only the uncommitted batch", got)
	}
	expectNothingMore(leader2)

	_ = leader1.Close()
	if _, err := leader1.Fetch(ctx, 10); !errors.Is(err, ErrClosed) {
		t.Fatalf("fetch after close: %v", err)
	}
	// Lag is meaningful on any node, and Lag() follows it in the background.
	deadline := time.Now().Add(5 * time.Second)
	for leader2.Lag() != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if lag := leader2.Lag(); lag != 0 {
		t.Fatalf("lag after everything was committed = %d", lag)
	}
}

// Lag() on a node that is not the leader (it never fetches) counts what the
// leader has not committed yet.
func TestKafkaLagOnFollower(t *testing.T) {
	cfg := kafkaTestConfig(t)
	p, follower := openKafka(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 7 {
		if err := p.Produce(ctx, testMessage(fmt.Sprintf("c%d", i%3), i)); err != nil {
			t.Fatal(err)
		}
	}
	for follower.Lag() != 7 {
		select {
		case <-ctx.Done():
			t.Fatalf("follower lag = %d, want 7", follower.Lag())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestKafkaSkipsUndecodableRecords(t *testing.T) {
	cfg := kafkaTestConfig(t)
	p, c := openKafka(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Same key as the valid message, so the garbage comes first on its partition.
	if err := p.writer.WriteMessages(ctx, kafka.Message{Key: []byte("x"), Value: []byte("not json")},
		kafka.Message{Key: []byte("x"), Value: []byte(`{"text":"no id"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := p.Produce(ctx, testMessage("x", 1)); err != nil {
		t.Fatal(err)
	}
	got := consumeN(ctx, t, c, 1, 10)
	if len(got) != 1 || got[0].ID != "x-0001" {
		t.Fatalf("got %+v, want only the valid message", got)
	}
	if lag, err := c.RefreshLag(ctx); err != nil || lag != 0 {
		t.Fatalf("lag = %d, %v; the skipped records must be committed too", lag, err)
	}
}

func TestKafkaCommitRejectsForeignBatch(t *testing.T) {
	_, c := openKafka(t, kafkaTestConfig(t))
	if err := c.Commit(context.Background(), Batch{Token: []item{}}); err == nil {
		t.Fatal("commit of a batch from another queue succeeded")
	}
}

func TestKafkaEnsureTopicConcurrentAndIdempotent(t *testing.T) {
	cfg := kafkaTestConfig(t)
	cfg.Partitions = 3
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Three nodes starting at once, then one restarting.
	for round := range 2 {
		var wg sync.WaitGroup
		errs := make(chan error, 3)
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- EnsureKafkaTopic(ctx, cfg)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
	kc, _ := newKafkaConn(cfg, nil)
	meta, err := kc.freshMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	topic := findTopic(meta, cfg.Topic)
	if topic == nil || topic.Error != nil || len(topic.Partitions) != 3 {
		t.Fatalf("topic after ensure: %+v", topic)
	}
	// The replication factor was capped at the live brokers, not refused.
	if got, want := len(topic.Partitions[0].Replicas), min(3, len(meta.Brokers)); got != want {
		t.Fatalf("replicas = %d, want %d", got, want)
	}
	p, c := openKafka(t, cfg)
	for name, ping := range map[string]func(context.Context) error{"producer": p.Ping, "consumer": c.Ping} {
		if err := ping(ctx); err != nil {
			t.Errorf("%s ping: %v", name, err)
		}
	}
}

// A Produce that cannot reach Kafka fails within its timeout: never a hang, never
// a false success. Needs no broker.
func TestKafkaProduceUnreachable(t *testing.T) {
	closedPort := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	// silent accepts connections and never answers, like a wedged broker.
	silent := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var conns []net.Conn
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
		t.Cleanup(func() {
			ln.Close()
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				c.Close()
			}
		})
		return ln.Addr().String()
	}
	for _, tc := range []struct {
		name string
		addr func(t *testing.T) string
	}{{"nothing listening", closedPort}, {"broker never answers", silent}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := KafkaConfig{Brokers: []string{tc.addr(t)}, ProduceTimeout: time.Second, DialTimeout: 500 * time.Millisecond}
			p, err := newKafkaProducer(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			done := make(chan error, 1)
			start := time.Now()
			go func() { done <- p.Produce(context.Background(), testMessage("c", 1)) }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("produce to an unreachable broker reported success")
				}
				t.Logf("failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
			case <-time.After(15 * time.Second):
				t.Fatal("produce to an unreachable broker hung")
			}
			if err := p.Ping(context.Background()); err == nil {
				t.Fatal("ping of an unreachable broker succeeded")
			}
			short, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if _, err := NewKafkaProducer(short, KafkaConfig{Brokers: cfg.Brokers, DialTimeout: 200 * time.Millisecond}, nil); err == nil ||
				!strings.Contains(err.Error(), "metadata") {
				t.Fatalf("constructor against an unreachable broker: %v, want a metadata error", err)
			}
		})
	}
}

func TestKafkaConfigValidate(t *testing.T) {
	valid := KafkaConfig{Brokers: []string{"b-1.example:9096", "10.0.0.2:9092"}}
	for _, tc := range []struct {
		name    string
		mutate  func(*KafkaConfig)
		wantErr string
	}{
		{"defaults", func(*KafkaConfig) {}, ""},
		{"no brokers", func(c *KafkaConfig) { c.Brokers = nil }, "KAFKA_BROKERS"},
		{"broker without port", func(c *KafkaConfig) { c.Brokers = []string{"kafka"} }, "not host:port"},
		{"broker with bad port", func(c *KafkaConfig) { c.Brokers = []string{"kafka:99999"} }, "invalid port"},
		{"bad topic", func(c *KafkaConfig) { c.Topic = "chat messages" }, "topic"},
		{"negative partitions", func(c *KafkaConfig) { c.Partitions = -1 }, "Partitions"},
		{"negative replication", func(c *KafkaConfig) { c.ReplicationFactor = -3 }, "ReplicationFactor"},
		{"min ISR above replication", func(c *KafkaConfig) { c.ReplicationFactor = 2; c.MinInSyncReplicas = 3 }, "MinInSyncReplicas"},
		{"username without password", func(c *KafkaConfig) { c.Username = "quibly" }, "KAFKA_PASSWORD"},
		{"password without username", func(c *KafkaConfig) { c.Password = "s3cret" }, "KAFKA_USERNAME"},
		{"negative batch timeout", func(c *KafkaConfig) { c.BatchTimeout = -time.Millisecond }, "BatchTimeout"},
		{"SASL over TLS", func(c *KafkaConfig) { c.Username, c.Password, c.TLS = "quibly", "s3cret", true }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid
			tc.mutate(&cfg)
			err := cfg.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error = %v, want one naming %q", err, tc.wantErr)
			case err != nil && strings.Contains(err.Error(), "s3cret"):
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
	d := valid.withDefaults()
	if d.Topic != "quibly.messages" || d.BatchTimeout >= 100*time.Millisecond || d.GroupID == "" || d.Partitions < 1 {
		t.Fatalf("defaults: %+v", d)
	}
}

func TestKafkaSecurityConfig(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      KafkaConfig
		wantSASL string
		wantTLS  bool
	}{
		{"plaintext", KafkaConfig{}, "", false},
		{"TLS only", KafkaConfig{TLS: true}, "", true},
		{"SCRAM over TLS (MSK)", KafkaConfig{Username: "quibly", Password: "s3cret", TLS: true}, "SCRAM-SHA-512", true},
		{"SCRAM without TLS (local)", KafkaConfig{Username: "quibly", Password: "s3cret"}, "SCRAM-SHA-512", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Brokers = []string{"127.0.0.1:9096"}
			kc, err := newKafkaConn(tc.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			tr := kc.transport()
			for who, mech := range map[string]interface{ Name() string }{"dialer": kc.dialer.SASLMechanism, "transport": tr.SASL} {
				got := ""
				if mech != nil {
					got = mech.Name()
				}
				if got != tc.wantSASL {
					t.Errorf("%s SASL = %q, want %q", who, got, tc.wantSASL)
				}
			}
			for who, tlsCfg := range map[string]bool{"dialer": kc.dialer.TLS != nil, "transport": tr.TLS != nil} {
				if tlsCfg != tc.wantTLS {
					t.Errorf("%s TLS = %v, want %v", who, tlsCfg, tc.wantTLS)
				}
			}
			if kc.tls != nil && kc.tls.MinVersion < 0x0303 {
				t.Errorf("TLS allows versions below 1.2")
			}
		})
	}
	cfg := KafkaConfig{Brokers: []string{"b:9096"}, Username: "quibly", Password: "s3cret"}
	if s := cfg.String(); strings.Contains(s, "s3cret") || !strings.Contains(s, "quibly") {
		t.Fatalf("String() = %s: must name the user and hide the password", s)
	}
	if s := fmt.Sprintf("%v %+v", cfg, cfg); strings.Contains(s, "s3cret") {
		t.Fatalf("formatting leaks the password: %s", s)
	}
}

func TestKafkaWireFormat(t *testing.T) {
	at := time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.FixedZone("CEST", 2*3600))
	in := model.Message{ID: "0190-id", ChannelID: "general", AuthorID: "u1", Author: "alice", Text: "hé \"quoted\"",
		Nonce: "n1", CreatedAt: at}
	// A change of a channel's state travels the same way, its kind and payload kept.
	state := model.Message{ID: "0190-id2", ChannelID: "general", AuthorID: "u1", Author: "alice", CreatedAt: at,
		Kind: model.EventMemberJoin, Data: json.RawMessage(`{"userId":"u2","role":"member"}`)}
	if raw, err := encodeMessage(state); err != nil {
		t.Fatal(err)
	} else if got, err := decodeMessage(raw); err != nil || !reflect.DeepEqual(withoutTime(got), withoutTime(state)) {
		t.Fatalf("round trip of a state change: %+v, %v; want %+v", got, err, state)
	}
	raw, err := encodeMessage(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"ts":"2025-06-07T06:09:10.123456789Z"`) {
		t.Errorf("wire form %s: want ts in UTC with nanoseconds", raw)
	}
	out, err := decodeMessage(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !out.CreatedAt.Equal(at) || out.CreatedAt.Location() != time.UTC || !reflect.DeepEqual(withoutTime(out), withoutTime(in)) {
		t.Fatalf("round trip: %+v, want %+v", out, in)
	}
	for _, bad := range []string{"", "not json", `{"channelId":"c"}`, `{"id":"x"}`} {
		if _, err := decodeMessage([]byte(bad)); err == nil {
			t.Errorf("decode(%q) succeeded", bad)
		}
	}
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// BenchmarkKafkaProduce measures sequential send→ack with acks=all.
func BenchmarkKafkaProduce(b *testing.B) {
	cfg := kafkaTestConfig(b)
	p, _ := openKafka(b, cfg)
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if err := p.Produce(ctx, testMessage(fmt.Sprintf("c%d", i%8), i)); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkKafkaConsume measures Fetch+Commit throughput in batches of 1000, as
// the batch writer reads (without the database).
func BenchmarkKafkaConsume(b *testing.B) {
	cfg := kafkaTestConfig(b)
	p, c := openKafka(b, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < b.N; i += 64 {
				if err := p.Produce(ctx, testMessage(fmt.Sprintf("c%d", i%32), i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for n := 0; n < b.N; {
		batch, err := c.Fetch(ctx, 1000)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Commit(ctx, batch); err != nil {
			b.Fatal(err)
		}
		n += len(batch.Messages)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
