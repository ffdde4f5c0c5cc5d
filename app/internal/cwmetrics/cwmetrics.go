// Package cwmetrics copies a few of the server's Prometheus counters to CloudWatch
// every minute, for the alarms a deployment keeps there (nothing scrapes /metrics on
// AWS). Each push sends what the counter gained since the last one, as a Sum.
package cwmetrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Config says where the metrics go.
type Config struct {
	// Namespace is the CloudWatch namespace (CLOUDWATCH_NAMESPACE), e.g. Quibly/prod.
	Namespace string
	// Interval between pushes; 0 is a minute (CloudWatch's standard resolution).
	Interval time.Duration
}

// withDefaults fills the fields left zero that have a default.
func (c Config) withDefaults() Config {
	if c.Interval == 0 {
		c.Interval = time.Minute
	}
	return c
}

// Validate reports a namespace CloudWatch would refuse.
func (c Config) Validate() error {
	switch {
	case c.Namespace == "":
		return errors.New("cwmetrics: a namespace is required")
	case strings.HasPrefix(c.Namespace, "AWS/"):
		return fmt.Errorf("cwmetrics: namespace %q: AWS/ is reserved for AWS's own metrics", c.Namespace)
	case len(c.Namespace) > 255:
		return fmt.Errorf("cwmetrics: namespace %q is longer than 255 characters", c.Namespace)
	case c.Interval < 0:
		return errors.New("cwmetrics: the interval must not be negative")
	}
	return nil
}

// Counter is one counter to copy, under its CloudWatch name.
type Counter struct {
	Name    string
	Counter prometheus.Counter
}

// putter is the one CloudWatch call the pusher makes.
type putter interface {
	PutMetricData(ctx context.Context, in *cloudwatch.PutMetricDataInput, opts ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error)
}

// Pusher copies counters to CloudWatch.
type Pusher struct {
	cfg      Config
	client   putter
	counters []Counter
	sent     []float64 // each counter's value at the last successful push
	log      *slog.Logger
}

// New loads the AWS settings (region, credentials, endpoint) from the environment and
// the instance profile, as any AWS SDK program does.
func New(ctx context.Context, cfg Config, counters []Counter, log *slog.Logger) (*Pusher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("cwmetrics: AWS settings: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, errors.New("cwmetrics: no AWS region: set AWS_REGION")
	}
	return newPusher(cfg, cloudwatch.NewFromConfig(awsCfg), counters, log), nil
}

func newPusher(cfg Config, client putter, counters []Counter, log *slog.Logger) *Pusher {
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.Default()
	}
	return &Pusher{cfg: cfg, client: client, counters: counters, sent: make([]float64, len(counters)), log: log}
}

// Run pushes every interval until ctx ends, then once more, so the last minute of a
// draining node is not lost.
func (p *Pusher) Run(ctx context.Context) {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			p.logFailure(p.Push(final))
			return
		}
		p.logFailure(p.Push(ctx))
	}
}

func (p *Pusher) logFailure(err error) {
	if err != nil {
		p.log.Warn("pushing metrics to CloudWatch failed; the next push carries this one's counts", "err", err)
	}
}

// Push sends every counter's gain since the last successful push (zero included, so
// an alarm always has data). A failed push is carried by the next one.
func (p *Pusher) Push(ctx context.Context) error {
	now := time.Now()
	values := make([]float64, len(p.counters))
	data := make([]types.MetricDatum, len(p.counters))
	for i, c := range p.counters {
		values[i] = read(c.Counter)
		data[i] = types.MetricDatum{MetricName: aws.String(c.Name), Timestamp: aws.Time(now),
			Value: aws.Float64(values[i] - p.sent[i]), Unit: types.StandardUnitCount}
	}
	if _, err := p.client.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String(p.cfg.Namespace), MetricData: data}); err != nil {
		return fmt.Errorf("cwmetrics: PutMetricData to %s: %w", p.cfg.Namespace, err)
	}
	copy(p.sent, values)
	return nil
}

func read(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}
