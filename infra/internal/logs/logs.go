// Package logs is where the stack's access and network logs go: one private bucket
// that takes the ALB's access logs, the artifact bucket's server access logs, MSK's
// broker logs and the VPC's flow logs, each under its own prefix, kept for a set
// number of days. A security review asks for each of them; an incident needs them.
package logs

import (
	"encoding/json"
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/elb"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/s3"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// The prefixes the sources that take one write under (no slash at either end: the
// ALB and MSK refuse one). VPC flow logs and AWS WAF write at the top, under
// AWSLogs/<account>/vpcflowlogs and AWSLogs/<account>/WAFLogs.
const (
	ALBPrefix       = "alb"
	ArtifactsPrefix = "s3/artifacts/"
	KafkaPrefix     = "msk"
)

// LogsArgs configures the bucket and the flow log.
type LogsArgs struct {
	Name string
	// Stack names the bucket: aws-waf-logs-<stack>-…, as AWS WAF delivers only to
	// buckets whose names start with aws-waf-logs- (and S3 allows 37 characters of
	// prefix, which quibly-<stack> would not leave).
	Stack  string
	Region string
	VpcID  pulumi.StringInput
	// RetentionDays is how long a log object is kept.
	RetentionDays int
	Protect       bool
	Tags          pulumi.StringMap
}

// Logs exposes the bucket the other components point their logs at. Ready is the
// bucket policy: the ALB checks at create time that it may write there.
type Logs struct {
	pulumi.ResourceState

	Bucket    pulumi.StringOutput
	BucketArn pulumi.StringOutput
	Ready     pulumi.Resource
}

// NewLogs creates the log bucket, its policy and the VPC's flow log.
func NewLogs(ctx *pulumi.Context, name string, args *LogsArgs, opts ...pulumi.ResourceOption) (*Logs, error) {
	l := &Logs{}
	if err := ctx.RegisterComponentResource("quibly:logs:Logs", name, l, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(l)
	account, err := aws.GetCallerIdentity(ctx, nil, parent)
	if err != nil {
		return nil, fmt.Errorf("reading the account id: %w", err)
	}
	elbAccount, err := elb.GetServiceAccount(ctx, &elb.GetServiceAccountArgs{Region: pulumi.StringRef(args.Region)}, parent)
	if err != nil {
		return nil, fmt.Errorf("reading the load balancer log account of %s: %w", args.Region, err)
	}

	bucket, err := s3.NewBucketV2(ctx, name, &s3.BucketV2Args{
		BucketPrefix: pulumi.String(BucketPrefix(args.Stack)),
		ForceDestroy: pulumi.Bool(!args.Protect),
		Tags:         args.Tags,
	}, parent, pulumi.Protect(args.Protect))
	if err != nil {
		return nil, err
	}
	// ACLs off: every object belongs to the stack's account whoever delivered it.
	owner, err := s3.NewBucketOwnershipControls(ctx, name, &s3.BucketOwnershipControlsArgs{
		Bucket: bucket.ID(),
		Rule:   &s3.BucketOwnershipControlsRuleArgs{ObjectOwnership: pulumi.String("BucketOwnerEnforced")},
	}, parent)
	if err != nil {
		return nil, err
	}
	block, err := s3.NewBucketPublicAccessBlock(ctx, name, &s3.BucketPublicAccessBlockArgs{
		Bucket: bucket.ID(), BlockPublicAcls: pulumi.Bool(true), BlockPublicPolicy: pulumi.Bool(true),
		IgnorePublicAcls: pulumi.Bool(true), RestrictPublicBuckets: pulumi.Bool(true),
	}, parent)
	if err != nil {
		return nil, err
	}
	// SSE-S3, not the stack's KMS key: ALB access logs can only be delivered to a
	// bucket encrypted with S3-managed keys.
	if _, err := s3.NewBucketServerSideEncryptionConfigurationV2(ctx, name, &s3.BucketServerSideEncryptionConfigurationV2Args{
		Bucket: bucket.ID(),
		Rules: s3.BucketServerSideEncryptionConfigurationV2RuleArray{s3.BucketServerSideEncryptionConfigurationV2RuleArgs{
			ApplyServerSideEncryptionByDefault: &s3.BucketServerSideEncryptionConfigurationV2RuleApplyServerSideEncryptionByDefaultArgs{
				SseAlgorithm: pulumi.String("AES256"),
			},
		}},
	}, parent); err != nil {
		return nil, err
	}
	// Versioned, so a log cannot be quietly overwritten or deleted within its retention.
	versioning, err := s3.NewBucketVersioningV2(ctx, name, &s3.BucketVersioningV2Args{
		Bucket:                  bucket.ID(),
		VersioningConfiguration: &s3.BucketVersioningV2VersioningConfigurationArgs{Status: pulumi.String("Enabled")},
	}, parent)
	if err != nil {
		return nil, err
	}
	if _, err := s3.NewBucketLifecycleConfigurationV2(ctx, name, &s3.BucketLifecycleConfigurationV2Args{
		Bucket: bucket.ID(),
		Rules: s3.BucketLifecycleConfigurationV2RuleArray{s3.BucketLifecycleConfigurationV2RuleArgs{
			Id: pulumi.String("expire-logs"), Status: pulumi.String("Enabled"),
			Filter:     &s3.BucketLifecycleConfigurationV2RuleFilterArgs{Prefix: pulumi.String("")},
			Expiration: &s3.BucketLifecycleConfigurationV2RuleExpirationArgs{Days: pulumi.Int(args.RetentionDays)},
			NoncurrentVersionExpiration: &s3.BucketLifecycleConfigurationV2RuleNoncurrentVersionExpirationArgs{
				NoncurrentDays: pulumi.Int(NoncurrentDays),
			},
			AbortIncompleteMultipartUpload: &s3.BucketLifecycleConfigurationV2RuleAbortIncompleteMultipartUploadArgs{
				DaysAfterInitiation: pulumi.Int(1),
			},
		}},
	}, parent, pulumi.DependsOn([]pulumi.Resource{versioning})); err != nil {
		return nil, err
	}
	// After the public access block and the ownership rule: S3 answers
	// OperationAborted to a put that races another change of the same bucket.
	policy, err := s3.NewBucketPolicy(ctx, name, &s3.BucketPolicyArgs{
		Bucket: bucket.ID(),
		Policy: bucket.Arn.ApplyT(func(arn string) (string, error) {
			return Policy(arn, account.AccountId, elbAccount.Arn)
		}).(pulumi.StringOutput),
	}, parent, pulumi.DependsOn([]pulumi.Resource{block, owner}))
	if err != nil {
		return nil, err
	}
	// Every flow, accepted and rejected, in ten-minute batches (the cheaper interval).
	if _, err := ec2.NewFlowLog(ctx, name, &ec2.FlowLogArgs{
		VpcId:                  args.VpcID,
		TrafficType:            pulumi.String("ALL"),
		LogDestinationType:     pulumi.String("s3"),
		LogDestination:         bucket.Arn,
		MaxAggregationInterval: pulumi.Int(600),
		Tags:                   args.Tags,
	}, parent, pulumi.DependsOn([]pulumi.Resource{policy})); err != nil {
		return nil, err
	}

	l.Bucket, l.BucketArn, l.Ready = bucket.Bucket, bucket.Arn, policy
	if err := ctx.RegisterResourceOutputs(l, pulumi.Map{"bucket": l.Bucket}); err != nil {
		return nil, err
	}
	return l, nil
}

// BucketPrefix is the log bucket's name prefix for a stack.
func BucketPrefix(stack string) string { return WAFBucketPrefix + stack + "-" }

// WAFBucketPrefix is how the name of a bucket AWS WAF may log to must start.
const WAFBucketPrefix = "aws-waf-logs-"

// NoncurrentDays is how long an overwritten or deleted log object stays recoverable.
const NoncurrentDays = 7

// Policy lets each log source write under its own prefix of the bucket, and only
// for this account, and refuses every request without TLS.
//   - The ALB: the region's Elastic Load Balancing account (regions opened before
//     August 2022) and the log-delivery service principal (the newer ones).
//   - S3 server access logging: logging.s3.amazonaws.com, for this account's buckets.
//   - VPC flow logs, MSK broker logs and AWS WAF's logs: delivery.logs.amazonaws.com,
//     which also reads the bucket's ACL before it writes.
func Policy(bucketArn, account, elbAccountArn string) (string, error) {
	type statement struct {
		Sid       string
		Effect    string
		Principal any
		Action    any
		Resource  any
		Condition map[string]map[string]string `json:",omitempty"`
	}
	under := func(prefix string) string { return fmt.Sprintf("%s/%s/AWSLogs/%s/*", bucketArn, prefix, account) }
	fromAccount := map[string]map[string]string{"StringEquals": {"aws:SourceAccount": account}}
	doc := struct {
		Version   string
		Statement []statement
	}{"2012-10-17", []statement{
		{Sid: "TLSOnly", Effect: "Deny", Principal: "*", Action: "s3:*", Resource: []string{bucketArn, bucketArn + "/*"},
			Condition: map[string]map[string]string{"Bool": {"aws:SecureTransport": "false"}}},
		{Sid: "LoadBalancerAccessLogs", Effect: "Allow", Principal: map[string]string{"AWS": elbAccountArn},
			Action: "s3:PutObject", Resource: under(ALBPrefix)},
		{Sid: "LoadBalancerAccessLogsNewRegions", Effect: "Allow",
			Principal: map[string]string{"Service": "logdelivery.elasticloadbalancing.amazonaws.com"},
			Action:    "s3:PutObject", Resource: under(ALBPrefix)},
		{Sid: "ServerAccessLogs", Effect: "Allow", Principal: map[string]string{"Service": "logging.s3.amazonaws.com"},
			Action: "s3:PutObject", Resource: bucketArn + "/" + ArtifactsPrefix + "*", Condition: fromAccount},
		{Sid: "DeliveredLogs", Effect: "Allow", Principal: map[string]string{"Service": "delivery.logs.amazonaws.com"},
			Action: "s3:PutObject", Resource: []string{under(KafkaPrefix), fmt.Sprintf("%s/AWSLogs/%s/*", bucketArn, account)},
			Condition: map[string]map[string]string{"StringEquals": {"aws:SourceAccount": account, "s3:x-amz-acl": "bucket-owner-full-control"}}},
		{Sid: "DeliveredLogsCheckTheBucket", Effect: "Allow", Principal: map[string]string{"Service": "delivery.logs.amazonaws.com"},
			Action: []string{"s3:GetBucketAcl", "s3:ListBucket"}, Resource: bucketArn, Condition: fromAccount},
	}}
	b, err := json.Marshal(doc)
	return string(b), err
}
