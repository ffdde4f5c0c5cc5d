// Package fleet is the EC2 instances that run the server: one SERVER_ID each, the
// binary from the artifact bucket under systemd, reachable through SSM Session
// Manager (no SSH, no key pair, no port 22), registered in the ALB target group.
package fleet

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/lb"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/s3"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ssm"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/quibly/quibly/infra/internal/logs"
)

// FleetArgs configures the instances and what they connect to.
type FleetArgs struct {
	Name                string // quibly-<stack>: prefixes names and the SSM parameter path
	Region              string
	Instances           int
	InstanceType        string
	AMI                 string
	Arch                string
	VolumeGB            int
	MemoryMax           string
	AppVersion          string
	AppPort             int
	StopTimeoutSeconds  int
	FrontendURL         pulumi.StringInput
	SubnetIDs           pulumi.StringArray
	SecurityGroupID     pulumi.StringInput
	TargetGroupArn      pulumi.StringInput
	KmsKeyArn           pulumi.StringInput
	LogsBucket          pulumi.StringInput // gets the artifact bucket's access logs,
	LogsReady           pulumi.Resource    // once its policy (this) exists
	RedisHost           pulumi.StringInput
	RedisPort           int
	RedisCluster        bool
	KafkaBrokers        pulumi.StringInput
	KafkaTopic          string
	KafkaReplication    int
	KafkaMinInsync      int
	KafkaGroupID        string
	PingIntervalSeconds int
	// LBIdleTimeoutSeconds is the load balancer's idle timeout (the server's is longer).
	LBIdleTimeoutSeconds int
	// VPCCIDR is the network the load balancer's nodes connect from.
	VPCCIDR string
	// MetricsNamespace is the CloudWatch namespace the servers publish to (and only there).
	MetricsNamespace string
	DrainSeconds     int
	DBHost           pulumi.StringInput
	DBPort           int
	DBName           string
	AppSecretArn     pulumi.StringInput
	KafkaSecretArn   pulumi.StringInput
	DBSecretArn      pulumi.StringInput // the master user's: only quibly -setup-db reads it
	DBAppSecretArn   pulumi.StringInput // the servers' own login
	// DetailedMonitoring gives the instances one-minute metrics instead of
	// five-minute ones (production tiers: alarms and scaling see a spike in time).
	DetailedMonitoring bool
	// Protect keeps the bucket (and the releases a rollback needs); without it a
	// destroy empties and deletes it.
	Protect bool
	Tags    pulumi.StringMap
}

// Server is one instance and its SERVER_ID.
type Server struct {
	ServerID   string
	InstanceID pulumi.StringOutput
}

// Fleet exposes the servers, the bucket the release pipeline uploads to and the
// parameter that names the running version.
type Fleet struct {
	pulumi.ResourceState

	Servers          []Server
	ArtifactBucket   pulumi.StringOutput
	VersionParameter pulumi.StringOutput
	// NodeVersionPrefix + SERVER_ID + "/app-version" is the parameter each node boots.
	NodeVersionPrefix string
	// AMI is the image id the servers were created from.
	AMI string
}

// ServerID names the n-th server (1-based): server-1, server-2, … (SERVER_ID, and the
// serverId of /health).
func ServerID(n int) string { return fmt.Sprintf("server-%d", n) }

// NodeVersionParameter is the SSM parameter naming the release one node runs. Each
// node has its own, so a node that restarts while a deploy is under way runs what
// it ran, not what the deploy has not yet checked on it.
func NodeVersionParameter(name, serverID string) string {
	return fmt.Sprintf("/%s/nodes/%s/app-version", name, serverID)
}

