// Package database is the PostgreSQL store: RDS PostgreSQL or Aurora PostgreSQL,
// chosen by the stack's `database.engine`. Always private and encrypted, with
// backups retained and a master password that RDS generates and keeps in Secrets
// Manager (it is never in Pulumi state or in user data).
package database

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/rds"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// DatabaseArgs configures the store.
type DatabaseArgs struct {
	Identifier          string
	Engine              string // postgres or aurora-postgresql
	EngineVersion       string
	InstanceClass       string
	Instances           int
	MultiAZ             bool
	StorageGB           int
	BackupRetentionDays int
	DeletionProtection  bool
	DBName              string
	Username            string
	SubnetIDs           pulumi.StringArrayInput
	SecurityGroupID     pulumi.StringInput
	KmsKeyArn           pulumi.StringInput
	// Protect refuses to delete or replace the store; without it (throw-away stacks)
	// a replacement of the fixed identifier deletes the old one first.
	Protect bool
	Tags    pulumi.StringMap
}

// Database exposes the writer endpoint, the managed-password secret and the
// CloudWatch dimension its metrics carry.
type Database struct {
	pulumi.ResourceState

	Host      pulumi.StringOutput
	Port      int
	SecretArn pulumi.StringOutput
	// MetricDimension is DBInstanceIdentifier or DBClusterIdentifier with its value.
	MetricDimension pulumi.StringMap
}

