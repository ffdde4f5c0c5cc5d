package terraform

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"github.com/quibly/quibly/infra/internal/mocks"
)

func TestTerraformNameOfAPulumiProperty(t *testing.T) {
	block := &Block{
		Attributes: map[string]Attribute{"cidr_block": {}, "ipv6_cidr_block": {}, "tags": {}, "egress": {}, "address": {}},
		BlockTypes: map[string]BlockType{"default_action": {}, "metric_query": {}, "route": {}},
	}
	tests := []struct{ pulumi, want string }{
		{"cidrBlock", "cidr_block"},
		{"ipv6CidrBlock", "ipv6_cidr_block"},
		{"tags", "tags"},
		{"egress", "egress"},
		{"address", "address"},               // ends in s, and is not a plural
		{"defaultActions", "default_action"}, // a repeated block, pluralised by pulumi-aws
		{"metricQueries", "metric_query"},
		{"routes", "route"},
		{"vpcId", ""},
	}
	for _, tt := range tests {
		got, ok := name(tt.pulumi, block.has)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("name(%q) = %q, %v; want %q", tt.pulumi, got, ok, tt.want)
		}
	}
}

// testSchema is a hand-written slice of the provider's schema.
func testSchema(t *testing.T) *Schema {
	t.Helper()
	str := json.RawMessage(`"string"`)
	tags := json.RawMessage(`["map","string"]`)
	return &Schema{Resources: map[string]*Block{
		"aws_vpc": {Attributes: map[string]Attribute{
			"cidr_block": {Type: str, Optional: true}, "tags": {Type: tags, Optional: true},
			"id": {Type: str, Computed: true}, "arn": {Type: str, Computed: true}}},
		"aws_subnet": {Attributes: map[string]Attribute{
			"vpc_id": {Type: str, Required: true}, "cidr_block": {Type: str, Optional: true},
			"tags": {Type: tags, Optional: true}, "id": {Type: str, Computed: true}},
			BlockTypes: map[string]BlockType{"timeouts": {NestingMode: "single", Block: Block{
				Attributes: map[string]Attribute{"create": {Type: str, Optional: true}}}}}},
	}}
}

func vpcAndSubnet() []mocks.Resource {
	vpc := mocks.Resource{Type: "aws:ec2/vpc:Vpc", Name: "main", URN: "urn:vpc", Custom: true, ID: "main-id",
		Inputs: resource.NewPropertyMapFromMap(map[string]any{"cidrBlock": "10.0.0.0/16", "tags": map[string]any{"Name": "main"}})}
	vpc.Outputs = vpc.Inputs.Copy()
	vpc.Outputs["arn"] = resource.NewPropertyValue("arn:aws:ec2:us-east-1:123456789012:vpc/main")
	subnet := mocks.Resource{Type: "aws:ec2/subnet:Subnet", Name: "a", URN: "urn:subnet", Custom: true, ID: "a-id",
		Inputs: resource.NewPropertyMapFromMap(map[string]any{"vpcId": "main-id", "cidrBlock": "10.0.1.0/24",
			"tags": map[string]any{"Note": "in main-id, ${literal}"}}),
		PropertyDeps: map[string][]string{"vpcId": {"urn:vpc"}, "tags": {"urn:vpc"}}, DependsOn: []string{"urn:vpc"}}
	return []mocks.Resource{vpc, subnet}
}

func subnetBody(t *testing.T, resources []mocks.Resource, mode Mode) map[string]any {
	t.Helper()
	doc, err := Document(resources, testSchema(t), Options{Provider: map[string]any{"region": "us-east-1"}, Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	return doc["resource"].(map[string]map[string]any)["aws_subnet"]["a"].(map[string]any)
}

func TestUnknownModeRefersToTheOutputsAnInputWasBuiltFrom(t *testing.T) {
	body := subnetBody(t, vpcAndSubnet(), Unknown)
	if got := body["vpc_id"]; got != "${aws_vpc.main.id}" {
		t.Errorf("vpc_id = %v, want a reference to the VPC's id", got)
	}
	// A literal ${ stays literal; a map's keys are data, not property names.
	if got := body["tags"].(map[string]any)["Note"]; got != "in ${aws_vpc.main.id}, $${literal}" {
		t.Errorf("tags.Note = %v", got)
	}
	if _, ok := body["depends_on"]; ok {
		t.Errorf("depends_on %v: the reference already orders the subnet after the VPC", body["depends_on"])
	}
}

func TestKnownModeGivesEveryValue(t *testing.T) {
	body := subnetBody(t, vpcAndSubnet(), Known)
	if got := body["vpc_id"]; got != "main-id" {
		t.Errorf("vpc_id = %v, want the VPC's id itself", got)
	}
	if deps, _ := body["depends_on"].([]string); len(deps) != 1 || deps[0] != "aws_vpc.main" {
		t.Errorf("depends_on = %v, want the VPC: nothing else orders the two", body["depends_on"])
	}
}

// What cannot be mapped fails the conversion by name, so nothing is dropped.
func TestDocumentFailsByNameOnWhatItCannotMap(t *testing.T) {
	tests := []struct {
		name   string
		change func(rs []mocks.Resource) []mocks.Resource
		want   string
	}{
		{"a resource type not in the table", func(rs []mocks.Resource) []mocks.Resource {
			return append(rs, mocks.Resource{Type: "aws:ec2/trafficMirrorSession:TrafficMirrorSession", Name: "mirror", URN: "urn:mirror", Custom: true})
		}, "aws:ec2/trafficMirrorSession:TrafficMirrorSession (mirror)"},
		{"a mapped type the provider's schema lacks", func(rs []mocks.Resource) []mocks.Resource {
			return append(rs, mocks.Resource{Type: "aws:ec2/flowLog:FlowLog", Name: "logs", URN: "urn:logs", Custom: true})
		}, "the provider's schema has no aws_flow_log"},
		{"a property the provider does not have", func(rs []mocks.Resource) []mocks.Resource {
			rs[1].Inputs["availabilityZoneName"] = resource.NewPropertyValue("us-east-1a")
			return rs
		}, `"availabilityZoneName"`},
		{"a required property left unset", func(rs []mocks.Resource) []mocks.Resource {
			delete(rs[1].Inputs, "vpcId")
			return rs
		}, "required vpc_id"},
		{"an attribute inside a block the provider does not have", func(rs []mocks.Resource) []mocks.Resource {
			rs[1].Inputs["timeouts"] = resource.NewPropertyValue(map[string]any{"create": "5m", "erase": "5m"})
			return rs
		}, "timeouts.erase"},
		{"a value unknown under the mocks", func(rs []mocks.Resource) []mocks.Resource {
			rs[1].Inputs["cidrBlock"] = resource.MakeComputed(resource.NewPropertyValue(""))
			return rs
		}, "cidrBlock: unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Document(tt.change(vpcAndSubnet()), testSchema(t), Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one naming %s", err, tt.want)
			}
		})
	}
}

