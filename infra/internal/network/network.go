// Package network is the VPC: public subnets for the ALB and NAT, private subnets
// for the fleet and the data stores, spread over AZCount availability zones.
package network

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// NetworkArgs sizes the VPC.
type NetworkArgs struct {
	CIDR        string
	AZCount     int
	NATGateways int
	// InterfaceEndpoints adds SSM, Secrets Manager, KMS and CloudWatch endpoints in the
	// private subnets.
	InterfaceEndpoints bool
	// Region names the endpoint services (com.amazonaws.<region>.<service>).
	Region string
	Tags   pulumi.StringMap
}

// UnsupportedZoneIDs are zones a component of Quibly cannot use, by zone id (names
// map to ids differently in each account).
var UnsupportedZoneIDs = []string{
	// MSK: "Client subnets can't occupy the Availability Zone with ID use1-az3"
	// (Amazon MSK API, BrokerNodeGroupInfo.ClientSubnets).
	"use1-az3",
}

// InterfaceEndpointServices are what a server calls at boot and at each start:
// SSM (the version parameter, Run Command and Session Manager channels), Secrets
// Manager and KMS.
var InterfaceEndpointServices = []string{"ssm", "ssmmessages", "ec2messages", "secretsmanager", "kms", "monitoring"}

// Network is the VPC component.
type Network struct {
	pulumi.ResourceState

	VpcID            pulumi.StringOutput
	CIDR             string
	PublicSubnetIDs  pulumi.StringArray
	PrivateSubnetIDs pulumi.StringArray
	// ZoneIDs are the zones used, by id.
	ZoneIDs []string
	// PrivateRouteTableIDs carry the S3 gateway endpoint's routes.
	PrivateRouteTableIDs pulumi.StringArray
}

