// Package config reads the stack configuration once into one typed, validated
// struct. The tier (small, medium, large or any other stack) is data in
// environments/Pulumi.<stack>.yaml; nothing else in infra/ branches on a stack name.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	pconfig "github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"
)

var printableASCII = regexp.MustCompile(`^[!-~]{16,}$`)

// DBAppUsername is the database role the servers log in as; the master user (the
// stack's database.username) only creates it (quibly -setup-db).
const DBAppUsername = "quibly_app"

// MinProductionLogDays is the shortest log retention a production stack may set.
const MinProductionLogDays = 90

// Namespace is the project's config namespace (`quibly:<key>` in a stack file).
const Namespace = "quibly"

// Keys are the structured config objects a stack file must set, one per concern.
var Keys = []string{"app", "network", "loadBalancer", "cache", "kafka", "database", "fleet", "alarms"}

// Config is everything the program needs, read once.
type Config struct {
	Project string
	Stack   string
	Region  string
	// Production stacks keep their data when resources are replaced or the stack is
	// destroyed, serve only HTTPS and must notify someone when an alarm fires.
	Production   bool
	App          App
	Network      Network
	LoadBalancer LoadBalancer
	Cache        Cache
	Kafka        Kafka
	Database     Database
	Fleet        Fleet
	Alarms       Alarms
	// Secrets are the optional operator-set secrets; empty ones are generated.
	Secrets Secrets
}

// Secrets may be set with `pulumi config set --secret quibly:<key>`. A value set
// here is authoritative (changing it rotates it); an unset one is generated once.
// Never print this struct.
type Secrets struct {
	JWTSecret      string
	RedisAuthToken string
	KafkaPassword  string
	// DBAppPassword is the servers' database password (scripts/ops/rotate-db-password.sh
	// sets it); empty: generated once.
	DBAppPassword string
}

// FlagKeys are the plain true/false settings a stack file must set.
var FlagKeys = []string{"production"}

// secretSetting is one optional secret setting and the field Load reads it into.
type secretSetting struct {
	key   string
	field func(*Secrets) *string
}

// secretSettings is the one list of secret settings: Load reads these, and
// SecretKeys (what a stack file may hold) is made from it, so the two cannot drift
// (quibly:dbAppPassword, which `make rotate-db-password` writes, once was read but
// not allowed, and `make plan` then refused the stack file).
var secretSettings = []secretSetting{
	{"jwtSecret", func(s *Secrets) *string { return &s.JWTSecret }},
	{"redisAuthToken", func(s *Secrets) *string { return &s.RedisAuthToken }},
	{"kafkaPassword", func(s *Secrets) *string { return &s.KafkaPassword }},
	{"dbAppPassword", func(s *Secrets) *string { return &s.DBAppPassword }},
}

// SecretKeys are the optional secret settings, by config key.
var SecretKeys = func() []string {
	keys := make([]string, len(secretSettings))
	for i, s := range secretSettings {
		keys[i] = s.key
	}
	return keys
}()

// App is the application the fleet runs.
type App struct {
	// Version is the artifact the fleet boots (s3://<bucket>/quibly/<version>/quibly-linux-<arch>).
	// Kept in an SSM parameter, so changing it never replaces an instance.
	Version string `json:"version"`
	// FrontendURL is the browser origin allowed besides the server's own; empty means the ALB URL.
	FrontendURL string `json:"frontendUrl"`
	// Port is the port the server listens on (the target group's port).
	Port int `json:"port"`
}

// Network is the VPC layout.
type Network struct {
	CIDR        string `json:"cidr"`
	AZCount     int    `json:"azCount"`
	NATGateways int    `json:"natGateways"`
	// InterfaceEndpoints puts SSM, Secrets Manager and KMS inside the VPC, so the
	// servers reach them without the NAT (the S3 gateway endpoint is always there).
	InterfaceEndpoints bool `json:"interfaceEndpoints"`
	// LogRetentionDays is how long the VPC's flow logs and the ALB, artifact bucket
	// and broker logs are kept.
	LogRetentionDays int `json:"logRetentionDays"`
}