// NewDatabase creates the subnet group and the instance or Aurora cluster.
func NewDatabase(ctx *pulumi.Context, name string, args *DatabaseArgs, opts ...pulumi.ResourceOption) (*Database, error) {
	d := &Database{Port: 5432}
	if err := ctx.RegisterComponentResource("quibly:database:Database", name, d, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(d)

	subnets, err := rds.NewSubnetGroup(ctx, args.Identifier, &rds.SubnetGroupArgs{
		SubnetIds: args.SubnetIDs,
		Tags:      args.Tags,
	}, parent)
	if err != nil {
		return nil, err
	}
	monitoring, attached, err := monitoringRole(ctx, name, args, parent)
	if err != nil {
		return nil, err
	}
	// Without deletion protection (throw-away stacks) a destroy skips the final snapshot.
	skipFinal := !args.DeletionProtection
	finalSnapshot := pulumi.Sprintf("%s-final", args.Identifier)
	keep := []pulumi.ResourceOption{parent, pulumi.Protect(args.Protect), pulumi.DeleteBeforeReplace(!args.Protect)}
	// Instances wait for the monitoring role's policy: RDS refuses a role without it.
	monitored := append(slices.Clip(keep), pulumi.DependsOn([]pulumi.Resource{attached}))

	switch args.Engine {
	case "aurora-postgresql":
		params, err := rds.NewClusterParameterGroup(ctx, name, &rds.ClusterParameterGroupArgs{
			NamePrefix:  pulumi.Sprintf("%s-", args.Identifier),
			Family:      pulumi.String(Family(args.Engine, args.EngineVersion)),
			Description: pulumi.Sprintf("Quibly %s: TLS only, query logging", args.Identifier),
			Parameters:  clusterParameters(),
			Tags:        args.Tags,
		}, parent)
		if err != nil {
			return nil, err
		}
		cluster, err := rds.NewCluster(ctx, name, &rds.ClusterArgs{
			ClusterIdentifier:        pulumi.String(args.Identifier),
			Engine:                   pulumi.String(args.Engine),
			EngineVersion:            pulumi.String(args.EngineVersion),
			DatabaseName:             pulumi.String(args.DBName),
			MasterUsername:           pulumi.String(args.Username),
			ManageMasterUserPassword: pulumi.Bool(true),
			MasterUserSecretKmsKeyId: args.KmsKeyArn,
			StorageEncrypted:         pulumi.Bool(true),
			KmsKeyId:                 args.KmsKeyArn,
			BackupRetentionPeriod:    pulumi.Int(args.BackupRetentionDays),
			DeletionProtection:       pulumi.Bool(args.DeletionProtection),
			SkipFinalSnapshot:        pulumi.Bool(skipFinal),
			FinalSnapshotIdentifier:  finalSnapshot,
			DbSubnetGroupName:        subnets.Name,
			VpcSecurityGroupIds:      pulumi.StringArray{args.SecurityGroupID},
			CopyTagsToSnapshot:       pulumi.Bool(true),
			// The server log goes to CloudWatch Logs, where it outlives the instance.
			EnabledCloudwatchLogsExports: pulumi.StringArray{pulumi.String("postgresql")},
			DbClusterParameterGroupName:  params.Name,
			Tags:                         args.Tags,
		}, keep...)
		if err != nil {
			return nil, err
		}
		for i := 1; i <= args.Instances; i++ {
			if _, err := rds.NewClusterInstance(ctx, fmt.Sprintf("%s-%d", name, i), &rds.ClusterInstanceArgs{
				Identifier:         pulumi.Sprintf("%s-%d", args.Identifier, i),
				ClusterIdentifier:  cluster.ID(),
				Engine:             pulumi.String(args.Engine),
				EngineVersion:      pulumi.String(args.EngineVersion),
				InstanceClass:      pulumi.String(args.InstanceClass),
				DbSubnetGroupName:  subnets.Name,
				PubliclyAccessible: pulumi.Bool(false),
				// Seven days of query load, free of charge, on the classes that have it.
				PerformanceInsightsEnabled:  pulumi.Bool(PerformanceInsights(args.InstanceClass)),
				PerformanceInsightsKmsKeyId: insightsKey(args),
				MonitoringInterval:          pulumi.Int(MonitoringIntervalSeconds),
				MonitoringRoleArn:           monitoring.Arn,
				Tags:                        args.Tags,
			}, monitored...); err != nil {
				return nil, err
			}
		}
		d.Host = cluster.Endpoint
		d.SecretArn = cluster.MasterUserSecrets.Index(pulumi.Int(0)).SecretArn().Elem()
		d.MetricDimension = pulumi.StringMap{"DBClusterIdentifier": pulumi.String(args.Identifier)}
	case "postgres":
		params, err := rds.NewParameterGroup(ctx, name, &rds.ParameterGroupArgs{
			NamePrefix:  pulumi.Sprintf("%s-", args.Identifier),
			Family:      pulumi.String(Family(args.Engine, args.EngineVersion)),
			Description: pulumi.Sprintf("Quibly %s: TLS only, query logging", args.Identifier),
			Parameters:  instanceParameters(),
			Tags:        args.Tags,
		}, parent)
		if err != nil {
			return nil, err
		}
		inst, err := rds.NewInstance(ctx, name, &rds.InstanceArgs{
			ParameterGroupName:       params.Name,
			Identifier:               pulumi.String(args.Identifier),
			Engine:                   pulumi.String(args.Engine),
			EngineVersion:            pulumi.String(args.EngineVersion),
			InstanceClass:            pulumi.String(args.InstanceClass),
			AllocatedStorage:         pulumi.Int(args.StorageGB),
			MaxAllocatedStorage:      pulumi.Int(args.StorageGB * 5), // storage autoscaling headroom
			StorageType:              pulumi.String("gp3"),
			StorageEncrypted:         pulumi.Bool(true),
			KmsKeyId:                 args.KmsKeyArn,
			DbName:                   pulumi.String(args.DBName),
			Username:                 pulumi.String(args.Username),
			ManageMasterUserPassword: pulumi.Bool(true),
			MasterUserSecretKmsKeyId: args.KmsKeyArn,
			MultiAz:                  pulumi.Bool(args.MultiAZ),
			PubliclyAccessible:       pulumi.Bool(false),
			BackupRetentionPeriod:    pulumi.Int(args.BackupRetentionDays),
			DeletionProtection:       pulumi.Bool(args.DeletionProtection),
			SkipFinalSnapshot:        pulumi.Bool(skipFinal),
			FinalSnapshotIdentifier:  finalSnapshot,
			DbSubnetGroupName:        subnets.Name,
			VpcSecurityGroupIds:      pulumi.StringArray{args.SecurityGroupID},
			CopyTagsToSnapshot:       pulumi.Bool(true),
			AutoMinorVersionUpgrade:  pulumi.Bool(true),
			// The server and upgrade logs go to CloudWatch Logs, where they outlive the instance.
			EnabledCloudwatchLogsExports: pulumi.StringArray{pulumi.String("postgresql"), pulumi.String("upgrade")},
			// Seven days of query load, free of charge, on the classes that have it.
			PerformanceInsightsEnabled:  pulumi.Bool(PerformanceInsights(args.InstanceClass)),
			PerformanceInsightsKmsKeyId: insightsKey(args),
			MonitoringInterval:          pulumi.Int(MonitoringIntervalSeconds),
			MonitoringRoleArn:           monitoring.Arn,
			Tags:                        args.Tags,
		}, monitored...)
		if err != nil {
			return nil, err
		}
		d.Host = inst.Address
		d.SecretArn = inst.MasterUserSecrets.Index(pulumi.Int(0)).SecretArn().Elem()
		d.MetricDimension = pulumi.StringMap{"DBInstanceIdentifier": pulumi.String(args.Identifier)}
	default:
		return nil, fmt.Errorf("database.engine %q is neither postgres nor aurora-postgresql", args.Engine)
	}

	if err := ctx.RegisterResourceOutputs(d, pulumi.Map{"host": d.Host, "secretArn": d.SecretArn}); err != nil {
		return nil, err
	}
	return d, nil
}

// noInsights are the classes RDS refuses Performance Insights (Database Insights) on
// for PostgreSQL.
var noInsights = []string{"db.t2.micro", "db.t2.small", "db.t3.micro", "db.t3.small", "db.t4g.micro", "db.t4g.small"}

// PerformanceInsights says whether an instance of class gets Performance Insights.
func PerformanceInsights(class string) bool { return !slices.Contains(noInsights, class) }

// insightsKey is the key Performance Insights encrypts with: the stack's own, where
// it is on (unset otherwise, as the provider refuses a key without insights).
func insightsKey(args *DatabaseArgs) pulumi.StringInput {
	if !PerformanceInsights(args.InstanceClass) {
		return nil
	}
	return args.KmsKeyArn
}

// MonitoringIntervalSeconds is Enhanced Monitoring's interval: the OS metrics
// (memory, swap, per-process CPU) CloudWatch's hypervisor view lacks, once a minute.
const MonitoringIntervalSeconds = 60

// monitoringPolicy is AWS's managed policy for the Enhanced Monitoring role.
const monitoringPolicy = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"

// monitoringRole is the role RDS assumes to publish Enhanced Monitoring metrics. The
// attachment is what the instances wait for: RDS refuses a role without it.
func monitoringRole(ctx *pulumi.Context, name string, args *DatabaseArgs, parent pulumi.ResourceOrInvokeOption) (*iam.Role, pulumi.Resource, error) {
	role, err := iam.NewRole(ctx, name+"-monitoring", &iam.RoleArgs{
		NamePrefix:       pulumi.Sprintf("%s-rdsmon-", args.Identifier),
		AssumeRolePolicy: pulumi.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"monitoring.rds.amazonaws.com"},"Action":"sts:AssumeRole"}]}`),
		Tags:             args.Tags,
	}, parent)
	if err != nil {
		return nil, nil, err
	}
	attached, err := iam.NewRolePolicyAttachment(ctx, name+"-monitoring", &iam.RolePolicyAttachmentArgs{
		Role: role.Name, PolicyArn: pulumi.String(monitoringPolicy),
	}, parent)
	return role, attached, err
}

// Family is the parameter group family of an engine version: postgres16,
// aurora-postgresql16.
func Family(engine, version string) string {
	major, _, _ := strings.Cut(version, ".")
	return engine + major
}

// Parameters are the stack's PostgreSQL settings. rds.force_ssl refuses a
// connection without TLS (the servers verify the certificate anyway). The rest is
// what the server log records of queries: schema changes, and any statement slower
// than a second, without its bind parameters, which carry message bodies and
// password hashes (log_parameter_max_length, PostgreSQL 13 and later).
var Parameters = map[string]string{
	"rds.force_ssl":                     "1",
	"log_statement":                     "ddl",
	"log_min_duration_statement":        "1000",
	"log_parameter_max_length":          "0",
	"log_parameter_max_length_on_error": "0",
}

func instanceParameters() rds.ParameterGroupParameterArray {
	var out rds.ParameterGroupParameterArray
	for _, k := range sortedKeys(Parameters) {
		out = append(out, rds.ParameterGroupParameterArgs{Name: pulumi.String(k), Value: pulumi.String(Parameters[k])})
	}
	return out
}

func clusterParameters() rds.ClusterParameterGroupParameterArray {
	var out rds.ClusterParameterGroupParameterArray
	for _, k := range sortedKeys(Parameters) {
		out = append(out, rds.ClusterParameterGroupParameterArgs{Name: pulumi.String(k), Value: pulumi.String(Parameters[k])})
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
