package load

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"sort"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Stage is what a server's own histogram says about one stage of the message path over
// a run's measured window, summed over the nodes: the observations in the window, their
// mean (exact, from the sums) and quantiles interpolated inside the histogram's
// buckets, as Prometheus's histogram_quantile does (so as coarse as the buckets).
type Stage struct {
	Count  uint64  `json:"count"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
}

// stageSeries maps a stage name to the histogram (and label, for a labelled one)
// Quibly exports for it (docs/REFERENCE.md, Metrics).
var stageSeries = []struct{ stage, family, label string }{
	{"accept", "quibly_send_stage_seconds", "accept"},
	{"queue", "quibly_send_stage_seconds", "queue"},
	{"publish", "quibly_send_stage_seconds", "publish"},
	{"ack", "quibly_send_ack_seconds", ""},
	{"delivery", "quibly_delivery_seconds", ""},
}

// histogram is one cumulative histogram: counts per upper bound, ascending.
type histogram struct {
	bounds []float64
	counts []uint64
	count  uint64
	sum    float64
}

// scrapeStages reads every node's /metrics and sums each stage's histogram over them.
func scrapeStages(ctx context.Context, urls []string) (map[string]histogram, error) {
	out := map[string]histogram{}
	client := &http.Client{Timeout: 5 * time.Second}
	for _, u := range urls {
		fams, err := scrapeMetrics(ctx, client, u+"/metrics")
		if err != nil {
			return nil, err
		}
		for _, s := range stageSeries {
			fam, ok := fams[s.family]
			if !ok || fam.GetType() != dto.MetricType_HISTOGRAM {
				continue
			}
			for _, m := range fam.GetMetric() {
				if s.label != "" && !hasLabel(m, "stage", s.label) {
					continue
				}
				out[s.stage] = out[s.stage].add(m.GetHistogram())
			}
		}
	}
	return out, nil
}

func scrapeMetrics(ctx context.Context, client *http.Client, url string) (map[string]*dto.MetricFamily, error) {
	resp, err := getOK(ctx, client, url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("load: parsing %s: %w", url, err)
	}
	return fams, nil
}

// getOK GETs url and returns the response of a 200, whose body the caller closes;
// anything else is an error quoting the start of the body.
func getOK(ctx context.Context, client *http.Client, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("load: GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return nil, fmt.Errorf("load: GET %s: %s %s", url, resp.Status, trunc(body))
	}
	return resp, nil
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// add sums h and a scraped histogram with the same buckets (every node exports the same).
func (h histogram) add(p *dto.Histogram) histogram {
	out := histogram{count: h.count + p.GetSampleCount(), sum: h.sum + p.GetSampleSum()}
	for i, b := range p.GetBucket() {
		out.bounds = append(out.bounds, b.GetUpperBound())
		c := b.GetCumulativeCount()
		if i < len(h.counts) {
			c += h.counts[i]
		}
		out.counts = append(out.counts, c)
	}
	return out
}

// since is what h gained after earlier was taken.
func (h histogram) since(earlier histogram) histogram {
	out := histogram{bounds: h.bounds, count: h.count - earlier.count, sum: h.sum - earlier.sum}
	for i, c := range h.counts {
		if i < len(earlier.counts) {
			c -= earlier.counts[i]
		}
		out.counts = append(out.counts, c)
	}
	return out
}

// quantile interpolates linearly inside the bucket that holds rank q·count (the first
// bucket from 0); in the +Inf bucket it answers the last finite bound.
func (h histogram) quantile(q float64) float64 {
	if h.count == 0 || len(h.bounds) == 0 {
		return math.NaN()
	}
	rank := q * float64(h.count)
	i := sort.Search(len(h.counts), func(i int) bool { return float64(h.counts[i]) >= rank })
	if i == len(h.counts) {
		i = len(h.counts) - 1
	}
	lower, below := 0.0, uint64(0)
	if i > 0 {
		lower, below = h.bounds[i-1], h.counts[i-1]
	}
	if math.IsInf(h.bounds[i], 1) {
		return lower
	}
	inBucket := h.counts[i] - below
	if inBucket == 0 {
		return h.bounds[i]
	}
	return lower + (h.bounds[i]-lower)*(rank-float64(below))/float64(inBucket)
}

// stagesBetween is each stage's figures from the before and after scrapes.
func stagesBetween(before, after map[string]histogram) map[string]Stage {
	out := map[string]Stage{}
	for name, a := range after {
		d := a.since(before[name])
		if d.count == 0 {
			continue
		}
		out[name] = Stage{Count: d.count, MeanMs: 1000 * d.sum / float64(d.count),
			P50Ms: 1000 * d.quantile(0.5), P99Ms: 1000 * d.quantile(0.99)}
	}
	return out
}

// fetchProfile takes a CPU profile of the next d from a net/http/pprof server and
// writes it to path.
func fetchProfile(ctx context.Context, base string, d time.Duration, path string) error {
	secs := int(d.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, secs)
	resp, err := getOK(ctx, &http.Client{Timeout: d + 30*time.Second}, url)
	if err != nil {
		return fmt.Errorf("load: profiling: %w", err)
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("load: writing the profile: %w", err)
	}
	return f.Close()
}
