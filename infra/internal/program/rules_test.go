package program_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/quibly/quibly/infra/internal/config"
	"github.com/quibly/quibly/infra/internal/database"
	"github.com/quibly/quibly/infra/internal/fleet"
	"github.com/quibly/quibly/infra/internal/kafka"
	"github.com/quibly/quibly/infra/internal/loadbalancer"
	"github.com/quibly/quibly/infra/internal/logs"
	"github.com/quibly/quibly/infra/internal/mocks"
	"github.com/quibly/quibly/infra/internal/network"
)

// awsRule is one thing AWS or the provider insists on (or a real `up` would get
// wrong without an error), checked over a tier's whole resource graph. The mocks
// accept any combination of properties, so these rules are what stands in for
// AWS saying no.
type awsRule struct {
	id     string
	source string // the doc page or upstream issue the rule comes from
	check  func(g graph) []string
}

// graph is one planned tier: its config and what the program registered.
type graph struct {
	cfg *config.Config
	rec *mocks.Recorder
}

func (g graph) all(typ string) []mocks.Resource { return g.rec.ByType(typ) }

// byOutput finds the resource of typ whose output key holds value.
func (g graph) byOutput(typ, key, value string) (mocks.Resource, bool) {
	for _, r := range g.all(typ) {
		if mocks.Str(r.Outputs, key) == value {
			return r, true
		}
	}
	return mocks.Resource{}, false
}

