package program_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/quibly/quibly/infra/internal/awstest"
	"github.com/quibly/quibly/infra/internal/config"
	"github.com/quibly/quibly/infra/internal/loadbalancer"
	"github.com/quibly/quibly/infra/internal/mocks"
	"github.com/quibly/quibly/infra/internal/program"
)

// envDir is the committed stack files: a typo there fails these tests.
const envDir = "../../../environments"

// tier is what each committed stack must have: its size and the settings of its tier.
type tier struct {
	stack         string
	servers       int
	serverType    string
	cacheNode     string
	cacheCluster  bool
	cacheShards   int
	cacheNodes    int
	cacheFailover bool
	brokers       int
	brokerType    string
	https         bool
	dbEngine      string
	dbClass       string
	dbProtected   bool
	minAZs        int
	replication   int
	minInsync     int
}

var tiers = []tier{
	{stack: "small", servers: 2, serverType: "t3.small", cacheNode: "cache.t3.micro", cacheShards: 1, cacheNodes: 1,
		brokers: 2, brokerType: "kafka.t3.small", dbEngine: "postgres", dbClass: "db.t3.small", minAZs: 2,
		replication: 2, minInsync: 1},
	{stack: "medium", servers: 3, serverType: "t3.medium", cacheNode: "cache.r6g.large", cacheShards: 1, cacheNodes: 2, cacheFailover: true,
		brokers: 3, brokerType: "kafka.m5.large", https: true, dbEngine: "postgres", dbClass: "db.r6g.large", dbProtected: true, minAZs: 3,
		replication: 3, minInsync: 2},
	{stack: "large", servers: 10, serverType: "c6i.xlarge", cacheNode: "cache.r6g.xlarge", cacheCluster: true, cacheShards: 3, cacheNodes: 6, cacheFailover: true,
		brokers: 3, brokerType: "kafka.m5.2xlarge", https: true, dbEngine: "aurora-postgresql", dbClass: "db.r6g.2xlarge", dbProtected: true, minAZs: 3,
		replication: 3, minInsync: 2},
}

// plan runs the program under mocks with a stack's committed config, changed by edit.
func plan(t *testing.T, stack string, edit func(map[string]string)) *mocks.Recorder {
	t.Helper()
	cfg, err := mocks.StackFile(envDir, stack)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(cfg)
	}
	rec, err := mocks.Run(stack, cfg, program.Run)
	if err != nil {
		t.Fatalf("program failed for %s: %v", stack, err)
	}
	return rec
}

var (
	recordsMu sync.Mutex
	records   = map[string]*mocks.Recorder{}
)

// record plans a committed stack once per test binary.
func record(t *testing.T, stack string) *mocks.Recorder {
	recordsMu.Lock()
	defer recordsMu.Unlock()
	if r, ok := records[stack]; ok {
		return r
	}
	r := plan(t, stack, nil)
	records[stack] = r
	return r
}

func one(t *testing.T, rec *mocks.Recorder, typ string) mocks.Resource {
	t.Helper()
	rs := rec.ByType(typ)
	if len(rs) != 1 {
		t.Fatalf("want exactly one %s, got %d", typ, len(rs))
	}
	return rs[0]
}

func str(r mocks.Resource, p ...string) string  { return mocks.Str(r.Inputs, p...) }
func num(r mocks.Resource, p ...string) float64 { return mocks.Num(r.Inputs, p...) }
func flag(r mocks.Resource, p ...string) bool   { return mocks.Bool(r.Inputs, p...) }
func list(r mocks.Resource, p ...string) []string {
	var out []string
	for _, v := range mocks.List(r.Inputs, p...) {
		if v.IsSecret() {
			v = v.SecretValue().Element
		}
		if v.IsString() {
			out = append(out, v.StringValue())
		}
	}
	return out
}

