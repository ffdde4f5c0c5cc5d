// Command quibly runs a Quibly chat node: standalone with no configuration,
// clustered when REDIS_STRING, KAFKA_BROKERS and DATABASE_URL are set.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/quibly/quibly/app/internal/config"
	"github.com/quibly/quibly/app/internal/server"
)

func main() {
	envFile := flag.String("env-file", ".env", "optional file of KEY=value settings; the environment wins")
	setupDB := flag.Bool("setup-db", false, "create or update the app's database role (DATABASE_SECRET_ARN) as the administrator (DATABASE_ADMIN_SECRET_ARN), then exit")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *envFile, *setupDB); err != nil {
		fmt.Fprintln(os.Stderr, "quibly:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, envFile string, setupDB bool) error {
	if setupDB {
		cfg, err := config.Read(envFile)
		if err != nil {
			return err
		}
		return server.SetupDatabase(ctx, cfg)
	}
	cfg, err := config.Load(envFile)
	if err != nil {
		return err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(cfg.LogLevel)))
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("serverId", cfg.ServerID)
	return server.Run(ctx, cfg, log, nil)
}
