// Package program wires the components into the whole Quibly deployment. The same
// Run is what `pulumi up` executes and what the mock tests and `make plan` execute.
package program

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/quibly/quibly/infra/internal/alarms"
	"github.com/quibly/quibly/infra/internal/cache"
	"github.com/quibly/quibly/infra/internal/config"
	"github.com/quibly/quibly/infra/internal/database"
	"github.com/quibly/quibly/infra/internal/firewall"
	"github.com/quibly/quibly/infra/internal/fleet"
	"github.com/quibly/quibly/infra/internal/kafka"
	"github.com/quibly/quibly/infra/internal/loadbalancer"
	"github.com/quibly/quibly/infra/internal/logs"
	"github.com/quibly/quibly/infra/internal/network"
	"github.com/quibly/quibly/infra/internal/secrets"
)

// KafkaUsername is the SCRAM user the servers log in as.
const KafkaUsername = "quibly"

// Outputs are the stack outputs.
type Outputs struct {
	URL              pulumi.StringOutput
	ALBDNSName       pulumi.StringOutput
	Instances        pulumi.StringMap // SERVER_ID → instance id
	RedisEndpoint    pulumi.StringOutput
	KafkaBrokers     pulumi.StringOutput
	DatabaseHost     pulumi.StringOutput
	ArtifactBucket   pulumi.StringOutput
	VersionParameter pulumi.StringOutput
	AppSecretArn     pulumi.StringOutput
	KafkaSecretArn   pulumi.StringOutput
	DBSecretArn      pulumi.StringOutput
	DBAppSecretArn   pulumi.StringOutput
	AlarmTopicArn    pulumi.StringOutput
	// NodeVersionPrefix + SERVER_ID + "/app-version" is each node's version parameter.
	NodeVersionPrefix string
	AppPort           int
	AppArch           string
	AMI               string
	// RedisAuthToken is the token the cache was created with (secret; not exported).
	RedisAuthToken pulumi.StringOutput
}

// Run is the Pulumi program: read the config once, build, export.
func Run(ctx *pulumi.Context) error {
	cfg, err := config.Load(ctx)
	if err != nil {
		return err
	}
	out, err := Deploy(ctx, cfg)
	if err != nil {
		return err
	}
	for k, v := range Exports(out) {
		ctx.Export(k, v)
	}
	return nil
}

// Exports are the stack outputs: what operators and scripts/ops/adapters/aws.sh read.
// No secret is among them (the servers read theirs from Secrets Manager).
func Exports(out *Outputs) map[string]pulumi.Input {
	return map[string]pulumi.Input{
		"url":                        out.URL,
		"albDnsName":                 out.ALBDNSName,
		"instances":                  out.Instances,
		"redisEndpoint":              out.RedisEndpoint,
		"kafkaBrokers":               out.KafkaBrokers,
		"databaseHost":               out.DatabaseHost,
		"artifactBucket":             out.ArtifactBucket,
		"appVersionParameter":        out.VersionParameter,
		"appSecretArn":               out.AppSecretArn,
		"kafkaSecretArn":             out.KafkaSecretArn,
		"databaseSecretArn":          out.DBSecretArn,
		"databaseAppSecretArn":       out.DBAppSecretArn,
		"alarmTopicArn":              out.AlarmTopicArn,
		"nodeVersionParameterPrefix": pulumi.String(out.NodeVersionPrefix),
		"appPort":                    pulumi.Int(out.AppPort),
		"appArch":                    pulumi.String(out.AppArch),
		"ami":                        pulumi.String(out.AMI),
		// Where RDS's certificate authorities are published: the servers and the ops
		// adapter's database_url verify the database against them.
		"rdsCaBundleUrl": pulumi.String(fleet.RDSCABundle),
	}
}