// ResolveAMI turns resolve:ssm:<parameter> into the image id it names today.
// EC2 accepts the resolve: form, but the provider then describes the image by that
// string and fails (InvalidAMIID.Malformed, terraform-provider-aws #43488).
func ResolveAMI(ctx *pulumi.Context, ami string, opts ...pulumi.InvokeOption) (string, error) {
	param, ok := strings.CutPrefix(ami, "resolve:ssm:")
	if !ok {
		return ami, nil
	}
	p, err := ssm.LookupParameter(ctx, &ssm.LookupParameterArgs{Name: param}, opts...)
	if err != nil {
		return "", fmt.Errorf("fleet.ami: reading %s: %w", param, err)
	}
	if !strings.HasPrefix(p.InsecureValue, "ami-") {
		return "", fmt.Errorf("fleet.ami: %s holds %q, not an AMI id", param, p.InsecureValue)
	}
	return p.InsecureValue, nil
}

// NewFleet creates the artifact bucket, version parameter, instance role and the instances.
func NewFleet(ctx *pulumi.Context, name string, args *FleetArgs, opts ...pulumi.ResourceOption) (*Fleet, error) {
	f := &Fleet{}
	if err := ctx.RegisterComponentResource("quibly:fleet:Fleet", name, f, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(f)

	ami, err := ResolveAMI(ctx, args.AMI, parent)
	if err != nil {
		return nil, err
	}
	f.AMI = ami
	f.NodeVersionPrefix = fmt.Sprintf("/%s/nodes/", args.Name)

	bucket, err := artifactBucket(ctx, name, args, parent)
	if err != nil {
		return nil, err
	}

	// The running version lives here, not in user data: a new instance boots into it,
	// and changing it replaces nothing (the rolling deploy restarts nodes one by one).
	version, err := ssm.NewParameter(ctx, name+"-app-version", &ssm.ParameterArgs{
		Name:        pulumi.Sprintf("/%s/app-version", args.Name),
		Type:        pulumi.String("String"),
		Value:       pulumi.String(args.AppVersion),
		Description: pulumi.String("Quibly release of the stack: what new servers start on; a deploy moves it once every node runs the release"),
		Tags:        args.Tags,
	}, parent, pulumi.DeleteBeforeReplace(true))
	if err != nil {
		return nil, err
	}

	profile, err := serverProfile(ctx, name, args, bucket.Arn, version.Arn, parent)
	if err != nil {
		return nil, err
	}

	for i := 1; i <= args.Instances; i++ {
		srv, err := newServer(ctx, name, i, args, ami, bucket, profile, parent)
		if err != nil {
			return nil, err
		}
		f.Servers = append(f.Servers, srv)
	}

	f.ArtifactBucket = bucket.Bucket
	f.VersionParameter = version.Name
	instances := pulumi.StringMap{}
	for _, s := range f.Servers {
		instances[s.ServerID] = s.InstanceID
	}
	if err := ctx.RegisterResourceOutputs(f, pulumi.Map{
		"instances": instances, "artifactBucket": f.ArtifactBucket, "versionParameter": f.VersionParameter,
	}); err != nil {
		return nil, err
	}
	return f, nil
}

// artifactBucket is where releases are uploaded (quibly/<version>/): private,
// TLS-only, encrypted with the stack's key, versioned for rollbacks.
func artifactBucket(ctx *pulumi.Context, name string, args *FleetArgs, parent pulumi.ResourceOrInvokeOption) (*s3.BucketV2, error) {
	bucket, err := s3.NewBucketV2(ctx, name+"-artifacts", &s3.BucketV2Args{
		BucketPrefix: pulumi.Sprintf("%s-artifacts-", args.Name),
		ForceDestroy: pulumi.Bool(!args.Protect),
		Tags:         args.Tags,
	}, parent, pulumi.Protect(args.Protect))
	if err != nil {
		return nil, err
	}
	block, err := s3.NewBucketPublicAccessBlock(ctx, name+"-artifacts", &s3.BucketPublicAccessBlockArgs{
		Bucket: bucket.ID(), BlockPublicAcls: pulumi.Bool(true), BlockPublicPolicy: pulumi.Bool(true),
		IgnorePublicAcls: pulumi.Bool(true), RestrictPublicBuckets: pulumi.Bool(true),
	}, parent)
	if err != nil {
		return nil, err
	}
	// After the public access block: S3 answers OperationAborted to a policy put that
	// races it.
	if _, err := s3.NewBucketPolicy(ctx, name+"-artifacts", &s3.BucketPolicyArgs{
		Bucket: bucket.ID(),
		Policy: bucket.Arn.ApplyT(tlsOnlyPolicy).(pulumi.StringOutput),
	}, parent, pulumi.DependsOn([]pulumi.Resource{block})); err != nil {
		return nil, err
	}
	if _, err := s3.NewBucketServerSideEncryptionConfigurationV2(ctx, name+"-artifacts", &s3.BucketServerSideEncryptionConfigurationV2Args{
		Bucket: bucket.ID(),
		Rules: s3.BucketServerSideEncryptionConfigurationV2RuleArray{s3.BucketServerSideEncryptionConfigurationV2RuleArgs{
			ApplyServerSideEncryptionByDefault: &s3.BucketServerSideEncryptionConfigurationV2RuleApplyServerSideEncryptionByDefaultArgs{
				SseAlgorithm: pulumi.String("aws:kms"), KmsMasterKeyId: args.KmsKeyArn,
			},
			BucketKeyEnabled: pulumi.Bool(true),
		}},
	}, parent); err != nil {
		return nil, err
	}
	// Old releases stay downloadable for a rollback.
	versioning, err := s3.NewBucketVersioningV2(ctx, name+"-artifacts", &s3.BucketVersioningV2Args{
		Bucket:                  bucket.ID(),
		VersioningConfiguration: &s3.BucketVersioningV2VersioningConfigurationArgs{Status: pulumi.String("Enabled")},
	}, parent)
	if err != nil {
		return nil, err
	}
	// Releases are kept by their own keys (quibly/<version>/); only overwritten or
	// deleted copies expire, and abandoned uploads are cleaned up.
	if _, err := s3.NewBucketLifecycleConfigurationV2(ctx, name+"-artifacts", &s3.BucketLifecycleConfigurationV2Args{
		Bucket: bucket.ID(),
		Rules: s3.BucketLifecycleConfigurationV2RuleArray{s3.BucketLifecycleConfigurationV2RuleArgs{
			Id: pulumi.String("expire-old-copies"), Status: pulumi.String("Enabled"),
			Filter: &s3.BucketLifecycleConfigurationV2RuleFilterArgs{Prefix: pulumi.String("")},
			NoncurrentVersionExpiration: &s3.BucketLifecycleConfigurationV2RuleNoncurrentVersionExpirationArgs{
				NoncurrentDays: pulumi.Int(NoncurrentReleaseDays),
			},
			AbortIncompleteMultipartUpload: &s3.BucketLifecycleConfigurationV2RuleAbortIncompleteMultipartUploadArgs{
				DaysAfterInitiation: pulumi.Int(7),
			},
		}},
	}, parent, pulumi.DependsOn([]pulumi.Resource{versioning})); err != nil {
		return nil, err
	}
	// Who read or wrote which release, for an incident: S3 server access logs.
	if _, err := s3.NewBucketLoggingV2(ctx, name+"-artifacts", &s3.BucketLoggingV2Args{
		Bucket: bucket.ID(), TargetBucket: args.LogsBucket, TargetPrefix: pulumi.String(logs.ArtifactsPrefix),
	}, parent, pulumi.DependsOn([]pulumi.Resource{args.LogsReady})); err != nil {
		return nil, err
	}
	return bucket, nil
}

// serverProfile is the servers' role: the SSM agent's calls, and reading the stack's
// secrets, releases and version parameters (serverPolicy).
func serverProfile(ctx *pulumi.Context, name string, args *FleetArgs, bucketArn, versionArn pulumi.StringOutput,
	parent pulumi.ResourceOrInvokeOption) (*iam.InstanceProfile, error) {
	role, err := iam.NewRole(ctx, name, &iam.RoleArgs{
		NamePrefix:       pulumi.Sprintf("%s-server-", args.Name),
		AssumeRolePolicy: pulumi.String(assumeEC2),
		Tags:             args.Tags,
	}, parent)
	if err != nil {
		return nil, err
	}
	// The SSM agent's own calls (registration, Run Command, Session Manager), not
	// AmazonSSMManagedInstanceCore, which also lets a server read every parameter in
	// the account.
	if _, err := iam.NewRolePolicy(ctx, name+"-ssm-agent", &iam.RolePolicyArgs{
		Role: role.Name, Policy: pulumi.String(agentPolicy()),
	}, parent); err != nil {
		return nil, err
	}
	policy := resolve(policyInputs{}, []output[policyInputs]{
		{args.AppSecretArn, func(p *policyInputs, v string) { p.secrets = append(p.secrets, v) }},
		{args.KafkaSecretArn, func(p *policyInputs, v string) { p.secrets = append(p.secrets, v) }},
		{args.DBSecretArn, func(p *policyInputs, v string) { p.secrets = append(p.secrets, v) }},
		{args.DBAppSecretArn, func(p *policyInputs, v string) { p.secrets = append(p.secrets, v) }},
		{args.KmsKeyArn, func(p *policyInputs, v string) { p.key = v }},
		{bucketArn, func(p *policyInputs, v string) { p.bucketArn = v }},
		{versionArn, func(p *policyInputs, v string) { p.nodes = strings.TrimSuffix(v, "/app-version") + "/nodes/*" }},
	}, func(p policyInputs) (string, error) {
		return serverPolicy(p.secrets, p.key, p.bucketArn, p.nodes, args.MetricsNamespace)
	})
	if _, err := iam.NewRolePolicy(ctx, name+"-runtime", &iam.RolePolicyArgs{Role: role.Name, Policy: policy}, parent); err != nil {
		return nil, err
	}
	profile, err := iam.NewInstanceProfile(ctx, name, &iam.InstanceProfileArgs{
		NamePrefix: pulumi.Sprintf("%s-server-", args.Name), Role: role.Name, Tags: args.Tags,
	}, parent)
	if err != nil {
		return nil, err
	}
	return profile, nil
}

// newServer is the i-th server: its version parameter, its instance (booting into
// the release that parameter names) and its place in the target group.
func newServer(ctx *pulumi.Context, name string, i int, args *FleetArgs, ami string, bucket *s3.BucketV2, profile *iam.InstanceProfile,
	parent pulumi.ResourceOrInvokeOption) (Server, error) {
	serverID := ServerID(i)
	// Created on the stack's release; from then on the rolling deploy moves it.
	pin, err := ssm.NewParameter(ctx, fmt.Sprintf("%s-%s-app-version", name, serverID), &ssm.ParameterArgs{
		Name:        pulumi.String(NodeVersionParameter(args.Name, serverID)),
		Type:        pulumi.String("String"),
		Value:       pulumi.String(args.AppVersion),
		Description: pulumi.Sprintf("Quibly release %s runs; read by quibly-fetch at each start, moved by the rolling deploy", serverID),
		Tags:        args.Tags,
	}, parent, pulumi.IgnoreChanges([]string{"value"}), pulumi.DeleteBeforeReplace(true))
	if err != nil {
		return Server{}, err
	}
	// The settings known now, then each one another resource's output gives, beside
	// the field it fills (no list of positions to keep in step).
	boot := BootSettings{
		ServerID: serverID, Port: args.AppPort, Region: args.Region, Arch: args.Arch,
		MemoryMax: args.MemoryMax, StopTimeoutSeconds: args.StopTimeoutSeconds,
		RedisPort: args.RedisPort, RedisCluster: args.RedisCluster,
		KafkaTopic: args.KafkaTopic, KafkaReplication: args.KafkaReplication,
		KafkaMinInsync: args.KafkaMinInsync, KafkaGroupID: args.KafkaGroupID,
		PingIntervalSeconds: args.PingIntervalSeconds, LBIdleTimeoutSeconds: args.LBIdleTimeoutSeconds, VPCCIDR: args.VPCCIDR,
		MetricsNamespace: args.MetricsNamespace, DrainSeconds: args.DrainSeconds, DBPort: args.DBPort, DBName: args.DBName,
	}
	userData := resolve(boot, []output[BootSettings]{
		{bucket.Bucket, func(b *BootSettings, v string) { b.ArtifactBucket = v }},
		{pin.Name, func(b *BootSettings, v string) { b.VersionParameter = v }},
		{args.FrontendURL, func(b *BootSettings, v string) { b.FrontendURL = v }},
		{args.RedisHost, func(b *BootSettings, v string) { b.RedisHost = v }},
		{args.KafkaBrokers, func(b *BootSettings, v string) { b.KafkaBrokers = v }},
		{args.DBHost, func(b *BootSettings, v string) { b.DBHost = v }},
		{args.AppSecretArn, func(b *BootSettings, v string) { b.AppSecretArn = v }},
		{args.KafkaSecretArn, func(b *BootSettings, v string) { b.KafkaSecretArn = v }},
		{args.DBSecretArn, func(b *BootSettings, v string) { b.DBSecretArn = v }},
		{args.DBAppSecretArn, func(b *BootSettings, v string) { b.DBAppSecretArn = v }},
	}, UserData)

	tags := pulumi.StringMap{"Name": pulumi.Sprintf("%s-%s", args.Name, serverID), "ServerId": pulumi.String(serverID)}
	for k, v := range args.Tags {
		tags[k] = v
	}
	inst, err := ec2.NewInstance(ctx, fmt.Sprintf("%s-%s", name, serverID), &ec2.InstanceArgs{
		Ami:                      pulumi.String(ami),
		InstanceType:             pulumi.String(args.InstanceType),
		SubnetId:                 args.SubnetIDs[(i-1)%len(args.SubnetIDs)], // round-robin over AZs
		VpcSecurityGroupIds:      pulumi.StringArray{args.SecurityGroupID},
		AssociatePublicIpAddress: pulumi.Bool(false),
		IamInstanceProfile:       profile.Name,
		UserData:                 userData,
		MetadataOptions: &ec2.InstanceMetadataOptionsArgs{
			HttpTokens: pulumi.String("required"), HttpEndpoint: pulumi.String("enabled"), HttpPutResponseHopLimit: pulumi.Int(1),
		},
		RootBlockDevice: &ec2.InstanceRootBlockDeviceArgs{
			VolumeType: pulumi.String("gp3"), VolumeSize: pulumi.Int(args.VolumeGB), Encrypted: pulumi.Bool(true),
			DeleteOnTermination: pulumi.Bool(true),
		},
		Monitoring: pulumi.Bool(args.DetailedMonitoring),
		// The server types are EBS-optimized by default at no charge; saying so makes
		// AWS refuse a type that is not, rather than give it a shared link.
		EbsOptimized: pulumi.Bool(true),
		Tags:         tags,
		VolumeTags:   tags,
	}, parent,
		// User data runs once at first boot, and a resolve:ssm AMI names a newer image
		// whenever AWS publishes one: neither may replace a running server. Releases
		// go through the node's version parameter and the rolling deploy.
		pulumi.IgnoreChanges([]string{"userData", "ami"}))
	if err != nil {
		return Server{}, err
	}
	if _, err := lb.NewTargetGroupAttachment(ctx, fmt.Sprintf("%s-%s", name, serverID), &lb.TargetGroupAttachmentArgs{
		TargetGroupArn: args.TargetGroupArn, TargetId: inst.ID(), Port: pulumi.Int(args.AppPort),
	}, parent); err != nil {
		return Server{}, err
	}
	return Server{ServerID: serverID, InstanceID: inst.ID().ToStringOutput()}, nil
}

const assumeEC2 = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`

// output is one value another resource gives, and where it goes in a T.
type output[T any] struct {
	value pulumi.StringInput
	set   func(*T, string)
}

// resolve fills a copy of base with each output once all are known, and renders it
// (user data, a policy).
func resolve[T any](base T, outputs []output[T], render func(T) (string, error)) pulumi.StringOutput {
	values := make([]any, len(outputs))
	for i, o := range outputs {
		values[i] = o.value
	}
	return pulumi.All(values...).ApplyT(func(v []any) (string, error) {
		t := base
		for i, o := range outputs {
			o.set(&t, v[i].(string))
		}
		return render(t)
	}).(pulumi.StringOutput)
}

// policyInputs are what the servers' runtime policy names.
type policyInputs struct {
	secrets               []string
	key, bucketArn, nodes string
}

// NoncurrentReleaseDays is how long an overwritten or deleted release object stays
// recoverable in the artifact bucket.
const NoncurrentReleaseDays = 90

// tlsOnlyPolicy refuses every request to the bucket that does not use TLS.
func tlsOnlyPolicy(bucketArn string) (string, error) {
	b, err := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []map[string]any{{
		"Sid": "TLSOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
		"Resource":  []string{bucketArn, bucketArn + "/*"},
		"Condition": map[string]any{"Bool": map[string]string{"aws:SecureTransport": "false"}},
	}}})
	return string(b), err
}

// AgentActions are what the SSM agent calls for itself, on "*" as in AWS's
// AmazonSSMManagedInstanceCore: the ssmmessages and ec2messages actions have no
// resource types, and the agent's ssm calls are documented only on "*" (a wrong
// scope would cut the agent off, and deploys reach the servers through it). None
// reads a parameter, a secret or an object.
var AgentActions = []string{
	"ssm:UpdateInstanceInformation", "ssm:ListInstanceAssociations", "ssm:DescribeAssociation",
	"ssm:GetDocument", "ssm:DescribeDocument", "ssm:UpdateInstanceAssociationStatus",
	"ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
	"ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
	"ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage", "ec2messages:FailMessage",
	"ec2messages:GetEndpoint", "ec2messages:GetMessages", "ec2messages:SendReply",
}

func agentPolicy() string {
	b, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []map[string]any{{
		"Sid": "SSMAgent", "Effect": "Allow", "Action": AgentActions, "Resource": "*",
	}}})
	return string(b)
}

// serverPolicy lets a server read exactly its secrets, the version parameters of the
// nodes and the release objects, and publish metrics to its own namespace, and
// nothing else. PutMetricData takes no resource; the namespace condition is how AWS
// scopes it.
func serverPolicy(secrets []string, key, bucketArn, paramArn, metricsNamespace string) (string, error) {
	type stmt struct {
		Sid       string
		Effect    string
		Action    []string
		Resource  []string
		Condition map[string]map[string]string `json:",omitempty"`
	}
	doc := struct {
		Version   string
		Statement []stmt
	}{"2012-10-17", []stmt{
		{"ReadSecrets", "Allow", []string{"secretsmanager:GetSecretValue"}, secrets, nil},
		{"DecryptSecretsAndReleases", "Allow", []string{"kms:Decrypt"}, []string{key}, nil},
		{"ReadVersion", "Allow", []string{"ssm:GetParameter"}, []string{paramArn}, nil},
		{"ReadReleases", "Allow", []string{"s3:GetObject"}, []string{strings.TrimSuffix(bucketArn, "/") + "/quibly/*"}, nil},
		{"PublishOwnMetrics", "Allow", []string{"cloudwatch:PutMetricData"}, []string{"*"},
			map[string]map[string]string{"StringEquals": {"cloudwatch:namespace": metricsNamespace}}},
	}}
	b, err := json.Marshal(doc)
	return string(b), err
}
