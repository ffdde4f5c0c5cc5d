// Package loadbalancer is the public ALB in front of the fleet: sticky (Engine.IO
// long-polling must reach the node that holds the session), health-checked on
// /health, with idle and deregistration timeouts sized for WebSockets and drains.
package loadbalancer

import (
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/lb"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Health check settings, from the deployment guide.
const (
	HealthPath               = "/health"
	HealthIntervalSeconds    = 30
	HealthTimeoutSeconds     = 5
	HealthyThreshold         = 2
	UnhealthyThreshold       = 3
	StickinessType           = "lb_cookie"
	modernTLSPolicy          = "ELBSecurityPolicy-TLS13-1-2-2021-06"
	targetGroupNameMaxLength = 32
)

// LoadBalancerArgs configures the ALB.
type LoadBalancerArgs struct {
	Name                       string
	VpcID                      pulumi.StringInput
	SubnetIDs                  pulumi.StringArrayInput
	SecurityGroupID            pulumi.StringInput
	AppPort                    int
	CertificateARN             string
	IdleTimeoutSeconds         int
	DeregistrationDelaySeconds int
	StickinessSeconds          int
	DeletionProtection         bool
	Tags                       pulumi.StringMap
}

// LoadBalancer exposes what the fleet registers into and what the alarms watch.
type LoadBalancer struct {
	pulumi.ResourceState

	DNSName           pulumi.StringOutput
	URL               pulumi.StringOutput
	TargetGroupArn    pulumi.StringOutput
	ArnSuffix         pulumi.StringOutput
	TargetGroupSuffix pulumi.StringOutput
}

// NewLoadBalancer creates the ALB, its target group and listeners.
func NewLoadBalancer(ctx *pulumi.Context, name string, args *LoadBalancerArgs, opts ...pulumi.ResourceOption) (*LoadBalancer, error) {
	l := &LoadBalancer{}
	if err := ctx.RegisterComponentResource("quibly:loadbalancer:LoadBalancer", name, l, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(l)

	alb, err := lb.NewLoadBalancer(ctx, name, &lb.LoadBalancerArgs{
		Name:                     pulumi.String(truncate(args.Name, targetGroupNameMaxLength)),
		LoadBalancerType:         pulumi.String("application"),
		Internal:                 pulumi.Bool(false),
		Subnets:                  args.SubnetIDs,
		SecurityGroups:           pulumi.StringArray{args.SecurityGroupID},
		IdleTimeout:              pulumi.Int(args.IdleTimeoutSeconds),
		DropInvalidHeaderFields:  pulumi.Bool(true),
		EnableHttp2:              pulumi.Bool(true),
		EnableDeletionProtection: pulumi.Bool(args.DeletionProtection),
		Tags:                     args.Tags,
	}, parent)
	if err != nil {
		return nil, err
	}

	tg, err := lb.NewTargetGroup(ctx, name, &lb.TargetGroupArgs{
		Name:       pulumi.String(truncate(args.Name, targetGroupNameMaxLength)),
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
	if args.CertificateARN != "" {
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
			CertificateArn:  pulumi.String(args.CertificateARN),
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

	scheme := "http"
	if args.CertificateARN != "" {
		scheme = "https"
	}
	l.DNSName = alb.DnsName
	l.URL = pulumi.Sprintf("%s://%s", scheme, alb.DnsName)
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

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