// LoadBalancer is the ALB in front of the fleet.
type LoadBalancer struct {
	// CertificateARN switches on HTTPS:443 and the HTTP→HTTPS redirect.
	CertificateARN string `json:"certificateArn"`
	// Domain is the name clients use. Without a CertificateARN the program asks ACM
	// for a certificate for it, validated through HostedZoneID.
	Domain string `json:"domain"`
	// HostedZoneID is the Route 53 zone of Domain: it validates the certificate and
	// gets an alias record pointing Domain at the ALB.
	HostedZoneID               string `json:"hostedZoneId"`
	IdleTimeoutSeconds         int    `json:"idleTimeoutSeconds"`
	DeregistrationDelaySeconds int    `json:"deregistrationDelaySeconds"`
	StickinessSeconds          int    `json:"stickinessSeconds"`
	// PingIntervalSeconds is the app's Engine.IO ping interval; the idle timeout must exceed it.
	PingIntervalSeconds int `json:"pingIntervalSeconds"`
	// DrainSeconds is the app's longest SIGTERM drain; the deregistration delay must cover it.
	DrainSeconds int `json:"drainSeconds"`
	// WAF puts AWS WAF in front of the ALB (production needs it). Its rate limit per
	// source address lets a reconnect storm of WAFClientsPerAddress clients behind
	// one address through (loadbalancer.RateLimit).
	WAF                  bool `json:"waf"`
	WAFClientsPerAddress int  `json:"wafClientsPerAddress"`
}

// Cache is the ElastiCache Redis replication group.
type Cache struct {
	NodeType         string `json:"nodeType"`
	EngineVersion    string `json:"engineVersion"`
	ClusterMode      bool   `json:"clusterMode"`
	Shards           int    `json:"shards"`
	ReplicasPerShard int    `json:"replicasPerShard"`
}

// Kafka is the MSK cluster.
type Kafka struct {
	Version    string `json:"version"`
	BrokerType string `json:"brokerType"`
	Brokers    int    `json:"brokers"`
	VolumeGB   int    `json:"volumeGb"`
	// MaxVolumeGB is how far storage autoscaling may grow each broker's volume.
	MaxVolumeGB       int `json:"maxVolumeGb"`
	ReplicationFactor int `json:"replicationFactor"`
	MinInsyncReplicas int `json:"minInsyncReplicas"`
	// Topic and ConsumerGroup name the batch writer's lag metric for the alarm.
	Topic         string `json:"topic"`
	ConsumerGroup string `json:"consumerGroup"`
}

// Database is RDS PostgreSQL or Aurora PostgreSQL, chosen by Engine.
type Database struct {
	Engine              string `json:"engine"`
	EngineVersion       string `json:"engineVersion"`
	InstanceClass       string `json:"instanceClass"`
	Instances           int    `json:"instances"`
	MultiAZ             bool   `json:"multiAz"`
	StorageGB           int    `json:"storageGb"`
	BackupRetentionDays int    `json:"backupRetentionDays"`
	DeletionProtection  bool   `json:"deletionProtection"`
	// MaxConnections is the engine's max_connections for InstanceClass; the alarm fires near it.
	MaxConnections int    `json:"maxConnections"`
	Name           string `json:"name"`
	Username       string `json:"username"`
}

// Engines the database component knows.
const (
	EnginePostgres = "postgres"
	EngineAurora   = "aurora-postgresql"
)

// Fleet is the EC2 instances that run the server.
type Fleet struct {
	InstanceType string `json:"instanceType"`
	Instances    int    `json:"instances"`
	MaxInstances int    `json:"maxInstances"`
	// AMI may be an id or resolve:ssm:<public parameter>; the latest image is taken at launch only.
	AMI       string `json:"ami"`
	Arch      string `json:"arch"`
	VolumeGB  int    `json:"volumeGb"`
	MemoryMax string `json:"memoryMax"`
}

