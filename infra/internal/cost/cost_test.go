package cost_test

import (
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"github.com/quibly/quibly/infra/internal/cost"
	"github.com/quibly/quibly/infra/internal/mocks"
)

func TestPriceTableIsDatedAndSourced(t *testing.T) {
	p, err := cost.LoadPrices()
	if err != nil {
		t.Fatal(err)
	}
	if p.Compiled == "" || len(p.Sources) == 0 || p.Region == "" || p.HoursPerMonth != 730 {
		t.Errorf("price table needs a date, sources, region and 730 h/month: %+v", p)
	}
	for k, v := range p.Hourly {
		if v <= 0 {
			t.Errorf("hourly %s = %v", k, v)
		}
	}
}

func TestEstimate(t *testing.T) {
	p, err := cost.LoadPrices()
	if err != nil {
		t.Fatal(err)
	}
	ec2 := func(typ string) mocks.Resource {
		return mocks.Resource{Type: "aws:ec2/instance:Instance", Name: "s", Custom: true, Inputs: resource.NewPropertyMapFromMap(map[string]any{
			"instanceType": typ, "rootBlockDevice": map[string]any{"volumeSize": 20},
		})}
	}
	monitored := func(r mocks.Resource) mocks.Resource {
		r.Inputs["monitoring"] = resource.NewPropertyValue(true)
		return r
	}
	cases := []struct {
		name    string
		res     []mocks.Resource
		want    float64
		wantErr string
	}{
		{"t3.small with 20 GB", []mocks.Resource{ec2("t3.small")}, 0.0208*730 + 20*0.08, ""},
		{"detailed monitoring is seven metrics", []mocks.Resource{monitored(ec2("t3.small"))}, 0.0208*730 + 20*0.08 + 7*0.30, ""},
		{"a web ACL is $5, $1 a rule and the assumed requests", []mocks.Resource{{Type: "aws:wafv2/webAcl:WebAcl", Name: "acl", Custom: true,
			Inputs: resource.NewPropertyMapFromMap(map[string]any{"rules": []any{map[string]any{}, map[string]any{}, map[string]any{}}})}},
			5 + 3*1 + 10*0.60, ""},
		{"unknown type fails", []mocks.Resource{ec2("x9.huge")}, 0, "ec2:x9.huge"},
		{"multi-AZ RDS doubles", []mocks.Resource{{Type: "aws:rds/instance:Instance", Name: "db", Custom: true,
			Inputs: resource.NewPropertyMapFromMap(map[string]any{"instanceClass": "db.t3.small", "multiAz": true, "allocatedStorage": 20})}},
			2*0.036*730 + 2*20*0.115 + 0.40, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lines, err := cost.Estimate(p, tc.res, 0)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cost.Total(lines); got < tc.want-0.01 || got > tc.want+0.01 {
				t.Errorf("total = %.2f, want %.2f", got, tc.want)
			}
		})
	}
}
