package loadbalancer

import (
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/wafv2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// RequestsPerClientPer5Min is what one Socket.IO client sends the ALB in WAF's
// five-minute window at worst: a reconnect is 4 requests (handshake, CONNECT, first
// poll, WebSocket upgrade), tried up to 3 times while the fleet restarts (12), plus
// five minutes of long-polling at a 25 s ping interval (a held poll and a pong post
// per interval, 24). A WebSocket's frames are not requests: a connected client
// costs nothing more.
const RequestsPerClientPer5Min = 4*3 + 2*(300/25)

// RateRuleName names the rate-based rule: its blocks are an alarm (alarms.AlarmsArgs.WAFRateRule).
const RateRuleName = "rate-per-address"

// RateLimit is the rate-based rule's limit per source address and five minutes: a
// reconnect storm of clientsPerAddress clients behind one address (an office NAT,
// a mobile carrier's) is never blocked; one address sending more than that many
// clients' worth is.
func RateLimit(clientsPerAddress int) int { return clientsPerAddress * RequestsPerClientPer5Min }

// Counted are the managed rules, per rule group, that would block legitimate chat
// traffic, so they only count (a metric and a log line, no block). Every rule that
// inspects the body: a long-polling POST carries chat text, which may quote paths,
// URLs, HTML or exploit strings people discuss, and batched packets up to the
// server's 1 MB buffer (SizeRestrictions_BODY blocks above 8 KB). And
// NoUserAgent_HEADER: Node's socket.io-client opens its WebSocket through the ws
// library, which sends no User-Agent, so every such upgrade would be refused. The
// URI, query and header rules still block. (After the upgrade WAF sees no frames.)
var Counted = map[string][]string{
	"AWSManagedRulesCommonRuleSet": {"NoUserAgent_HEADER", "SizeRestrictions_BODY", "EC2MetaDataSSRF_BODY",
		"GenericLFI_BODY", "GenericRFI_BODY", "CrossSiteScripting_BODY"},
	"AWSManagedRulesKnownBadInputsRuleSet": {"JavaDeserializationRCE_BODY", "Log4JRCE_BODY"},
}

// firewall attaches a web ACL to the ALB: AWS's common and known-bad-inputs rule
// sets, and a per-address rate limit.
func (l *LoadBalancer) firewall(ctx *pulumi.Context, name string, albArn pulumi.StringInput, args *LoadBalancerArgs) (*wafv2.WebAcl, error) {
	parent := pulumi.Parent(l)
	visibility := func(metric string) wafv2.WebAclRuleVisibilityConfigArgs {
		return wafv2.WebAclRuleVisibilityConfigArgs{
			CloudwatchMetricsEnabled: pulumi.Bool(true), SampledRequestsEnabled: pulumi.Bool(true), MetricName: pulumi.String(metric),
		}
	}
	managed := func(priority int, group string) wafv2.WebAclRuleArgs {
		var overrides wafv2.WebAclRuleStatementManagedRuleGroupStatementRuleActionOverrideArray
		for _, rule := range Counted[group] {
			overrides = append(overrides, wafv2.WebAclRuleStatementManagedRuleGroupStatementRuleActionOverrideArgs{
				Name: pulumi.String(rule),
				ActionToUse: wafv2.WebAclRuleStatementManagedRuleGroupStatementRuleActionOverrideActionToUseArgs{
					Count: &wafv2.WebAclRuleStatementManagedRuleGroupStatementRuleActionOverrideActionToUseCountArgs{},
				},
			})
		}
		return wafv2.WebAclRuleArgs{
			Name: pulumi.String(group), Priority: pulumi.Int(priority),
			OverrideAction: &wafv2.WebAclRuleOverrideActionArgs{None: &wafv2.WebAclRuleOverrideActionNoneArgs{}},
			Statement: wafv2.WebAclRuleStatementArgs{ManagedRuleGroupStatement: &wafv2.WebAclRuleStatementManagedRuleGroupStatementArgs{
				VendorName: pulumi.String("AWS"), Name: pulumi.String(group), RuleActionOverrides: overrides,
			}},
			VisibilityConfig: visibility(group),
		}
	}
	acl, err := wafv2.NewWebAcl(ctx, name, &wafv2.WebAclArgs{
		// Auto-named: a replacement is created beside the old ACL, never refused by its name.
		Description:   pulumi.Sprintf("Quibly %s: the public load balancer", args.Name),
		Scope:         pulumi.String("REGIONAL"),
		DefaultAction: wafv2.WebAclDefaultActionArgs{Allow: &wafv2.WebAclDefaultActionAllowArgs{}},
		Rules: wafv2.WebAclRuleArray{
			// First, so a flood is refused before the managed rules spend their capacity.
			wafv2.WebAclRuleArgs{
				Name: pulumi.String(RateRuleName), Priority: pulumi.Int(0),
				Action: &wafv2.WebAclRuleActionArgs{Block: &wafv2.WebAclRuleActionBlockArgs{}},
				Statement: wafv2.WebAclRuleStatementArgs{RateBasedStatement: &wafv2.WebAclRuleStatementRateBasedStatementArgs{
					Limit: pulumi.Int(RateLimit(args.WAFClientsPerAddress)), AggregateKeyType: pulumi.String("IP"),
					EvaluationWindowSec: pulumi.Int(300),
				}},
				VisibilityConfig: visibility(RateRuleName),
			},
			managed(1, "AWSManagedRulesCommonRuleSet"),
			managed(2, "AWSManagedRulesKnownBadInputsRuleSet"),
		},
		VisibilityConfig: wafv2.WebAclVisibilityConfigArgs{
			CloudwatchMetricsEnabled: pulumi.Bool(true), SampledRequestsEnabled: pulumi.Bool(true), MetricName: pulumi.String(args.Name),
		},
		Tags: args.Tags,
	}, parent)
	if err != nil {
		return nil, err
	}
	if _, err := wafv2.NewWebAclAssociation(ctx, name, &wafv2.WebAclAssociationArgs{ResourceArn: albArn, WebAclArn: acl.Arn}, parent); err != nil {
		return nil, err
	}
	// Every request WAF sees, to the log bucket: what a blocked user or an attack
	// looked like. Credentials and session ids are redacted before they are written.
	redacted := wafv2.WebAclLoggingConfigurationRedactedFieldArray{
		wafv2.WebAclLoggingConfigurationRedactedFieldArgs{QueryString: &wafv2.WebAclLoggingConfigurationRedactedFieldQueryStringArgs{}},
	}
	for _, h := range RedactedHeaders {
		redacted = append(redacted, wafv2.WebAclLoggingConfigurationRedactedFieldArgs{
			SingleHeader: &wafv2.WebAclLoggingConfigurationRedactedFieldSingleHeaderArgs{Name: pulumi.String(h)},
		})
	}
	_, err = wafv2.NewWebAclLoggingConfiguration(ctx, name, &wafv2.WebAclLoggingConfigurationArgs{
		ResourceArn: acl.Arn, LogDestinationConfigs: pulumi.StringArray{args.LogsBucketArn}, RedactedFields: redacted,
	}, parent, pulumi.DependsOn([]pulumi.Resource{args.LogsReady}))
	return acl, err
}

// RedactedHeaders are the request headers WAF's logs never hold: the bearer token
// of the HTTP API and the ALB's stickiness cookie. The query string (the Engine.IO
// session id) is redacted too.
var RedactedHeaders = []string{"authorization", "cookie"}
