package cwmetrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quibly/quibly/app/internal/testenv"
)

type recorder struct {
	fail bool
	sums [][]float64
}

func (r *recorder) PutMetricData(_ context.Context, in *cloudwatch.PutMetricDataInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error) {
	if r.fail {
		return nil, errors.New("throttled")
	}
	var row []float64
	for _, d := range in.MetricData {
		row = append(row, aws.ToFloat64(d.Value))
	}
	r.sums = append(r.sums, row)
	return &cloudwatch.PutMetricDataOutput{}, nil
}

// Each push carries what each counter gained since the last successful push; a
// failed push's gain travels with the next one, so nothing is lost or counted twice.
func TestPushSendsGains(t *testing.T) {
	a, b := prometheus.NewCounter(prometheus.CounterOpts{Name: "a"}), prometheus.NewCounter(prometheus.CounterOpts{Name: "b"})
	rec := &recorder{}
	p := newPusher(Config{Namespace: "Quibly/test"}, rec, []Counter{{"A", a}, {"B", b}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	steps := []struct {
		addA, addB float64
		fail       bool
		want       []float64 // nil when the push fails
	}{
		{1, 0, false, []float64{1, 0}},
		{0, 0, false, []float64{0, 0}},
		{2, 5, true, nil},
		{1, 0, false, []float64{3, 5}},
	}
	for i, s := range steps {
		a.Add(s.addA)
		b.Add(s.addB)
		rec.fail = s.fail
		err := p.Push(ctx)
		if (err != nil) != s.fail {
			t.Fatalf("step %d: err %v", i, err)
		}
		if s.want != nil {
			got := rec.sums[len(rec.sums)-1]
			if got[0] != s.want[0] || got[1] != s.want[1] {
				t.Fatalf("step %d: pushed %v, want %v", i, got, s.want)
			}
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for ns, ok := range map[string]bool{"Quibly/prod": true, "": false, "AWS/Quibly": false} {
		if err := (Config{Namespace: ns}).Validate(); (err == nil) != ok {
			t.Errorf("namespace %q: %v", ns, err)
		}
	}
}

// Against the local AWS API: what the pusher sends is what CloudWatch sums up.
func TestPushToCloudWatch(t *testing.T) {
	testenv.AWS(t)
	ctx := context.Background()
	ns := "Quibly/test-" + uuid.NewString()[:8]
	rejected := prometheus.NewCounter(prometheus.CounterOpts{Name: "rejected"})
	p, err := New(ctx, Config{Namespace: ns}, []Counter{{"MessagesRejected", rejected}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Minute)
	rejected.Add(2)
	if err := p.Push(ctx); err != nil {
		t.Fatal(err)
	}
	rejected.Add(3)
	if err := p.Push(ctx); err != nil {
		t.Fatal(err)
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cloudwatch.NewFromConfig(cfg).GetMetricStatistics(ctx, &cloudwatch.GetMetricStatisticsInput{
		Namespace: aws.String(ns), MetricName: aws.String("MessagesRejected"),
		StartTime: aws.Time(start), EndTime: aws.Time(time.Now().Add(time.Minute)),
		Period: aws.Int32(3600), Statistics: []types.Statistic{types.StatisticSum},
	})
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, dp := range out.Datapoints {
		sum += aws.ToFloat64(dp.Sum)
	}
	if sum != 5 {
		t.Fatalf("CloudWatch holds a sum of %v over %d datapoints, want 5", sum, len(out.Datapoints))
	}
}