func TestTiers(t *testing.T) {
	for _, tc := range tiers {
		t.Run(tc.stack, func(t *testing.T) {
			rec := record(t, tc.stack)

			t.Run("fleet size and type", func(t *testing.T) {
				insts := rec.ByType("aws:ec2/instance:Instance")
				if len(insts) != tc.servers {
					t.Fatalf("instances = %d, want %d", len(insts), tc.servers)
				}
				for _, in := range insts {
					if got := str(in, "instanceType"); got != tc.serverType {
						t.Errorf("%s type = %s, want %s", in.Name, got, tc.serverType)
					}
				}
				if n := len(rec.ByType("aws:lb/targetGroupAttachment:TargetGroupAttachment")); n != tc.servers {
					t.Errorf("target group attachments = %d, want %d", n, tc.servers)
				}
			})

			t.Run("cache", func(t *testing.T) {
				rg := one(t, rec, "aws:elasticache/replicationGroup:ReplicationGroup")
				if got := str(rg, "nodeType"); got != tc.cacheNode {
					t.Errorf("nodeType = %s, want %s", got, tc.cacheNode)
				}
				if got := str(rg, "clusterMode") == "enabled"; got != tc.cacheCluster {
					t.Errorf("cluster mode = %v, want %v", got, tc.cacheCluster)
				}
				nodes := num(rg, "numCacheClusters")
				if tc.cacheCluster {
					if got := num(rg, "numNodeGroups"); got != float64(tc.cacheShards) {
						t.Errorf("shards = %v, want %d", got, tc.cacheShards)
					}
					if !strings.Contains(str(rg, "parameterGroupName"), "cluster.on") {
						t.Errorf("cluster mode needs a cluster.on parameter group, got %q", str(rg, "parameterGroupName"))
					}
					nodes = num(rg, "numNodeGroups") * (1 + num(rg, "replicasPerNodeGroup"))
				}
				if nodes != float64(tc.cacheNodes) {
					t.Errorf("cache nodes = %v, want %d", nodes, tc.cacheNodes)
				}
				if flag(rg, "automaticFailoverEnabled") != tc.cacheFailover || flag(rg, "multiAzEnabled") != tc.cacheFailover {
					t.Errorf("failover/multi-AZ = %v/%v, want %v", flag(rg, "automaticFailoverEnabled"), flag(rg, "multiAzEnabled"), tc.cacheFailover)
				}
				if !flag(rg, "transitEncryptionEnabled") || !flag(rg, "atRestEncryptionEnabled") {
					t.Error("Redis must encrypt in transit and at rest")
				}
				if v := rg.Inputs["authToken"]; !v.ContainsSecrets() || mocks.Str(rg.Inputs, "authToken") == "" {
					t.Error("Redis auth token must be set and secret")
				}
				if contains(rg.IgnoreChanges, "authToken") {
					t.Error("the auth token must come from state (a stash), not be hidden from diffs by ignoreChanges")
				}
			})

			t.Run("kafka", func(t *testing.T) {
				c := one(t, rec, "aws:msk/cluster:Cluster")
				if got := num(c, "numberOfBrokerNodes"); got != float64(tc.brokers) {
					t.Errorf("brokers = %v, want %d", got, tc.brokers)
				}
				if got := str(c, "brokerNodeGroupInfo", "instanceType"); got != tc.brokerType {
					t.Errorf("broker type = %s, want %s", got, tc.brokerType)
				}
				if v := str(c, "kafkaVersion"); !strings.HasPrefix(v, "3.9") {
					t.Errorf("Kafka version %s, want 3.9.x like the local test broker", v)
				}
				if !flag(c, "clientAuthentication", "sasl", "scram") || flag(c, "clientAuthentication", "unauthenticated") {
					t.Error("MSK must require SASL/SCRAM and refuse unauthenticated clients")
				}
				if str(c, "encryptionInfo", "encryptionInTransit", "clientBroker") != "TLS" || !flag(c, "encryptionInfo", "encryptionInTransit", "inCluster") {
					t.Error("MSK must use TLS client-broker and in-cluster")
				}
				if str(c, "encryptionInfo", "encryptionAtRestKmsKeyArn") == "" {
					t.Error("MSK at-rest encryption must use the customer key")
				}
				props := serverProperties(t, one(t, rec, "aws:msk/configuration:Configuration"))
				want := map[string]string{
					"auto.create.topics.enable":  "false",
					"default.replication.factor": fmt.Sprint(tc.replication),
					"min.insync.replicas":        fmt.Sprint(tc.minInsync),
				}
				for k, v := range want {
					if props[k] != v {
						t.Errorf("server property %s = %q, want %q", k, props[k], v)
					}
				}
				if tc.brokers >= 3 && (props["default.replication.factor"] != "3" || props["min.insync.replicas"] != "2") {
					t.Error("with 3 brokers: replication factor 3, min ISR 2")
				}
				secret := rec.ByType("aws:secretsmanager/secret:Secret")
				var scram *mocks.Resource
				for i := range secret {
					if strings.HasPrefix(mocks.Str(secret[i].Outputs, "name"), "AmazonMSK_") {
						scram = &secret[i]
					}
				}
				if scram == nil || str(*scram, "kmsKeyId") == "" {
					t.Fatal("MSK needs an AmazonMSK_ secret under a customer KMS key")
				}
				one(t, rec, "aws:msk/scramSecretAssociation:ScramSecretAssociation")
			})

			t.Run("database", func(t *testing.T) {
				inst, clusters := rec.ByType("aws:rds/instance:Instance"), rec.ByType("aws:rds/cluster:Cluster")
				var db mocks.Resource
				switch tc.dbEngine {
				case "postgres":
					if len(inst) != 1 || len(clusters) != 0 {
						t.Fatalf("want one RDS instance and no Aurora cluster, got %d/%d", len(inst), len(clusters))
					}
					db = inst[0]
					if got := str(db, "instanceClass"); got != tc.dbClass {
						t.Errorf("class = %s, want %s", got, tc.dbClass)
					}
					if flag(db, "publiclyAccessible") {
						t.Error("database must be private")
					}
				case "aurora-postgresql":
					if len(inst) != 0 || len(clusters) != 1 {
						t.Fatalf("want one Aurora cluster and no RDS instance, got %d/%d", len(clusters), len(inst))
					}
					db = clusters[0]
					members := rec.ByType("aws:rds/clusterInstance:ClusterInstance")
					if len(members) < 1 {
						t.Fatal("Aurora cluster without instances")
					}
					for _, m := range members {
						if str(m, "instanceClass") != tc.dbClass || flag(m, "publiclyAccessible") {
							t.Errorf("%s: class %s public %v, want %s private", m.Name, str(m, "instanceClass"), flag(m, "publiclyAccessible"), tc.dbClass)
						}
					}
				}
				if got := str(db, "engine"); got != tc.dbEngine {
					t.Errorf("engine = %s, want %s", got, tc.dbEngine)
				}
				if !flag(db, "storageEncrypted") || str(db, "kmsKeyId") == "" {
					t.Error("database must be encrypted with the customer key")
				}
				if num(db, "backupRetentionPeriod") < 7 {
					t.Errorf("backups retained %v days, want ≥ 7", num(db, "backupRetentionPeriod"))
				}
				if !flag(db, "manageMasterUserPassword") || str(db, "password") != "" || str(db, "masterPassword") != "" {
					t.Error("master password must be managed by RDS, never passed in")
				}
				if flag(db, "deletionProtection") != tc.dbProtected {
					t.Errorf("deletion protection = %v, want %v", flag(db, "deletionProtection"), tc.dbProtected)
				}
				sg := one(t, rec, "aws:rds/subnetGroup:SubnetGroup")
				assertPrivate(t, "db subnet group", list(sg, "subnetIds"))
			})

			t.Run("network", func(t *testing.T) {
				azs := map[string]bool{}
				var public, private int
				for _, s := range rec.ByType("aws:ec2/subnet:Subnet") {
					azs[str(s, "availabilityZoneId")] = true
					if strings.Contains(s.Name, "-public-") {
						public++
					} else if strings.Contains(s.Name, "-private-") {
						private++
						if flag(s, "mapPublicIpOnLaunch") {
							t.Errorf("%s maps public IPs", s.Name)
						}
					}
				}
				if len(azs) < tc.minAZs || public < 2 || private < 2 || public != private {
					t.Errorf("AZs %d (want ≥ %d), public %d, private %d", len(azs), tc.minAZs, public, private)
				}
				for _, in := range rec.ByType("aws:ec2/instance:Instance") {
					assertPrivate(t, in.Name, []string{str(in, "subnetId")})
					if flag(in, "associatePublicIpAddress") {
						t.Errorf("%s has a public IP", in.Name)
					}
				}
				assertPrivate(t, "cache subnet group", list(one(t, rec, "aws:elasticache/subnetGroup:SubnetGroup"), "subnetIds"))
				assertPrivate(t, "MSK", list(one(t, rec, "aws:msk/cluster:Cluster"), "brokerNodeGroupInfo", "clientSubnets"))
				assertPublic(t, "ALB", list(one(t, rec, "aws:lb/loadBalancer:LoadBalancer"), "subnets"))
			})

			t.Run("alarms", func(t *testing.T) {
				alarms := map[string]mocks.Resource{}
				for _, a := range rec.ByType("aws:cloudwatch/metricAlarm:MetricAlarm") {
					alarms[strings.TrimPrefix(a.Name, "alarms-")] = a
					if len(list(a, "alarmActions")) == 0 {
						t.Errorf("%s notifies nobody", a.Name)
					}
				}
				cfg := loadConfig(t, tc.stack)
				expect := map[string]float64{
					"unhealthy-targets":  0,
					"http-5xx-rate":      cfg.Alarms.HTTP5xxPercent,
					"kafka-consumer-lag": 1000,
					"db-connections":     float64(cfg.Database.MaxConnections) * 0.8,
					"messages-rejected":  0, // any refused message
				}
				for i := 1; i <= tc.servers; i++ {
					expect[fmt.Sprintf("cpu-server-%d", i)] = 70
				}
				for i := 1; i <= tc.brokers; i++ {
					expect[fmt.Sprintf("kafka-disk-%d", i)] = cfg.Alarms.KafkaDiskPercent
				}
				if cfg.LoadBalancer.WAF {
					expect["waf-rate-blocks"] = 0 // any address blocked by the rate rule
					waf := alarms["waf-rate-blocks"]
					if d := fmt.Sprint(str(waf, "dimensions", "WebACL"), "/", str(waf, "dimensions", "Rule")); d != mocks.AutoName("loadbalancer")+"/"+loadbalancer.RateRuleName {
						t.Errorf("the WAF alarm watches %s, not the web ACL's rate rule", d)
					}
				}
				redis := 0
				for name, a := range alarms {
					if strings.HasPrefix(name, "redis-memory-") {
						redis++
						expect[name] = 80
						if str(a, "metricName") != "DatabaseMemoryUsagePercentage" {
							t.Errorf("%s watches %s", name, str(a, "metricName"))
						}
					}
				}
				if redis != tc.cacheNodes {
					t.Errorf("Redis memory alarms = %d, want one per node (%d)", redis, tc.cacheNodes)
				}
				for name, threshold := range expect {
					a, ok := alarms[name]
					if !ok {
						t.Errorf("missing alarm %s", name)
						continue
					}
					if num(a, "threshold") != threshold {
						t.Errorf("alarm %s threshold = %v, want %v", name, num(a, "threshold"), threshold)
					}
				}
				if len(alarms) != len(expect) {
					t.Errorf("alarms = %d, want %d", len(alarms), len(expect))
				}
			})
		})
	}
}

