// Package firewall is the security-group graph, in one place so it can be read and
// tested as a whole: internet → ALB (80/443) → app (port) → Redis, Kafka,
// PostgreSQL. Nothing else is open; the app's only other way out is HTTPS to AWS
// APIs (SSM, Secrets Manager, S3) through the NAT.
package firewall

import (
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Ports the data stores listen on.
const (
	RedisPort    = 6379
	KafkaPort    = 9096 // MSK's SASL/SCRAM over TLS listener
	PostgresPort = 5432
)

// FirewallArgs places the groups.
type FirewallArgs struct {
	VpcID   pulumi.StringInput
	AppPort int
	HTTPS   bool // open 443 on the ALB only when a certificate is configured
	Tags    pulumi.StringMap
}

// Firewall holds one security group per tier of the graph.
type Firewall struct {
	pulumi.ResourceState

	AlbSG   pulumi.StringOutput
	AppSG   pulumi.StringOutput
	CacheSG pulumi.StringOutput
	KafkaSG pulumi.StringOutput
	DBSG    pulumi.StringOutput
}

type rule struct {
	name     string
	kind     string // ingress or egress
	sg       *ec2.SecurityGroup
	port     int
	cidr     string
	peer     *ec2.SecurityGroup
	describe string
}

// NewFirewall creates the groups and their rules as separate resources, so groups
// that reference each other do not form a cycle. Groups created through the
// provider lose AWS's default allow-all egress, so only the rules below exist.
func NewFirewall(ctx *pulumi.Context, name string, args *FirewallArgs, opts ...pulumi.ResourceOption) (*Firewall, error) {
	f := &Firewall{}
	if err := ctx.RegisterComponentResource("quibly:firewall:Firewall", name, f, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(f)
	group := func(suffix, desc string) (*ec2.SecurityGroup, error) {
		t := pulumi.StringMap{"Name": pulumi.String(name + "-" + suffix)}
		for k, v := range args.Tags {
			t[k] = v
		}
		return ec2.NewSecurityGroup(ctx, name+"-"+suffix, &ec2.SecurityGroupArgs{
			VpcId: args.VpcID, Description: pulumi.String(desc), Tags: t,
		}, parent)
	}
	alb, err := group("alb", "Quibly ALB: HTTP(S) from the internet")
	if err != nil {
		return nil, err
	}
	app, err := group("app", "Quibly servers: app port from the ALB only")
	if err != nil {
		return nil, err
	}
	cache, err := group("cache", "Quibly Redis: from the servers only")
	if err != nil {
		return nil, err
	}
	kafka, err := group("kafka", "Quibly MSK: SASL/SCRAM TLS from the servers only")
	if err != nil {
		return nil, err
	}
	db, err := group("db", "Quibly PostgreSQL: from the servers only")
	if err != nil {
		return nil, err
	}

	rules := []rule{
		{"alb-http-in", "ingress", alb, 80, "0.0.0.0/0", nil, "HTTP from the internet (redirects to HTTPS when a certificate is set)"},
		{"alb-to-app", "egress", alb, args.AppPort, "", app, "ALB to the servers"},
		{"app-from-alb", "ingress", app, args.AppPort, "", alb, "servers from the ALB"},
		{"app-to-redis", "egress", app, RedisPort, "", cache, "servers to Redis"},
		{"app-to-kafka", "egress", app, KafkaPort, "", kafka, "servers to MSK"},
		{"app-to-db", "egress", app, PostgresPort, "", db, "servers to PostgreSQL"},
		{"app-to-aws-apis", "egress", app, 443, "0.0.0.0/0", nil, "HTTPS to AWS APIs (SSM, Secrets Manager, S3) through the NAT"},
		{"redis-from-app", "ingress", cache, RedisPort, "", app, "Redis from the servers"},
		{"kafka-from-app", "ingress", kafka, KafkaPort, "", app, "MSK from the servers"},
		{"db-from-app", "ingress", db, PostgresPort, "", app, "PostgreSQL from the servers"},
	}
	if args.HTTPS {
		rules = append(rules, rule{"alb-https-in", "ingress", alb, 443, "0.0.0.0/0", nil, "HTTPS from the internet"})
	}
	for _, r := range rules {
		ra := &ec2.SecurityGroupRuleArgs{
			Type:            pulumi.String(r.kind),
			SecurityGroupId: r.sg.ID(),
			Protocol:        pulumi.String("tcp"),
			FromPort:        pulumi.Int(r.port),
			ToPort:          pulumi.Int(r.port),
			Description:     pulumi.String(r.describe),
		}
		if r.peer != nil {
			ra.SourceSecurityGroupId = r.peer.ID()
		} else {
			ra.CidrBlocks = pulumi.StringArray{pulumi.String(r.cidr)}
		}
		if _, err := ec2.NewSecurityGroupRule(ctx, name+"-"+r.name, ra, parent); err != nil {
			return nil, err
		}
	}

	f.AlbSG, f.AppSG, f.CacheSG, f.KafkaSG, f.DBSG = alb.ID().ToStringOutput(), app.ID().ToStringOutput(),
		cache.ID().ToStringOutput(), kafka.ID().ToStringOutput(), db.ID().ToStringOutput()
	if err := ctx.RegisterResourceOutputs(f, pulumi.Map{
		"albSecurityGroupId": f.AlbSG, "appSecurityGroupId": f.AppSG, "cacheSecurityGroupId": f.CacheSG,
		"kafkaSecurityGroupId": f.KafkaSG, "dbSecurityGroupId": f.DBSG,
	}); err != nil {
		return nil, err
	}
	return f, nil
}
