// Package server assembles a Quibly node from its configuration and runs it until
// its context ends, then drains it.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/quibly/quibly/app/internal/auth"
	"github.com/quibly/quibly/app/internal/batch"
	"github.com/quibly/quibly/app/internal/chat"
	"github.com/quibly/quibly/app/internal/clientip"
	"github.com/quibly/quibly/app/internal/config"
	"github.com/quibly/quibly/app/internal/cwmetrics"
	"github.com/quibly/quibly/app/internal/engineio"
	"github.com/quibly/quibly/app/internal/health"
	"github.com/quibly/quibly/app/internal/httpapi"
	"github.com/quibly/quibly/app/internal/limit"
	"github.com/quibly/quibly/app/internal/metrics"
	"github.com/quibly/quibly/app/internal/socketio"
	"github.com/quibly/quibly/app/internal/web"
)

// Run serves until ctx ends, then shuts down gracefully within cfg.ShutdownTimeout.
// ready, when not nil, receives the listening address once the node serves.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger, ready func(addr string)) error {
	if cfg.PprofAddr != "" {
		servePprof(cfg.PprofAddr, log)
	}
	be, err := openBackends(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer be.close()
	if _, err := be.store.EnsureChannel(ctx, "general"); err != nil {
		return fmt.Errorf("creating the general channel: %w", err)
	}
	secret, err := jwtSecret(cfg)
	if err != nil {
		return err
	}
	au, err := auth.NewAuth(auth.Config{Secret: secret, TokenTTL: cfg.TokenTTL})
	if err != nil {
		return err
	}
	m := metrics.New(func() float64 { return float64(be.consumer.Lag()) })
	m.Registry.MustRegister(be.collectors...)
	hub, err := chat.NewHub(chat.Config{
		MaxMessageChars: cfg.MaxMessageChars, MessageRate: cfg.MessageRate, MessageBurst: cfg.MessageBurst,
		RecoveryWindow: cfg.RecoveryWindow, MaxConnsPerUser: cfg.MaxConnsPerUser,
	}, chat.Deps{Store: be.store, Broker: be.broker, Queue: be.producer, Presence: be.presence,
		Sessions: be.sessions, Auth: au, Metrics: m, Log: log})
	if err != nil {
		return err
	}
	sio, err := socketio.NewServer(socketio.Config{MaxAttachmentBytes: cfg.MaxPayloadBytes, Logger: log}, hub)
	if err != nil {
		return err
	}
	allowOrigin := originChecker(cfg.FrontendURL)
	proxies, err := clientip.Parse(cfg.TrustedProxies)
	if err != nil {
		return fmt.Errorf("TRUSTED_PROXIES: %w", err)
	}
	eio, err := engineio.NewServer(engineio.Config{
		PingInterval: cfg.PingInterval, PingTimeout: cfg.PingTimeout, MaxPayload: cfg.MaxPayloadBytes,
		SendQueueSize: cfg.SendQueueSize, CheckOrigin: allowOrigin, Logger: log,
		MaxSessionsPerIP: cfg.MaxConnsPerIP, ClientIP: proxies.IP,
	}, sio.OnConnection)
	if err != nil {
		return err
	}
	writer, err := batch.NewWriter(batch.Config{MaxBatch: 1000, Linger: be.batchLinger}, be.consumer, be.store, log, m)
	if err != nil {
		return err
	}
	checks := be.checks
	checks["socketio"] = func(context.Context) error { return eio.Accepting() }
	// A store that answers but refuses every batch is not serving either.
	if ping := checks["database"]; ping != nil {
		checks["database"] = func(ctx context.Context) error {
			if err := writer.Healthy(); err != nil {
				return err
			}
			return ping(ctx)
		}
	}
	hl := health.New(health.Config{ServerID: cfg.ServerID, Mode: string(cfg.Mode()), Checks: checks, IsLeader: be.elector.IsLeader})

	mux := http.NewServeMux()
	httpapi.New(httpapi.Config{ClientIP: proxies,
		AuthPerIP:         limit.Spec{Rate: cfg.AuthRate, Burst: cfg.AuthBurst},
		AuthPerUser:       limit.Spec{Rate: cfg.AuthUserRate, Burst: cfg.AuthUserBurst},
		ChannelsPerUser:   limit.Spec{Rate: float64(cfg.ChannelsPerUserHour) / 3600, Burst: cfg.ChannelsPerUserHour},
		ChannelsPerNode:   limit.Spec{Rate: float64(cfg.ChannelsPerNodeMinute) / 60, Burst: cfg.ChannelsPerNodeMinute},
		Revoked:           hub.Revoke,
		DMsPerUser:        limit.Spec{Rate: float64(cfg.DMsPerUserHour) / 3600, Burst: cfg.DMsPerUserHour},
		MaxMembers:        cfg.MaxChannelMembers,
		MembershipChanged: hub.MembershipChanged,
		ChannelChanged:    hub.ChannelChanged,
	}, be.store, au, log).Register(mux)
	mux.Handle("/socket.io/", eio)
	mux.Handle("GET /health", hl)
	mux.Handle("GET /metrics", metricsGuard(m.Handler(), cfg.MetricsToken))
	mux.Handle("/", web.Handler())

	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(cfg.Port)))
	if err != nil {
		return fmt.Errorf("PORT %d: %w", cfg.Port, err)
	}
	srv := &http.Server{Handler: withCORS(mux, allowOrigin),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       cfg.HTTPReadTimeout,
		// A long-poll is answered within the ping interval; websockets clear the
		// deadlines when they take the connection over.
		WriteTimeout: cfg.PingInterval + 30*time.Second,
		IdleTimeout:  cfg.HTTPIdleTimeout,
	}

	// Before anything runs in the background: a bad setting stops start-up cleanly.
	stopMetrics, err := startCloudWatch(context.WithoutCancel(ctx), cfg, m, log)
	if err != nil {
		return err
	}
	// The hub's subscription and the batch writer outlive ctx: they finish the drain.
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	if err := hub.Start(bg); err != nil {
		return fmt.Errorf("subscribing to the fan-out bus: %w", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = be.elector.Run(bg, func(lctx context.Context) {
			m.IsLeader.Set(1)
			defer m.IsLeader.Set(0)
			log.Info("batch writer started: this node is the leader")
			if err := writer.Run(lctx); err != nil {
				log.Error("batch writer stopped", "err", err)
			}
		})
	}()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("quibly serving", "addr", ln.Addr().String(), "mode", cfg.Mode())
	if ready != nil {
		ready(ln.Addr().String())
	}

	select {
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	return drain(cfg, log, drainSteps{health: hl, hub: hub, eio: eio, srv: srv, be: be, stopBG: stopBG, wg: &wg,
		stopMetrics: stopMetrics})
}

type drainSteps struct {
	health *health.Handler
	hub    *chat.Hub
	eio    *engineio.Server
	srv    *http.Server
	be     *backends
	stopBG context.CancelFunc
	// stopMetrics pushes the last metrics, after the batch writer stopped.
	stopMetrics func()
	wg          *sync.WaitGroup
}

// drain is the SIGTERM sequence: unhealthy at once, finish sends in flight, tell
// clients to reconnect elsewhere, store everything queued, hand leadership over.
func drain(cfg config.Config, log *slog.Logger, d drainSteps) error {
	start := time.Now()
	deadline, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	d.health.SetDraining()
	log.Info("draining: health is 503, finishing sends in flight")
	if err := d.hub.Drain(deadline); err != nil {
		log.Warn("sends still in flight at the drain deadline", "err", err)
	}
	d.eio.Drain()
	_ = d.be.producer.Close()
	// Every acked message is durable by now (in Kafka, or stored in standalone mode),
	// so the batch writer can stop after its current batch; the next leader resumes
	// from the committed offsets.
	d.stopBG()
	stopped := make(chan struct{})
	go func() { d.wg.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-deadline.Done():
		log.Error("the batch writer did not stop before the deadline")
	}
	d.stopMetrics()
	if err := d.be.elector.Resign(context.WithoutCancel(deadline)); err != nil {
		log.Warn("resigning leadership failed", "err", err)
	}
	err := d.srv.Shutdown(deadline)
	if errors.Is(err, context.DeadlineExceeded) {
		err = d.srv.Close()
	}
	log.Info("drained", "took", time.Since(start).Round(time.Millisecond).String())
	return err
}

// startCloudWatch copies the counters the stacks alarm on to CloudWatch when
// CLOUDWATCH_NAMESPACE is set, until the returned function, which pushes once more
// and stops (the drain calls it; ctx must outlive the node's own).
func startCloudWatch(ctx context.Context, cfg config.Config, m *metrics.Metrics, log *slog.Logger) (func(), error) {
	if cfg.CloudWatchNamespace == "" {
		return func() {}, nil
	}
	p, err := cwmetrics.New(ctx, cwmetrics.Config{Namespace: cfg.CloudWatchNamespace},
		[]cwmetrics.Counter{{Name: "MessagesRejected", Counter: m.MessagesRejected}}, log)
	if err != nil {
		return nil, fmt.Errorf("CLOUDWATCH_NAMESPACE: %w", err)
	}
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); p.Run(pctx) }()
	return func() { cancel(); <-done }, nil
}