// Deploy builds every component from a validated config.
func Deploy(ctx *pulumi.Context, cfg *config.Config) (*Outputs, error) {
	name := cfg.Name()
	tags := pulumi.StringMap{"Project": pulumi.String(cfg.Project), "Stack": pulumi.String(cfg.Stack), "ManagedBy": pulumi.String("pulumi")}
	// What holds messages or decrypts them is protected in production: Pulumi refuses
	// to delete or replace it, and the key outlives a destroy.
	protect := cfg.Production

	net, err := network.NewNetwork(ctx, "network", &network.NetworkArgs{
		CIDR: cfg.Network.CIDR, AZCount: cfg.Network.AZCount, NATGateways: cfg.Network.NATGateways,
		InterfaceEndpoints: cfg.Network.InterfaceEndpoints, Region: cfg.Region, Tags: tags,
	})
	if err != nil {
		return nil, err
	}
	lg, err := logs.NewLogs(ctx, "logs", &logs.LogsArgs{
		Name: name, Stack: cfg.Stack, Region: cfg.Region, VpcID: net.VpcID, RetentionDays: cfg.Network.LogRetentionDays, Protect: protect, Tags: tags,
	})
	if err != nil {
		return nil, err
	}
	fw, err := firewall.NewFirewall(ctx, "firewall", &firewall.FirewallArgs{
		VpcID: net.VpcID, AppPort: cfg.App.Port, HTTPS: cfg.HTTPS(), Tags: tags,
	})
	if err != nil {
		return nil, err
	}
	recovery := 7
	if !protect {
		recovery = 0 // a throw-away stack can be destroyed and re-created under the same names
	}
	sec, err := secrets.NewSecrets(ctx, "secrets", &secrets.SecretsArgs{
		Name: name, KafkaUsername: KafkaUsername, DBAppUsername: config.DBAppUsername, RecoveryWindowDays: recovery, Protect: protect, Tags: tags,
		JWTSecret: cfg.Secrets.JWTSecret, RedisAuthToken: cfg.Secrets.RedisAuthToken, KafkaPassword: cfg.Secrets.KafkaPassword,
		DBAppPassword: cfg.Secrets.DBAppPassword,
	})
	if err != nil {
		return nil, err
	}
	alb, err := loadbalancer.NewLoadBalancer(ctx, "loadbalancer", &loadbalancer.LoadBalancerArgs{
		Name: name, VpcID: net.VpcID, SubnetIDs: net.PublicSubnetIDs, SecurityGroupID: fw.AlbSG,
		AppPort: cfg.App.Port, CertificateARN: cfg.LoadBalancer.CertificateARN,
		Domain: cfg.LoadBalancer.Domain, HostedZoneID: cfg.LoadBalancer.HostedZoneID,
		IdleTimeoutSeconds: cfg.LoadBalancer.IdleTimeoutSeconds, DeregistrationDelaySeconds: cfg.LoadBalancer.DeregistrationDelaySeconds,
		StickinessSeconds: cfg.LoadBalancer.StickinessSeconds, DeletionProtection: protect,
		AccessLogsBucket: lg.Bucket, LogsBucketArn: lg.BucketArn, LogsReady: lg.Ready,
		WAF: cfg.LoadBalancer.WAF, WAFClientsPerAddress: cfg.LoadBalancer.WAFClientsPerAddress, Tags: tags,
	})
	if err != nil {
		return nil, err
	}
	redis, err := cache.NewCache(ctx, "cache", &cache.CacheArgs{
		ReplicationGroupID: name, NodeType: cfg.Cache.NodeType, EngineVersion: cfg.Cache.EngineVersion,
		ClusterMode: cfg.Cache.ClusterMode, Shards: cfg.Cache.Shards, ReplicasPerShard: cfg.Cache.ReplicasPerShard,
		Port: firewall.RedisPort, SubnetIDs: net.PrivateSubnetIDs, SecurityGroupID: fw.CacheSG,
		AuthToken: sec.RedisAuthToken, KmsKeyArn: sec.KeyArn, Tags: tags,
	})
	if err != nil {
		return nil, err
	}
	mq, err := kafka.NewKafka(ctx, "kafka", &kafka.KafkaArgs{
		ClusterName: name, Version: cfg.Kafka.Version, BrokerType: cfg.Kafka.BrokerType, Brokers: cfg.Kafka.Brokers,
		VolumeGB: cfg.Kafka.VolumeGB, MaxVolumeGB: cfg.Kafka.MaxVolumeGB, Protect: protect, ReplicationFactor: cfg.Kafka.ReplicationFactor, MinInsyncReplicas: cfg.Kafka.MinInsyncReplicas,
		SubnetIDs: net.PrivateSubnetIDs, SecurityGroupID: fw.KafkaSG, KmsKeyArn: sec.KeyArn, ScramSecretArn: sec.KafkaSecretArn,
		LogsBucket: lg.Bucket, LogsReady: lg.Ready, Tags: tags,
	})
	if err != nil {
		return nil, err
	}
	db, err := database.NewDatabase(ctx, "database", &database.DatabaseArgs{
		Identifier: name, Engine: cfg.Database.Engine, EngineVersion: cfg.Database.EngineVersion,
		InstanceClass: cfg.Database.InstanceClass, Instances: cfg.Database.Instances, MultiAZ: cfg.Database.MultiAZ,
		StorageGB: cfg.Database.StorageGB, BackupRetentionDays: cfg.Database.BackupRetentionDays,
		DeletionProtection: cfg.Database.DeletionProtection, DBName: cfg.Database.Name, Username: cfg.Database.Username,
		SubnetIDs: net.PrivateSubnetIDs, SecurityGroupID: fw.DBSG, KmsKeyArn: sec.KeyArn, Protect: protect, Tags: tags,
	})
	if err != nil {
		return nil, err
	}

	frontend := alb.URL
	if cfg.App.FrontendURL != "" {
		frontend = pulumi.String(cfg.App.FrontendURL).ToStringOutput()
	}
	servers, err := fleet.NewFleet(ctx, "fleet", &fleet.FleetArgs{
		Name: name, Region: cfg.Region, Instances: cfg.Fleet.Instances, InstanceType: cfg.Fleet.InstanceType,
		AMI: cfg.Fleet.AMI, Arch: cfg.Fleet.Arch, VolumeGB: cfg.Fleet.VolumeGB, MemoryMax: cfg.Fleet.MemoryMax,
		AppVersion: cfg.App.Version, AppPort: cfg.App.Port,
		// systemd waits a little longer than the app's own drain before it kills.
		StopTimeoutSeconds: cfg.LoadBalancer.DrainSeconds + 5,
		FrontendURL:        frontend, SubnetIDs: net.PrivateSubnetIDs, SecurityGroupID: fw.AppSG,
		TargetGroupArn: alb.TargetGroupArn, KmsKeyArn: sec.KeyArn, LogsBucket: lg.Bucket, LogsReady: lg.Ready,
		RedisHost: redis.Endpoint, RedisPort: firewall.RedisPort, RedisCluster: cfg.Cache.ClusterMode, KafkaBrokers: mq.Brokers,
		// The app creates its topic at start (brokers never auto-create) with this replication.
		KafkaTopic: cfg.Kafka.Topic, KafkaReplication: cfg.Kafka.ReplicationFactor,
		KafkaMinInsync: cfg.Kafka.MinInsyncReplicas, KafkaGroupID: cfg.Kafka.ConsumerGroup,
		PingIntervalSeconds: cfg.LoadBalancer.PingIntervalSeconds, LBIdleTimeoutSeconds: cfg.LoadBalancer.IdleTimeoutSeconds,
		VPCCIDR: cfg.Network.CIDR, MetricsNamespace: alarms.AppNamespace(name),
		DrainSeconds: cfg.LoadBalancer.DrainSeconds,
		DBHost:       db.Host, DBPort: db.Port, DBName: cfg.Database.Name,
		AppSecretArn: sec.AppSecretArn, KafkaSecretArn: sec.KafkaSecretArn, DBSecretArn: db.SecretArn, DBAppSecretArn: sec.DBAppSecretArn,
		DetailedMonitoring: cfg.Production, Protect: protect, Tags: tags,
	})
	if err != nil {
		return nil, err
	}

	watched := make([]alarms.Instance, 0, len(servers.Servers))
	instances := pulumi.StringMap{}
	for _, s := range servers.Servers {
		watched = append(watched, alarms.Instance{ServerID: s.ServerID, InstanceID: s.InstanceID})
		instances[s.ServerID] = s.InstanceID
	}
	al, err := alarms.NewAlarms(ctx, "alarms", &alarms.AlarmsArgs{
		Name: name, Email: cfg.Alarms.Email, LoadBalancerSuffix: alb.ArnSuffix, TargetGroupSuffix: alb.TargetGroupSuffix,
		Instances: watched, CacheNodeIDs: redis.NodeIDs, KafkaClusterName: mq.ClusterName, KafkaBrokers: cfg.Kafka.Brokers,
		KafkaTopic: cfg.Kafka.Topic, KafkaConsumerGroup: cfg.Kafka.ConsumerGroup,
		DBDimension: db.MetricDimension, DBMaxConnections: cfg.Database.MaxConnections,
		CPUPercent: cfg.Alarms.CPUPercent, HTTP5xxPercent: cfg.Alarms.HTTP5xxPercent, KafkaLag: cfg.Alarms.KafkaLag,
		DBConnectionsPercent: cfg.Alarms.DBConnectionsPercent, RedisMemoryPercent: cfg.Alarms.RedisMemoryPercent,
		KafkaDiskPercent: cfg.Alarms.KafkaDiskPercent,
		WebACLName:       alb.WebACLName, WAFRateRule: loadbalancer.RateRuleName, Region: cfg.Region, Tags: tags,
	})
	if err != nil {
		return nil, err
	}

	return &Outputs{
		URL: alb.URL, ALBDNSName: alb.DNSName, Instances: instances,
		RedisEndpoint: redis.Endpoint, KafkaBrokers: mq.Brokers, DatabaseHost: db.Host,
		ArtifactBucket: servers.ArtifactBucket, VersionParameter: servers.VersionParameter,
		AppSecretArn: sec.AppSecretArn, KafkaSecretArn: sec.KafkaSecretArn, DBSecretArn: db.SecretArn, DBAppSecretArn: sec.DBAppSecretArn,
		AlarmTopicArn: al.TopicArn, NodeVersionPrefix: servers.NodeVersionPrefix, AppPort: cfg.App.Port,
		AppArch: cfg.Fleet.Arch, AMI: servers.AMI, RedisAuthToken: sec.RedisAuthToken,
	}, nil
}
