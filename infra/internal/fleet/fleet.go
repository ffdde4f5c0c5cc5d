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
)

// FleetArgs configures the instances and what they connect to.
type FleetArgs struct {
	Name               string // quibly-<stack>: prefixes names and the SSM parameter path
	Region             string
	Instances          int
	InstanceType       string
	AMI                string
	Arch               string
	VolumeGB           int
	MemoryMax          string
	AppVersion         string
	AppPort            int
	StopTimeoutSeconds int
	FrontendURL        pulumi.StringInput
	SubnetIDs          pulumi.StringArray
	SecurityGroupID    pulumi.StringInput
	TargetGroupArn     pulumi.StringInput
	KmsKeyArn          pulumi.StringInput
	RedisHost          pulumi.StringInput
	RedisPort          int
	RedisCluster       bool
	KafkaBrokers       pulumi.StringInput
	KafkaTopic         string
	KafkaReplication   int
	DBHost             pulumi.StringInput
	DBPort             int
	DBName             string
	AppSecretArn       pulumi.StringInput
	KafkaSecretArn     pulumi.StringInput
	DBSecretArn        pulumi.StringInput
	Tags               pulumi.StringMap
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
}

// ServerID names the n-th server (1-based), as the app and the guide expect.
func ServerID(n int) string { return fmt.Sprintf("server-%d", n) }