// TestLoadBalancer checks the ALB's settings (sticky sessions, websocket-friendly
// idle timeout, health check) and the drain-friendly timeouts.
func TestLoadBalancer(t *testing.T) {
	for _, tc := range tiers {
		t.Run(tc.stack, func(t *testing.T) {
			rec := record(t, tc.stack)
			tg := one(t, rec, "aws:lb/targetGroup:TargetGroup")
			checks := []struct {
				what string
				got  any
				want any
			}{
				{"port", num(tg, "port"), 5000.0},
				{"protocol", str(tg, "protocol"), "HTTP"},
				{"stickiness enabled", flag(tg, "stickiness", "enabled"), true},
				{"stickiness type", str(tg, "stickiness", "type"), "lb_cookie"},
				{"stickiness duration", num(tg, "stickiness", "cookieDuration"), 86400.0},
				{"health path", str(tg, "healthCheck", "path"), "/health"},
				{"health interval", num(tg, "healthCheck", "interval"), 30.0},
				{"health timeout", num(tg, "healthCheck", "timeout"), 5.0},
				{"healthy threshold", num(tg, "healthCheck", "healthyThreshold"), 2.0},
				{"unhealthy threshold", num(tg, "healthCheck", "unhealthyThreshold"), 3.0},
				{"health matcher", str(tg, "healthCheck", "matcher"), "200"},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("target group %s = %v, want %v", c.what, c.got, c.want)
				}
			}
			if d := num(tg, "deregistrationDelay"); d < 30 || d > 120 {
				t.Errorf("deregistration delay %v s must cover the app's 30 s drain without stalling deploys", d)
			}
			alb := one(t, rec, "aws:lb/loadBalancer:LoadBalancer")
			if it := num(alb, "idleTimeout"); it <= 25 {
				t.Errorf("idle timeout %v s must exceed the 25 s Socket.IO ping interval", it)
			}
			if flag(alb, "internal") {
				t.Error("ALB must be internet-facing")
			}
			listeners := rec.ByType("aws:lb/listener:Listener")
			if tc.https {
				if len(listeners) != 2 {
					t.Fatalf("with a certificate: HTTP:80 (redirect) and HTTPS:443, got %d listeners", len(listeners))
				}
			} else if len(listeners) != 1 || num(listeners[0], "port") != 80 {
				t.Fatalf("without a certificate: one HTTP:80 listener, got %d", len(listeners))
			}
		})
	}
}

// TestHTTPS turns on a certificate: HTTPS:443 forwards, HTTP:80 redirects, 443 opens.
func TestHTTPS(t *testing.T) {
	const cert = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
	rec := plan(t, "small", func(c map[string]string) {
		c["quibly:loadBalancer"] = strings.Replace(c["quibly:loadBalancer"], `"certificateArn":""`, `"certificateArn":"`+cert+`"`, 1)
	})
	byPort := map[float64]mocks.Resource{}
	for _, l := range rec.ByType("aws:lb/listener:Listener") {
		byPort[num(l, "port")] = l
	}
	https, ok := byPort[443]
	if !ok || str(https, "protocol") != "HTTPS" || str(https, "certificateArn") != cert {
		t.Fatalf("want an HTTPS:443 listener with the certificate, got %v", byPort)
	}
	http := byPort[80]
	acts := mocks.List(http.Inputs, "defaultActions")
	if len(acts) != 1 || mocks.Str(acts[0].ObjectValue(), "type") != "redirect" ||
		mocks.Str(acts[0].ObjectValue(), "redirect", "protocol") != "HTTPS" {
		t.Errorf("HTTP:80 must redirect to HTTPS, got %v", acts)
	}
	found := false
	for _, r := range rec.ByType("aws:ec2/securityGroupRule:SecurityGroupRule") {
		if str(r, "type") == "ingress" && num(r, "fromPort") == 443 && strings.HasPrefix(str(r, "securityGroupId"), "firewall-alb") {
			found = true
		}
	}
	if !found {
		t.Error("443 must be open on the ALB when HTTPS is on")
	}
}

