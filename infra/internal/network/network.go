// Package network is the VPC: public subnets for the ALB and NAT, private subnets
// for the fleet and the data stores, spread over AZCount availability zones.
package network

import (
	"fmt"
	"net/netip"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// NetworkArgs sizes the VPC.
type NetworkArgs struct {
	CIDR        string
	AZCount     int
	NATGateways int
	Tags        pulumi.StringMap
}

// Network is the VPC component.
type Network struct {
	pulumi.ResourceState

	VpcID            pulumi.StringOutput
	PublicSubnetIDs  pulumi.StringArray
	PrivateSubnetIDs pulumi.StringArray
	AZs              []string
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

	zones, err := aws.GetAvailabilityZones(ctx, &aws.GetAvailabilityZonesArgs{State: pulumi.StringRef("available")}, pulumi.Parent(n))
	if err != nil {
		return nil, fmt.Errorf("listing availability zones: %w", err)
	}
	if len(zones.Names) < args.AZCount {
		return nil, fmt.Errorf("network.azCount is %d but the region has %d available zones", args.AZCount, len(zones.Names))
	}
	n.AZs = zones.Names[:args.AZCount]

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
	for i, az := range n.AZs {
		// Public subnets are /24s from the start of the block, private ones from the middle.
		pubCIDR, err := subnet(args.CIDR, i)
		if err != nil {
			return nil, err
		}
		pub, err := ec2.NewSubnet(ctx, fmt.Sprintf("%s-public-%d", name, i+1), &ec2.SubnetArgs{
			VpcId:            vpc.ID(),
			CidrBlock:        pulumi.String(pubCIDR),
			AvailabilityZone: pulumi.String(az),
			Tags:             tags(args.Tags, fmt.Sprintf("%s-public-%s", name, az)),
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

	for i, az := range n.AZs {
		privCIDR, err := subnet(args.CIDR, 128+i)
		if err != nil {
			return nil, err
		}
		priv, err := ec2.NewSubnet(ctx, fmt.Sprintf("%s-private-%d", name, i+1), &ec2.SubnetArgs{
			VpcId:               vpc.ID(),
			CidrBlock:           pulumi.String(privCIDR),
			AvailabilityZone:    pulumi.String(az),
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
