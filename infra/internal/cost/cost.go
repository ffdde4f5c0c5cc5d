// Package cost estimates the monthly on-demand cost of a recorded plan from the
// dated price table in prices.json. It prices what the program would create (the
// mock record), not what the stack file says, so the estimate follows the code.
package cost

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/quibly/quibly/infra/internal/logs"
	"github.com/quibly/quibly/infra/internal/mocks"
)

//go:embed prices.json
var pricesJSON []byte

// Prices is the price table.
type Prices struct {
	Region        string             `json:"region"`
	Currency      string             `json:"currency"`
	Compiled      string             `json:"compiled"`
	Note          string             `json:"note"`
	Sources       []string           `json:"sources"`
	HoursPerMonth float64            `json:"hoursPerMonth"`
	Hourly        map[string]float64 `json:"hourly"`
	Monthly       map[string]float64 `json:"monthly"`
	Assumptions   struct {
		ALBLCUs              float64 `json:"albLcus"`
		WAFMillionRequests   float64 `json:"wafMillionRequests"`
		FlowLogGB            float64 `json:"flowLogGb"`
		LogBucketGB          float64 `json:"logBucketGb"`
		EnhancedMonitoringGB float64 `json:"enhancedMonitoringGbPerInstance"`
		Note                 string  `json:"note"`
	} `json:"assumptions"`
}

// LoadPrices parses the embedded table.
func LoadPrices() (*Prices, error) {
	var p Prices
	if err := json.Unmarshal(pricesJSON, &p); err != nil {
		return nil, fmt.Errorf("prices.json: %w", err)
	}
	return &p, nil
}

// Kind says why a line exists, so the report can explain the gap to the deployment
// guide's published estimate (plan.GuideEstimates).
type Kind string

const (
	// Listed is a node the guide's tier list names (servers, cache nodes, brokers, DB instance).
	Listed Kind = "listed"
	// HA is redundancy the guide does not list: cache replicas, a Multi-AZ standby, Aurora readers.
	HA Kind = "ha"
	// Support is everything around the nodes: NAT, ALB, public IPv4, storage, keys, secrets, alarms.
	Support Kind = "support"
)

// Line is one priced item.
type Line struct {
	Resource string
	Item     string
	Kind     Kind
	Monthly  float64
}

