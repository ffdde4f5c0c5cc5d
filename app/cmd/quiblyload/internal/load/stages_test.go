package load

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHistogramQuantile(t *testing.T) {
	inf := math.Inf(1)
	// Cumulative: 10 in (0,1], 30 in (1,2], 60 in (2,4], none past 4.
	h := histogram{bounds: []float64{1, 2, 4, inf}, counts: []uint64{10, 40, 100, 100}, count: 100}
	for _, tc := range []struct {
		q, want float64
	}{
		{0.05, 0.5},           // half way into the first bucket, from 0
		{0.1, 1},              // its top
		{0.25, 1.5},           // half way into (1,2]
		{0.7, 3},              // half way into (2,4]
		{0.99, 2 + 2*59.0/60}, // rank 99: 59 of the bucket's 60
		{1, 4},
	} {
		if got := h.quantile(tc.q); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	// Ranks in the +Inf bucket answer the last finite bound, as histogram_quantile does.
	tail := histogram{bounds: []float64{1, inf}, counts: []uint64{1, 10}, count: 10}
	if got := tail.quantile(0.99); got != 1 {
		t.Errorf("+Inf bucket: quantile = %v, want 1", got)
	}
	if got := (histogram{}).quantile(0.5); !math.IsNaN(got) {
		t.Errorf("empty histogram: quantile = %v, want NaN", got)
	}
}

func TestStagesBetweenTakesTheWindowOnly(t *testing.T) {
	bounds := []float64{0.001, 0.002, math.Inf(1)}
	before := map[string]histogram{"queue": {bounds: bounds, counts: []uint64{5, 5, 5}, count: 5, sum: 0.004}}
	after := map[string]histogram{
		"queue":    {bounds: bounds, counts: []uint64{5, 15, 15}, count: 15, sum: 0.019}, // 10 more, all in (1ms,2ms]
		"delivery": {bounds: bounds, counts: []uint64{0, 0, 0}},                          // nothing observed: left out
	}
	got := stagesBetween(before, after)
	q, ok := got["queue"]
	if !ok || q.Count != 10 || math.Abs(q.MeanMs-1.5) > 1e-9 || math.Abs(q.P50Ms-1.5) > 1e-9 {
		t.Fatalf("queue stage: %+v (ok %v)", q, ok)
	}
	if _, ok := got["delivery"]; ok {
		t.Errorf("a stage without observations in the window is reported: %+v", got["delivery"])
	}
}

func TestFetchProfileWritesTheWindowsProfile(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "cpu.pb.gz")
	if err := fetchProfile(context.Background(), srv.URL, time.Second, out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b { // a gzipped profile
		t.Fatalf("profile file: %d bytes, err %v", len(b), err)
	}
	// A server without pprof: the error names the status and quotes the body.
	err = fetchProfile(context.Background(), srv.URL+"/nothing", time.Second, out)
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "page not found") {
		t.Fatalf("no pprof there: err %v", err)
	}
}