func TestIgnoreChangesPathsInTerraformForm(t *testing.T) {
	num := json.RawMessage(`"number"`)
	ebs := Block{Attributes: map[string]Attribute{"volume_size": {Type: num}}}
	storage := Block{BlockTypes: map[string]BlockType{"ebs_storage_info": {NestingMode: "list", MaxItems: 1, Block: ebs}}}
	block := &Block{
		Attributes: map[string]Attribute{"user_data": {}},
		BlockTypes: map[string]BlockType{
			"storage_info": {NestingMode: "list", MaxItems: 1, Block: storage},
			"ingress":      {NestingMode: "set", Block: ebs},
		},
	}
	tests := []struct{ pulumi, want, err string }{
		{"userData", "user_data", ""},
		{"storageInfo.ebsStorageInfo.volumeSize", "storage_info[0].ebs_storage_info[0].volume_size", ""},
		{"ingress.volumeSize", "", "repeated block"},
		{"userData.x", "", "inside an attribute"},
		{"nothing", "", "no Terraform attribute"},
	}
	for _, tt := range tests {
		got, err := ignorePath(block, tt.pulumi)
		if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("ignorePath(%q) = %q, %v; want %q, error %q", tt.pulumi, got, err, tt.want, tt.err)
		}
	}
}

// A stand-in holds the resource's inputs and the outputs others refer to, and they
// refer to its output instead of the real type's attribute.
func TestStandInHoldsInputsAndOutputsOthersReferTo(t *testing.T) {
	resources := vpcAndSubnet()
	resources[0].IgnoreChanges = []string{"cidrBlock"}
	doc, err := Document(resources, testSchema(t), Options{Mode: Unknown, StandIns: map[string]string{"aws_vpc": "no VPC API"}})
	if err != nil {
		t.Fatal(err)
	}
	byType := doc["resource"].(map[string]map[string]any)
	if _, ok := byType["aws_vpc"]; ok {
		t.Fatal("the VPC is still written as aws_vpc")
	}
	standIn := byType["terraform_data"]["standin-main"].(map[string]any)
	input := standIn["input"].(map[string]any)
	if input["cidr_block"] != "10.0.0.0/16" || input["id"] != "main-id" || input["arn"] != "arn:aws:ec2:us-east-1:123456789012:vpc/main" {
		t.Errorf("stand-in input %v: want its inputs, its id and its ARN", input)
	}
	if _, ok := standIn["lifecycle"]; ok {
		t.Error("a stand-in carries the real type's ignore_changes, which terraform_data does not have")
	}
	if got := byType["aws_subnet"]["a"].(map[string]any)["vpc_id"]; got != "${terraform_data.standin-main.output.id}" {
		t.Errorf("vpc_id = %v, want the stand-in's output", got)
	}
}

func TestTimeoutBoundsWhatTakesATimeoutsBlock(t *testing.T) {
	doc, err := Document(vpcAndSubnet(), testSchema(t), Options{Timeout: "3m"})
	if err != nil {
		t.Fatal(err)
	}
	byType := doc["resource"].(map[string]map[string]any)
	subnet := byType["aws_subnet"]["a"].(map[string]any)
	if got, ok := subnet["timeouts"].(map[string]any); !ok || got["create"] != "3m" || got["delete"] != nil {
		t.Errorf("subnet timeouts = %v, want create 3m (its schema has no delete)", subnet["timeouts"])
	}
	if _, ok := byType["aws_vpc"]["main"].(map[string]any)["timeouts"]; ok {
		t.Error("the VPC got a timeouts block its schema does not have")
	}
}

func TestStackOutputsReferToWhatTheyCameFrom(t *testing.T) {
	outputs := map[string]any{"vpc": "main-id", "ids": map[string]any{"a": "a-id"}, "port": 5080.0, "cmd": "echo ${HOME}"}
	doc, err := Document(vpcAndSubnet(), testSchema(t), Options{Mode: Unknown, Outputs: outputs})
	if err != nil {
		t.Fatal(err)
	}
	got := doc["output"].(map[string]any)
	want := map[string]any{
		"vpc": "${aws_vpc.main.id}", "ids": map[string]any{"a": "${aws_subnet.a.id}"}, "port": 5080.0, "cmd": "echo $${HOME}"}
	for k, w := range want {
		if v := got[k].(map[string]any)["value"]; fmt.Sprint(v) != fmt.Sprint(w) {
			t.Errorf("output %s = %v, want %v", k, v, w)
		}
	}
}