// NewNetwork creates the VPC, one public and one private subnet per AZ, an internet
// gateway and NATGateways NAT gateways (the fleet only needs outbound HTTPS for
// AWS APIs, so one NAT is enough where losing it for an AZ outage is acceptable).
func NewNetwork(ctx *pulumi.Context, name string, args *NetworkArgs, opts ...pulumi.ResourceOption) (*Network, error) {
	n := &Network{}
	if err := ctx.RegisterComponentResource("quibly:network:Network", name, n, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(n)

	ids, err := ChooseZones(ctx, args.AZCount, pulumi.Parent(n))
	if err != nil {
		return nil, err
	}
	n.ZoneIDs = ids
	n.CIDR = args.CIDR

	vpc, err := ec2.NewVpc(ctx, name, &ec2.VpcArgs{
		CidrBlock:          pulumi.String(args.CIDR),
		EnableDnsHostnames: pulumi.Bool(true), // MSK, RDS and ElastiCache endpoints are DNS names
		EnableDnsSupport:   pulumi.Bool(true),
		Tags:               tags(args.Tags, name),
	}, parent)
	if err != nil {
		return nil, err
	}
	n.VpcID = vpc.ID().ToStringOutput()
	// Every VPC comes with a default security group that lets its members reach each
	// other and anything outside. Nothing here uses it; adopting it with no rules means
	// a resource created without a group of its own gets no traffic at all.
	if _, err := ec2.NewDefaultSecurityGroup(ctx, name+"-default", &ec2.DefaultSecurityGroupArgs{
		VpcId: vpc.ID(), Tags: tags(args.Tags, name+"-default"),
	}, parent); err != nil {
		return nil, err
	}

	igw, err := ec2.NewInternetGateway(ctx, name, &ec2.InternetGatewayArgs{VpcId: vpc.ID(), Tags: tags(args.Tags, name)}, parent)
	if err != nil {
		return nil, err
	}
	publicRT, err := ec2.NewRouteTable(ctx, name+"-public", &ec2.RouteTableArgs{
		VpcId: vpc.ID(),
		Routes: ec2.RouteTableRouteArray{
			ec2.RouteTableRouteArgs{CidrBlock: pulumi.String("0.0.0.0/0"), GatewayId: igw.ID()},
		},
		Tags: tags(args.Tags, name+"-public"),
	}, parent)
	if err != nil {
		return nil, err
	}

	var nats []*ec2.NatGateway
	for i, az := range n.ZoneIDs {
		// Public subnets are /24s from the start of the block, private ones from the middle.
		pubCIDR, err := subnet(args.CIDR, i)
		if err != nil {
			return nil, err
		}
		pub, err := ec2.NewSubnet(ctx, fmt.Sprintf("%s-public-%d", name, i+1), &ec2.SubnetArgs{
			VpcId:              vpc.ID(),
			CidrBlock:          pulumi.String(pubCIDR),
			AvailabilityZoneId: pulumi.String(az),
			Tags:               tags(args.Tags, fmt.Sprintf("%s-public-%s", name, az)),
		}, parent)
		if err != nil {
			return nil, err
		}
		if _, err := ec2.NewRouteTableAssociation(ctx, fmt.Sprintf("%s-public-%d", name, i+1), &ec2.RouteTableAssociationArgs{
			SubnetId: pub.ID(), RouteTableId: publicRT.ID(),
		}, parent); err != nil {
			return nil, err
		}
		n.PublicSubnetIDs = append(n.PublicSubnetIDs, pub.ID())

		if i < args.NATGateways {
			eip, err := ec2.NewEip(ctx, fmt.Sprintf("%s-nat-%d", name, i+1), &ec2.EipArgs{
				Domain: pulumi.String("vpc"), Tags: tags(args.Tags, fmt.Sprintf("%s-nat-%d", name, i+1)),
			}, parent)
			if err != nil {
				return nil, err
			}
			nat, err := ec2.NewNatGateway(ctx, fmt.Sprintf("%s-nat-%d", name, i+1), &ec2.NatGatewayArgs{
				AllocationId: eip.ID(), SubnetId: pub.ID(), Tags: tags(args.Tags, fmt.Sprintf("%s-nat-%d", name, i+1)),
			}, parent, pulumi.DependsOn([]pulumi.Resource{igw}))
			if err != nil {
				return nil, err
			}
			nats = append(nats, nat)
		}
	}

	for i, az := range n.ZoneIDs {
		privCIDR, err := subnet(args.CIDR, 128+i)
		if err != nil {
			return nil, err
		}
		priv, err := ec2.NewSubnet(ctx, fmt.Sprintf("%s-private-%d", name, i+1), &ec2.SubnetArgs{
			VpcId:               vpc.ID(),
			CidrBlock:           pulumi.String(privCIDR),
			AvailabilityZoneId:  pulumi.String(az),
			MapPublicIpOnLaunch: pulumi.Bool(false),
			Tags:                tags(args.Tags, fmt.Sprintf("%s-private-%s", name, az)),
		}, parent)
		if err != nil {
			return nil, err
		}
		rt, err := ec2.NewRouteTable(ctx, fmt.Sprintf("%s-private-%d", name, i+1), &ec2.RouteTableArgs{
			VpcId: vpc.ID(),
			Routes: ec2.RouteTableRouteArray{
				ec2.RouteTableRouteArgs{CidrBlock: pulumi.String("0.0.0.0/0"), NatGatewayId: nats[i%len(nats)].ID()},
			},
			Tags: tags(args.Tags, fmt.Sprintf("%s-private-%s", name, az)),
		}, parent)
		if err != nil {
			return nil, err
		}
		if _, err := ec2.NewRouteTableAssociation(ctx, fmt.Sprintf("%s-private-%d", name, i+1), &ec2.RouteTableAssociationArgs{
			SubnetId: priv.ID(), RouteTableId: rt.ID(),
		}, parent); err != nil {
			return nil, err
		}
		n.PrivateSubnetIDs = append(n.PrivateSubnetIDs, priv.ID())
		n.PrivateRouteTableIDs = append(n.PrivateRouteTableIDs, rt.ID())
	}

	// Release downloads stay inside the VPC (and off the NAT's per-GB charge).
	if _, err := ec2.NewVpcEndpoint(ctx, name+"-s3", &ec2.VpcEndpointArgs{
		VpcId: vpc.ID(), ServiceName: pulumi.Sprintf("com.amazonaws.%s.s3", args.Region),
		VpcEndpointType: pulumi.String("Gateway"), RouteTableIds: n.PrivateRouteTableIDs,
		Tags: tags(args.Tags, name+"-s3"),
	}, parent); err != nil {
		return nil, err
	}
	if args.InterfaceEndpoints {
		if err := n.interfaceEndpoints(ctx, name, args, vpc); err != nil {
			return nil, err
		}
	}

	if err := ctx.RegisterResourceOutputs(n, pulumi.Map{
		"vpcId":            n.VpcID,
		"publicSubnetIds":  n.PublicSubnetIDs,
		"privateSubnetIds": n.PrivateSubnetIDs,
	}); err != nil {
		return nil, err
	}
	return n, nil
}

// ChooseZones picks count zones by id: regular zones only (no Local or Wavelength
// Zones, none that needs opting in), none that a component refuses, in id order so
// the choice does not depend on how this account maps names to ids.
func ChooseZones(ctx *pulumi.Context, count int, opts ...pulumi.InvokeOption) ([]string, error) {
	zones, err := aws.GetAvailabilityZones(ctx, &aws.GetAvailabilityZonesArgs{
		State:          pulumi.StringRef("available"),
		ExcludeZoneIds: UnsupportedZoneIDs,
		Filters: []aws.GetAvailabilityZonesFilter{
			{Name: "opt-in-status", Values: []string{"opt-in-not-required"}},
			{Name: "zone-type", Values: []string{"availability-zone"}},
		},
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("listing availability zones: %w", err)
	}
	ids := slices.Sorted(slices.Values(zones.ZoneIds))
	if len(ids) < count {
		return nil, fmt.Errorf("network.azCount is %d but the region has %d usable zones (%v)", count, len(ids), ids)
	}
	return ids[:count], nil
}

// interfaceEndpoints puts the AWS APIs the servers call into the private subnets,
// reachable on 443 from inside the VPC only.
func (n *Network) interfaceEndpoints(ctx *pulumi.Context, name string, args *NetworkArgs, vpc *ec2.Vpc) error {
	parent := pulumi.Parent(n)
	sg, err := ec2.NewSecurityGroup(ctx, name+"-endpoints", &ec2.SecurityGroupArgs{
		VpcId: vpc.ID(), Description: pulumi.String("Quibly VPC endpoints: HTTPS from inside the VPC"),
		Tags: tags(args.Tags, name+"-endpoints"),
	}, parent)
	if err != nil {
		return err
	}
	if _, err := ec2.NewSecurityGroupRule(ctx, name+"-endpoints-https-in", &ec2.SecurityGroupRuleArgs{
		Type: pulumi.String("ingress"), SecurityGroupId: sg.ID(), Protocol: pulumi.String("tcp"),
		FromPort: pulumi.Int(443), ToPort: pulumi.Int(443), CidrBlocks: pulumi.StringArray{pulumi.String(args.CIDR)},
		Description: pulumi.String("HTTPS from inside the VPC"),
	}, parent); err != nil {
		return err
	}
	for _, svc := range InterfaceEndpointServices {
		if _, err := ec2.NewVpcEndpoint(ctx, name+"-"+svc, &ec2.VpcEndpointArgs{
			VpcId: vpc.ID(), ServiceName: pulumi.Sprintf("com.amazonaws.%s.%s", args.Region, svc),
			VpcEndpointType: pulumi.String("Interface"), SubnetIds: n.PrivateSubnetIDs,
			SecurityGroupIds: pulumi.StringArray{sg.ID()}, PrivateDnsEnabled: pulumi.Bool(true),
			Tags: tags(args.Tags, name+"-"+svc),
		}, parent); err != nil {
			return err
		}
	}
	return nil
}

// subnet returns the index-th /24 of a /16-or-larger IPv4 block.
func subnet(cidr string, index int) (string, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() || p.Bits() > 16 {
		return "", fmt.Errorf("network.cidr %q must be an IPv4 /16 or larger", cidr)
	}
	if index < 0 || index > 255 {
		return "", fmt.Errorf("subnet index %d out of range", index)
	}
	b := p.Masked().Addr().As4()
	b[2] += byte(index)
	return netip.PrefixFrom(netip.AddrFrom4(b), 24).String(), nil
}

func tags(base pulumi.StringMap, name string) pulumi.StringMap {
	t := pulumi.StringMap{"Name": pulumi.String(name)}
	for k, v := range base {
		t[k] = v
	}
	return t
}
