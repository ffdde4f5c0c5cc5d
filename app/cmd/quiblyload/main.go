// Command quiblyload is Quibly's load tool: it drives a Socket.IO v4 chat server
// (Quibly, or the reference Node peer in bench/reference) with many websocket clients
// and measures send→ack and send→delivery latency, deliveries/s and errors. Other
// modes measure the machine's raw limits for comparison. See docs/BENCHMARKS.md.
//
//	quiblyload -url http://127.0.0.1:8080 -conns 1000 -channels 10 -rate 2000 -duration 10s -out r.json
//	quiblyload -mode echo-server -listen 127.0.0.1:7990
//	quiblyload -mode echo -url ws://127.0.0.1:7990/ -conns 100 -window 8
//	quiblyload -mode redis -redis 127.0.0.1:6379
//	quiblyload -mode store -database-url postgres://...
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/quibly/quibly/app/cmd/quiblyload/internal/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "quiblyload:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("quiblyload", flag.ContinueOnError)
	mode := fs.String("mode", "chat", "chat (Socket.IO load), echo-server, echo (raw websocket echo), redis (pub/sub), store (batch writer vs raw COPY)")
	urls := fs.String("url", "http://127.0.0.1:5000", "server base URL(s), comma-separated; connection i uses the i-th modulo (echo: ws:// URL)")
	target := fs.String("target", load.TargetQuibly, "quibly (register users, JWT auth) or peer (reference Node server, no auth)")
	var c load.Config
	fs.IntVar(&c.Conns, "conns", 100, "connections")
	fs.IntVar(&c.Channels, "channels", 10, "channels; connection i joins channel i mod channels")
	fs.IntVar(&c.Senders, "senders", 0, "connections that send (default: one per channel)")
	fs.Float64Var(&c.Rate, "rate", 0, "total messages/s over all senders; 0 = as fast as acks come back")
	fs.IntVar(&c.Window, "window", 4, "sends in flight per sender when -rate is 0")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "measured time")
	fs.DurationVar(&c.Warmup, "warmup", 2*time.Second, "sending before the measurement")
	fs.IntVar(&c.Users, "users", 50, "Quibly users registered and shared by the connections (bcrypt makes registration slow)")
	fs.IntVar(&c.SourceIPs, "source-ips", 1, "spread connections over 127.0.0.1..127.0.0.N (past the ephemeral port limit)")
	fs.IntVar(&c.TextBytes, "text-bytes", 64, "message text size")
	fs.IntVar(&c.Dial, "dial-concurrency", 64, "connections opened at once")
	fs.BoolVar(&c.Idle, "idle", false, "connect and join only, then hold until SIGINT/SIGTERM (memory per connection)")
	fs.StringVar(&c.ReadyFile, "ready-file", "", "idle: write this file once every connection is up")
	fs.StringVar(&c.Label, "label", "", "free text copied into the result")
	fs.Float64Var(&c.Mix, "mix", 0, "share of sends (0 to 0.5) that change the sender's last message instead: edit, reaction, its removal, read marker in turn (quibly only)")
	cpu := fs.String("cpu", "", "comma-separated process names (e.g. quibly,haproxy,java) whose CPU time in the measured window is reported")
	metricsURLs := fs.String("metrics", "", "comma-separated node URLs whose stage histograms (/metrics) are read around the measured window")
	fs.StringVar(&c.ProfileURL, "pprof", "", "a node's net/http/pprof base URL: take a CPU profile of the measured window there")
	fs.StringVar(&c.ProfileOut, "pprof-out", "cpu.pprof", "where -pprof writes the profile")
	out := fs.String("out", "", "write the result as JSON to this file")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	listen := fs.String("listen", "127.0.0.1:7990", "echo-server: listen address")
	redisAddr := fs.String("redis", "127.0.0.1:6379", "redis: address")
	pubs := fs.Int("publishers", 4, "redis: publishing connections")
	subs := fs.Int("subscribers", 3, "redis: subscribing connections (one per node in a 3-node cluster)")
	dbURL := fs.String("database-url", "", "store: PostgreSQL URL (a fresh schema is created and dropped)")
	rows := fs.Int("rows", 100000, "store: rows per method per round")
	batch := fs.Int("batch", 500, "store: rows per batch")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !*quiet {
		c.Progress = os.Stderr
	}
	var res any
	var err error
	switch *mode {
	case "chat":
		c.URLs = strings.Split(*urls, ",")
		c.Target = *target
		if *cpu != "" {
			c.CPUPrograms = strings.Split(*cpu, ",")
		}
		if *metricsURLs != "" {
			c.MetricsURLs = strings.Split(*metricsURLs, ",")
		}
		var r *load.Result
		r, err = load.Run(ctx, c)
		if r != nil {
			load.PrintTable(os.Stdout, r)
			res = r
		}
		if c.Idle && err == nil && ctx.Err() != nil {
			err = nil
		}
	case "echo-server":
		return load.EchoServer(ctx, *listen, os.Stderr)
	case "echo":
		var r *load.EchoResult
		r, err = load.Echo(ctx, load.EchoConfig{URL: *urls, Conns: c.Conns, Window: c.Window, Duration: c.Duration,
			Warmup: c.Warmup, Bytes: c.TextBytes, SourceIPs: c.SourceIPs, Progress: c.Progress})
		if r != nil {
			fmt.Printf("echo: %d conns, window %d: %.0f round trips/s, p50 %.2f ms, p99 %.2f ms\n",
				r.Conns, r.Window, r.RoundTripsPerS, r.Latency.P50, r.Latency.P99)
			res = r
		}
	case "redis":
		var r *load.PubSubResult
		r, err = load.PubSub(ctx, load.PubSubConfig{Addr: *redisAddr, Publishers: *pubs, Subscribers: *subs,
			Duration: c.Duration, Bytes: c.TextBytes, Window: c.Window, Progress: c.Progress})
		if r != nil {
			fmt.Printf("redis pub/sub: %d publishers, %d subscribers: %.0f publishes/s, %.0f deliveries/s\n",
				r.Publishers, r.Subscribers, r.PublishesPerS, r.DeliveriesPerS)
			res = r
		}
	case "store":
		var r *load.StoreResult
		r, err = load.StoreBench(ctx, load.StoreConfig{DatabaseURL: *dbURL, Rows: *rows, Batch: *batch, Progress: c.Progress})
		if r != nil {
			fmt.Printf("store: batch writer %.0f rows/s, raw COPY %.0f rows/s, ratio %.2f\n", r.WriterRowsPerS, r.CopyRowsPerS, r.Ratio)
			res = r
		}
	default:
		return fmt.Errorf("unknown -mode %q", *mode)
	}
	if res != nil && *out != "" {
		if werr := load.WriteJSON(*out, res); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}