var awsRules = []awsRule{
	{"ec2-ami-is-an-image-id",
		"terraform-provider-aws #43488: a resolve:ssm: AMI with root_block_device fails DescribeImages with InvalidAMIID.Malformed",
		func(g graph) (bad []string) {
			for _, in := range g.all("aws:ec2/instance:Instance") {
				if !regexp.MustCompile(`^ami-[0-9a-f]{8,17}$`).MatchString(str(in, "ami")) {
					bad = append(bad, fmt.Sprintf("%s: ami %q is not an image id", in.Name, str(in, "ami")))
				}
				if !contains(in.IgnoreChanges, "ami") {
					bad = append(bad, in.Name+": a newer image must not replace a running server (ignoreChanges ami)")
				}
			}
			return bad
		}},
	{"vpc-default-security-group-closed",
		"Amazon VPC user guide, Default security groups for your VPCs: it allows all traffic among its members and all outbound; AWS Security Hub control EC2.2 wants it to have no rules",
		func(g graph) (bad []string) {
			vpcs, closed := g.all("aws:ec2/vpc:Vpc"), g.all("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
			if len(closed) != len(vpcs) {
				return []string{fmt.Sprintf("%d VPCs, %d default security groups adopted", len(vpcs), len(closed))}
			}
			for _, sg := range closed {
				if len(mocks.List(sg.Inputs, "ingress")) > 0 || len(mocks.List(sg.Inputs, "egress")) > 0 {
					bad = append(bad, sg.Name+": the default security group keeps rules")
				}
			}
			return bad
		}},
	{"production-ec2-detailed-monitoring",
		"Amazon EC2 user guide, Manage detailed monitoring: one-minute instance metrics instead of five-minute ones, so an alarm sees a spike in time",
		func(g graph) (bad []string) {
			for _, in := range g.all("aws:ec2/instance:Instance") {
				if flag(in, "monitoring") != g.cfg.Production {
					bad = append(bad, fmt.Sprintf("%s: detailed monitoring %v in a tier with production %v", in.Name, flag(in, "monitoring"), g.cfg.Production))
				}
			}
			return bad
		}},
	{"rds-logs-exported",
		"Amazon RDS user guide, Publishing PostgreSQL logs to Amazon CloudWatch Logs: RDS exports postgresql and upgrade, Aurora PostgreSQL postgresql",
		func(g graph) (bad []string) {
			want := map[string][]string{"aws:rds/instance:Instance": {"postgresql", "upgrade"}, "aws:rds/cluster:Cluster": {"postgresql"}}
			found := 0
			for typ, logs := range want {
				for _, db := range g.all(typ) {
					found++
					if got := list(db, "enabledCloudwatchLogsExports"); !slices.Equal(got, logs) {
						bad = append(bad, fmt.Sprintf("%s: exports %v, want %v", db.Name, got, logs))
					}
				}
			}
			if found != 1 {
				bad = append(bad, fmt.Sprintf("%d databases (instance or cluster), want 1", found))
			}
			return bad
		}},
	{"rds-performance-insights-where-the-class-has-it",
		"Amazon RDS user guide, DB engine, Region and instance class support for Database Insights: not on db.t2, db.t3 or db.t4g micro and small",
		func(g graph) (bad []string) {
			for _, typ := range []string{"aws:rds/instance:Instance", "aws:rds/clusterInstance:ClusterInstance"} {
				for _, db := range g.all(typ) {
					class, on := str(db, "instanceClass"), flag(db, "performanceInsightsEnabled")
					switch {
					case on != database.PerformanceInsights(class):
						bad = append(bad, fmt.Sprintf("%s: Performance Insights %v on %s", db.Name, on, class))
					case on && str(db, "performanceInsightsKmsKeyId") == "":
						bad = append(bad, db.Name+": Performance Insights under the AWS-managed key, not the stack's")
					case !on && str(db, "performanceInsightsKmsKeyId") != "":
						bad = append(bad, db.Name+": a Performance Insights key without Performance Insights")
					}
				}
			}
			return bad
		}},
	{"ec2-ebs-optimized",
		"Amazon EC2 user guide, Amazon EBS-optimized instance types: current-generation types are EBS-optimized by default at no extra cost",
		func(g graph) (bad []string) {
			for _, in := range g.all("aws:ec2/instance:Instance") {
				if !flag(in, "ebsOptimized") {
					bad = append(bad, in.Name+": not EBS-optimized")
				}
			}
			return bad
		}},
	{"subnets-by-zone-id",
		"AWS RAM docs, AZ IDs: zone names map to different zones in each account; MSK API BrokerNodeGroupInfo.ClientSubnets: not in use1-az3",
		func(g graph) (bad []string) {
			regular := map[string]bool{}
			for _, z := range mocks.Zones {
				regular[z.ID] = z.Type == "availability-zone" && z.OptInStatus == "opt-in-not-required"
			}
			for _, s := range g.all("aws:ec2/subnet:Subnet") {
				id := str(s, "availabilityZoneId")
				switch {
				case str(s, "availabilityZone") != "" || id == "":
					bad = append(bad, s.Name+": placed by zone name, not zone id")
				case slices.Contains(network.UnsupportedZoneIDs, id):
					bad = append(bad, fmt.Sprintf("%s: in %s, which MSK refuses", s.Name, id))
				case !regular[id]:
					bad = append(bad, fmt.Sprintf("%s: in %s, a Local Zone or an opt-in zone", s.Name, id))
				}
			}
			return bad
		}},
	{"msk-brokers-spread-over-client-subnets",
		"Amazon MSK developer guide, Create a cluster: 2 or 3 client subnets in distinct AZs; the broker count is a multiple of them",
		func(g graph) (bad []string) {
			c := g.all("aws:msk/cluster:Cluster")[0]
			subnets := list(c, "brokerNodeGroupInfo", "clientSubnets")
			zones := map[string]bool{}
			for _, id := range subnets {
				for _, s := range g.all("aws:ec2/subnet:Subnet") {
					if s.Name+"-id" == id {
						zones[str(s, "availabilityZoneId")] = true
					}
				}
			}
			if n := len(subnets); n < 2 || n > 3 || len(zones) != n || int(num(c, "numberOfBrokerNodes"))%n != 0 {
				bad = append(bad, fmt.Sprintf("%d brokers over %d client subnets in %d zones", int(num(c, "numberOfBrokerNodes")), n, len(zones)))
			}
			return bad
		}},
	{"msk-scram-secret",
		"Amazon MSK developer guide, SASL/SCRAM: the secret's name starts with AmazonMSK_ and it is encrypted with a customer managed key",
		func(g graph) (bad []string) {
			for _, s := range g.all("aws:secretsmanager/secret:Secret") {
				if strings.HasPrefix(mocks.Str(s.Outputs, "name"), "AmazonMSK_") {
					if str(s, "kmsKeyId") == "" || strings.Contains(str(s, "kmsKeyId"), "alias/aws/") {
						bad = append(bad, s.Name+": under an AWS-managed key")
					}
					return bad
				}
			}
			return []string{"no AmazonMSK_ secret"}
		}},
	{"msk-storage-autoscaling",
		"Amazon MSK developer guide, Automatic scaling: an Application Auto Scaling target kafka:broker-storage:VolumeSize with a target-tracking policy",
		func(g graph) (bad []string) {
			targets := g.all("aws:appautoscaling/target:Target")
			if len(targets) != 1 || str(targets[0], "scalableDimension") != "kafka:broker-storage:VolumeSize" ||
				num(targets[0], "maxCapacity") != float64(g.cfg.Kafka.MaxVolumeGB) {
				return []string{fmt.Sprintf("want one kafka:broker-storage:VolumeSize target up to %d GB", g.cfg.Kafka.MaxVolumeGB)}
			}
			policies := g.all("aws:appautoscaling/policy:Policy")
			if len(policies) != 1 || str(policies[0], "targetTrackingScalingPolicyConfiguration", "predefinedMetricSpecification", "predefinedMetricType") != "KafkaBrokerStorageUtilization" ||
				!flag(policies[0], "targetTrackingScalingPolicyConfiguration", "disableScaleIn") {
				bad = append(bad, "want a KafkaBrokerStorageUtilization target-tracking policy that never scales in (MSK cannot shrink volumes)")
			}
			c := g.all("aws:msk/cluster:Cluster")[0]
			if !contains(c.IgnoreChanges, "brokerNodeGroupInfo.storageInfo.ebsStorageInfo.volumeSize") {
				bad = append(bad, "the program would set an autoscaled volume back to volumeGb (ignoreChanges volumeSize)")
			}
			return bad
		}},
	{"sns-topic-key-usable-by-cloudwatch",
		"Amazon SNS developer guide, Key management: CloudWatch needs kms:GenerateDataKey* and kms:Decrypt on a customer managed key; alias/aws/sns cannot grant them",
		func(g graph) (bad []string) {
			for _, topic := range g.all("aws:sns/topic:Topic") {
				keyArn := str(topic, "kmsMasterKeyId")
				key, ok := g.byOutput("aws:kms/key:Key", "arn", keyArn)
				if !ok {
					bad = append(bad, fmt.Sprintf("%s: encrypted with %q, not a key of this stack", topic.Name, keyArn))
					continue
				}
				var policy struct{ Statement []map[string]any }
				if err := json.Unmarshal([]byte(str(key, "policy")), &policy); err != nil {
					bad = append(bad, key.Name+": key policy is not JSON")
					continue
				}
				cloudwatch, admin := false, false
				for _, st := range policy.Statement {
					principal, _ := json.Marshal(st["Principal"])
					actions, _ := json.Marshal(st["Action"])
					if strings.Contains(string(principal), "cloudwatch.amazonaws.com") &&
						strings.Contains(string(actions), "kms:GenerateDataKey*") && strings.Contains(string(actions), "kms:Decrypt") {
						cloudwatch = true
					}
					if strings.Contains(string(principal), ":root") && strings.Contains(string(actions), "kms:*") {
						admin = true
					}
				}
				if !cloudwatch || !admin {
					bad = append(bad, fmt.Sprintf("%s: policy lets CloudWatch use it %v, keeps the account in charge %v", key.Name, cloudwatch, admin))
				}
			}
			return bad
		}},
	{"production-alarms-reach-someone",
		"the deployment guide's alerts are for people; an SNS topic without a subscription delivers nothing",
		func(g graph) []string {
			if g.cfg.Production && len(g.all("aws:sns/topicSubscription:TopicSubscription")) == 0 {
				return []string{"production stack without an alarm subscription"}
			}
			return nil
		}},
	{"production-https-only",
		"Elastic Load Balancing user guide, HTTPS listeners and redirect actions",
		func(g graph) (bad []string) {
			if !g.cfg.Production {
				return nil
			}
			byPort := map[float64]mocks.Resource{}
			for _, l := range g.all("aws:lb/listener:Listener") {
				byPort[num(l, "port")] = l
			}
			https, ok := byPort[443]
			if !ok || str(https, "protocol") != "HTTPS" || str(https, "certificateArn") == "" {
				bad = append(bad, "no HTTPS:443 listener with a certificate")
			}
			acts := mocks.List(byPort[80].Inputs, "defaultActions")
			if len(acts) != 1 || mocks.Str(acts[0].ObjectValue(), "type") != "redirect" {
				bad = append(bad, "HTTP:80 does not redirect to HTTPS")
			}
			return bad
		}},
	{"acm-certificate-validated-before-use",
		"ACM user guide, DNS validation: a listener refuses a certificate that is still pending validation",
		func(g graph) (bad []string) {
			for _, l := range g.all("aws:lb/listener:Listener") {
				arn := str(l, "certificateArn")
				if arn == "" || arn == g.cfg.LoadBalancer.CertificateARN {
					continue
				}
				if _, ok := g.byOutput("aws:acm/certificateValidation:CertificateValidation", "certificateArn", arn); !ok {
					bad = append(bad, l.Name+": uses a requested certificate without waiting for its validation")
				}
			}
			return bad
		}},
	{"production-data-protected",
		"Pulumi docs, resource options protect and retainOnDelete",
		func(g graph) (bad []string) {
			for _, typ := range []string{"aws:rds/instance:Instance", "aws:rds/cluster:Cluster", "aws:rds/clusterInstance:ClusterInstance",
				"aws:msk/cluster:Cluster", "aws:kms/key:Key", "aws:s3/bucketV2:BucketV2"} {
				for _, r := range g.all(typ) {
					if typ == "aws:kms/key:Key" && r.Name != "secrets" {
						continue // the alarm topic's key protects nothing that outlives the topic
					}
					if r.Protect != g.cfg.Production {
						bad = append(bad, fmt.Sprintf("%s: protect %v in a stack with production %v", r.Name, r.Protect, g.cfg.Production))
					}
					if typ == "aws:kms/key:Key" && r.RetainOnDelete != g.cfg.Production {
						bad = append(bad, r.Name+": the key must outlive a destroy in production (snapshots are encrypted with it)")
					}
				}
			}
			return bad
		}},
	{"fixed-names-replace-delete-first",
		"Pulumi docs, deleteBeforeReplace and auto-naming: a replacement created before the old resource is deleted cannot take a name that is still in use",
		func(g graph) (bad []string) {
			fixed := []string{"name", "identifier", "clusterIdentifier", "replicationGroupId", "clusterName"}
			for _, r := range g.rec.Resources {
				if !r.Custom || r.Type == "pulumi:index:Stash" {
					continue
				}
				for _, k := range fixed {
					if str(r, k) != "" && !r.DeleteBeforeReplace && !r.Protect {
						bad = append(bad, fmt.Sprintf("%s (%s): fixed %s %q, replaced create-first", r.Name, r.Type, k, str(r, k)))
					}
				}
			}
			return bad
		}},
	{"name-lengths",
		"ELB API CreateLoadBalancer/CreateTargetGroup: name ≤ 32; S3 provider docs: bucket_prefix ≤ 37; ElastiCache: replication group id ≤ 40, no '--', no trailing '-'",
		func(g graph) (bad []string) {
			for _, r := range g.all("aws:s3/bucketV2:BucketV2") {
				if p := str(r, "bucketPrefix"); len(p) > 37 {
					bad = append(bad, fmt.Sprintf("bucket prefix %q is %d characters", p, len(p)))
				}
			}
			for _, r := range g.all("aws:elasticache/replicationGroup:ReplicationGroup") {
				id := str(r, "replicationGroupId")
				if len(id) > 40 || strings.Contains(id, "--") || strings.HasSuffix(id, "-") {
					bad = append(bad, fmt.Sprintf("replication group id %q", id))
				}
			}
			for _, typ := range []string{"aws:lb/loadBalancer:LoadBalancer", "aws:lb/targetGroup:TargetGroup"} {
				for _, r := range g.all(typ) {
					if n := mocks.Str(r.Outputs, "name"); len(n) > 32 {
						bad = append(bad, fmt.Sprintf("%s name %q is %d characters", r.Name, n, len(n)))
					}
				}
			}
			return bad
		}},
	{"no-account-wide-ssm-read",
		"AWS managed policy AmazonSSMManagedInstanceCore grants ssm:GetParameter(s) on every parameter",
		func(g graph) (bad []string) {
			for _, a := range serverAttachments(g.rec) {
				bad = append(bad, "managed policy attached to the servers' role: "+str(a, "policyArn"))
			}
			for _, p := range g.all("aws:iam/rolePolicy:RolePolicy") {
				if regexp.MustCompile(`ssm:GetParameters?"[^]]*\]\s*,\s*"Resource":\s*"\*"`).MatchString(str(p, "policy")) {
					bad = append(bad, p.Name+": reads every parameter")
				}
			}
			return bad
		}},
	{"app-metrics-scoped-and-alarmed",
		"CloudWatch user guide, iam-cw-condition-keys-namespace: PutMetricData takes no resource and is scoped by cloudwatch:namespace; namespaces beginning AWS/ are reserved",
		func(g graph) (bad []string) {
			type statement struct {
				Action    []string
				Resource  []string
				Condition map[string]map[string]string
			}
			namespace := ""
			for _, p := range g.all("aws:iam/rolePolicy:RolePolicy") {
				var doc struct{ Statement []statement }
				if json.Unmarshal([]byte(str(p, "policy")), &doc) != nil {
					continue // the agent policy's Action is a list too; unparsable ones are other rules' business
				}
				for _, st := range doc.Statement {
					if !slices.Contains(st.Action, "cloudwatch:PutMetricData") {
						continue
					}
					ns := st.Condition["StringEquals"]["cloudwatch:namespace"]
					switch {
					case ns == "":
						bad = append(bad, p.Name+": PutMetricData in any namespace")
					case strings.HasPrefix(ns, "AWS/"):
						bad = append(bad, p.Name+": publishes into the reserved namespace "+ns)
					}
					namespace = ns
				}
			}
			if namespace == "" {
				return append(bad, "the servers may not publish their metrics")
			}
			alarmed := false
			for _, a := range g.all("aws:cloudwatch/metricAlarm:MetricAlarm") {
				alarmed = alarmed || (str(a, "namespace") == namespace && str(a, "metricName") == "MessagesRejected")
			}
			if !alarmed {
				bad = append(bad, "no alarm on MessagesRejected in "+namespace)
			}
			for _, in := range g.all("aws:ec2/instance:Instance") {
				if !strings.Contains(str(in, "userData"), "\nCLOUDWATCH_NAMESPACE="+namespace+"\n") {
					bad = append(bad, in.Name+": the app is not told the namespace it may publish to")
				}
			}
			return bad
		}},
	{"buckets-tls-only-and-tidy",
		"Amazon S3 user guide, enforcing TLS with aws:SecureTransport; lifecycle of noncurrent versions; S3 API OperationAborted when a bucket policy races the public access block",
		func(g graph) (bad []string) {
			buckets := g.all("aws:s3/bucketV2:BucketV2")
			if len(buckets) != 2 {
				bad = append(bad, fmt.Sprintf("%d buckets, want the artifacts and the logs", len(buckets)))
			}
			of := func(typ string, b mocks.Resource) []mocks.Resource {
				var out []mocks.Resource
				for _, r := range g.all(typ) {
					if str(r, "bucket") == b.ID {
						out = append(out, r)
					}
				}
				return out
			}
			for _, b := range buckets {
				if flag(b, "forceDestroy") == g.cfg.Production {
					bad = append(bad, fmt.Sprintf("%s: forceDestroy %v in a stack with production %v", b.Name, flag(b, "forceDestroy"), g.cfg.Production))
				}
				policies := of("aws:s3/bucketPolicy:BucketPolicy", b)
				if len(policies) != 1 || !strings.Contains(str(policies[0], "policy"), `"aws:SecureTransport":"false"`) ||
					!strings.Contains(str(policies[0], "policy"), `"Deny"`) {
					bad = append(bad, b.Name+": no bucket policy denying requests without TLS")
					continue
				}
				block := of("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", b)
				if len(block) != 1 || !slices.ContainsFunc(policies[0].DependsOn, func(u string) bool { return strings.HasSuffix(u, "::"+block[0].Name) }) {
					bad = append(bad, b.Name+": the bucket policy does not wait for the public access block")
				}
				if len(of("aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2", b)) != 1 ||
					len(of("aws:s3/bucketVersioningV2:BucketVersioningV2", b)) != 1 {
					bad = append(bad, b.Name+": not versioned with a lifecycle for noncurrent versions")
				}
			}
			return bad
		}},
	{"private-subnets-reach-aws-apis",
		"Amazon VPC docs, NAT gateway per AZ for zone independence; gateway endpoint for S3; interface endpoints for SSM, Secrets Manager and KMS",
		func(g graph) (bad []string) {
			nats := len(g.all("aws:ec2/natGateway:NatGateway"))
			if g.cfg.Production && nats != g.cfg.Network.AZCount {
				bad = append(bad, fmt.Sprintf("%d NAT gateways for %d AZs in production", nats, g.cfg.Network.AZCount))
			}
			services := map[string]string{}
			for _, e := range g.all("aws:ec2/vpcEndpoint:VpcEndpoint") {
				svc := str(e, "serviceName")
				services[svc[strings.LastIndex(svc, ".")+1:]] = str(e, "vpcEndpointType")
				if str(e, "vpcEndpointType") == "Interface" && (!flag(e, "privateDnsEnabled") || len(list(e, "subnetIds")) != g.cfg.Network.AZCount) {
					bad = append(bad, svc+": needs private DNS and a subnet in every AZ")
				}
			}
			if services["s3"] != "Gateway" {
				bad = append(bad, "no S3 gateway endpoint")
			}
			if g.cfg.Network.InterfaceEndpoints {
				for _, svc := range network.InterfaceEndpointServices {
					if services[svc] != "Interface" {
						bad = append(bad, "no interface endpoint for "+svc)
					}
				}
			}
			return bad
		}},
	{"each-node-pins-its-version",
		"rolling deploy: a node that reboots mid-deploy must run what it ran (README, Operations)",
		func(g graph) (bad []string) {
			params := map[string]mocks.Resource{}
			for _, p := range g.all("aws:ssm/parameter:Parameter") {
				params[str(p, "name")] = p
			}
			for _, in := range g.all("aws:ec2/instance:Instance") {
				id := str(in, "tags", "ServerId")
				want := fleet.NodeVersionParameter(g.cfg.Name(), id)
				if !strings.Contains(str(in, "userData"), "VERSION_PARAMETER='"+want+"'") {
					bad = append(bad, in.Name+": does not boot from its own version parameter "+want)
				}
				if p, ok := params[want]; !ok || !contains(p.IgnoreChanges, "value") {
					bad = append(bad, want+": missing, or `pulumi up` would move it behind the deploy's back")
				}
			}
			return bad
		}},
	{"database-certificate-verified",
		"Amazon RDS user guide, Using SSL/TLS: verify-full with the RDS CA bundle checks the certificate and the host name",
		func(g graph) (bad []string) {
			for _, in := range g.all("aws:ec2/instance:Instance") {
				ud := str(in, "userData")
				if !strings.Contains(ud, "sslmode=verify-full") || !strings.Contains(ud, fleet.RDSCABundle) {
					bad = append(bad, in.Name+": connects to PostgreSQL without verifying its certificate")
				}
			}
			return bad
		}},
	{"servers-log-in-as-their-own-role",
		"Amazon RDS user guide, Secrets Manager password management: the master user's secret is rotated (every 7 days by default); a server holding the password it read at start loses its database then",
		func(g graph) (bad []string) {
			versions := g.all("aws:secretsmanager/secretVersion:SecretVersion")
			var appLogin struct{ Username, Password string }
			for _, v := range versions {
				if strings.HasSuffix(v.Name, "-db-app") {
					_ = json.Unmarshal([]byte(str(v, "secretString")), &appLogin)
				}
			}
			if appLogin.Username == "" || appLogin.Username == g.cfg.Database.Username || appLogin.Password == "" {
				bad = append(bad, fmt.Sprintf("no servers' login secret apart from the master user %q (got user %q)", g.cfg.Database.Username, appLogin.Username))
			}
			policies := ""
			for _, p := range g.all("aws:iam/rolePolicy:RolePolicy") {
				policies += str(p, "policy")
			}
			for _, in := range g.all("aws:ec2/instance:Instance") {
				ud := str(in, "userData")
				m := regexp.MustCompile(`(?m)^DB_APP_SECRET_ARN='([^']+)'$`).FindStringSubmatch(ud)
				if m == nil {
					bad = append(bad, in.Name+": user data names no servers' login secret")
					continue
				}
				if sec, ok := g.byOutput("aws:secretsmanager/secret:Secret", "arn", m[1]); !ok || !strings.HasSuffix(sec.Name, "-db-app") {
					bad = append(bad, fmt.Sprintf("%s: DB_APP_SECRET_ARN %s is not the servers' login secret", in.Name, m[1]))
				}
				if !strings.Contains(ud, "export AWS_REGION DATABASE_URL DATABASE_SECRET_ARN=$DB_APP_SECRET_ARN\n") {
					bad = append(bad, in.Name+": quibly-run does not give the server its own login's secret")
				}
				if url := regexp.MustCompile(`(?m)^DATABASE_URL="([^"]*)"$`).FindStringSubmatch(ud); url == nil || strings.Contains(url[1], "@") {
					bad = append(bad, in.Name+": DATABASE_URL is missing or carries a login")
				}
				if !strings.Contains(policies, m[1]) {
					bad = append(bad, in.Name+": the instance role cannot read "+m[1])
				}
			}
			return bad
		}},
	{"user-data-under-16-kb",
		"Amazon EC2 user guide, instance user data: 16 KB before base64 encoding",
		func(g graph) (bad []string) {
			for _, in := range g.all("aws:ec2/instance:Instance") {
				if n := len(str(in, "userData")); n > 16*1024 {
					bad = append(bad, fmt.Sprintf("%s: %d bytes", in.Name, n))
				}
			}
			return bad
		}},
	{"drain-fits-deregistration-and-systemd",
		"ELB target group deregistration_delay; systemd TimeoutStopSec: the app's drain must finish inside both",
		func(g graph) (bad []string) {
			tg := g.all("aws:lb/targetGroup:TargetGroup")[0]
			drain := g.cfg.LoadBalancer.DrainSeconds
			if int(num(tg, "deregistrationDelay")) < drain {
				bad = append(bad, fmt.Sprintf("deregistration delay %v s < drain %d s", num(tg, "deregistrationDelay"), drain))
			}
			for _, in := range g.all("aws:ec2/instance:Instance") {
				m := regexp.MustCompile(`TimeoutStopSec=(\d+)`).FindStringSubmatch(str(in, "userData"))
				if m == nil {
					bad = append(bad, in.Name+": no TimeoutStopSec")
				} else if stop, _ := strconv.Atoi(m[1]); stop <= drain {
					bad = append(bad, fmt.Sprintf("%s: systemd kills the server after %d s, before its %d s drain ends", in.Name, stop, drain))
				}
			}
			return bad
		}},
	{"alb-idle-timeout-above-ping",
		"ELB idle_timeout closes a WebSocket that sends nothing for that long; Engine.IO pings every pingInterval",
		func(g graph) []string {
			alb := g.all("aws:lb/loadBalancer:LoadBalancer")[0]
			if int(num(alb, "idleTimeout")) <= g.cfg.LoadBalancer.PingIntervalSeconds {
				return []string{fmt.Sprintf("idle timeout %v s ≤ ping interval %d s", num(alb, "idleTimeout"), g.cfg.LoadBalancer.PingIntervalSeconds)}
			}
			return nil
		}},
	{"production-waf-in-front-of-the-alb",
		"AWS WAF developer guide: rate-based rule statement (limit 10 to 2,000,000,000 per evaluation window), AWS Managed Rules core rule set (SizeRestrictions_BODY above 8 KB, NoUserAgent_HEADER; the ws library sends no User-Agent), known bad inputs rule group, web ACL capacity at most 1,500 WCUs; logging destinations (bucket name aws-waf-logs-), redacted fields",
		func(g graph) (bad []string) {
			acls := g.all("aws:wafv2/webAcl:WebAcl")
			if !g.cfg.Production {
				if len(acls) != 0 && !g.cfg.LoadBalancer.WAF {
					bad = append(bad, "a web ACL the stack file did not ask for")
				}
				return bad
			}
			if len(acls) != 1 || len(g.all("aws:wafv2/webAclAssociation:WebAclAssociation")) != 1 {
				return []string{fmt.Sprintf("%d web ACLs in production, want one associated with the ALB", len(acls))}
			}
			wcu := 0
			for _, r := range mocks.List(acls[0].Inputs, "rules") {
				rule := r.ObjectValue()
				if rate := mocks.Num(rule, "statement", "rateBasedStatement", "limit"); rate > 0 {
					wcu += 2
					want := float64(loadbalancer.RateLimit(g.cfg.LoadBalancer.WAFClientsPerAddress))
					if rate != want || rate < 10 || rate > 2e9 || mocks.Num(rule, "priority") != 0 {
						bad = append(bad, fmt.Sprintf("rate rule limit %v at priority %v, want %v first", rate, mocks.Num(rule, "priority"), want))
					}
					continue
				}
				group := mocks.Str(rule, "statement", "managedRuleGroupStatement", "name")
				cost, known := map[string]int{"AWSManagedRulesCommonRuleSet": 700, "AWSManagedRulesKnownBadInputsRuleSet": 200}[group]
				if !known {
					bad = append(bad, "unpriced rule group "+group)
				}
				wcu += cost
				var counted []string
				for _, o := range mocks.List(rule, "statement", "managedRuleGroupStatement", "ruleActionOverrides") {
					if o.ObjectValue().HasValue("actionToUse") && o.ObjectValue()["actionToUse"].ObjectValue().HasValue("count") {
						counted = append(counted, mocks.Str(o.ObjectValue(), "name"))
					}
				}
				if !slices.Equal(counted, loadbalancer.Counted[group]) {
					bad = append(bad, fmt.Sprintf("%s counts %v, want %v (waf.go says why)", group, counted, loadbalancer.Counted[group]))
				}
			}
			if wcu > 1500 {
				bad = append(bad, fmt.Sprintf("%d WCUs, over the 1,500 a web ACL may use", wcu))
			}
			logging := g.all("aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration")
			if len(logging) != 1 {
				return append(bad, "no WAF logging")
			}
			redacted := fmt.Sprint(mocks.List(logging[0].Inputs, "redactedFields"))
			for _, h := range append([]string{"queryString"}, loadbalancer.RedactedHeaders...) {
				if !strings.Contains(redacted, h) {
					bad = append(bad, "WAF logs keep "+h)
				}
			}
			return bad
		}},
	{"every-log-source-delivers",
		"ELB user guide, access logs (SSE-S3 only, bucket policy for the region's ELB account or logdelivery.elasticloadbalancing); VPC user guide, flow logs to S3; MSK developer guide, broker logs; S3 user guide, server access logging (logging.s3.amazonaws.com)",
		func(g graph) (bad []string) {
			var bucket mocks.Resource
			for _, b := range g.all("aws:s3/bucketV2:BucketV2") {
				if strings.HasPrefix(str(b, "bucketPrefix"), logs.WAFBucketPrefix) {
					bucket = b
				}
			}
			if bucket.Name == "" {
				return []string{"no log bucket named " + logs.WAFBucketPrefix + "…"}
			}
			name := mocks.Str(bucket.Outputs, "bucket")
			for _, e := range g.all("aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2") {
				if str(e, "bucket") == bucket.ID && !strings.Contains(fmt.Sprint(e.Inputs), "AES256") {
					bad = append(bad, "the log bucket is not SSE-S3, which ALB access logs need")
				}
			}
			alb := g.all("aws:lb/loadBalancer:LoadBalancer")[0]
			if !flag(alb, "accessLogs", "enabled") || str(alb, "accessLogs", "bucket") != name {
				bad = append(bad, "ALB access logs off or elsewhere")
			}
			msk := g.all("aws:msk/cluster:Cluster")[0]
			if !flag(msk, "loggingInfo", "brokerLogs", "s3", "enabled") || str(msk, "loggingInfo", "brokerLogs", "s3", "bucket") != name {
				bad = append(bad, "MSK broker logs off or elsewhere")
			}
			flows := g.all("aws:ec2/flowLog:FlowLog")
			if len(flows) != 1 || str(flows[0], "trafficType") != "ALL" || str(flows[0], "logDestination") != mocks.Str(bucket.Outputs, "arn") {
				bad = append(bad, "the VPC has no flow log of all traffic to the log bucket")
			}
			loggings := g.all("aws:s3/bucketLoggingV2:BucketLoggingV2")
			if len(loggings) != 1 || str(loggings[0], "targetBucket") != name {
				bad = append(bad, "the artifact bucket's access is not logged to the log bucket")
			}
			var policy string
			for _, p := range g.all("aws:s3/bucketPolicy:BucketPolicy") {
				if str(p, "bucket") == bucket.ID {
					policy = str(p, "policy")
				}
			}
			for _, who := range []string{"logdelivery.elasticloadbalancing.amazonaws.com", "logging.s3.amazonaws.com", "delivery.logs.amazonaws.com", ":root"} {
				if !strings.Contains(policy, who) {
					bad = append(bad, "the log bucket's policy does not let "+who+" write")
				}
			}
			return bad
		}},
	{"kms-keys-have-explicit-policies",
		"AWS KMS developer guide, Default key policy: the account's root statement is what lets IAM policies grant use of a key, and without it nobody can manage the key",
		func(g graph) (bad []string) {
			for _, k := range g.all("aws:kms/key:Key") {
				if !strings.Contains(str(k, "policy"), `"AWS":"arn:aws:iam::`+mocks.Account+`:root"`) {
					bad = append(bad, k.Name+": no explicit policy keeping the account in charge")
				}
			}
			return bad
		}},
	{"rds-enhanced-monitoring-tls-only-and-quiet-logs",
		"Amazon RDS user guide: Enhanced Monitoring (interval 0, 1, 5, 10, 15, 30 or 60 s; a role monitoring.rds.amazonaws.com assumes with AmazonRDSEnhancedMonitoringRole), rds.force_ssl; PostgreSQL docs: log_parameter_max_length (13+)",
		func(g graph) (bad []string) {
			for _, typ := range []string{"aws:rds/instance:Instance", "aws:rds/clusterInstance:ClusterInstance"} {
				for _, db := range g.all(typ) {
					if num(db, "monitoringInterval") != database.MonitoringIntervalSeconds || str(db, "monitoringRoleArn") == "" {
						bad = append(bad, db.Name+": no Enhanced Monitoring")
					}
				}
			}
			groups := append(g.all("aws:rds/parameterGroup:ParameterGroup"), g.all("aws:rds/clusterParameterGroup:ClusterParameterGroup")...)
			if len(groups) != 1 {
				return append(bad, fmt.Sprintf("%d parameter groups, want 1", len(groups)))
			}
			if want := database.Family(g.cfg.Database.Engine, g.cfg.Database.EngineVersion); str(groups[0], "family") != want {
				bad = append(bad, fmt.Sprintf("family %s, want %s", str(groups[0], "family"), want))
			}
			got := map[string]string{}
			for _, p := range mocks.List(groups[0].Inputs, "parameters") {
				got[mocks.Str(p.ObjectValue(), "name")] = mocks.Str(p.ObjectValue(), "value")
			}
			for k, v := range database.Parameters {
				if got[k] != v {
					bad = append(bad, fmt.Sprintf("%s = %q, want %q", k, got[k], v))
				}
			}
			if major, _ := strconv.Atoi(strings.Split(g.cfg.Database.EngineVersion, ".")[0]); major < 13 {
				bad = append(bad, "PostgreSQL before 13 has no log_parameter_max_length: bind parameters would reach the logs")
			}
			return bad
		}},
	{"database-class-offered-for-the-engine",
		"Amazon RDS user guide, Supported DB engines for DB instance classes; Amazon Aurora user guide, DB instance classes: Aurora has no micro or small classes (db.t3.medium and db.t4g.medium are its smallest); previous-generation classes (db.t2, db.m4, db.r4) are not offered for PostgreSQL 13 and later",
		func(g graph) (bad []string) {
			d := g.cfg.Database
			major, _ := strconv.Atoi(strings.Split(d.EngineVersion, ".")[0])
			class := d.InstanceClass
			if d.Engine == config.EngineAurora && regexp.MustCompile(`\.(micro|small)$`).MatchString(class) {
				bad = append(bad, class+": Aurora PostgreSQL has no micro or small classes")
			}
			if major >= 13 && regexp.MustCompile(`^db\.(t2|m4|r4)\.`).MatchString(class) {
				bad = append(bad, fmt.Sprintf("%s: a previous-generation class, not offered for PostgreSQL %d", class, major))
			}
			return bad
		}},
	{"msk-storage-autoscaling-within-aws-limits",
		"Amazon MSK developer guide, Automatic scaling and Auto-scaling policy details: target 10 to 80 % (50 to 60 recommended), at most 16 TiB per broker, not in Osaka, Cape Town or Malaysia; EBS storage per broker 1 GiB to 16 TiB",
		func(g graph) (bad []string) {
			k := g.cfg.Kafka
			if k.VolumeGB < 1 || k.MaxVolumeGB > 16384 || k.MaxVolumeGB < k.VolumeGB {
				bad = append(bad, fmt.Sprintf("volume %d GiB growing to %d: want 1 ≤ volume ≤ max ≤ 16384", k.VolumeGB, k.MaxVolumeGB))
			}
			if kafka.StorageTargetPercent < 10 || kafka.StorageTargetPercent > 80 {
				bad = append(bad, fmt.Sprintf("storage target %d %%, outside 10–80", kafka.StorageTargetPercent))
			}
			if slices.Contains([]string{"ap-northeast-3", "af-south-1", "ap-southeast-5"}, g.cfg.Region) {
				bad = append(bad, g.cfg.Region+": MSK storage autoscaling is not offered there")
			}
			if c := g.all("aws:msk/cluster:Cluster")[0]; mocks.Bool(c.Inputs, "brokerNodeGroupInfo", "storageInfo", "ebsStorageInfo", "provisionedThroughput", "enabled") &&
				!regexp.MustCompile(`^kafka\.m5\.(4|8|12|16|24)xlarge$|^kafka\.m7g\.(4|8|12|16)xlarge$`).MatchString(k.BrokerType) {
				bad = append(bad, "provisioned storage throughput on "+k.BrokerType+", which MSK offers from m5.4xlarge and m7g.4xlarge up")
			}
			return bad
		}},
	{"cache-tls-with-auth-and-failover-with-replicas",
		"Amazon ElastiCache user guide: AUTH needs in-transit encryption (Redis OSS 3.2.6+); Multi-AZ needs automatic failover, which needs a replica; cluster mode needs Redis OSS 3.2.4+; data tiering only on r6gd",
		func(g graph) (bad []string) {
			for _, rg := range g.all("aws:elasticache/replicationGroup:ReplicationGroup") {
				if str(rg, "authToken") != "" && !flag(rg, "transitEncryptionEnabled") {
					bad = append(bad, rg.Name+": an auth token without in-transit encryption")
				}
				replicas := num(rg, "replicasPerNodeGroup")
				if str(rg, "clusterMode") != "enabled" {
					replicas = num(rg, "numCacheClusters") - 1
				}
				if flag(rg, "multiAzEnabled") && (!flag(rg, "automaticFailoverEnabled") || replicas < 1) {
					bad = append(bad, rg.Name+": Multi-AZ without automatic failover to a replica")
				}
				if flag(rg, "dataTieringEnabled") && !strings.HasPrefix(str(rg, "nodeType"), "cache.r6gd.") {
					bad = append(bad, rg.Name+": data tiering on "+str(rg, "nodeType"))
				}
				if major, _ := strconv.Atoi(strings.Split(g.cfg.Cache.EngineVersion, ".")[0]); major < 6 {
					bad = append(bad, "engine "+g.cfg.Cache.EngineVersion+": the stack needs Redis OSS 6 or later (AUTH with TLS and cluster mode)")
				}
			}
			return bad
		}},
	{"instance-type-matches-the-image-architecture",
		"Amazon EC2 user guide, instance types: Graviton families (a 'g' after the generation: t4g, c7g, m6g, r8g…) run arm64 images only, the others x86_64",
		func(g graph) (bad []string) {
			f := g.cfg.Fleet
			graviton := regexp.MustCompile(`^[a-z]+[0-9]+g[a-z]*\.`).MatchString(f.InstanceType)
			wantArch, amiArch := map[bool]string{true: "arm64", false: "amd64"}[graviton], map[bool]string{true: "arm64", false: "x86_64"}[graviton]
			if f.Arch != wantArch {
				bad = append(bad, fmt.Sprintf("%s runs %s, the stack builds %s", f.InstanceType, wantArch, f.Arch))
			}
			if strings.HasPrefix(f.AMI, "resolve:ssm:") && !strings.HasSuffix(f.AMI, amiArch) {
				bad = append(bad, fmt.Sprintf("image parameter %s is not the %s image %s needs", f.AMI, amiArch, f.InstanceType))
			}
			return bad
		}},
	{"within-default-quotas",
		"Amazon VPC quotas (5 Elastic IPs per Region, 5 NAT gateways per AZ, 60 inbound rules per security group, 5 security groups per network interface); AWS WAF quotas (1,500 WCUs per web ACL, checked above)",
		func(g graph) (bad []string) {
			if n := len(g.all("aws:ec2/eip:Eip")); n > 5 {
				bad = append(bad, fmt.Sprintf("%d Elastic IPs, over the default 5 per Region", n))
			}
			if g.cfg.Network.NATGateways > 5*g.cfg.Network.AZCount {
				bad = append(bad, "more NAT gateways than 5 per AZ")
			}
			rules := map[string]int{}
			for _, r := range g.all("aws:ec2/securityGroupRule:SecurityGroupRule") {
				if str(r, "type") == "ingress" {
					rules[str(r, "securityGroupId")]++
				}
			}
			for sg, n := range rules {
				if n > 60 {
					bad = append(bad, fmt.Sprintf("%s: %d inbound rules, over 60", sg, n))
				}
			}
			for _, in := range g.all("aws:ec2/instance:Instance") {
				if n := len(list(in, "vpcSecurityGroupIds")); n > 5 {
					bad = append(bad, fmt.Sprintf("%s: %d security groups, over 5", in.Name, n))
				}
			}
			return bad
		}},
	{"kafka-disk-alarm-per-broker",
		"Amazon MSK monitoring: KafkaDataLogsDiskUsed per broker; a full disk stops the broker",
		func(g graph) (bad []string) {
			seen := 0
			for _, a := range g.all("aws:cloudwatch/metricAlarm:MetricAlarm") {
				if str(a, "metricName") == "KafkaDataLogsDiskUsed" && str(a, "dimensions", "Broker ID") != "" {
					seen++
				}
			}
			if seen != g.cfg.Kafka.Brokers {
				bad = append(bad, fmt.Sprintf("%d disk alarms for %d brokers", seen, g.cfg.Kafka.Brokers))
			}
			return bad
		}},
}

// serverAttachments are the managed policies attached to a role EC2 assumes.
func serverAttachments(rec *mocks.Recorder) (out []mocks.Resource) {
	ec2Roles := map[string]bool{}
	for _, r := range rec.ByType("aws:iam/role:Role") {
		if strings.Contains(str(r, "assumeRolePolicy"), "ec2.amazonaws.com") {
			ec2Roles[mocks.Str(r.Outputs, "name")] = true
		}
	}
	for _, a := range rec.ByType("aws:iam/rolePolicyAttachment:RolePolicyAttachment") {
		if ec2Roles[str(a, "role")] {
			out = append(out, a)
		}
	}
	return out
}

// TestAWSRules checks every rule over every committed tier.
func TestAWSRules(t *testing.T) {
	for _, tc := range tiers {
		g := graph{cfg: loadConfig(t, tc.stack), rec: record(t, tc.stack)}
		for _, r := range awsRules {
			t.Run(tc.stack+"/"+r.id, func(t *testing.T) {
				for _, v := range r.check(g) {
					t.Errorf("%s (%s)", v, r.source)
				}
			})
		}
	}
}

// TestAWSRulesBite: the rules that read the config report a tier whose config
// breaks them, so their passing above means something.
func TestAWSRulesBite(t *testing.T) {
	tests := []struct {
		rule, stack string
		break_      func(c *config.Config)
	}{
		{"production-waf-in-front-of-the-alb", "large", func(c *config.Config) { c.LoadBalancer.WAFClientsPerAddress++ }},
		{"instance-type-matches-the-image-architecture", "small", func(c *config.Config) { c.Fleet.InstanceType = "t4g.small" }},
		{"msk-storage-autoscaling-within-aws-limits", "medium", func(c *config.Config) { c.Kafka.MaxVolumeGB = 20000 }},
		{"msk-storage-autoscaling-within-aws-limits", "medium", func(c *config.Config) { c.Region = "af-south-1" }},
		{"rds-enhanced-monitoring-tls-only-and-quiet-logs", "medium", func(c *config.Config) { c.Database.EngineVersion = "17.2" }},
		{"cache-tls-with-auth-and-failover-with-replicas", "small", func(c *config.Config) { c.Cache.EngineVersion = "5.0.6" }},
		{"database-class-offered-for-the-engine", "large", func(c *config.Config) { c.Database.InstanceClass = "db.t3.small" }},
		{"database-class-offered-for-the-engine", "small", func(c *config.Config) { c.Database.InstanceClass = "db.t2.small" }},
	}
	byID := map[string]awsRule{}
	for _, r := range awsRules {
		byID[r.id] = r
	}
	for _, tt := range tests {
		t.Run(tt.rule+"/"+tt.stack, func(t *testing.T) {
			cfg := loadConfig(t, tt.stack)
			tt.break_(cfg)
			rule, ok := byID[tt.rule]
			if !ok {
				t.Fatalf("no rule %s", tt.rule)
			}
			if bad := rule.check(graph{cfg: cfg, rec: record(t, tt.stack)}); len(bad) == 0 {
				t.Fatal("the rule passed a broken config")
			}
		})
	}
}
