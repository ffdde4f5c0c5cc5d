// Package alarms turns the deployment guide's alerts into CloudWatch alarms that
// notify one SNS topic: unhealthy targets, 5xx rate, Kafka consumer lag, database
// connections near the limit, Redis memory and server CPU.
package alarms

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/cloudwatch"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/sns"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

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
	KafkaTopic           string
	KafkaConsumerGroup   string
	DBDimension          pulumi.StringMap
	DBMaxConnections     int
	CPUPercent           float64
	HTTP5xxPercent       float64
	KafkaLag             float64
	DBConnectionsPercent float64
	RedisMemoryPercent   float64
	Tags                 pulumi.StringMap
}

// Alarms exposes the topic the alarms notify.
type Alarms struct {
	pulumi.ResourceState

	TopicArn pulumi.StringOutput
	Count    int
}

// NewAlarms creates the topic, an optional e-mail subscription and the alarms.
func NewAlarms(ctx *pulumi.Context, name string, args *AlarmsArgs, opts ...pulumi.ResourceOption) (*Alarms, error) {
	a := &Alarms{}
	if err := ctx.RegisterComponentResource("quibly:alarms:Alarms", name, a, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(a)

	topic, err := sns.NewTopic(ctx, name, &sns.TopicArgs{
		Name: pulumi.Sprintf("%s-alarms", args.Name), KmsMasterKeyId: pulumi.String("alias/aws/sns"), Tags: args.Tags,
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

	alarm := func(suffix string, al *cloudwatch.MetricAlarmArgs) error {
		al.Name = pulumi.Sprintf("%s-%s", args.Name, suffix)
		al.AlarmActions = actions
		al.OkActions = actions
		al.Tags = args.Tags
		if al.TreatMissingData == nil {
			al.TreatMissingData = pulumi.String("notBreaching")
		}
		_, err := cloudwatch.NewMetricAlarm(ctx, name+"-"+suffix, al, parent)
		a.Count++
		return err
	}

	albDims := pulumi.StringMap{"LoadBalancer": args.LoadBalancerSuffix, "TargetGroup": args.TargetGroupSuffix}
	if err := alarm("unhealthy-targets", &cloudwatch.MetricAlarmArgs{
		AlarmDescription:   pulumi.String("A server fails /health (guide: health check failures)"),
		Namespace:          pulumi.String("AWS/ApplicationELB"),
		MetricName:         pulumi.String("UnHealthyHostCount"),
		Dimensions:         albDims,
		Statistic:          pulumi.String("Maximum"),
		Period:             pulumi.Int(60),
		EvaluationPeriods:  pulumi.Int(2),
		Threshold:          pulumi.Float64(0),
		ComparisonOperator: pulumi.String("GreaterThanThreshold"),
	}); err != nil {
		return nil, err
	}

	metric := func(id, metricName string) cloudwatch.MetricAlarmMetricQueryArgs {
		return cloudwatch.MetricAlarmMetricQueryArgs{Id: pulumi.String(id), Metric: &cloudwatch.MetricAlarmMetricQueryMetricArgs{
			Namespace: pulumi.String("AWS/ApplicationELB"), MetricName: pulumi.String(metricName),
			Dimensions: pulumi.StringMap{"LoadBalancer": args.LoadBalancerSuffix}, Period: pulumi.Int(300), Stat: pulumi.String("Sum"),
		}}
	}
	if err := alarm("http-5xx-rate", &cloudwatch.MetricAlarmArgs{
		AlarmDescription: pulumi.Sprintf("More than %v%% of requests answered 5xx (guide: high error rates)", args.HTTP5xxPercent),
		MetricQueries: cloudwatch.MetricAlarmMetricQueryArray{
			metric("target5xx", "HTTPCode_Target_5XX_Count"),
			metric("elb5xx", "HTTPCode_ELB_5XX_Count"),
			metric("requests", "RequestCount"),
			cloudwatch.MetricAlarmMetricQueryArgs{
				Id:         pulumi.String("rate"),
				Expression: pulumi.String("IF(requests > 0, 100 * (FILL(target5xx, 0) + FILL(elb5xx, 0)) / requests, 0)"),
				Label:      pulumi.String("5xx %"),
				ReturnData: pulumi.Bool(true),
			},
		},
		EvaluationPeriods:  pulumi.Int(2),
		Threshold:          pulumi.Float64(args.HTTP5xxPercent),
		ComparisonOperator: pulumi.String("GreaterThanThreshold"),
	}); err != nil {
		return nil, err
	}

	if err := alarm("kafka-consumer-lag", &cloudwatch.MetricAlarmArgs{
		AlarmDescription: pulumi.Sprintf("Batch writer lags more than %v messages (guide: Kafka consumer lag > 1000)", args.KafkaLag),
		Namespace:        pulumi.String("AWS/Kafka"),
		MetricName:       pulumi.String("SumOffsetLag"),
		Dimensions: pulumi.StringMap{
			"Cluster Name": args.KafkaClusterName, "Consumer Group": pulumi.String(args.KafkaConsumerGroup), "Topic": pulumi.String(args.KafkaTopic),
		},
		Statistic:          pulumi.String("Maximum"),
		Period:             pulumi.Int(60),
		EvaluationPeriods:  pulumi.Int(5),
		Threshold:          pulumi.Float64(args.KafkaLag),
		ComparisonOperator: pulumi.String("GreaterThanThreshold"),
	}); err != nil {
		return nil, err
	}

	if err := alarm("db-connections", &cloudwatch.MetricAlarmArgs{
		AlarmDescription: pulumi.Sprintf("Database connections above %v%% of max_connections %d (guide: pool exhaustion)",
			args.DBConnectionsPercent, args.DBMaxConnections),
		Namespace:          pulumi.String("AWS/RDS"),
		MetricName:         pulumi.String("DatabaseConnections"),
		Dimensions:         args.DBDimension,
		Statistic:          pulumi.String("Maximum"),
		Period:             pulumi.Int(60),
		EvaluationPeriods:  pulumi.Int(3),
		Threshold:          pulumi.Float64(float64(args.DBMaxConnections) * args.DBConnectionsPercent / 100),
		ComparisonOperator: pulumi.String("GreaterThanThreshold"),
	}); err != nil {
		return nil, err
	}

	for _, node := range args.CacheNodeIDs {
		if err := alarm("redis-memory-"+node, &cloudwatch.MetricAlarmArgs{
			AlarmDescription:   pulumi.Sprintf("Redis node %s memory above %v%% (guide: Redis memory > 80%%)", node, args.RedisMemoryPercent),
			Namespace:          pulumi.String("AWS/ElastiCache"),
			MetricName:         pulumi.String("DatabaseMemoryUsagePercentage"),
			Dimensions:         pulumi.StringMap{"CacheClusterId": pulumi.String(node)},
			Statistic:          pulumi.String("Maximum"),
			Period:             pulumi.Int(300),
			EvaluationPeriods:  pulumi.Int(2),
			Threshold:          pulumi.Float64(args.RedisMemoryPercent),
			ComparisonOperator: pulumi.String("GreaterThanThreshold"),
		}); err != nil {
			return nil, err
		}
	}

	for _, in := range args.Instances {
		if err := alarm("cpu-"+in.ServerID, &cloudwatch.MetricAlarmArgs{
			AlarmDescription:   pulumi.Sprintf("%s CPU above %v%% (guide: time to scale out)", in.ServerID, args.CPUPercent),
			Namespace:          pulumi.String("AWS/EC2"),
			MetricName:         pulumi.String("CPUUtilization"),
			Dimensions:         pulumi.StringMap{"InstanceId": in.InstanceID},
			Statistic:          pulumi.String("Average"),
			Period:             pulumi.Int(300),
			EvaluationPeriods:  pulumi.Int(3),
			Threshold:          pulumi.Float64(args.CPUPercent),
			ComparisonOperator: pulumi.String("GreaterThanThreshold"),
		}); err != nil {
			return nil, err
		}
	}

	a.TopicArn = topic.Arn
	if err := ctx.RegisterResourceOutputs(a, pulumi.Map{
		"topicArn": a.TopicArn, "alarms": pulumi.String(fmt.Sprint(a.Count)),
	}); err != nil {
		return nil, err
	}
	return a, nil
}
