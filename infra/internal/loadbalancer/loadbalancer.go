// Package loadbalancer is the public ALB in front of the fleet: sticky (Engine.IO
// long-polling must reach the node that holds the session), health-checked on
// /health, with idle and deregistration timeouts sized for WebSockets and drains.
package loadbalancer

import (
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/acm"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/lb"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/route53"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/quibly/quibly/infra/internal/logs"
)

// Health check settings, from the deployment guide.
const (
	HealthPath            = "/health"
	HealthIntervalSeconds = 30
	HealthTimeoutSeconds  = 5
	HealthyThreshold      = 2
	UnhealthyThreshold    = 3
	StickinessType        = "lb_cookie"
	modernTLSPolicy       = "ELBSecurityPolicy-TLS13-1-2-2021-06"
)

// LoadBalancerArgs configures the ALB.
type LoadBalancerArgs struct {
	Name            string
	VpcID           pulumi.StringInput
	SubnetIDs       pulumi.StringArrayInput
	SecurityGroupID pulumi.StringInput
	AppPort         int
	// CertificateARN is an existing ACM certificate; without one, a certificate for
	// Domain is requested and validated through HostedZoneID.
	CertificateARN string
	Domain         string
	// HostedZoneID, when set, also gets an alias record Domain → ALB.
	HostedZoneID               string
	IdleTimeoutSeconds         int
	DeregistrationDelaySeconds int
	StickinessSeconds          int
	DeletionProtection         bool
	// AccessLogsBucket gets the access logs under logs.ALBPrefix; LogsReady is its
	// policy, which must exist before the ALB is told to write there.
	AccessLogsBucket pulumi.StringInput
	LogsBucketArn    pulumi.StringInput
	LogsReady        pulumi.Resource
	// WAF puts a web ACL in front of the ALB, with a rate limit that lets a
	// reconnect storm of WAFClientsPerAddress clients behind one address through.
	WAF                  bool
	WAFClientsPerAddress int
	Tags                 pulumi.StringMap
}

// LoadBalancer exposes what the fleet registers into and what the alarms watch.
type LoadBalancer struct {
	pulumi.ResourceState

	DNSName           pulumi.StringOutput
	URL               pulumi.StringOutput
	TargetGroupArn    pulumi.StringOutput
	ArnSuffix         pulumi.StringOutput
	TargetGroupSuffix pulumi.StringOutput
	// WebACLName names the web ACL in WAF's metrics; nil without WAF.
	WebACLName pulumi.StringInput
}