// Alarms are the thresholds of the CloudWatch alarms every tier has (CPU, 5xx,
// Kafka lag and disk, database connections, Redis memory) and where they notify.
type Alarms struct {
	Email                string  `json:"email"`
	CPUPercent           float64 `json:"cpuPercent"`
	HTTP5xxPercent       float64 `json:"http5xxPercent"`
	KafkaLag             float64 `json:"kafkaLag"`
	DBConnectionsPercent float64 `json:"dbConnectionsPercent"`
	RedisMemoryPercent   float64 `json:"redisMemoryPercent"`
	KafkaDiskPercent     float64 `json:"kafkaDiskPercent"`
}

// Load reads the config of the running stack. It is the only place config is read.
func Load(ctx *pulumi.Context) (*Config, error) {
	c := &Config{Project: ctx.Project(), Stack: ctx.Stack()}
	c.Region = pconfig.Get(ctx, "aws:region")
	conf := pconfig.New(ctx, Namespace)
	targets := map[string]any{
		"app": &c.App, "network": &c.Network, "loadBalancer": &c.LoadBalancer, "cache": &c.Cache,
		"kafka": &c.Kafka, "database": &c.Database, "fleet": &c.Fleet, "alarms": &c.Alarms,
	}
	var errs []error
	if p, err := conf.TryBool("production"); err != nil {
		errs = append(errs, fmt.Errorf("%s:production must be set to true or false (see environments/Pulumi.small.yaml)", Namespace))
	} else {
		c.Production = p
	}
	for _, key := range Keys {
		raw, err := conf.Try(key)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%s is not set (see environments/Pulumi.small.yaml for an example)", Namespace, key))
			continue
		}
		if err := decodeStrict(raw, targets[key]); err != nil {
			errs = append(errs, fmt.Errorf("%s:%s: %w", Namespace, key, err))
		}
	}
	for _, s := range secretSettings {
		*s.field(&c.Secrets) = conf.Get(s.key) // plaintext stays in memory; components wrap it as a Pulumi secret
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	// A preview (and `make plan`) may show the committed example values; an update may not.
	if !ctx.DryRun() {
		if err := c.NoExamples(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// decodeStrict rejects unknown fields so a misspelt setting fails instead of being ignored.
func decodeStrict(raw string, into any) error {
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return fmt.Errorf("not a valid object: %w", err)
	}
	return nil
}

var (
	// Stack names end up in ALB, bucket, cache and database names: a letter first, no
	// "--" (ElastiCache, RDS), no "-" at the end (ALB, RDS), and short enough that the
	// artifact bucket prefix quibly-<stack>-artifacts- stays within S3's 37 characters.
	stackName   = regexp.MustCompile(`^[a-z](-?[a-z0-9]){0,18}$`)
	amiID       = regexp.MustCompile(`^ami-[0-9a-f]{8}([0-9a-f]{9})?$`)
	domainName  = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)
	zoneID      = regexp.MustCompile(`^Z[A-Z0-9]{1,31}$`)
	ec2Type     = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9]+$`)
	memoryLimit = regexp.MustCompile(`^[0-9]+[KMG]$`)
	appVersion  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

// complaint records one invalid setting: its key and what is wrong with it.
type complaint func(key, format string, args ...any)

// Validate says everything that is wrong, each naming its setting, section by section.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	c.validateStack(bad)
	c.validateApp(bad)
	c.validateNetwork(bad)
	c.validateLoadBalancer(bad)
	c.validateCache(bad)
	c.validateKafka(bad)
	c.validateDatabase(bad)
	c.validateFleet(bad)
	c.validateAlarms(bad)
	c.validateSecrets(bad)
	return errors.Join(errs...)
}

// validateStack checks the stack's name and region.
func (c *Config) validateStack(bad complaint) {
	// Names of the cache, MSK and DB derive from the stack, and those have length and charset limits.
	if !stackName.MatchString(c.Stack) {
		bad("stack", "%q must start with a letter, hold lower-case letters, digits and single '-' between them, and be at most 19 characters", c.Stack)
	}
	if c.Region == "" {
		bad("aws:region", "is required")
	}
}

// validateApp checks the app section.
func (c *Config) validateApp(bad complaint) {
	a := c.App
	if !appVersion.MatchString(a.Version) {
		bad("quibly:app.version", "%q must be a non-empty artifact version (letters, digits, '.', '_', '-')", a.Version)
	}
	if a.FrontendURL != "" && !strings.HasPrefix(a.FrontendURL, "https://") && !strings.HasPrefix(a.FrontendURL, "http://") {
		bad("quibly:app.frontendUrl", "%q must be an http(s) origin", a.FrontendURL)
	}
	if a.Port < 1 || a.Port > 65535 {
		bad("quibly:app.port", "%d is not a port", a.Port)
	}
}

// validateNetwork checks the network section.
func (c *Config) validateNetwork(bad complaint) {
	n := c.Network
	if p, err := netip.ParsePrefix(n.CIDR); err != nil || !p.Addr().Is4() || p.Bits() > 16 {
		bad("quibly:network.cidr", "%q must be an IPv4 block of /16 or larger", n.CIDR)
	}
	if n.AZCount < 2 || n.AZCount > 3 {
		bad("quibly:network.azCount", "%d must be 2 or 3 (the ALB and a Multi-AZ data tier need two; MSK spreads brokers over two or three)", n.AZCount)
	}
	if n.NATGateways < 1 || n.NATGateways > n.AZCount {
		bad("quibly:network.natGateways", "%d must be 1 to azCount (%d)", n.NATGateways, n.AZCount)
	}
	if n.LogRetentionDays < 1 || n.LogRetentionDays > 3650 || (c.Production && n.LogRetentionDays < MinProductionLogDays) {
		bad("quibly:network.logRetentionDays", "%d must be 1 to 3650 days, and at least %d in production (an incident is often found weeks later)", n.LogRetentionDays, MinProductionLogDays)
	}
	if c.Production && n.NATGateways != n.AZCount {
		bad("quibly:network.natGateways", "%d must equal azCount (%d) in production, so losing one AZ does not cut the others off from AWS APIs", n.NATGateways, n.AZCount)
	}
}

// validateLoadBalancer checks the load balancer section.
func (c *Config) validateLoadBalancer(bad complaint) {
	l := c.LoadBalancer
	if l.PingIntervalSeconds < 1 {
		bad("quibly:loadBalancer.pingIntervalSeconds", "must be the app's ping interval in seconds")
	}
	if l.IdleTimeoutSeconds <= l.PingIntervalSeconds || l.IdleTimeoutSeconds > 4000 {
		bad("quibly:loadBalancer.idleTimeoutSeconds", "%d must exceed the ping interval (%d s) so idle sockets are not cut, and be at most 4000", l.IdleTimeoutSeconds, l.PingIntervalSeconds)
	}
	if l.DrainSeconds < 1 || l.DrainSeconds > 30 {
		bad("quibly:loadBalancer.drainSeconds", "%d must be the app's drain, 1 to 30 s", l.DrainSeconds)
	}
	if l.DeregistrationDelaySeconds < l.DrainSeconds || l.DeregistrationDelaySeconds > 3600 {
		bad("quibly:loadBalancer.deregistrationDelaySeconds", "%d must cover the app's drain (%d s) and be at most 3600", l.DeregistrationDelaySeconds, l.DrainSeconds)
	}
	if l.StickinessSeconds < 1 || l.StickinessSeconds > 604800 {
		bad("quibly:loadBalancer.stickinessSeconds", "%d must be 1 to 604800", l.StickinessSeconds)
	}
	if l.CertificateARN != "" && !strings.HasPrefix(l.CertificateARN, "arn:aws:acm:") {
		bad("quibly:loadBalancer.certificateArn", "%q must be an ACM certificate ARN", l.CertificateARN)
	}
	if l.Domain != "" && !domainName.MatchString(l.Domain) {
		bad("quibly:loadBalancer.domain", "%q is not a lower-case DNS name", l.Domain)
	}
	if l.HostedZoneID != "" && (!zoneID.MatchString(l.HostedZoneID) || l.Domain == "") {
		bad("quibly:loadBalancer.hostedZoneId", "%q must be a Route 53 zone id (Z…) and needs loadBalancer.domain", l.HostedZoneID)
	}
	if l.Domain != "" && l.CertificateARN == "" && l.HostedZoneID == "" {
		bad("quibly:loadBalancer.domain", "needs hostedZoneId (to validate the ACM certificate) or a certificateArn")
	}
	if c.Production && !l.WAF {
		bad("quibly:loadBalancer.waf", "production's public ALB needs AWS WAF in front of it")
	}
	if l.WAF && (l.WAFClientsPerAddress < 1 || l.WAFClientsPerAddress > 1_000_000) {
		bad("quibly:loadBalancer.wafClientsPerAddress", "%d must be 1 to 1000000: the clients one address (an office NAT) may reconnect at once without being blocked", l.WAFClientsPerAddress)
	}
	if !l.WAF && l.WAFClientsPerAddress != 0 {
		bad("quibly:loadBalancer.wafClientsPerAddress", "is set but waf is off")
	}
	if c.Production && !c.HTTPS() {
		bad("quibly:loadBalancer", "production serves sign-in and tokens over HTTPS only: set certificateArn, or domain and hostedZoneId")
	}
}

// validateCache checks the cache section.
func (c *Config) validateCache(bad complaint) {
	k := c.Cache
	if !strings.HasPrefix(k.NodeType, "cache.") {
		bad("quibly:cache.nodeType", "%q must be an ElastiCache node type (cache.…)", k.NodeType)
	}
	if k.EngineVersion == "" {
		bad("quibly:cache.engineVersion", "is required")
	}
	if k.Shards < 1 || (!k.ClusterMode && k.Shards != 1) || k.Shards > 500 {
		bad("quibly:cache.shards", "%d must be 1 without cluster mode, 1 to 500 with it", k.Shards)
	}
	if k.ReplicasPerShard < 0 || k.ReplicasPerShard > 5 {
		bad("quibly:cache.replicasPerShard", "%d must be 0 to 5", k.ReplicasPerShard)
	}
	if k.ClusterMode && k.ReplicasPerShard < 1 {
		bad("quibly:cache.replicasPerShard", "cluster mode needs at least one replica per shard for automatic failover")
	}
}

// validateKafka checks the Kafka section.
func (c *Config) validateKafka(bad complaint) {
	m, n := c.Kafka, c.Network
	if !strings.HasPrefix(m.Version, "3.9") {
		bad("quibly:kafka.version", "%q must be 3.9.x, the version the local test broker runs", m.Version)
	}
	if !strings.HasPrefix(m.BrokerType, "kafka.") {
		bad("quibly:kafka.brokerType", "%q must be an MSK broker type (kafka.…)", m.BrokerType)
	}
	if m.Brokers < 2 || n.AZCount > 0 && m.Brokers%n.AZCount != 0 {
		bad("quibly:kafka.brokers", "%d must be at least 2 and a multiple of network.azCount (%d), as MSK spreads brokers evenly", m.Brokers, n.AZCount)
	}
	if m.VolumeGB < 1 || m.VolumeGB > 16384 {
		bad("quibly:kafka.volumeGb", "%d must be 1 to 16384", m.VolumeGB)
	}
	if m.MaxVolumeGB <= m.VolumeGB || m.MaxVolumeGB > 16384 {
		bad("quibly:kafka.maxVolumeGb", "%d must be above volumeGb (%d) and at most 16384, the ceiling of storage autoscaling", m.MaxVolumeGB, m.VolumeGB)
	}
	if m.ReplicationFactor < 1 || m.ReplicationFactor > m.Brokers {
		bad("quibly:kafka.replicationFactor", "%d must be 1 to the broker count (%d)", m.ReplicationFactor, m.Brokers)
	}
	if m.Brokers >= 3 && (m.ReplicationFactor < 3 || m.MinInsyncReplicas < 2) {
		bad("quibly:kafka", "with %d brokers replicationFactor must be ≥ 3 and minInsyncReplicas ≥ 2 so an acked message survives a broker", m.Brokers)
	}
	if m.MinInsyncReplicas < 1 || m.MinInsyncReplicas > m.ReplicationFactor {
		bad("quibly:kafka.minInsyncReplicas", "%d must be 1 to replicationFactor (%d)", m.MinInsyncReplicas, m.ReplicationFactor)
	}
	if m.Topic == "" || m.ConsumerGroup == "" {
		bad("quibly:kafka", "topic and consumerGroup are required (the lag alarm watches them)")
	}
}

// validateDatabase checks the database section.
func (c *Config) validateDatabase(bad complaint) {
	d := c.Database
	switch d.Engine {
	case EnginePostgres:
		if d.Instances != 1 {
			bad("quibly:database.instances", "RDS PostgreSQL is one instance (use multiAz for a standby); got %d", d.Instances)
		}
		if d.StorageGB < 20 {
			bad("quibly:database.storageGb", "%d must be at least 20", d.StorageGB)
		}
	case EngineAurora:
		if d.Instances < 1 || d.Instances > 16 {
			bad("quibly:database.instances", "%d must be 1 to 16 Aurora instances", d.Instances)
		}
		if d.MultiAZ {
			bad("quibly:database.multiAz", "does not apply to Aurora; add instances for readers/failover")
		}
	default:
		bad("quibly:database.engine", "%q must be %q or %q", d.Engine, EnginePostgres, EngineAurora)
	}
	if d.EngineVersion == "" {
		bad("quibly:database.engineVersion", "is required")
	}
	if !strings.HasPrefix(d.InstanceClass, "db.") {
		bad("quibly:database.instanceClass", "%q must be an RDS class (db.…)", d.InstanceClass)
	}
	if d.BackupRetentionDays < 7 || d.BackupRetentionDays > 35 {
		bad("quibly:database.backupRetentionDays", "%d must be 7 to 35", d.BackupRetentionDays)
	}
	if d.MaxConnections < 10 {
		bad("quibly:database.maxConnections", "%d must be the engine's max_connections for %s", d.MaxConnections, d.InstanceClass)
	}
	if d.Name == "" || d.Username == "" {
		bad("quibly:database", "name and username are required")
	}
	if d.Username == DBAppUsername {
		bad("quibly:database.username", "%q is the servers' own role; the master user needs another name", d.Username)
	}
	if c.Production && !d.DeletionProtection {
		bad("quibly:database.deletionProtection", "must be true in production")
	}
}

// validateFleet checks the fleet section.
func (c *Config) validateFleet(bad complaint) {
	f := c.Fleet
	if !ec2Type.MatchString(f.InstanceType) {
		bad("quibly:fleet.instanceType", "%q is not an EC2 instance type", f.InstanceType)
	}
	if f.MaxInstances < 1 {
		bad("quibly:fleet.maxInstances", "must be at least 1")
	}
	if f.Instances < 2 || f.Instances > f.MaxInstances {
		bad("quibly:fleet.instances", "%d must be 2 (a rolling deploy needs a second node) to maxInstances (%d)", f.Instances, f.MaxInstances)
	}
	if !amiID.MatchString(f.AMI) && !strings.HasPrefix(f.AMI, "resolve:ssm:/") {
		bad("quibly:fleet.ami", "%q must be an AMI id (ami-…) or resolve:ssm:/<public parameter>", f.AMI)
	}
	if f.Arch != "amd64" && f.Arch != "arm64" {
		bad("quibly:fleet.arch", "%q must be amd64 or arm64", f.Arch)
	}
	if f.VolumeGB < 8 {
		bad("quibly:fleet.volumeGb", "%d must be at least 8", f.VolumeGB)
	}
	if !memoryLimit.MatchString(f.MemoryMax) {
		bad("quibly:fleet.memoryMax", "%q must be a systemd size like 1G", f.MemoryMax)
	}
}

// validateAlarms checks the alarms section.
func (c *Config) validateAlarms(bad complaint) {
	al := c.Alarms
	for name, v := range map[string]float64{"cpuPercent": al.CPUPercent, "http5xxPercent": al.HTTP5xxPercent,
		"dbConnectionsPercent": al.DBConnectionsPercent, "redisMemoryPercent": al.RedisMemoryPercent, "kafkaDiskPercent": al.KafkaDiskPercent} {
		if v <= 0 || v > 100 {
			bad("quibly:alarms."+name, "%v must be a percentage above 0", v)
		}
	}
	if al.KafkaLag < 1 {
		bad("quibly:alarms.kafkaLag", "%v must be at least 1 message", al.KafkaLag)
	}
	if al.Email != "" && !strings.Contains(al.Email, "@") {
		bad("quibly:alarms.email", "%q is not an e-mail address", al.Email)
	}
	if c.Production && al.Email == "" {
		bad("quibly:alarms.email", "is required in production: alarms that notify nobody are not monitoring")
	}
}

// validateSecrets checks the secrets (never shown in an error).
func (c *Config) validateSecrets(bad complaint) {
	sec := c.Secrets
	if sec.JWTSecret != "" && len(sec.JWTSecret) < 32 {
		bad("quibly:jwtSecret", "must be at least 32 characters (the value is not shown)")
	}
	if t := sec.RedisAuthToken; t != "" && (len(t) < 16 || len(t) > 128 || strings.ContainsAny(t, "@\"/ ")) {
		bad("quibly:redisAuthToken", "must be 16 to 128 characters without @, \", / or spaces, as ElastiCache requires (the value is not shown)")
	}
	if p := sec.DBAppPassword; p != "" && !printableASCII.MatchString(p) {
		bad("quibly:dbAppPassword", "must be 16 or more printable ASCII characters, as PostgreSQL's SCRAM takes them unchanged (the value is not shown)")
	}
	if p := sec.KafkaPassword; p != "" && len(p) < 16 {
		bad("quibly:kafkaPassword", "must be at least 16 characters (the value is not shown)")
	}
}

// HTTPS says the ALB gets a certificate (an ARN, or one requested for the domain).
func (c *Config) HTTPS() bool {
	return c.LoadBalancer.CertificateARN != "" || c.LoadBalancer.HostedZoneID != ""
}

// exampleDomains are the names RFC 2606 and RFC 6761 reserve for examples.
var exampleDomains = []string{"example.com", "example.net", "example.org", ".example", ".test", ".invalid"}

// NoExamples refuses the example values the committed production stack files carry
// (so the offline plan shows a production stack whole) once they would be applied.
func (c *Config) NoExamples() error {
	var errs []error
	example := func(key, v string) {
		for _, d := range exampleDomains {
			if v == strings.TrimPrefix(d, ".") || strings.HasSuffix(v, "."+strings.TrimPrefix(d, ".")) || strings.HasSuffix(v, "@"+strings.TrimPrefix(d, ".")) {
				errs = append(errs, fmt.Errorf("%s is the example value %q: set your own before `pulumi up` (pulumi config set --path %s …)", key, v, key))
				return
			}
		}
	}
	example("quibly:alarms.email", c.Alarms.Email)
	example("quibly:loadBalancer.domain", c.LoadBalancer.Domain)
	if strings.Contains(c.LoadBalancer.HostedZoneID, "EXAMPLE") {
		errs = append(errs, fmt.Errorf("quibly:loadBalancer.hostedZoneId is the example value %q: set your zone before `pulumi up`", c.LoadBalancer.HostedZoneID))
	}
	return errors.Join(errs...)
}

// Name is the prefix of every physical name: quibly-<stack>.
func (c *Config) Name() string { return c.Project + "-" + c.Stack }

// CacheNodes is how many Redis nodes the replication group has.
func (c Cache) CacheNodes() int { return c.Shards * (c.ReplicasPerShard + 1) }