// TestSecurityGroups checks the whole graph: internet → ALB → app → data stores.
func TestSecurityGroups(t *testing.T) {
	type edge struct {
		kind, group, peer string
		port              float64
	}
	base := []edge{
		{"ingress", "alb", "0.0.0.0/0", 80},
		{"egress", "alb", "app", 5000},
		{"ingress", "app", "alb", 5000},
		{"egress", "app", "cache", 6379},
		{"egress", "app", "kafka", 9096},
		{"egress", "app", "db", 5432},
		{"egress", "app", "0.0.0.0/0", 443}, // AWS APIs through the NAT or the VPC endpoints
		{"ingress", "cache", "app", 6379},
		{"ingress", "kafka", "app", 9096},
		{"ingress", "db", "app", 5432},
	}
	group := func(id string) string { return strings.TrimSuffix(strings.TrimPrefix(id, "firewall-"), "-id") }
	for _, tc := range tiers {
		t.Run(tc.stack, func(t *testing.T) {
			rec := record(t, tc.stack)
			want := map[edge]bool{}
			for _, e := range base {
				want[e] = true
			}
			if tc.https {
				want[edge{"ingress", "alb", "0.0.0.0/0", 443}] = true
			}
			if cfg := loadConfig(t, tc.stack); cfg.Network.InterfaceEndpoints {
				want[edge{"ingress", "network-endpoints", cfg.Network.CIDR, 443}] = true
			}
			for _, sg := range rec.ByType("aws:ec2/securityGroup:SecurityGroup") {
				if len(mocks.List(sg.Inputs, "ingress")) > 0 || len(mocks.List(sg.Inputs, "egress")) > 0 {
					t.Errorf("%s has inline rules; all rules must be in the firewall graph", sg.Name)
				}
			}
			got := map[edge]bool{}
			for _, r := range rec.ByType("aws:ec2/securityGroupRule:SecurityGroupRule") {
				peer := group(str(r, "sourceSecurityGroupId"))
				if cidrs := list(r, "cidrBlocks"); len(cidrs) > 0 {
					peer = strings.Join(cidrs, ",")
				}
				e := edge{str(r, "type"), group(str(r, "securityGroupId")), peer, num(r, "fromPort")}
				if num(r, "fromPort") != num(r, "toPort") || str(r, "protocol") != "tcp" {
					t.Errorf("%s opens a range or non-TCP: %v-%v/%s", r.Name, num(r, "fromPort"), num(r, "toPort"), str(r, "protocol"))
				}
				if strings.Contains(peer, "0.0.0.0/0") && !(e.kind == "ingress" && e.group == "alb") && e != (edge{"egress", "app", "0.0.0.0/0", 443}) {
					t.Errorf("%s opens %s to the world", r.Name, e.group)
				}
				got[e] = true
			}
			for e := range want {
				if !got[e] {
					t.Errorf("missing rule %v", e)
				}
			}
			for e := range got {
				if !want[e] {
					t.Errorf("unexpected rule %v", e)
				}
			}
		})
	}
}

// TestServers checks what each server boots with.
func TestServers(t *testing.T) {
	for _, tc := range tiers {
		t.Run(tc.stack, func(t *testing.T) {
			rec := record(t, tc.stack)
			secrets := secretValues(t, rec)
			if len(secrets) < 5 {
				t.Fatalf("found only %d generated secret values to look for", len(secrets))
			}
			seen := map[string]bool{}
			for _, in := range rec.ByType("aws:ec2/instance:Instance") {
				v := in.Inputs["userData"]
				if v.ContainsSecrets() {
					t.Errorf("%s: user data is secret, so a secret flowed into it", in.Name)
				}
				ud := str(in, "userData")
				m := regexp.MustCompile(`(?m)^SERVER_ID=(server-\d+)$`).FindStringSubmatch(ud)
				if m == nil {
					t.Fatalf("%s: no SERVER_ID in user data", in.Name)
				}
				if seen[m[1]] {
					t.Errorf("SERVER_ID %s used twice", m[1])
				}
				seen[m[1]] = true
				if str(in, "tags", "ServerId") != m[1] {
					t.Errorf("%s: ServerId tag %q differs from SERVER_ID %s", in.Name, str(in, "tags", "ServerId"), m[1])
				}
				for _, want := range []string{
					"PORT=5000", "REDIS_STRING=", "REDIS_PORT_NO=6379", "REDIS_TLS=true", "KAFKA_BROKERS=b-1.", "KAFKA_TLS=true",
					"FRONTEND_URL=http", "MemoryMax=1G", "Restart=on-failure", "ExecStartPre=+/usr/local/bin/quibly-fetch",
					"ExecStartPre=/usr/local/bin/quibly-db-setup", "DATABASE_URL=\"postgresql://",
					"APP_SECRET_ARN='arn:aws:secretsmanager:", "DB_SECRET_ARN='arn:aws:secretsmanager:", "DB_APP_SECRET_ARN='arn:aws:secretsmanager:",
					"VERSION_PARAMETER='/quibly-" + tc.stack + "/nodes/" + m[1] + "/app-version'", "sslmode=verify-full",
				} {
					if !strings.Contains(ud, want) {
						t.Errorf("%s: user data lacks %q", in.Name, want)
					}
				}
				for _, want := range []string{
					fmt.Sprintf("REDIS_CLUSTER=%v", tc.cacheCluster), "KAFKA_TOPIC=quibly.messages",
					fmt.Sprintf("KAFKA_REPLICATION_FACTOR=%d", tc.replication),
				} {
					if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want) + `$`).MatchString(ud) {
						t.Errorf("%s: user data lacks line %q", in.Name, want)
					}
				}
				if brokers := regexp.MustCompile(`(?m)^KAFKA_BROKERS=(.*)$`).FindStringSubmatch(ud); brokers == nil || len(strings.Split(brokers[1], ",")) != tc.brokers {
					t.Errorf("%s: KAFKA_BROKERS should list %d brokers: %v", in.Name, tc.brokers, brokers)
				}
				for _, s := range secrets {
					if strings.Contains(ud, s) {
						t.Errorf("%s: a secret value is in user data", in.Name)
					}
				}
				if regexp.MustCompile(`(?m)^(JWT_SECRET|REDIS_PASSWORD|KAFKA_PASSWORD)=|^DATABASE_URL=.*@`).MatchString(ud) {
					t.Errorf("%s: user data sets a secret variable", in.Name)
				}
				if !contains(in.IgnoreChanges, "userData") {
					t.Errorf("%s: a user-data change would replace the server; want ignoreChanges", in.Name)
				}
				if str(in, "metadataOptions", "httpTokens") != "required" || !flag(in, "rootBlockDevice", "encrypted") {
					t.Errorf("%s: want IMDSv2 and an encrypted root volume", in.Name)
				}
				if str(in, "keyName") != "" {
					t.Errorf("%s: has an SSH key pair; access is through SSM", in.Name)
				}
				checkShellSyntax(t, in.Name, ud)
			}
			for i := 1; i <= tc.servers; i++ {
				if !seen[fmt.Sprintf("server-%d", i)] {
					t.Errorf("no server-%d", i)
				}
			}
			params := rec.ByType("aws:ssm/parameter:Parameter")
			if len(params) != 1+tc.servers {
				t.Errorf("version parameters = %d, want the stack's and one per server (%d)", len(params), 1+tc.servers)
			}
			for _, p := range params {
				if str(p, "value") != loadConfig(t, tc.stack).App.Version {
					t.Errorf("version parameter %s = %q", str(p, "name"), str(p, "value"))
				}
				node := strings.Contains(str(p, "name"), "/nodes/")
				if node != contains(p.IgnoreChanges, "value") {
					t.Errorf("%s: ignoreChanges %v; a node's pin belongs to the rolling deploy once created, the stack's to the program", str(p, "name"), p.IgnoreChanges)
				}
			}
		})
	}
}