// NewLoadBalancer creates the ALB, its target group and listeners.
func NewLoadBalancer(ctx *pulumi.Context, name string, args *LoadBalancerArgs, opts ...pulumi.ResourceOption) (*LoadBalancer, error) {
	l := &LoadBalancer{}
	if err := ctx.RegisterComponentResource("quibly:loadbalancer:LoadBalancer", name, l, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(l)

	// The ALB and the target group are auto-named (quibly-<stack>-<suffix>): a
	// replacement is created beside the old one under a new name, never refused
	// because the old name is taken.
	alb, err := lb.NewLoadBalancer(ctx, args.Name, &lb.LoadBalancerArgs{
		LoadBalancerType:         pulumi.String("application"),
		Internal:                 pulumi.Bool(false),
		Subnets:                  args.SubnetIDs,
		SecurityGroups:           pulumi.StringArray{args.SecurityGroupID},
		IdleTimeout:              pulumi.Int(args.IdleTimeoutSeconds),
		DropInvalidHeaderFields:  pulumi.Bool(true),
		DesyncMitigationMode:     pulumi.String("defensive"), // AWS's default, said so: ambiguous requests refused, merely non-compliant ones pass
		EnableHttp2:              pulumi.Bool(true),
		EnableDeletionProtection: pulumi.Bool(args.DeletionProtection),
		AccessLogs: &lb.LoadBalancerAccessLogsArgs{
			Bucket: args.AccessLogsBucket, Prefix: pulumi.String(logs.ALBPrefix), Enabled: pulumi.Bool(true),
		},
		Tags: args.Tags,
	}, parent, pulumi.DependsOn([]pulumi.Resource{args.LogsReady}))
	if err != nil {
		return nil, err
	}
	if args.WAF {
		acl, err := l.firewall(ctx, name, alb.Arn, args)
		if err != nil {
			return nil, err
		}
		l.WebACLName = acl.Name
	}

	tg, err := lb.NewTargetGroup(ctx, args.Name, &lb.TargetGroupArgs{
		VpcId:      args.VpcID,
		TargetType: pulumi.String("instance"),
		Protocol:   pulumi.String("HTTP"),
		Port:       pulumi.Int(args.AppPort),
		// Long enough for the app's SIGTERM drain to tell clients to reconnect elsewhere.
		DeregistrationDelay: pulumi.Int(args.DeregistrationDelaySeconds),
		Stickiness: &lb.TargetGroupStickinessArgs{
			Enabled:        pulumi.Bool(true),
			Type:           pulumi.String(StickinessType),
			CookieDuration: pulumi.Int(args.StickinessSeconds),
		},
		HealthCheck: &lb.TargetGroupHealthCheckArgs{
			Enabled:            pulumi.Bool(true),
			Path:               pulumi.String(HealthPath),
			Protocol:           pulumi.String("HTTP"),
			Port:               pulumi.String("traffic-port"),
			Matcher:            pulumi.String("200"), // a draining node answers 503
			Interval:           pulumi.Int(HealthIntervalSeconds),
			Timeout:            pulumi.Int(HealthTimeoutSeconds),
			HealthyThreshold:   pulumi.Int(HealthyThreshold),
			UnhealthyThreshold: pulumi.Int(UnhealthyThreshold),
		},
		Tags: args.Tags,
	}, parent)
	if err != nil {
		return nil, err
	}

	forward := lb.ListenerDefaultActionArray{lb.ListenerDefaultActionArgs{Type: pulumi.String("forward"), TargetGroupArn: tg.Arn}}
	httpActions := forward
	certificate, err := l.certificate(ctx, name, args)
	if err != nil {
		return nil, err
	}
	https := certificate != nil
	if https {
		httpActions = lb.ListenerDefaultActionArray{lb.ListenerDefaultActionArgs{
			Type: pulumi.String("redirect"),
			Redirect: &lb.ListenerDefaultActionRedirectArgs{
				Protocol: pulumi.String("HTTPS"), Port: pulumi.String("443"), StatusCode: pulumi.String("HTTP_301"),
			},
		}}
		if _, err := lb.NewListener(ctx, name+"-https", &lb.ListenerArgs{
			LoadBalancerArn: alb.Arn,
			Port:            pulumi.Int(443),
			Protocol:        pulumi.String("HTTPS"),
			CertificateArn:  certificate,
			SslPolicy:       pulumi.String(modernTLSPolicy),
			DefaultActions:  forward,
			Tags:            args.Tags,
		}, parent); err != nil {
			return nil, err
		}
	}
	if _, err := lb.NewListener(ctx, name+"-http", &lb.ListenerArgs{
		LoadBalancerArn: alb.Arn,
		Port:            pulumi.Int(80),
		Protocol:        pulumi.String("HTTP"),
		DefaultActions:  httpActions,
		Tags:            args.Tags,
	}, parent); err != nil {
		return nil, err
	}

	l.DNSName = alb.DnsName
	l.URL = pulumi.Sprintf("http://%s", alb.DnsName)
	if https {
		l.URL = pulumi.Sprintf("https://%s", alb.DnsName)
	}
	if args.HostedZoneID != "" {
		if _, err := route53.NewRecord(ctx, name+"-alias", &route53.RecordArgs{
			ZoneId: pulumi.String(args.HostedZoneID), Name: pulumi.String(args.Domain), Type: pulumi.String("A"),
			Aliases: route53.RecordAliasArray{route53.RecordAliasArgs{
				Name: alb.DnsName, ZoneId: alb.ZoneId, EvaluateTargetHealth: pulumi.Bool(true),
			}},
			// Deleting the old record of a create-first replacement would delete the new one (same name and type).
		}, parent, pulumi.DeleteBeforeReplace(true)); err != nil {
			return nil, err
		}
	}
	if args.Domain != "" && https {
		// The certificate names the domain, not the ALB's own DNS name.
		l.URL = pulumi.Sprintf("https://%s", args.Domain).ToStringOutput()
	}
	l.TargetGroupArn = tg.Arn
	l.ArnSuffix = alb.ArnSuffix
	l.TargetGroupSuffix = tg.ArnSuffix
	if err := ctx.RegisterResourceOutputs(l, pulumi.Map{
		"dnsName": l.DNSName, "url": l.URL, "targetGroupArn": l.TargetGroupArn,
	}); err != nil {
		return nil, err
	}
	return l, nil
}

// certificate is the ARN the HTTPS listener uses: the configured one, or one ACM
// issues for the domain once the validation record in the hosted zone resolves.
// Nil means no HTTPS.
func (l *LoadBalancer) certificate(ctx *pulumi.Context, name string, args *LoadBalancerArgs) (pulumi.StringInput, error) {
	if args.CertificateARN != "" {
		return pulumi.String(args.CertificateARN), nil
	}
	if args.Domain == "" || args.HostedZoneID == "" {
		return nil, nil
	}
	parent := pulumi.Parent(l)
	cert, err := acm.NewCertificate(ctx, name, &acm.CertificateArgs{
		DomainName: pulumi.String(args.Domain), ValidationMethod: pulumi.String("DNS"), Tags: args.Tags,
	}, parent)
	if err != nil {
		return nil, err
	}
	// One domain, so one validation option.
	option := cert.DomainValidationOptions.Index(pulumi.Int(0))
	record, err := route53.NewRecord(ctx, name+"-validation", &route53.RecordArgs{
		ZoneId:         pulumi.String(args.HostedZoneID),
		Name:           option.ResourceRecordName().Elem(),
		Type:           option.ResourceRecordType().Elem(),
		Records:        pulumi.StringArray{option.ResourceRecordValue().Elem()},
		Ttl:            pulumi.Int(60),
		AllowOverwrite: pulumi.Bool(true),
	}, parent, pulumi.DeleteBeforeReplace(true))
	if err != nil {
		return nil, err
	}
	// The listener waits for this: ACM refuses to attach a certificate still pending validation.
	valid, err := acm.NewCertificateValidation(ctx, name, &acm.CertificateValidationArgs{
		CertificateArn: cert.Arn, ValidationRecordFqdns: pulumi.StringArray{record.Fqdn},
	}, parent)
	if err != nil {
		return nil, err
	}
	return valid.CertificateArn, nil
}
