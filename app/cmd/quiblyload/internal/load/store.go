package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/quibly/quibly/app/internal/model"
	"github.com/quibly/quibly/app/internal/store"
)

// StoreConfig describes a batch-writer against raw COPY run.
type StoreConfig struct {
	DatabaseURL string
	Rows        int // per method
	Batch       int // rows per call
	Progress    io.Writer
}

// StoreResult compares store.Postgres.WriteMessages (the batch writer's path: COPY
// into a temporary table, INSERT … ON CONFLICT DO NOTHING) with a raw COPY of the same
// rows into the same table.
type StoreResult struct {
	Rows           int     `json:"rows"`
	Batch          int     `json:"batch"`
	WriterS        float64 `json:"writer_s"`
	CopyS          float64 `json:"copy_s"`
	WriterRowsPerS float64 `json:"writer_rows_per_s"`
	CopyRowsPerS   float64 `json:"copy_rows_per_s"`
	Ratio          float64 `json:"ratio"` // writer / copy
}

// StoreBench runs in a fresh schema that it drops afterwards, so the application's
// data is never touched. The methods alternate over eight rounds so neither always
// meets the larger table.
func StoreBench(ctx context.Context, cfg StoreConfig) (*StoreResult, error) {
	if cfg.DatabaseURL == "" {
		return nil, errors.New("load: store needs -database-url")
	}
	cfg.Rows = max(cfg.Rows, 2)
	cfg.Batch = max(cfg.Batch, 1)
	schema := "quiblyload_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	pg, err := store.NewPostgres(ctx, store.PostgresConfig{URL: cfg.DatabaseURL, Schema: schema})
	if err != nil {
		return nil, err
	}
	defer func() {
		_ = pg.Close()
		if conn, err := pgx.Connect(context.WithoutCancel(ctx), cfg.DatabaseURL); err == nil {
			_, _ = conn.Exec(context.WithoutCancel(ctx), `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
			_ = conn.Close(context.WithoutCancel(ctx))
		}
	}()
	u, err := pg.CreateUser(ctx, "bench", "x")
	if err != nil {
		return nil, err
	}
	ch, err := pg.CreateChannel(ctx, "bench", model.KindPublic, u.ID)
	if err != nil {
		return nil, err
	}
	text := strings.Repeat("x", 64)
	gen := func(n int) []model.Message {
		out := make([]model.Message, n)
		for i := range out {
			id, _ := uuid.NewV7()
			out[i] = model.Message{ID: id.String(), ChannelID: ch.ID, AuthorID: u.ID, Author: u.Username,
				Text: text, Nonce: "n" + id.String()[24:], CreatedAt: time.Now()}
		}
		return out
	}
	writer := func(msgs []model.Message) (time.Duration, error) {
		t0 := time.Now()
		for i := 0; i < len(msgs); i += cfg.Batch {
			if _, err := pg.WriteMessages(ctx, msgs[i:min(i+cfg.Batch, len(msgs))]); err != nil {
				return 0, err
			}
		}
		return time.Since(t0), nil
	}
	// The raw COPY goes over a connection of its own, straight into the schema's table.
	conn, err := pgx.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	table := pgx.Identifier{schema, "messages"}
	raw := func(msgs []model.Message) (time.Duration, error) {
		t0 := time.Now()
		for i := 0; i < len(msgs); i += cfg.Batch {
			if _, err := conn.CopyFrom(ctx, table, copyColumns, pgx.CopyFromRows(copyRows(msgs[i:min(i+cfg.Batch, len(msgs))]))); err != nil {
				return 0, err
			}
		}
		return time.Since(t0), nil
	}
	// Eight rounds, each method in turn and the order flipped every round, so that a
	// checkpoint or a neighbour's burst lands on both methods alike.
	const rounds = 8
	part := max(cfg.Rows/rounds, 1)
	var wt, ct time.Duration
	for i := range rounds {
		steps := []struct {
			f   func([]model.Message) (time.Duration, error)
			acc *time.Duration
		}{{writer, &wt}, {raw, &ct}}
		if i%2 == 1 {
			steps[0], steps[1] = steps[1], steps[0]
		}
		for _, step := range steps {
			d, err := step.f(gen(part))
			if err != nil {
				return nil, fmt.Errorf("store bench: %w", err)
			}
			*step.acc += d
		}
	}
	n := rounds * part
	res := &StoreResult{Rows: n, Batch: cfg.Batch, WriterS: wt.Seconds(), CopyS: ct.Seconds(),
		WriterRowsPerS: float64(n) / wt.Seconds(), CopyRowsPerS: float64(n) / ct.Seconds()}
	res.Ratio = res.WriterRowsPerS / res.CopyRowsPerS
	return res, nil
}

// copyColumns and copyRows are the messages table's columns and the generated
// messages as rows of them (ids as UUIDs, time to the millisecond as the store keeps it).
var copyColumns = []string{"id", "channel_id", "author_id", "author", "text", "nonce", "created_at"}

func copyRows(msgs []model.Message) [][]any {
	rows := make([][]any, len(msgs))
	for i, m := range msgs {
		rows[i] = []any{[16]byte(uuid.MustParse(m.ID)), [16]byte(uuid.MustParse(m.ChannelID)), [16]byte(uuid.MustParse(m.AuthorID)),
			m.Author, m.Text, m.Nonce, m.CreatedAt.Truncate(time.Millisecond)}
	}
	return rows
}