// NewFleet creates the artifact bucket, version parameter, instance role and the instances.
func NewFleet(ctx *pulumi.Context, name string, args *FleetArgs, opts ...pulumi.ResourceOption) (*Fleet, error) {
	f := &Fleet{}
	if err := ctx.RegisterComponentResource("quibly:fleet:Fleet", name, f, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(f)

	bucket, err := s3.NewBucketV2(ctx, name+"-artifacts", &s3.BucketV2Args{
		BucketPrefix: pulumi.Sprintf("%s-artifacts-", args.Name),
		Tags:         args.Tags,
	}, parent)
	if err != nil {
		return nil, err
	}
	if _, err := s3.NewBucketPublicAccessBlock(ctx, name+"-artifacts", &s3.BucketPublicAccessBlockArgs{
		Bucket: bucket.ID(), BlockPublicAcls: pulumi.Bool(true), BlockPublicPolicy: pulumi.Bool(true),
		IgnorePublicAcls: pulumi.Bool(true), RestrictPublicBuckets: pulumi.Bool(true),
	}, parent); err != nil {
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
	if _, err := s3.NewBucketVersioningV2(ctx, name+"-artifacts", &s3.BucketVersioningV2Args{
		Bucket:                  bucket.ID(),
		VersioningConfiguration: &s3.BucketVersioningV2VersioningConfigurationArgs{Status: pulumi.String("Enabled")},
	}, parent); err != nil {
		return nil, err
	}

	// The running version lives here, not in user data: a new instance boots into it,
	// and changing it replaces nothing (the rolling deploy restarts nodes one by one).
	version, err := ssm.NewParameter(ctx, name+"-app-version", &ssm.ParameterArgs{
		Name:        pulumi.Sprintf("/%s/app-version", args.Name),
		Type:        pulumi.String("String"),
		Value:       pulumi.String(args.AppVersion),
		Description: pulumi.String("Quibly release the servers run; read by quibly-fetch at each start"),
		Tags:        args.Tags,
	}, parent)
	if err != nil {
		return nil, err
	}

	role, err := iam.NewRole(ctx, name, &iam.RoleArgs{
		NamePrefix:       pulumi.Sprintf("%s-server-", args.Name),
		AssumeRolePolicy: pulumi.String(assumeEC2),
		Tags:             args.Tags,
	}, parent)
	if err != nil {
		return nil, err
	}
	if _, err := iam.NewRolePolicyAttachment(ctx, name+"-ssm", &iam.RolePolicyAttachmentArgs{
		Role: role.Name, PolicyArn: pulumi.String("arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"),
	}, parent); err != nil {
		return nil, err
	}
	policy := pulumi.All(args.AppSecretArn, args.KafkaSecretArn, args.DBSecretArn, args.KmsKeyArn, bucket.Arn, version.Arn).ApplyT(
		func(v []any) (string, error) {
			return serverPolicy(v[0].(string), v[1].(string), v[2].(string), v[3].(string), v[4].(string), v[5].(string))
		}).(pulumi.StringOutput)
	if _, err := iam.NewRolePolicy(ctx, name+"-runtime", &iam.RolePolicyArgs{Role: role.Name, Policy: policy}, parent); err != nil {
		return nil, err
	}
	profile, err := iam.NewInstanceProfile(ctx, name, &iam.InstanceProfileArgs{
		NamePrefix: pulumi.Sprintf("%s-server-", args.Name), Role: role.Name, Tags: args.Tags,
	}, parent)
	if err != nil {
		return nil, err
	}

	for i := 1; i <= args.Instances; i++ {
		serverID := ServerID(i)
		userData := pulumi.All(bucket.Bucket, version.Name, args.FrontendURL, args.RedisHost, args.KafkaBrokers,
			args.DBHost, args.AppSecretArn, args.KafkaSecretArn, args.DBSecretArn).ApplyT(func(v []any) (string, error) {
			return UserData(BootSettings{
				ServerID: serverID, Port: args.AppPort, Region: args.Region,
				ArtifactBucket: v[0].(string), Arch: args.Arch, VersionParameter: v[1].(string),
				MemoryMax: args.MemoryMax, StopTimeoutSeconds: args.StopTimeoutSeconds,
				FrontendURL: v[2].(string), RedisHost: v[3].(string), RedisPort: args.RedisPort, RedisCluster: args.RedisCluster,
				KafkaBrokers: v[4].(string), KafkaTopic: args.KafkaTopic, KafkaReplication: args.KafkaReplication, DBHost: v[5].(string), DBPort: args.DBPort, DBName: args.DBName,
				AppSecretArn: v[6].(string), KafkaSecretArn: v[7].(string), DBSecretArn: v[8].(string),
			})
		}).(pulumi.StringOutput)

		tags := pulumi.StringMap{"Name": pulumi.Sprintf("%s-%s", args.Name, serverID), "ServerId": pulumi.String(serverID)}
		for k, v := range args.Tags {
			tags[k] = v
		}
		inst, err := ec2.NewInstance(ctx, fmt.Sprintf("%s-%s", name, serverID), &ec2.InstanceArgs{
			Ami:                      pulumi.String(args.AMI),
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
			Monitoring: pulumi.Bool(false),
			Tags:       tags,
			VolumeTags: tags,
		}, parent,
			// User data runs once at first boot and a resolve:ssm AMI resolves anew each
			// read: neither may replace a running server. Releases go through the SSM
			// version parameter and the rolling deploy.
			pulumi.IgnoreChanges([]string{"userData", "ami"}))
		if err != nil {
			return nil, err
		}
		if _, err := lb.NewTargetGroupAttachment(ctx, fmt.Sprintf("%s-%s", name, serverID), &lb.TargetGroupAttachmentArgs{
			TargetGroupArn: args.TargetGroupArn, TargetId: inst.ID(), Port: pulumi.Int(args.AppPort),
		}, parent); err != nil {
			return nil, err
		}
		f.Servers = append(f.Servers, Server{ServerID: serverID, InstanceID: inst.ID().ToStringOutput()})
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

const assumeEC2 = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`

// serverPolicy lets a server read exactly its three secrets, the version
// parameter and the release objects, and nothing else.
func serverPolicy(appSecret, kafkaSecret, dbSecret, key, bucketArn, paramArn string) (string, error) {
	type stmt struct {
		Sid      string
		Effect   string
		Action   []string
		Resource []string
	}
	doc := struct {
		Version   string
		Statement []stmt
	}{"2012-10-17", []stmt{
		{"ReadSecrets", "Allow", []string{"secretsmanager:GetSecretValue"}, []string{appSecret, kafkaSecret, dbSecret}},
		{"DecryptSecretsAndReleases", "Allow", []string{"kms:Decrypt"}, []string{key}},
		{"ReadVersion", "Allow", []string{"ssm:GetParameter"}, []string{paramArn}},
		{"ReadReleases", "Allow", []string{"s3:GetObject"}, []string{strings.TrimSuffix(bucketArn, "/") + "/quibly/*"}},
	}}
	b, err := json.Marshal(doc)
	return string(b), err
}