// TestServerRole checks the instance role reaches only its own secrets.
func TestServerRole(t *testing.T) {
	rec := record(t, "medium")
	for _, a := range serverAttachments(rec) {
		t.Errorf("managed policy %s attached to the servers' role; their rights are the two inline policies only", str(a, "policyArn"))
	}
	policies := map[string]string{}
	for _, p := range rec.ByType("aws:iam/rolePolicy:RolePolicy") {
		policies[p.Name] = str(p, "policy")
	}
	policy := policies["fleet-runtime"]
	var doc struct {
		Statement []struct {
			Sid       string
			Action    []string
			Resource  []string
			Condition map[string]map[string]string
		}
	}
	if err := json.Unmarshal([]byte(policy), &doc); err != nil {
		t.Fatalf("runtime policy: %v", err)
	}
	for _, st := range doc.Statement {
		for _, r := range st.Resource {
			// PutMetricData takes no resource; its namespace condition scopes it (rules_test).
			scoped := slices.Equal(st.Action, []string{"cloudwatch:PutMetricData"}) && st.Condition["StringEquals"]["cloudwatch:namespace"] != ""
			if (r == "*" && !scoped) || strings.HasSuffix(r, ":*") {
				t.Errorf("runtime policy statement %s has a wildcard resource: %s", st.Sid, policy)
			}
		}
	}
	for _, want := range []string{"secretsmanager:GetSecretValue", "secret:rds!db-", "AmazonMSK_", "/quibly-medium/nodes/*", "/quibly/*", "kms:Decrypt"} {
		if !strings.Contains(policy, want) {
			t.Errorf("runtime policy lacks %q: %s", want, policy)
		}
	}
	agent := policies["fleet-ssm-agent"]
	for _, action := range regexp.MustCompile(`"([a-z0-9]+:[A-Za-z*]+)"`).FindAllStringSubmatch(agent, -1) {
		if !strings.HasPrefix(action[1], "ssm:") && !strings.HasPrefix(action[1], "ssmmessages:") && !strings.HasPrefix(action[1], "ec2messages:") ||
			strings.Contains(action[1], "Parameter") || strings.Contains(action[1], "*") {
			t.Errorf("agent policy grants %s: only the agent's own calls, no parameter reads, no wildcards", action[1])
		}
	}
	if len(policies) != 2 || agent == "" {
		t.Errorf("role policies = %v, want fleet-runtime and fleet-ssm-agent", slices.Sorted(maps.Keys(policies)))
	}
}

// TestComponents checks every resource sits under a component and every
// component under the stack.
func TestComponents(t *testing.T) {
	rec := record(t, "small")
	components := map[string]bool{}
	for _, r := range rec.Resources {
		if !r.Custom {
			if !strings.HasPrefix(r.Type, "quibly:") {
				t.Errorf("component %s has type %s, want quibly:<concern>:<Name>", r.Name, r.Type)
			}
			if !strings.Contains(r.Parent, "pulumi:pulumi:Stack") {
				t.Errorf("component %s is not a child of the stack", r.Name)
			}
			components[r.Type] = true
		}
	}
	for _, r := range rec.Resources {
		if r.Custom && !strings.Contains(r.Parent, "$quibly:") && !strings.Contains(r.Parent, "::quibly:") {
			t.Errorf("%s (%s) has no component parent: %q", r.Name, r.Type, r.Parent)
		}
	}
	for _, want := range []string{"network:Network", "logs:Logs", "firewall:Firewall", "secrets:Secrets", "loadbalancer:LoadBalancer",
		"cache:Cache", "kafka:Kafka", "database:Database", "fleet:Fleet", "alarms:Alarms"} {
		if !components["quibly:"+want] {
			t.Errorf("missing component quibly:%s", want)
		}
	}
}

