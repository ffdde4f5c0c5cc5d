// Package alarms makes the CloudWatch alarms of a stack, one table of them, that
// notify one SNS topic: unhealthy targets, 5xx rate, Kafka consumer lag, Kafka
// disk, database connections near the limit, Redis memory, server CPU, messages the
// store refused for good, and addresses AWS WAF's rate rule blocked.
package alarms

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/cloudwatch"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/kms"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/sns"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/quibly/quibly/infra/internal/secrets"
)

// AppNamespace is the CloudWatch namespace the servers of stack name publish their
// own metrics to (the app's CLOUDWATCH_NAMESPACE).
func AppNamespace(name string) string { return "Quibly/" + name }

// Instance is one server to watch.
type Instance struct {
	ServerID   string
	InstanceID pulumi.StringInput
}

// AlarmsArgs says what to watch and where the thresholds are.
type AlarmsArgs struct {
	Name                 string
	Email                string
	LoadBalancerSuffix   pulumi.StringInput
	TargetGroupSuffix    pulumi.StringInput
	Instances            []Instance
	CacheNodeIDs         []string
	KafkaClusterName     pulumi.StringInput
	KafkaBrokers         int
	KafkaTopic           string
	KafkaConsumerGroup   string
	DBDimension          pulumi.StringMap
	DBMaxConnections     int
	CPUPercent           float64
	HTTP5xxPercent       float64
	KafkaLag             float64
	DBConnectionsPercent float64
	RedisMemoryPercent   float64
	KafkaDiskPercent     float64
	// WebACLName and WAFRateRule, when there is a web ACL, name the rate-based rule
	// whose blocks fire an alarm; Region is where WAF publishes its metrics.
	WebACLName  pulumi.StringInput
	WAFRateRule string
	Region      string
	Tags        pulumi.StringMap
}

// Alarms exposes the topic the alarms notify.
type Alarms struct {
	pulumi.ResourceState

	TopicArn pulumi.StringOutput
	KeyArn   pulumi.StringOutput
	Count    int
}

// topicKeyStatements let CloudWatch alarms of this account encrypt the messages they
// publish to the topic.
func topicKeyStatements(account string) []secrets.KeyStatement {
	return []secrets.KeyStatement{{Sid: "CloudWatchAlarmsPublish", Effect: "Allow",
		Principal: map[string]string{"Service": "cloudwatch.amazonaws.com"},
		Action:    []string{"kms:Decrypt", "kms:GenerateDataKey*"}, Resource: "*",
		Condition: map[string]map[string]string{"StringEquals": {"aws:SourceAccount": account}}}}
}

