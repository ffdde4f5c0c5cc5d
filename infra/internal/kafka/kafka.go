// Package kafka is the MSK cluster, the durable message queue. Clients
// authenticate with SASL/SCRAM over TLS; brokers replicate so that an acked
// message survives the loss of one broker; topics are created by the app, never
// implicitly by a typo'd producer.
package kafka

import (
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/appautoscaling"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/msk"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/quibly/quibly/infra/internal/logs"
)

// KafkaArgs configures the cluster.
type KafkaArgs struct {
	ClusterName       string
	Version           string
	BrokerType        string
	Brokers           int
	VolumeGB          int
	MaxVolumeGB       int
	ReplicationFactor int
	MinInsyncReplicas int
	SubnetIDs         pulumi.StringArrayInput
	SecurityGroupID   pulumi.StringInput
	KmsKeyArn         pulumi.StringInput
	ScramSecretArn    pulumi.StringInput
	// LogsBucket gets the brokers' logs under logs.KafkaPrefix once LogsReady (its policy) exists.
	LogsBucket pulumi.StringInput
	LogsReady  pulumi.Resource
	// Protect refuses to delete or replace the cluster, which holds acked messages
	// the batch writer has not stored yet.
	Protect bool
	Tags    pulumi.StringMap
}

// StorageTargetPercent is the disk use at which MSK storage autoscaling grows the brokers' volumes.
const StorageTargetPercent = 60

// Kafka exposes the SASL/SCRAM bootstrap list and the cluster name the alarms watch.
type Kafka struct {
	pulumi.ResourceState

	Brokers     pulumi.StringOutput
	ClusterName pulumi.StringOutput
}

// ServerProperties is the broker configuration, derived from the stack's data.
func ServerProperties(a *KafkaArgs) string {
	props := []string{
		"auto.create.topics.enable=false",
		fmt.Sprintf("default.replication.factor=%d", a.ReplicationFactor),
		fmt.Sprintf("min.insync.replicas=%d", a.MinInsyncReplicas),
		fmt.Sprintf("offsets.topic.replication.factor=%d", a.ReplicationFactor),
		fmt.Sprintf("transaction.state.log.replication.factor=%d", a.ReplicationFactor),
		fmt.Sprintf("transaction.state.log.min.isr=%d", a.MinInsyncReplicas),
		"unclean.leader.election.enable=false",
		"num.partitions=6",
	}
	return strings.Join(props, "\n") + "\n"
}

// NewKafka creates the configuration, the cluster and the SCRAM secret association.
func NewKafka(ctx *pulumi.Context, name string, args *KafkaArgs, opts ...pulumi.ResourceOption) (*Kafka, error) {
	k := &Kafka{}
	if err := ctx.RegisterComponentResource("quibly:kafka:Kafka", name, k, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(k)

	// Auto-named (a suffix per generation), so a new configuration can exist beside
	// the one the cluster still uses.
	conf, err := msk.NewConfiguration(ctx, args.ClusterName, &msk.ConfigurationArgs{
		KafkaVersions:    pulumi.StringArray{pulumi.String(args.Version)},
		ServerProperties: pulumi.String(ServerProperties(args)),
		Description:      pulumi.String("Quibly brokers"),
	}, parent)
	if err != nil {
		return nil, err
	}

	cluster, err := msk.NewCluster(ctx, args.ClusterName, &msk.ClusterArgs{
		KafkaVersion:        pulumi.String(args.Version),
		NumberOfBrokerNodes: pulumi.Int(args.Brokers),
		BrokerNodeGroupInfo: &msk.ClusterBrokerNodeGroupInfoArgs{
			InstanceType:   pulumi.String(args.BrokerType),
			ClientSubnets:  args.SubnetIDs,
			SecurityGroups: pulumi.StringArray{args.SecurityGroupID},
			StorageInfo: &msk.ClusterBrokerNodeGroupInfoStorageInfoArgs{
				EbsStorageInfo: &msk.ClusterBrokerNodeGroupInfoStorageInfoEbsStorageInfoArgs{VolumeSize: pulumi.Int(args.VolumeGB)},
			},
		},
		ClientAuthentication: &msk.ClusterClientAuthenticationArgs{
			Sasl:            &msk.ClusterClientAuthenticationSaslArgs{Scram: pulumi.Bool(true)},
			Unauthenticated: pulumi.Bool(false),
		},
		EncryptionInfo: &msk.ClusterEncryptionInfoArgs{
			EncryptionAtRestKmsKeyArn: args.KmsKeyArn,
			EncryptionInTransit: &msk.ClusterEncryptionInfoEncryptionInTransitArgs{
				ClientBroker: pulumi.String("TLS"),
				InCluster:    pulumi.Bool(true),
			},
		},
		ConfigurationInfo: &msk.ClusterConfigurationInfoArgs{Arn: conf.Arn, Revision: conf.LatestRevision},
		LoggingInfo: &msk.ClusterLoggingInfoArgs{BrokerLogs: &msk.ClusterLoggingInfoBrokerLogsArgs{
			S3: &msk.ClusterLoggingInfoBrokerLogsS3Args{
				Enabled: pulumi.Bool(true), Bucket: args.LogsBucket, Prefix: pulumi.String(logs.KafkaPrefix),
			},
		}},
		Tags: args.Tags,
	}, parent, pulumi.Protect(args.Protect), pulumi.DependsOn([]pulumi.Resource{args.LogsReady}),
		// Storage autoscaling grows the volumes; the program must not shrink them back.
		pulumi.IgnoreChanges([]string{"brokerNodeGroupInfo.storageInfo.ebsStorageInfo.volumeSize"}))
	if err != nil {
		return nil, err
	}

	// MSK storage autoscaling: Application Auto Scaling grows every broker's volume
	// when disk use passes the target (it never shrinks one).
	target, err := appautoscaling.NewTarget(ctx, name+"-storage", &appautoscaling.TargetArgs{
		ServiceNamespace:  pulumi.String("kafka"),
		ScalableDimension: pulumi.String("kafka:broker-storage:VolumeSize"),
		ResourceId:        cluster.Arn,
		MinCapacity:       pulumi.Int(1),
		MaxCapacity:       pulumi.Int(args.MaxVolumeGB),
	}, parent)
	if err != nil {
		return nil, err
	}
	if _, err := appautoscaling.NewPolicy(ctx, name+"-storage", &appautoscaling.PolicyArgs{
		PolicyType:        pulumi.String("TargetTrackingScaling"),
		ServiceNamespace:  target.ServiceNamespace,
		ScalableDimension: target.ScalableDimension,
		ResourceId:        target.ResourceId,
		TargetTrackingScalingPolicyConfiguration: &appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationArgs{
			PredefinedMetricSpecification: &appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs{
				PredefinedMetricType: pulumi.String("KafkaBrokerStorageUtilization"),
			},
			TargetValue:    pulumi.Float64(StorageTargetPercent),
			DisableScaleIn: pulumi.Bool(true),
		},
	}, parent); err != nil {
		return nil, err
	}

	if _, err := msk.NewScramSecretAssociation(ctx, name, &msk.ScramSecretAssociationArgs{
		ClusterArn:     cluster.Arn,
		SecretArnLists: pulumi.StringArray{args.ScramSecretArn},
	}, parent); err != nil {
		return nil, err
	}

	k.Brokers = cluster.BootstrapBrokersSaslScram
	k.ClusterName = cluster.ClusterName
	if err := ctx.RegisterResourceOutputs(k, pulumi.Map{"brokers": k.Brokers, "clusterName": k.ClusterName}); err != nil {
		return nil, err
	}
	return k, nil
}