// TestBadConfig checks that a wrong stack file stops the program with a clear error.
func TestBadConfig(t *testing.T) {
	cases := []struct {
		name, key, from, to, want string
	}{
		{"brokers not a multiple of AZs", "quibly:kafka", `"brokers":3`, `"brokers":4`, "multiple of network.azCount"},
		{"idle timeout under ping", "quibly:loadBalancer", `"idleTimeoutSeconds":120`, `"idleTimeoutSeconds":20`, "must exceed the ping interval"},
		{"unknown engine", "quibly:database", `"engine":"postgres"`, `"engine":"mysql"`, "database.engine"},
		{"weak replication", "quibly:kafka", `"replicationFactor":3`, `"replicationFactor":2`, "replicationFactor must be ≥ 3"},
		{"misspelt field", "quibly:fleet", `"instances":3`, `"instanses":3`, `unknown field "instanses"`},
		{"one server", "quibly:fleet", `"instances":3`, `"instances":1`, "fleet.instances"},
		{"short backups", "quibly:database", `"backupRetentionDays":14`, `"backupRetentionDays":1`, "backupRetentionDays"},
		{"other kafka version", "quibly:kafka", `"version":"3.9.x"`, `"version":"3.6.0"`, "3.9.x"},
		{"more AZs than MSK spreads over", "quibly:network", `"azCount":3`, `"azCount":4`, "network.azCount"},
		{"one NAT for three AZs in production", "quibly:network", `"natGateways":3`, `"natGateways":1`, "natGateways"},
		{"production over plain HTTP", "quibly:loadBalancer", `"hostedZoneId":"Z0EXAMPLE0000000000"`, `"hostedZoneId":""`, "production serves sign-in and tokens over HTTPS"},
		{"production without alarm subscription", "quibly:alarms", `"email":"oncall@example.com"`, `"email":""`, "quibly:alarms.email"},
		{"production without deletion protection", "quibly:database", `"deletionProtection":true`, `"deletionProtection":false`, "deletionProtection"},
		{"autoscaling ceiling under the volume", "quibly:kafka", `"maxVolumeGb":2000`, `"maxVolumeGb":100`, "maxVolumeGb"},
		{"master user named as the servers' role", "quibly:database", `"username":"quibly"`, `"username":"quibly_app"`, "database.username"},
		{"production without AWS WAF", "quibly:loadBalancer", `"waf":true`, `"waf":false`, "production's public ALB needs AWS WAF"},
		{"WAF sized for no client", "quibly:loadBalancer", `"wafClientsPerAddress":1000`, `"wafClientsPerAddress":0`, "wafClientsPerAddress"},
		{"production logs kept a week", "quibly:network", `"logRetentionDays":90`, `"logRetentionDays":7`, "at least 90 in production"},
		{"AMI that is neither id nor SSM", "quibly:fleet", `"ami":"resolve:ssm:`, `"ami":"latest-al2023`, "fleet.ami"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := mocks.StackFile(envDir, "medium")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(cfg[tc.key], tc.from) {
				t.Fatalf("%s does not contain %s: %s", tc.key, tc.from, cfg[tc.key])
			}
			cfg[tc.key] = strings.Replace(cfg[tc.key], tc.from, tc.to, 1)
			_, err = mocks.Run("medium", cfg, program.Run)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	for _, stack := range []string{"a--b", "ab-", "9ab", "abcdefghijklmnopqrst", "Prod"} {
		t.Run("stack name "+stack, func(t *testing.T) {
			_, err := mocks.Run(stack, mustStackFile(t, "small"), program.Run)
			if err == nil || !strings.Contains(err.Error(), "stack:") {
				t.Errorf("stack %q: error = %v, want the stack name refused", stack, err)
			}
		})
	}
	// What `make rotate-db-password` writes into the stack file must not break `make
	// plan` or the program: every secret Load reads is a setting the file may hold.
	t.Run("every secret setting in the stack file", func(t *testing.T) {
		dir := t.TempDir()
		src, err := os.ReadFile(filepath.Join(envDir, "Pulumi.small.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		// The secrets the README tells operators to set, and the one
		// scripts/ops/rotate-db-password.sh records.
		written := []string{"jwtSecret", "redisAuthToken", "kafkaPassword", "dbAppPassword"}
		var extra strings.Builder
		for i, k := range written {
			if i%2 == 0 { // as `pulumi config set --secret` writes it
				fmt.Fprintf(&extra, "  quibly:%s:\n    secure: v1:c2VjcmV0LXZhbHVl\n", k)
			} else { // as a plain (test) value
				fmt.Fprintf(&extra, "  quibly:%s: plain-value-of-at-least-32-characters-%d\n", k, i)
			}
		}
		withSecrets := strings.Replace(string(src), "config:\n", "config:\n"+extra.String(), 1)
		if withSecrets == string(src) {
			t.Fatal("the stack file has no config: block to add to")
		}
		if err := os.WriteFile(filepath.Join(dir, "Pulumi.small.yaml"), []byte(withSecrets), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := mocks.StackFile(dir, "small")
		if err != nil {
			t.Fatalf("a stack file with %v: %v", written, err)
		}
		if _, err := mocks.Run("small", cfg, program.Run); err != nil {
			t.Fatalf("the program with every secret set: %v", err)
		}
	})
	t.Run("unknown top-level key", func(t *testing.T) {
		dir := t.TempDir()
		src, err := os.ReadFile(filepath.Join(envDir, "Pulumi.small.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		bad := strings.Replace(string(src), "quibly:fleet:", "quibly:fleeet:", 1)
		if err := os.WriteFile(filepath.Join(dir, "Pulumi.small.yaml"), []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := mocks.StackFile(dir, "small"); err == nil || !strings.Contains(err.Error(), "fleeet") {
			t.Errorf("error = %v, want one naming the unknown key", err)
		}
	})
}

// TestOutputs checks the stack outputs: URL, instance ids by SERVER_ID, secrets marked secret.
func TestOutputs(t *testing.T) {
	cfgMap, err := mocks.StackFile(envDir, "small")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	var url string
	var instances map[string]string
	var tokenSecret bool
	_, err = mocks.Run("small", cfgMap, func(ctx *pulumi.Context) error {
		cfg, err := config.Load(ctx)
		if err != nil {
			return err
		}
		out, err := program.Deploy(ctx, cfg)
		if err != nil {
			return err
		}
		pulumi.All(out.URL, out.Instances).ApplyT(func(v []any) error {
			defer wg.Done()
			url = v[0].(string)
			instances = v[1].(map[string]string)
			return nil
		})
		out.RedisAuthToken.ApplyT(func(string) error { defer wg.Done(); return nil })
		tokenSecret = pulumi.IsSecret(out.RedisAuthToken)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if !strings.HasPrefix(url, "http://quibly-small-") || !strings.Contains(url, ".elb.amazonaws.com") {
		t.Errorf("url = %q", url)
	}
	if len(instances) != 2 || !strings.HasPrefix(instances["server-1"], "i-") || !strings.HasPrefix(instances["server-2"], "i-") {
		t.Errorf("instances = %v", instances)
	}
	if !tokenSecret {
		t.Error("the Redis auth token output must be secret")
	}
}

func loadConfig(t *testing.T, stack string) *config.Config {
	t.Helper()
	cfgMap, err := mocks.StackFile(envDir, stack)
	if err != nil {
		t.Fatal(err)
	}
	var cfg *config.Config
	_, err = mocks.Run(stack, cfgMap, func(ctx *pulumi.Context) error {
		var err error
		cfg, err = config.Load(ctx)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// secretValues collects every generated secret value (and its JSON fields).
func secretValues(t *testing.T, rec *mocks.Recorder) []string {
	var out []string
	for _, r := range rec.Resources {
		for k, v := range r.Inputs {
			if !v.IsSecret() {
				continue
			}
			s := mocks.Str(r.Inputs, string(k))
			if s == "" {
				continue
			}
			out = append(out, s)
			for _, m := range regexp.MustCompile(`"([0-9a-f]{32,})"`).FindAllStringSubmatch(s, -1) {
				out = append(out, m[1])
			}
		}
	}
	return out
}

func serverProperties(t *testing.T, conf mocks.Resource) map[string]string {
	props := map[string]string{}
	for _, line := range strings.Split(str(conf, "serverProperties"), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			props[k] = v
		}
	}
	return props
}

func assertPrivate(t *testing.T, what string, ids []string) {
	t.Helper()
	if len(ids) == 0 {
		t.Errorf("%s: no subnets", what)
	}
	for _, id := range ids {
		if !strings.HasPrefix(id, "network-private-") {
			t.Errorf("%s is in %s, want a private subnet", what, id)
		}
	}
}

func assertPublic(t *testing.T, what string, ids []string) {
	t.Helper()
	if len(ids) < 2 {
		t.Errorf("%s: want ≥ 2 subnets, got %v", what, ids)
	}
	for _, id := range ids {
		if !strings.HasPrefix(id, "network-public-") {
			t.Errorf("%s is in %s, want a public subnet", what, id)
		}
	}
}

// checkShellSyntax parses (never runs) the boot script with bash -n.
func checkShellSyntax(t *testing.T, name, script string) {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash is needed to syntax-check user data: %v", err)
	}
	cmd := exec.Command(bash, "-n")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%s: user data is not valid bash: %v\n%s", name, err, out)
	}
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// TestOperatorSecrets checks secrets set with `pulumi config set --secret` are used,
// stay secret, are not pinned (so changing them rotates them) and are validated.
func TestOperatorSecrets(t *testing.T) {
	const jwt = "an-operator-chosen-jwt-secret-of-40-chars!"
	rec := plan(t, "small", func(c map[string]string) {
		c["quibly:jwtSecret"] = jwt
		c["quibly:redisAuthToken"] = "operator-redis-token-0123456789"
		c["quibly:kafkaPassword"] = "operator-kafka-password"
		c["quibly:dbAppPassword"] = "operator-db-app-password-0123"
	})
	rg := one(t, rec, "aws:elasticache/replicationGroup:ReplicationGroup")
	if str(rg, "authToken") != "operator-redis-token-0123456789" || !rg.Inputs["authToken"].ContainsSecrets() {
		t.Error("operator's Redis token not used as a secret")
	}
	if contains(rg.IgnoreChanges, "authToken") {
		t.Error("an operator-set token must not be pinned")
	}
	found := false
	for _, v := range rec.ByType("aws:secretsmanager/secretVersion:SecretVersion") {
		if strings.Contains(str(v, "secretString"), jwt) {
			found = true
			if !v.Inputs["secretString"].ContainsSecrets() || contains(v.IgnoreChanges, "secretString") {
				t.Error("operator's JWT secret must be secret and not pinned")
			}
		}
	}
	if !found {
		t.Error("operator's JWT secret not stored")
	}
	var login struct{ Username, Password string }
	if err := json.Unmarshal([]byte(dbAppLogin(t, rec)), &login); err != nil ||
		login.Username != config.DBAppUsername || login.Password != "operator-db-app-password-0123" {
		t.Errorf("the servers' database login = %q (%v), want %s with the operator's password", login.Username, err, config.DBAppUsername)
	}
	for _, in := range rec.ByType("aws:ec2/instance:Instance") {
		if strings.Contains(str(in, "userData"), jwt) {
			t.Error("JWT secret in user data")
		}
	}

	cfg, err := mocks.StackFile(envDir, "small")
	if err != nil {
		t.Fatal(err)
	}
	for key, bad := range map[string]string{"quibly:jwtSecret": "short", "quibly:dbAppPassword": "pässwort-of-twenty-chars"} {
		c := maps.Clone(cfg)
		c[key] = bad
		if _, err := mocks.Run("small", c, program.Run); err == nil || !strings.Contains(err.Error(), key) || strings.Contains(err.Error(), bad) {
			t.Errorf("%s: error = %v, want one naming it without its value", key, err)
		}
	}
}

func dbAppLogin(t *testing.T, rec *mocks.Recorder) string {
	t.Helper()
	for _, v := range rec.ByType("aws:secretsmanager/secretVersion:SecretVersion") {
		if v.Name == "secrets-db-app" {
			return str(v, "secretString")
		}
	}
	t.Fatal("no secrets-db-app secret version")
	return ""
}

// TestGeneratedSecretsStable runs the program twice, the second time on the state
// the first left, as two `pulumi up`s would: every generated secret, and the token
// the cache was created with, must come out the same.
func TestGeneratedSecretsStable(t *testing.T) {
	cfg, err := mocks.StackFile(envDir, "medium")
	if err != nil {
		t.Fatal(err)
	}
	values := func(rec *mocks.Recorder) map[string]string {
		out := map[string]string{}
		for _, v := range rec.ByType("aws:secretsmanager/secretVersion:SecretVersion") {
			out[v.Name] = str(v, "secretString")
			if contains(v.IgnoreChanges, "secretString") {
				t.Errorf("%s: pinned by ignoreChanges, so the state and the outputs drift from the secret", v.Name)
			}
		}
		out["authToken"] = str(one(t, rec, "aws:elasticache/replicationGroup:ReplicationGroup"), "authToken")
		return out
	}
	first, err := mocks.RunWith(&mocks.Recorder{}, false, "medium", cfgWithoutExamples(cfg), program.Run)
	if err != nil {
		t.Fatal(err)
	}
	second, err := mocks.RunWith(&mocks.Recorder{Prior: first.State()}, false, "medium", cfgWithoutExamples(cfg), program.Run)
	if err != nil {
		t.Fatal(err)
	}
	a, b := values(first), values(second)
	if len(a) != 4 {
		t.Fatalf("want the app, Kafka and database login secrets and the auth token, got %v", slices.Sorted(maps.Keys(a)))
	}
	for k, v := range a {
		if v == "" || b[k] != v {
			t.Errorf("%s changed between two runs of the program (or is empty)", k)
		}
	}
	var app struct{ REDIS_PASSWORD string }
	if err := json.Unmarshal([]byte(a["secrets-app"]), &app); err != nil || app.REDIS_PASSWORD != a["authToken"] {
		t.Errorf("the app secret's REDIS_PASSWORD is not the token the cache was created with")
	}
}

// cfgWithoutExamples replaces the committed example values, as an operator must
// before `pulumi up`.
func cfgWithoutExamples(cfg map[string]string) map[string]string {
	out := maps.Clone(cfg)
	r := strings.NewReplacer("oncall@example.com", "oncall@quibly.dev", "chat.example.com", "chat.quibly.dev", "Z0EXAMPLE0000000000", "Z0123456789ABCDEFGHIJ")
	for k, v := range out {
		out[k] = r.Replace(v)
	}
	return out
}

// TestUpdateRefusesExamples: the committed production stacks carry example values
// that `make plan` (a preview) shows and `pulumi up` (an update) refuses.
func TestUpdateRefusesExamples(t *testing.T) {
	for _, stack := range []string{"medium", "large"} {
		cfg, err := mocks.StackFile(envDir, stack)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := mocks.RunWith(&mocks.Recorder{}, true, stack, cfg, program.Run); err != nil {
			t.Errorf("%s: the preview must show the example stack: %v", stack, err)
		}
		rec, err := mocks.RunWith(&mocks.Recorder{}, false, stack, cfg, program.Run)
		for _, key := range []string{"quibly:alarms.email", "quibly:loadBalancer.domain", "quibly:loadBalancer.hostedZoneId"} {
			if err == nil || !strings.Contains(err.Error(), key) {
				t.Errorf("%s: update error = %v, want one naming %s", stack, err, key)
			}
		}
		if n := len(rec.Resources); n != 0 {
			t.Errorf("%s: %d resources registered before the refusal; an update must stop before creating anything", stack, n)
		}
		if _, err := mocks.RunWith(&mocks.Recorder{}, false, stack, cfgWithoutExamples(cfg), program.Run); err != nil {
			t.Errorf("%s with real values: %v", stack, err)
		}
	}
	if _, err := mocks.RunWith(&mocks.Recorder{}, false, "small", mustStackFile(t, "small"), program.Run); err != nil {
		t.Errorf("small holds no example values, its update must run: %v", err)
	}
}

func mustStackFile(t *testing.T, stack string) map[string]string {
	t.Helper()
	cfg, err := mocks.StackFile(envDir, stack)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestZonesByID: whatever names the account gives its zones, the program picks
// regular zones by id and skips the one MSK refuses.
func TestZonesByID(t *testing.T) {
	rec := record(t, "medium")
	var got []string
	for _, s := range rec.ByType("aws:ec2/subnet:Subnet") {
		if strings.Contains(s.Name, "-private-") {
			got = append(got, str(s, "availabilityZoneId"))
		}
	}
	slices.Sort(got)
	if want := []string{"use1-az1", "use1-az2", "use1-az4"}; !slices.Equal(got, want) {
		t.Errorf("private subnets in %v, want %v (lowest ids; not use1-az3, not the Local Zone)", got, want)
	}
}

// TestStackFileWithCLIKeys: once `pulumi config set --secret` ran, the CLI adds
// encryptionsalt (or secretsprovider and encryptedkey) to the stack file.
func TestStackFileWithCLIKeys(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join(envDir, "Pulumi.small.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	withSalt := "encryptionsalt: v1:AbCdEfGh0123=:v1:IjKlMnOp4567:QrStUvWx89==\n" + string(src) +
		"  quibly:jwtSecret:\n    secure: v1:AAAABBBBCCCC:DDDDEEEEFFFF\n"
	if err := os.WriteFile(filepath.Join(dir, "Pulumi.small.yaml"), []byte(withSalt), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := mocks.StackFile(dir, "small")
	if err != nil {
		t.Fatalf("a stack file with encryptionsalt: %v", err)
	}
	if _, ok := cfg["quibly:jwtSecret"]; ok {
		t.Error("an encrypted secret must be left to the engine, not passed as its ciphertext")
	}
}

// appConfigKeys are the variables the server reads: the mapstructure tags of its config.
func appConfigKeys(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(repoRoot, "app/internal/config/config.go"))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, m := range regexp.MustCompile("mapstructure:\"([A-Z0-9_]+)\"").FindAllStringSubmatch(string(src), -1) {
		keys = append(keys, m[1])
	}
	if len(keys) < 20 {
		t.Fatalf("found %d config keys in the app's config; the pattern no longer matches", len(keys))
	}
	return keys
}

// Every app setting a stack file declares reaches every server's environment, under a
// name the app reads: the env file decoded from each tier's user data says what the
// stack file says, and holds nothing the app would ignore.
func TestServerEnvMatchesStack(t *testing.T) {
	appKeys := appConfigKeys(t)
	for _, stack := range []string{"small", "medium", "large"} {
		t.Run(stack, func(t *testing.T) {
			cfg := loadConfig(t, stack)
			want := map[string]string{
				"PORT":                      strconv.Itoa(cfg.App.Port),
				"REDIS_PORT_NO":             "6379",
				"REDIS_TLS":                 "true",
				"REDIS_CLUSTER":             strconv.FormatBool(cfg.Cache.ClusterMode),
				"KAFKA_TLS":                 "true",
				"KAFKA_TOPIC":               cfg.Kafka.Topic,
				"KAFKA_REPLICATION_FACTOR":  strconv.Itoa(cfg.Kafka.ReplicationFactor),
				"KAFKA_MIN_INSYNC_REPLICAS": strconv.Itoa(cfg.Kafka.MinInsyncReplicas),
				"KAFKA_GROUP_ID":            cfg.Kafka.ConsumerGroup,
				"PING_INTERVAL":             fmt.Sprintf("%ds", cfg.LoadBalancer.PingIntervalSeconds),
				"SHUTDOWN_TIMEOUT":          fmt.Sprintf("%ds", cfg.LoadBalancer.DrainSeconds),
				// AWS: a target's keep-alive timeout must exceed the ALB's idle timeout.
				"HTTP_IDLE_TIMEOUT": fmt.Sprintf("%ds", cfg.LoadBalancer.IdleTimeoutSeconds+60),
				// The ALB's nodes are in the VPC; the client is what they forward.
				"TRUSTED_PROXIES": cfg.Network.CIDR,
				// Where the role may publish and the alarm watches (rules_test).
				"CLOUDWATCH_NAMESPACE": "Quibly/" + cfg.Name(),
			}
			for _, in := range record(t, stack).ByType("aws:ec2/instance:Instance") {
				body, err := awstest.Heredoc(str(in, "userData"), "QUIBLY_ENV")
				if err != nil {
					t.Fatalf("%s: %v", in.Name, err)
				}
				env := map[string]string{}
				for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
					k, v, ok := strings.Cut(line, "=")
					if !ok || env[k] != "" {
						t.Fatalf("%s: env file line %q is not a new KEY=value", in.Name, line)
					}
					env[k] = v
					if !slices.Contains(appKeys, k) {
						t.Errorf("%s: the env file sets %s, which the app does not read", in.Name, k)
					}
				}
				for k, v := range want {
					if env[k] != v {
						t.Errorf("%s: %s=%q, the stack file says %q", in.Name, k, env[k], v)
					}
				}
			}
		})
	}
}