// Estimate prices every recorded resource it knows. auroraStorageGB sizes the
// usage-billed Aurora volume. Unknown instance types are an error, so a stack that
// picks a type the table lacks fails loudly instead of costing $0.
func Estimate(p *Prices, rec []mocks.Resource, auroraStorageGB int) ([]Line, error) {
	var lines []Line
	h := p.HoursPerMonth
	add := func(res mocks.Resource, item string, kind Kind, monthly float64) {
		lines = append(lines, Line{Resource: res.Name, Item: item, Kind: kind, Monthly: monthly})
	}
	hourly := func(key string) (float64, error) {
		v, ok := p.Hourly[key]
		if !ok {
			return 0, fmt.Errorf("prices.json has no hourly price for %q: add it (with its source) to price this stack", key)
		}
		return v, nil
	}
	for _, r := range rec {
		in := r.Inputs
		switch r.Type {
		case "aws:ec2/instance:Instance":
			t := mocks.Str(in, "instanceType")
			price, err := hourly("ec2:" + t)
			if err != nil {
				return nil, err
			}
			add(r, "EC2 "+t, Listed, price*h)
			gb := mocks.Num(in, "rootBlockDevice", "volumeSize")
			add(r, fmt.Sprintf("EBS gp3 %.0f GB", gb), Support, gb*p.Monthly["ebs-gp3-gb"])
			if mocks.Bool(in, "monitoring") {
				// Billed as CloudWatch metrics: seven per instance.
				add(r, "EC2 detailed monitoring", Support, p.Monthly["ec2-detailed-monitoring"])
			}
		case "aws:elasticache/replicationGroup:ReplicationGroup":
			t := mocks.Str(in, "nodeType")
			price, err := hourly("elasticache:" + t)
			if err != nil {
				return nil, err
			}
			primaries, replicas := 1.0, mocks.Num(in, "numCacheClusters")-1
			if mocks.Str(in, "clusterMode") == "enabled" {
				primaries = mocks.Num(in, "numNodeGroups")
				replicas = primaries * mocks.Num(in, "replicasPerNodeGroup")
			}
			add(r, fmt.Sprintf("ElastiCache %.0f × %s (primaries)", primaries, t), Listed, primaries*price*h)
			if replicas > 0 {
				add(r, fmt.Sprintf("ElastiCache %.0f × %s (replicas)", replicas, t), HA, replicas*price*h)
			}
		case "aws:msk/cluster:Cluster":
			t := mocks.Str(in, "brokerNodeGroupInfo", "instanceType")
			price, err := hourly("msk:" + t)
			if err != nil {
				return nil, err
			}
			n := mocks.Num(in, "numberOfBrokerNodes")
			add(r, fmt.Sprintf("MSK %.0f × %s", n, t), Listed, n*price*h)
			gb := mocks.Num(in, "brokerNodeGroupInfo", "storageInfo", "ebsStorageInfo", "volumeSize")
			add(r, fmt.Sprintf("MSK storage %.0f × %.0f GB", n, gb), Support, n*gb*p.Monthly["msk-storage-gb"])
		case "aws:rds/instance:Instance":
			t := mocks.Str(in, "instanceClass")
			price, err := hourly("rds-postgres:" + t)
			if err != nil {
				return nil, err
			}
			copies := 1.0
			add(r, "RDS PostgreSQL "+t, Listed, price*h)
			if mocks.Bool(in, "multiAz") {
				copies = 2
				add(r, "RDS Multi-AZ standby "+t, HA, price*h)
			}
			gb := mocks.Num(in, "allocatedStorage")
			add(r, fmt.Sprintf("RDS gp3 %.0f GB × %.0f", gb, copies), Support, copies*gb*p.Monthly["rds-gp3-gb"])
		case "aws:rds/cluster:Cluster":
			add(r, fmt.Sprintf("Aurora storage ~%d GB (I/O not included)", auroraStorageGB), Support, float64(auroraStorageGB)*p.Monthly["aurora-storage-gb"])
		case "aws:rds/clusterInstance:ClusterInstance":
			t := mocks.Str(in, "instanceClass")
			price, err := hourly("aurora-postgresql:" + t)
			if err != nil {
				return nil, err
			}
			kind, item := Listed, "Aurora writer "+t
			if r.Name[len(r.Name)-2:] != "-1" {
				kind, item = HA, "Aurora reader "+t
			}
			add(r, item, kind, price*h)
		case "aws:lb/loadBalancer:LoadBalancer":
			add(r, "ALB", Support, p.Hourly["alb"]*h)
			add(r, fmt.Sprintf("ALB %.0f LCU (assumed)", p.Assumptions.ALBLCUs), Support, p.Assumptions.ALBLCUs*p.Hourly["alb-lcu"]*h)
			azs := float64(len(mocks.List(in, "subnets")))
			add(r, fmt.Sprintf("ALB public IPv4 × %.0f", azs), Support, azs*p.Hourly["public-ipv4"]*h)
		case "aws:ec2/natGateway:NatGateway":
			add(r, "NAT gateway (data processing not included)", Support, p.Hourly["nat-gateway"]*h)
		case "aws:ec2/vpcEndpoint:VpcEndpoint":
			if mocks.Str(in, "vpcEndpointType") == "Interface" {
				azs := float64(len(mocks.List(in, "subnetIds")))
				add(r, fmt.Sprintf("VPC interface endpoint × %.0f AZs (data processing not included)", azs), Support, azs*p.Hourly["vpc-interface-endpoint-az"]*h)
			}
		case "aws:ec2/eip:Eip":
			add(r, "public IPv4 (NAT)", Support, p.Hourly["public-ipv4"]*h)
		case "aws:wafv2/webAcl:WebAcl":
			rules := float64(len(mocks.List(in, "rules")))
			add(r, fmt.Sprintf("AWS WAF web ACL and %.0f rules", rules), Support, p.Monthly["waf-web-acl"]+rules*p.Monthly["waf-rule"])
			a := p.Assumptions.WAFMillionRequests
			add(r, fmt.Sprintf("AWS WAF %.0f M requests (assumed)", a), Support, a*p.Monthly["waf-million-requests"])
		case "aws:ec2/flowLog:FlowLog":
			a := p.Assumptions.FlowLogGB
			add(r, fmt.Sprintf("VPC flow logs to S3, %.0f GB (assumed)", a), Support, a*p.Monthly["vended-logs-s3-gb"])
		case "aws:s3/bucketV2:BucketV2":
			if strings.HasPrefix(mocks.Str(in, "bucketPrefix"), logs.WAFBucketPrefix) {
				a := p.Assumptions.LogBucketGB
				add(r, fmt.Sprintf("log bucket, %.0f GB kept (assumed)", a), Support, a*p.Monthly["s3-standard-gb"])
			}
		case "aws:kms/key:Key":
			add(r, "KMS key", Support, p.Monthly["kms-key"])
		case "aws:secretsmanager/secret:Secret":
			add(r, "secret", Support, p.Monthly["secret"])
		case "aws:cloudwatch/metricAlarm:MetricAlarm":
			metrics := 1.0
			if q := mocks.List(in, "metricQueries"); len(q) > 0 {
				metrics = 0
				for _, m := range q {
					if m.IsObject() && m.ObjectValue().HasValue("metric") {
						metrics++
					}
				}
			}
			add(r, fmt.Sprintf("alarm (%.0f metrics)", metrics), Support, metrics*p.Monthly["alarm-metric"])
		}
		// Enhanced Monitoring is billed as CloudWatch Logs ingestion (RDSOSMetrics).
		if (r.Type == "aws:rds/instance:Instance" || r.Type == "aws:rds/clusterInstance:ClusterInstance") && mocks.Num(in, "monitoringInterval") > 0 {
			a := p.Assumptions.EnhancedMonitoringGB
			add(r, fmt.Sprintf("RDS Enhanced Monitoring, %.1f GB (assumed)", a), Support, a*p.Monthly["cloudwatch-logs-ingest-gb"])
		}
		// RDS-managed master secrets are created by RDS, not by the program: price them too.
		if r.Type == "aws:rds/instance:Instance" || r.Type == "aws:rds/cluster:Cluster" {
			add(r, "secret (RDS-managed master password)", Support, p.Monthly["secret"])
		}
	}
	sort.SliceStable(lines, func(i, j int) bool {
		if lines[i].Monthly != lines[j].Monthly {
			return lines[i].Monthly > lines[j].Monthly
		}
		return lines[i].Resource+lines[i].Item < lines[j].Resource+lines[j].Item
	})
	return lines, nil
}

// Total sums lines, optionally only of some kinds.
func Total(lines []Line, kinds ...Kind) float64 {
	var t float64
	for _, l := range lines {
		if len(kinds) == 0 || contains(kinds, l.Kind) {
			t += l.Monthly
		}
	}
	return t
}

func contains(ks []Kind, k Kind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}
