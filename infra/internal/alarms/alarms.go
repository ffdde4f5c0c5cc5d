// Package alarms turns the deployment guide's alerts into CloudWatch alarms that
// notify one SNS topic: unhealthy targets, 5xx rate, Kafka consumer lag, Kafka
// disk, database connections near the limit, Redis memory, server CPU, and messages
// the store refused for good.
package alarms

import (
	"encoding/json"
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/cloudwatch"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/kms"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/sns"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
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
	Tags                 pulumi.StringMap
}

// Alarms exposes the topic the alarms notify.
type Alarms struct {
	pulumi.ResourceState

	TopicArn pulumi.StringOutput
	KeyArn   pulumi.StringOutput
	Count    int
}

// topicKeyPolicy keeps the account in charge of the key (without that statement
// nobody could ever change or delete it) and lets CloudWatch alarms of this account
// encrypt the messages they publish to the topic.
func topicKeyPolicy(ctx *pulumi.Context, parent pulumi.InvokeOption) (string, error) {
	id, err := aws.GetCallerIdentity(ctx, nil, parent)
	if err != nil {
		return "", fmt.Errorf("reading the account id: %w", err)
	}
	part, err := aws.GetPartition(ctx, nil, parent)
	if err != nil {
		return "", fmt.Errorf("reading the partition: %w", err)
	}
	type statement struct {
		Sid       string
		Effect    string
		Principal map[string]string
		Action    []string
		Resource  string
		Condition map[string]map[string]string `json:",omitempty"`
	}
	doc := struct {
		Version   string
		Statement []statement
	}{"2012-10-17", []statement{
		{Sid: "AccountAdministersTheKey", Effect: "Allow",
			Principal: map[string]string{"AWS": fmt.Sprintf("arn:%s:iam::%s:root", part.Partition, id.AccountId)},
			Action:    []string{"kms:*"}, Resource: "*"},
		{Sid: "CloudWatchAlarmsPublish", Effect: "Allow",
			Principal: map[string]string{"Service": "cloudwatch.amazonaws.com"},
			Action:    []string{"kms:Decrypt", "kms:GenerateDataKey*"}, Resource: "*",
			Condition: map[string]map[string]string{"StringEquals": {"aws:SourceAccount": id.AccountId}}},
	}}
	b, err := json.Marshal(doc)
	return string(b), err
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
	policy, err := topicKeyPolicy(ctx, parent)
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

	alarm := func(suffix string, al *cloudwatch.MetricAlarmArgs) error {
		al.Name = pulumi.Sprintf("%s-%s", args.Name, suffix)
		al.AlarmActions = actions
		al.OkActions = actions
		al.Tags = args.Tags
		if al.TreatMissingData == nil {
			al.TreatMissingData = pulumi.String("notBreaching")
		}
		// PutMetricAlarm overwrites an alarm of the same name, so a create-first
		// replacement would be deleted right after: replace delete-first.
		_, err := cloudwatch.NewMetricAlarm(ctx, name+"-"+suffix, al, parent, pulumi.DeleteBeforeReplace(true))
		a.Count++
		return err
	}

	// A message the store refused for good was parked, not stored: someone must look
	// (docs/REFERENCE.md; the batch writer logs its id).
	if err := alarm("messages-rejected", &cloudwatch.MetricAlarmArgs{
		AlarmDescription:   pulumi.String("The store refused a message for good; it is parked in rejected_messages"),
		Namespace:          pulumi.String(AppNamespace(args.Name)),
		MetricName:         pulumi.String("MessagesRejected"),
		Statistic:          pulumi.String("Sum"),
		Period:             pulumi.Int(300),
		EvaluationPeriods:  pulumi.Int(1),
		Threshold:          pulumi.Float64(0),
		ComparisonOperator: pulumi.String("GreaterThanThreshold"),
	}); err != nil {
		return nil, err
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

	// MSK brokers are numbered from 1; a full disk stops the broker.
	for broker := 1; broker <= args.KafkaBrokers; broker++ {
		if err := alarm(fmt.Sprintf("kafka-disk-%d", broker), &cloudwatch.MetricAlarmArgs{
			AlarmDescription: pulumi.Sprintf("Kafka broker %d data disk above %v%% (storage autoscaling could not keep up, or hit its ceiling)", broker, args.KafkaDiskPercent),
			Namespace:        pulumi.String("AWS/Kafka"),
			MetricName:       pulumi.String("KafkaDataLogsDiskUsed"),
			Dimensions: pulumi.StringMap{
				"Cluster Name": args.KafkaClusterName, "Broker ID": pulumi.String(fmt.Sprint(broker)),
			},
			Statistic:          pulumi.String("Maximum"),
			Period:             pulumi.Int(300),
			EvaluationPeriods:  pulumi.Int(2),
			Threshold:          pulumi.Float64(args.KafkaDiskPercent),
			ComparisonOperator: pulumi.String("GreaterThanThreshold"),
		}); err != nil {
			return nil, err
		}
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
	a.KeyArn = key.Arn
	if err := ctx.RegisterResourceOutputs(a, pulumi.Map{
		"topicArn": a.TopicArn, "alarms": pulumi.String(fmt.Sprint(a.Count)),
	}); err != nil {
		return nil, err
	}
	return a, nil
}
