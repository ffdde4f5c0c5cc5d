package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// PubSubConfig describes a raw Redis pub/sub run: the bus under cross-node fan-out.
type PubSubConfig struct {
	Addr        string
	Password    string
	Publishers  int
	Subscribers int
	Window      int // publishes pipelined per round trip
	Duration    time.Duration
	Bytes       int
	Progress    io.Writer
}

// PubSubResult is what a pub/sub run measured.
type PubSubResult struct {
	Publishers     int     `json:"publishers"`
	Subscribers    int     `json:"subscribers"`
	DurationS      float64 `json:"duration_s"`
	Published      int64   `json:"published"`
	Delivered      int64   `json:"delivered"`
	PublishesPerS  float64 `json:"publishes_per_s"`
	DeliveriesPerS float64 `json:"deliveries_per_s"`
}

// PubSub publishes as fast as the publishers can to one channel that Subscribers
// connections (the nodes of a cluster) subscribe to, and counts what they receive.
func PubSub(ctx context.Context, cfg PubSubConfig) (*PubSubResult, error) {
	if cfg.Publishers <= 0 || cfg.Subscribers <= 0 {
		return nil, errors.New("load: pub/sub needs publishers and subscribers")
	}
	cfg.Window = max(cfg.Window, 1)
	cfg.Bytes = max(cfg.Bytes, 1)
	opt := &redis.Options{Addr: cfg.Addr, Password: cfg.Password, PoolSize: cfg.Publishers + 2}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	channel := fmt.Sprintf("quiblyload:%d", time.Now().UnixNano())
	var delivered, published atomic.Int64
	var measuring atomic.Bool
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for i := 0; i < cfg.Subscribers; i++ {
		sub := redis.NewClient(opt).Subscribe(ctx, channel)
		if _, err := sub.Receive(ctx); err != nil {
			return nil, fmt.Errorf("redis subscribe: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer sub.Close()
			ch := sub.Channel(redis.WithChannelSize(10000))
			for {
				select {
				case <-rctx.Done():
					return
				case _, ok := <-ch:
					if !ok {
						return
					}
					if measuring.Load() {
						delivered.Add(1)
					}
				}
			}
		}()
	}
	payload := strings.Repeat("x", cfg.Bytes)
	var pw sync.WaitGroup
	for i := 0; i < cfg.Publishers; i++ {
		pw.Add(1)
		go func() {
			defer pw.Done()
			for rctx.Err() == nil {
				p := rdb.Pipeline()
				for k := 0; k < cfg.Window; k++ {
					p.Publish(rctx, channel, payload)
				}
				if _, err := p.Exec(rctx); err != nil {
					return
				}
				if measuring.Load() {
					published.Add(int64(cfg.Window))
				}
			}
		}()
	}
	sleep(ctx, time.Second)
	measuring.Store(true)
	from := time.Now()
	sleep(ctx, cfg.Duration)
	measuring.Store(false)
	d := time.Since(from).Seconds()
	cancel()
	pw.Wait()
	wg.Wait()
	return &PubSubResult{Publishers: cfg.Publishers, Subscribers: cfg.Subscribers, DurationS: d,
		Published: published.Load(), Delivered: delivered.Load(),
		PublishesPerS: float64(published.Load()) / d, DeliveriesPerS: float64(delivered.Load()) / d}, ctx.Err()
}