// NewAlarms creates the topic, an optional e-mail subscription and the alarms.
func NewAlarms(ctx *pulumi.Context, name string, args *AlarmsArgs, opts ...pulumi.ResourceOption) (*Alarms, error) {
	a := &Alarms{}
	if err := ctx.RegisterComponentResource("quibly:alarms:Alarms", name, a, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(a)

	// CloudWatch cannot publish through the AWS-managed alias/aws/sns key (its policy
	// cannot be changed), so the topic has a key whose policy lets CloudWatch use it.
	policy, err := secrets.KeyPolicy(ctx, parent, topicKeyStatements)
	if err != nil {
		return nil, err
	}
	key, err := kms.NewKey(ctx, name, &kms.KeyArgs{
		Description:          pulumi.Sprintf("Quibly %s: alarm notifications", args.Name),
		EnableKeyRotation:    pulumi.Bool(true),
		DeletionWindowInDays: pulumi.Int(7),
		Policy:               pulumi.String(policy),
		Tags:                 args.Tags,
	}, parent)
	if err != nil {
		return nil, err
	}
	topic, err := sns.NewTopic(ctx, name, &sns.TopicArgs{
		NamePrefix: pulumi.Sprintf("%s-alarms-", args.Name), KmsMasterKeyId: key.Arn, Tags: args.Tags,
	}, parent)
	if err != nil {
		return nil, err
	}
	if args.Email != "" {
		if _, err := sns.NewTopicSubscription(ctx, name+"-email", &sns.TopicSubscriptionArgs{
			Topic: topic.Arn, Protocol: pulumi.String("email"), Endpoint: pulumi.String(args.Email),
		}, parent); err != nil {
			return nil, err
		}
	}
	actions := pulumi.Array{topic.Arn}
	for _, w := range watches(args) {
		al := w.alarm
		al.Name = pulumi.Sprintf("%s-%s", args.Name, w.suffix)
		al.AlarmDescription = w.description
		al.AlarmActions, al.OkActions, al.Tags = actions, actions, args.Tags
		al.ComparisonOperator = pulumi.String("GreaterThanThreshold")
		al.TreatMissingData = pulumi.String("notBreaching")
		// PutMetricAlarm overwrites an alarm of the same name, so a create-first
		// replacement would be deleted right after: replace delete-first.
		if _, err := cloudwatch.NewMetricAlarm(ctx, name+"-"+w.suffix, &al, parent, pulumi.DeleteBeforeReplace(true)); err != nil {
			return nil, err
		}
		a.Count++
	}

	a.TopicArn = topic.Arn
	a.KeyArn = key.Arn
	if err := ctx.RegisterResourceOutputs(a, pulumi.Map{
		"topicArn": a.TopicArn, "alarms": pulumi.String(fmt.Sprint(a.Count)),
	}); err != nil {
		return nil, err
	}
	return a, nil
}

// watch is one alarm: its name suffix, what it says when it fires, and what it
// watches (fired above the threshold; no data is no alarm).
type watch struct {
	suffix      string
	description pulumi.StringInput
	alarm       cloudwatch.MetricAlarmArgs
}

// metric is a watch of one metric's statistic over periods of period seconds, firing
// when evaluations of them in a row are above threshold.
func metric(namespace, name, stat string, dims pulumi.StringMapInput, period, evaluations int, threshold float64) cloudwatch.MetricAlarmArgs {
	return cloudwatch.MetricAlarmArgs{
		Namespace: pulumi.String(namespace), MetricName: pulumi.String(name), Dimensions: dims, Statistic: pulumi.String(stat),
		Period: pulumi.Int(period), EvaluationPeriods: pulumi.Int(evaluations), Threshold: pulumi.Float64(threshold),
	}
}

// watches is every alarm of a stack, as a table: one row per alarm, one per Kafka
// broker, cache node and server where the metric is theirs.
func watches(args *AlarmsArgs) []watch {
	albQuery := func(id, metricName string) cloudwatch.MetricAlarmMetricQueryArgs {
		return cloudwatch.MetricAlarmMetricQueryArgs{Id: pulumi.String(id), Metric: &cloudwatch.MetricAlarmMetricQueryMetricArgs{
			Namespace: pulumi.String("AWS/ApplicationELB"), MetricName: pulumi.String(metricName),
			Dimensions: pulumi.StringMap{"LoadBalancer": args.LoadBalancerSuffix}, Period: pulumi.Int(300), Stat: pulumi.String("Sum"),
		}}
	}
	out := []watch{
		// A parked message was not stored: someone must look (the batch writer logs its id).
		{"messages-rejected", pulumi.String("The store refused a message for good; it is parked in rejected_messages"),
			metric(AppNamespace(args.Name), "MessagesRejected", "Sum", nil, 300, 1, 0)},
		{"unhealthy-targets", pulumi.String("A server fails /health"),
			metric("AWS/ApplicationELB", "UnHealthyHostCount", "Maximum",
				pulumi.StringMap{"LoadBalancer": args.LoadBalancerSuffix, "TargetGroup": args.TargetGroupSuffix}, 60, 2, 0)},
		{"http-5xx-rate", pulumi.Sprintf("More than %v%% of requests answered 5xx", args.HTTP5xxPercent), cloudwatch.MetricAlarmArgs{
			MetricQueries: cloudwatch.MetricAlarmMetricQueryArray{
				albQuery("target5xx", "HTTPCode_Target_5XX_Count"),
				albQuery("elb5xx", "HTTPCode_ELB_5XX_Count"),
				albQuery("requests", "RequestCount"),
				cloudwatch.MetricAlarmMetricQueryArgs{
					Id:         pulumi.String("rate"),
					Expression: pulumi.String("IF(requests > 0, 100 * (FILL(target5xx, 0) + FILL(elb5xx, 0)) / requests, 0)"),
					Label:      pulumi.String("5xx %"),
					ReturnData: pulumi.Bool(true),
				},
			},
			EvaluationPeriods: pulumi.Int(2), Threshold: pulumi.Float64(args.HTTP5xxPercent),
		}},
		{"kafka-consumer-lag", pulumi.Sprintf("The batch writer lags more than %v messages behind Kafka", args.KafkaLag),
			metric("AWS/Kafka", "SumOffsetLag", "Maximum", pulumi.StringMap{
				"Cluster Name": args.KafkaClusterName, "Consumer Group": pulumi.String(args.KafkaConsumerGroup), "Topic": pulumi.String(args.KafkaTopic),
			}, 60, 5, args.KafkaLag)},
		{"db-connections", pulumi.Sprintf("Database connections above %v%% of max_connections %d: the pools are near exhaustion",
			args.DBConnectionsPercent, args.DBMaxConnections),
			metric("AWS/RDS", "DatabaseConnections", "Maximum", args.DBDimension, 60, 3, float64(args.DBMaxConnections)*args.DBConnectionsPercent/100)},
	}
	// MSK brokers are numbered from 1; a full disk stops the broker.
	for broker := 1; broker <= args.KafkaBrokers; broker++ {
		out = append(out, watch{fmt.Sprintf("kafka-disk-%d", broker),
			pulumi.Sprintf("Kafka broker %d data disk above %v%% (storage autoscaling could not keep up, or hit its ceiling)", broker, args.KafkaDiskPercent),
			metric("AWS/Kafka", "KafkaDataLogsDiskUsed", "Maximum", pulumi.StringMap{
				"Cluster Name": args.KafkaClusterName, "Broker ID": pulumi.String(fmt.Sprint(broker)),
			}, 300, 2, args.KafkaDiskPercent)})
	}
	for _, node := range args.CacheNodeIDs {
		out = append(out, watch{"redis-memory-" + node, pulumi.Sprintf("Redis node %s memory above %v%%", node, args.RedisMemoryPercent),
			metric("AWS/ElastiCache", "DatabaseMemoryUsagePercentage", "Maximum", pulumi.StringMap{"CacheClusterId": pulumi.String(node)}, 300, 2, args.RedisMemoryPercent)})
	}
	if args.WebACLName != nil {
		// Someone was refused everything for a while: a flood, or more clients behind
		// one address than the limit was sized for (raise loadBalancer.wafClientsPerAddress).
		out = append(out, watch{"waf-rate-blocks", pulumi.String("AWS WAF blocked an address over its rate limit: a flood, or more clients behind one address than wafClientsPerAddress"),
			metric("AWS/WAFV2", "BlockedRequests", "Sum", pulumi.StringMap{
				"WebACL": args.WebACLName, "Region": pulumi.String(args.Region), "Rule": pulumi.String(args.WAFRateRule),
			}, 300, 1, 0)})
	}
	for _, in := range args.Instances {
		out = append(out, watch{"cpu-" + in.ServerID, pulumi.Sprintf("%s CPU above %v%%: time to scale out", in.ServerID, args.CPUPercent),
			metric("AWS/EC2", "CPUUtilization", "Average", pulumi.StringMap{"InstanceId": in.InstanceID}, 300, 3, args.CPUPercent)})
	}
	return out
}
