package load

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// EchoServer serves a websocket echo on addr until ctx ends: the floor under any
// websocket server on this machine (no protocol, no fan-out, no storage).
func EchoServer(ctx context.Context, addr string, log io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "echo server on ws://%s/\n", ln.Addr())
	return ServeEcho(ctx, ln)
}

// ServeEcho serves the websocket echo on ln until ctx ends.
func ServeEcho(ctx context.Context, ln net.Listener) error {
	up := websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096, CheckOrigin: func(*http.Request) bool { return true }}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for {
			kind, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if ws.WriteMessage(kind, msg) != nil {
				return
			}
		}
	})}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// EchoConfig describes an echo run.
type EchoConfig struct {
	URL       string
	Conns     int
	Window    int // frames in flight per connection
	Duration  time.Duration
	Warmup    time.Duration
	Bytes     int
	SourceIPs int
	Progress  io.Writer
}

// EchoResult is what an echo run measured.
type EchoResult struct {
	Conns          int     `json:"conns"`
	Window         int     `json:"window"`
	DurationS      float64 `json:"duration_s"`
	RoundTrips     int64   `json:"round_trips"`
	RoundTripsPerS float64 `json:"round_trips_per_s"`
	Latency        Latency `json:"latency"`
	Errors         int64   `json:"errors"`
}

// Echo keeps Window frames in flight on each of Conns websockets and counts round trips.
func Echo(ctx context.Context, cfg EchoConfig) (*EchoResult, error) {
	if cfg.Conns <= 0 || cfg.Window <= 0 {
		return nil, errors.New("load: echo needs conns and window > 0")
	}
	cfg.Bytes = max(cfg.Bytes, 8)
	h := NewHist()
	var measuring atomic.Bool
	var count, errs atomic.Int64
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for i := 0; i < cfg.Conns; i++ {
		var ip net.IP
		if cfg.SourceIPs > 1 {
			ip = net.IPv4(127, 0, 0, byte(1+i%cfg.SourceIPs))
		}
		ws, _, err := Dialer(ip).DialContext(ctx, cfg.URL, nil)
		if err != nil {
			return nil, fmt.Errorf("echo: dial: %w", err)
		}
		wg.Add(1)
		go func(i int, ws *websocket.Conn) {
			defer wg.Done()
			defer ws.Close()
			go func() { <-rctx.Done(); _ = ws.Close() }()
			frame := make([]byte, cfg.Bytes)
			for k := 0; k < cfg.Window; k++ {
				binary.LittleEndian.PutUint64(frame, uint64(time.Now().UnixNano()))
				if ws.WriteMessage(websocket.BinaryMessage, frame) != nil {
					errs.Add(1)
					return
				}
			}
			for {
				_, msg, err := ws.ReadMessage()
				if err != nil {
					if rctx.Err() == nil {
						errs.Add(1)
					}
					return
				}
				now := time.Now()
				if measuring.Load() && len(msg) >= 8 {
					count.Add(1)
					h.Record(i, now.Sub(time.Unix(0, int64(binary.LittleEndian.Uint64(msg)))))
				}
				binary.LittleEndian.PutUint64(frame, uint64(now.UnixNano()))
				if ws.WriteMessage(websocket.BinaryMessage, frame) != nil {
					return
				}
			}
		}(i, ws)
	}
	sleep(ctx, cfg.Warmup)
	measuring.Store(true)
	from := time.Now()
	sleep(ctx, cfg.Duration)
	measuring.Store(false)
	d := time.Since(from).Seconds()
	cancel()
	wg.Wait()
	res := &EchoResult{Conns: cfg.Conns, Window: cfg.Window, DurationS: d, RoundTrips: count.Load(),
		RoundTripsPerS: float64(count.Load()) / d, Latency: h.Summary(), Errors: errs.Load()}
	return res, ctx.Err()
}
