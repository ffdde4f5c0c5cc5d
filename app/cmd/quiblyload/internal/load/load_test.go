package load

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quibly/quibly/app/internal/config"
	"github.com/quibly/quibly/app/internal/server"
	"github.com/quibly/quibly/app/internal/testenv"
)

// startStandalone runs a real standalone Quibly node in-process on a free port with a
// temporary DATA_DIR and a rate limit high enough for a load run.
func startStandalone(t *testing.T) string {
	t.Helper()
	for _, k := range []string{"REDIS_STRING", "KAFKA_BROKERS", "DATABASE_URL"} {
		t.Setenv(k, "")
	}
	t.Setenv("DATA_DIR", t.TempDir())
	t.Setenv("MESSAGE_RATE", "100000")
	t.Setenv("MESSAGE_BURST", "100000")
	for _, k := range []string{"AUTH_RATE", "AUTH_BURST", "AUTH_USER_RATE", "AUTH_USER_BURST", "MAX_CONNECTIONS_PER_IP", "MAX_CONNECTIONS_PER_USER"} {
		t.Setenv(k, "100000") // every load client comes from 127.0.0.1
	}
	t.Setenv("LOG_LEVEL", "warn")
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Port = 0
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- server.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), func(a string) { addrc <- a })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-errc:
		case <-time.After(30 * time.Second):
			t.Error("server did not stop")
		}
	})
	select {
	case a := <-addrc:
		return "http://" + a
	case err := <-errc:
		t.Fatalf("server: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start")
	}
	return ""
}

// TestSmokeStandalone is the short load run `make test` keeps: it must connect, send,
// get acks and deliveries and write valid JSON. No timing is asserted.
func TestSmokeStandalone(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	base := startStandalone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Run(ctx, Config{URLs: []string{base}, Target: TargetQuibly, Conns: 50, Channels: 5, Users: 5,
		Rate: 200, Duration: 2 * time.Second, Warmup: 500 * time.Millisecond, SourceIPs: 2, MetricsURLs: []string{base}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Connected != 50 || res.Joined != 50 {
		t.Fatalf("connected %d, joined %d of 50 (errors %v)", res.Connected, res.Joined, res.Errors)
	}
	if res.Sent == 0 || res.Acked == 0 || res.Deliveries == 0 {
		t.Fatalf("sent %d, acked %d, delivered %d (errors %v)", res.Sent, res.Acked, res.Deliveries, res.Errors)
	}
	if res.AckErrors != 0 || res.Lost != 0 {
		t.Errorf("ack errors %d, lost %d: %v", res.AckErrors, res.Lost, res.Errors)
	}
	if res.Ack.Count != res.Acked || res.Delivery.Count == 0 {
		t.Errorf("histograms: %d acks, %d deliveries", res.Ack.Count, res.Delivery.Count)
	}
	for _, s := range stageSeries {
		if st := res.Stages[s.stage]; st.Count == 0 || !(st.P50Ms > 0) || st.P99Ms < st.P50Ms {
			t.Errorf("server stage %s over the window: %+v", s.stage, st)
		}
	}
	out := filepath.Join(t.TempDir(), "r.json")
	if err := WriteJSON(out, res); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil || back.Acked != res.Acked {
		t.Fatalf("JSON round trip: %v (%d acks)", err, back.Acked)
	}
	var tb strings.Builder
	PrintTable(&tb, res)
	t.Log("\n" + tb.String())
}

// A run with -mix changes messages too: edits, reactions and read markers are acked
// without an error and their events come back.
func TestSmokeMix(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	base := startStandalone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Run(ctx, Config{URLs: []string{base}, Target: TargetQuibly, Conns: 20, Channels: 2, Users: 4,
		Rate: 200, Mix: 0.25, Duration: 2 * time.Second, Warmup: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Changes == 0 || res.ChangeDeliveries == 0 || res.Sent == 0 {
		t.Fatalf("sent %d messages and %d changes, got %d change events (errors %v)", res.Sent, res.Changes, res.ChangeDeliveries, res.Errors)
	}
	if res.AckErrors != 0 || res.Lost != 0 {
		t.Errorf("ack errors %d, lost %d: %v", res.AckErrors, res.Lost, res.Errors)
	}
	if _, err := Run(ctx, Config{URLs: []string{base}, Target: TargetPeer, Conns: 1, Mix: 0.1}); err == nil {
		t.Error("a mix against the peer was taken")
	}
}

func TestEchoAndSocketURL(t *testing.T) {
	u, err := SocketURL("http://127.0.0.1:5000/")
	if err != nil || u != "ws://127.0.0.1:5000/socket.io/?EIO=4&transport=websocket" {
		t.Fatalf("SocketURL: %q %v", u, err)
	}
	if _, err := SocketURL("ftp://x"); err == nil {
		t.Fatal("ftp accepted")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = ServeEcho(ctx, ln) }()
	res, err := Echo(ctx, EchoConfig{URL: "ws://" + ln.Addr().String() + "/", Conns: 4, Window: 2,
		Duration: 300 * time.Millisecond, Bytes: 32})
	if err != nil || res.RoundTrips == 0 || res.Latency.Count == 0 {
		t.Fatalf("echo: %+v %v", res, err)
	}
}

func TestEventName(t *testing.T) {
	for in, want := range map[string]string{`["message",{}]`: "message", `["a"]`: "a", `[1]`: "", `x`: ""} {
		got, _ := eventName([]byte(in))
		if got != want {
			t.Errorf("eventName(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		line  string
		comm  string
		ticks int64
		ok    bool
	}{
		{"1234 (quibly) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0", "quibly", 325, true},
		{"99 (odd (name) x) R 1 99 99 0 -1 0 0 0 0 0 7 3 0 0", "odd (name) x", 10, true},
		{"5 (short) S 1 2", "", 0, false},
		{"garbage", "", 0, false},
		{"7 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 3 0 0", "", 0, false},
	} {
		comm, ticks, ok := parseStat([]byte(tc.line))
		if comm != tc.comm || ticks != tc.ticks || ok != tc.ok {
			t.Errorf("parseStat(%q) = %q, %d, %v; want %q, %d, %v", tc.line, comm, ticks, ok, tc.comm, tc.ticks, tc.ok)
		}
	}
}

// The test binary itself burns CPU, and ProgramCPU must see it.
func TestProgramCPUSeesThisProcess(t *testing.T) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatalf("reading /proc/self/stat: %v", err)
	}
	self, _, ok := parseStat(b)
	if !ok {
		t.Fatalf("cannot parse /proc/self/stat: %q", b)
	}
	deadline := time.Now().Add(300 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	got, err := ProgramCPU([]string{self, "no-such-program"})
	if err != nil {
		t.Fatal(err)
	}
	if got[self] < 0.2 {
		t.Errorf("%s used %.2f s of CPU, want at least the 0.2 s just spent spinning", self, got[self])
	}
	if v, ok := got["no-such-program"]; !ok || v != 0 {
		t.Errorf("an absent program should read 0, got %v (present %v)", v, ok)
	}
}

// The store benchmark's two methods both load every row, in a schema it drops after.
func TestStoreBench(t *testing.T) {
	res, err := StoreBench(context.Background(), StoreConfig{DatabaseURL: testenv.DatabaseURL(t), Rows: 400, Batch: 50})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != 400 || res.WriterRowsPerS <= 0 || res.CopyRowsPerS <= 0 || res.Ratio <= 0 {
		t.Fatalf("result %+v", res)
	}
}
