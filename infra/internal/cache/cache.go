// Package cache is ElastiCache Redis: fan-out, presence, leader election and
// session recovery. Auth token, TLS in transit and encryption at rest are always
// on; replicas, failover and cluster mode come from the stack's data.
package cache

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/elasticache"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// CacheArgs configures the replication group.
type CacheArgs struct {
	// ReplicationGroupID is the physical id (≤ 40 characters); the node ids the
	// alarms watch derive from it.
	ReplicationGroupID string
	NodeType           string
	EngineVersion      string
	ClusterMode        bool
	Shards             int
	ReplicasPerShard   int
	Port               int
	SubnetIDs          pulumi.StringArrayInput
	SecurityGroupID    pulumi.StringInput
	AuthToken          pulumi.StringInput // secret
	KmsKeyArn          pulumi.StringInput
	Tags               pulumi.StringMap
}

// Cache exposes the endpoint the servers use and the node ids the alarms watch.
type Cache struct {
	pulumi.ResourceState

	// Endpoint is the primary endpoint, or the configuration endpoint in cluster mode.
	Endpoint pulumi.StringOutput
	NodeIDs  []string
}

// NewCache creates the subnet group and replication group.
func NewCache(ctx *pulumi.Context, name string, args *CacheArgs, opts ...pulumi.ResourceOption) (*Cache, error) {
	c := &Cache{}
	if err := ctx.RegisterComponentResource("quibly:cache:Cache", name, c, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(c)

	subnets, err := elasticache.NewSubnetGroup(ctx, args.ReplicationGroupID, &elasticache.SubnetGroupArgs{
		Description: pulumi.String("Quibly Redis: private subnets"),
		SubnetIds:   args.SubnetIDs,
		Tags:        args.Tags,
	}, parent)
	if err != nil {
		return nil, err
	}

	failover := args.ReplicasPerShard > 0
	rg := &elasticache.ReplicationGroupArgs{
		ReplicationGroupId:       pulumi.String(args.ReplicationGroupID),
		Description:              pulumi.String("Quibly Redis"),
		Engine:                   pulumi.String("redis"),
		EngineVersion:            pulumi.String(args.EngineVersion),
		NodeType:                 pulumi.String(args.NodeType),
		Port:                     pulumi.Int(args.Port),
		SubnetGroupName:          subnets.Name,
		SecurityGroupIds:         pulumi.StringArray{args.SecurityGroupID},
		AuthToken:                args.AuthToken,
		TransitEncryptionEnabled: pulumi.Bool(true),
		AtRestEncryptionEnabled:  pulumi.Bool(true),
		KmsKeyId:                 args.KmsKeyArn,
		AutomaticFailoverEnabled: pulumi.Bool(failover),
		MultiAzEnabled:           pulumi.Bool(failover),
		SnapshotRetentionLimit:   pulumi.Int(1),
		ApplyImmediately:         pulumi.Bool(false),
		Tags:                     args.Tags,
	}
	if args.ClusterMode {
		rg.ClusterMode = pulumi.String("enabled")
		rg.ParameterGroupName = pulumi.String("default.redis7.cluster.on")
		rg.NumNodeGroups = pulumi.Int(args.Shards)
		rg.ReplicasPerNodeGroup = pulumi.Int(args.ReplicasPerShard)
	} else {
		rg.ClusterMode = pulumi.String("disabled")
		rg.NumCacheClusters = pulumi.Int(1 + args.ReplicasPerShard)
	}
	// The id is fixed (the alarms name its nodes after it), so a replacement must
	// delete first; Redis holds only state the servers rebuild (README, Operations).
	group, err := elasticache.NewReplicationGroup(ctx, name, rg, parent, pulumi.DeleteBeforeReplace(true))
	if err != nil {
		return nil, err
	}

	if args.ClusterMode {
		c.Endpoint = group.ConfigurationEndpointAddress
		for s := 1; s <= args.Shards; s++ {
			for n := 1; n <= args.ReplicasPerShard+1; n++ {
				c.NodeIDs = append(c.NodeIDs, fmt.Sprintf("%s-%04d-%03d", args.ReplicationGroupID, s, n))
			}
		}
	} else {
		c.Endpoint = group.PrimaryEndpointAddress
		for n := 1; n <= args.ReplicasPerShard+1; n++ {
			c.NodeIDs = append(c.NodeIDs, fmt.Sprintf("%s-%03d", args.ReplicationGroupID, n))
		}
	}
	if err := ctx.RegisterResourceOutputs(c, pulumi.Map{"endpoint": c.Endpoint}); err != nil {
		return nil, err
	}
	return c, nil
}
