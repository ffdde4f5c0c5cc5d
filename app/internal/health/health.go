// Package health answers GET /health for load balancers and operators.
package health

import (
	"context"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"time"
)

// Check reports whether one dependency can serve.
type Check func(ctx context.Context) error

// Config describes the node.
type Config struct {
	ServerID string
	Mode     string // "standalone" or "clustered"
	// Checks are keyed by the names the response's "services" object uses.
	Checks   map[string]Check
	IsLeader func() bool
	Timeout  time.Duration
}

// Handler serves the health document.
type Handler struct {
	cfg      Config
	started  time.Time
	draining atomic.Bool
}

// New returns a handler; uptime counts from now.
func New(cfg Config) *Handler {
	return &Handler{cfg: cfg.withDefaults(), started: time.Now()}
}

// withDefaults fills the fields left zero; every field has a default.
func (c Config) withDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Second
	}
	return c
}

// SetDraining makes every later answer 503, so the load balancer stops routing here.
func (h *Handler) SetDraining() { h.draining.Store(true) }

type document struct {
	Status            string          `json:"status"`
	Timestamp         string          `json:"timestamp"`
	ServerID          string          `json:"serverId"`
	Uptime            int64           `json:"uptime"`
	Mode              string          `json:"mode,omitempty"`
	Services          map[string]bool `json:"services"`
	BatchWriterLeader bool            `json:"batchWriterLeader"`
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
	defer cancel()
	doc := document{
		Status:            "healthy",
		Timestamp:         time.Now().UTC().Format(time.RFC3339Nano),
		ServerID:          h.cfg.ServerID,
		Uptime:            int64(time.Since(h.started).Seconds()),
		Services:          make(map[string]bool, len(h.cfg.Checks)),
		BatchWriterLeader: h.cfg.IsLeader != nil && h.cfg.IsLeader(),
	}
	// Clustered answers carry exactly status, timestamp, uptime, serverId, services and
	// batchWriterLeader (what load balancers and dashboards read); standalone also says
	// which mode it is.
	if h.cfg.Mode != "clustered" {
		doc.Mode = h.cfg.Mode
	}
	type result struct {
		name string
		ok   bool
	}
	results := make(chan result, len(h.cfg.Checks))
	for name, check := range h.cfg.Checks {
		go func() { results <- result{name, check(ctx) == nil} }()
	}
	for range h.cfg.Checks {
		r := <-results
		doc.Services[r.name] = r.ok
		if !r.ok {
			doc.Status = "unhealthy"
		}
	}
	status := http.StatusOK
	if h.draining.Load() {
		doc.Status = "draining"
	}
	if doc.Status != "healthy" {
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(doc)
}
