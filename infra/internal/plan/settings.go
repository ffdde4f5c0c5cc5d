package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"github.com/quibly/quibly/infra/internal/mocks"
)

func decode(raw string, into any) error {
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	return dec.Decode(into)
}

// Settings is the one-line summary of a resource's settings that matter for review.
func Settings(r mocks.Resource) string {
	in := r.Inputs
	s, n, b := func(p ...string) string { return mocks.Str(in, p...) }, func(p ...string) float64 { return mocks.Num(in, p...) },
		func(p ...string) bool { return mocks.Bool(in, p...) }
	secret := func(k string) string {
		if v, ok := in[resource.PropertyKey(k)]; ok && v.ContainsSecrets() {
			return "secret"
		}
		return "PLAIN"
	}
	switch r.Type {
	case "aws:ec2/vpc:Vpc":
		return "cidr " + s("cidrBlock")
	case "aws:ec2/subnet:Subnet":
		return fmt.Sprintf("%s in %s", s("cidrBlock"), s("availabilityZoneId"))
	case "aws:ec2/vpcEndpoint:VpcEndpoint":
		return fmt.Sprintf("%s %s", s("vpcEndpointType"), s("serviceName"))
	case "pulumi:index:Stash":
		return "generated once, kept in state: " + secret("input")
	case "aws:appautoscaling/target:Target":
		return fmt.Sprintf("%s %.0f–%.0f", s("scalableDimension"), n("minCapacity"), n("maxCapacity"))
	case "aws:acm/certificate:Certificate":
		return s("domainName") + ", DNS validation"
	case "aws:route53/record:Record":
		return s("type") + " " + s("name")
	case "aws:ec2/routeTable:RouteTable":
		routes := mocks.List(in, "routes")
		var out []string
		for _, rt := range routes {
			m := rt.ObjectValue()
			via := mocks.Str(m, "gatewayId") + mocks.Str(m, "natGatewayId")
			out = append(out, mocks.Str(m, "cidrBlock")+" → "+via)
		}
		return strings.Join(out, ", ")
	case "aws:ec2/securityGroup:SecurityGroup":
		return s("description")
	case "aws:ec2/securityGroupRule:SecurityGroupRule":
		peer := strings.TrimSuffix(s("sourceSecurityGroupId"), "-id")
		if cidrs := mocks.List(in, "cidrBlocks"); len(cidrs) > 0 {
			peer = cidrs[0].StringValue()
		}
		dir := "from"
		if s("type") == "egress" {
			dir = "to"
		}
		return fmt.Sprintf("%s %s/%.0f %s %s", s("type"), s("protocol"), n("fromPort"), dir, peer)
	case "aws:lb/loadBalancer:LoadBalancer":
		return fmt.Sprintf("internet-facing, %d public subnets, idle timeout %.0f s, drop invalid headers %v",
			len(mocks.List(in, "subnets")), n("idleTimeout"), b("dropInvalidHeaderFields"))
	case "aws:lb/targetGroup:TargetGroup":
		return fmt.Sprintf("HTTP:%.0f, %s stickiness %.0f s, health %s every %.0f s timeout %.0f s healthy %.0f unhealthy %.0f, deregistration delay %.0f s",
			n("port"), s("stickiness", "type"), n("stickiness", "cookieDuration"), s("healthCheck", "path"),
			n("healthCheck", "interval"), n("healthCheck", "timeout"), n("healthCheck", "healthyThreshold"),
			n("healthCheck", "unhealthyThreshold"), n("deregistrationDelay"))
	case "aws:lb/listener:Listener":
		acts := mocks.List(in, "defaultActions")
		act := ""
		if len(acts) > 0 {
			act = mocks.Str(acts[0].ObjectValue(), "type")
		}
		return fmt.Sprintf("%s:%.0f → %s", s("protocol"), n("port"), act)
	case "aws:elasticache/replicationGroup:ReplicationGroup":
		layout := fmt.Sprintf("%.0f node(s)", n("numCacheClusters"))
		if s("clusterMode") == "enabled" {
			layout = fmt.Sprintf("cluster mode, %.0f shards × (1 + %.0f replicas)", n("numNodeGroups"), n("replicasPerNodeGroup"))
		}
		return fmt.Sprintf("%s redis %s, %s, failover %v, TLS %v, at rest %v, auth token %s",
			s("nodeType"), s("engineVersion"), layout, b("automaticFailoverEnabled"), b("transitEncryptionEnabled"),
			b("atRestEncryptionEnabled"), secret("authToken"))
	case "aws:msk/configuration:Configuration":
		return strings.ReplaceAll(strings.TrimSpace(s("serverProperties")), "\n", ", ")
	case "aws:msk/cluster:Cluster":
		return fmt.Sprintf("Kafka %s, %.0f × %s, %.0f GB each, SASL/SCRAM %v, client TLS %s",
			s("kafkaVersion"), n("numberOfBrokerNodes"), s("brokerNodeGroupInfo", "instanceType"),
			n("brokerNodeGroupInfo", "storageInfo", "ebsStorageInfo", "volumeSize"),
			b("clientAuthentication", "sasl", "scram"), s("encryptionInfo", "encryptionInTransit", "clientBroker"))
	case "aws:rds/instance:Instance":
		return fmt.Sprintf("%s %s %s, %.0f GB gp3, Multi-AZ %v, encrypted %v, public %v, backups %.0f d, managed password %v, deletion protection %v",
			s("engine"), s("engineVersion"), s("instanceClass"), n("allocatedStorage"), b("multiAz"), b("storageEncrypted"),
			b("publiclyAccessible"), n("backupRetentionPeriod"), b("manageMasterUserPassword"), b("deletionProtection"))
	case "aws:rds/cluster:Cluster":
		return fmt.Sprintf("%s %s, encrypted %v, backups %.0f d, managed password %v, deletion protection %v",
			s("engine"), s("engineVersion"), b("storageEncrypted"), n("backupRetentionPeriod"),
			b("manageMasterUserPassword"), b("deletionProtection"))
	case "aws:rds/clusterInstance:ClusterInstance":
		return fmt.Sprintf("%s, public %v", s("instanceClass"), b("publiclyAccessible"))
	case "aws:ec2/instance:Instance":
		return fmt.Sprintf("%s %s %s, %.0f GB gp3 encrypted %v, public IP %v, IMDSv2 %s, ignoreChanges %v",
			s("tags", "ServerId"), s("instanceType"), s("ami"), n("rootBlockDevice", "volumeSize"), b("rootBlockDevice", "encrypted"),
			b("associatePublicIpAddress"), s("metadataOptions", "httpTokens"), r.IgnoreChanges)
	case "aws:ssm/parameter:Parameter":
		return fmt.Sprintf("%s = %s", s("name"), s("value"))
	case "aws:secretsmanager/secret:Secret":
		return s("namePrefix") + "…, customer KMS key"
	case "aws:secretsmanager/secretVersion:SecretVersion":
		return "value " + secret("secretString")
	case "aws:cloudwatch/metricAlarm:MetricAlarm":
		metric := s("metricName")
		if metric == "" {
			metric = "5xx % of requests"
		}
		return fmt.Sprintf("%s > %g", metric, n("threshold"))
	case "aws:iam/rolePolicyAttachment:RolePolicyAttachment":
		return s("policyArn")
	case "aws:kms/key:Key":
		return fmt.Sprintf("rotation %v, protected %v", b("enableKeyRotation"), r.Protect)
	case "aws:s3/bucketV2:BucketV2":
		return fmt.Sprintf("prefix %s, protected %v, force destroy %v", s("bucketPrefix"), r.Protect, b("forceDestroy"))
	}
	return ""
}
