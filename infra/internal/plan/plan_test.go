package plan_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/quibly/quibly/infra/internal/plan"
)

func TestPlanEveryStack(t *testing.T) {
	cases := []struct {
		stack        string
		minResources int
	}{
		{"small", 60},
		{"medium", 70},
		{"large", 100},
	}
	for _, tc := range cases {
		t.Run(tc.stack, func(t *testing.T) {
			var out bytes.Buffer
			res, err := plan.Run(&out, "../../../environments", tc.stack)
			if err != nil {
				t.Fatal(err)
			}
			if res.Resources < tc.minResources {
				t.Errorf("%d resources, want at least %d", res.Resources, tc.minResources)
			}
			guide := plan.GuideEstimates[tc.stack]
			// The estimate must at least cover the guide's listed nodes and stay plausible.
			if res.Total < guide*0.8 || res.Total > guide*4 {
				t.Errorf("total $%.0f is implausible against the guide's $%.0f", res.Total, guide)
			}
			for _, want := range []string{"COMPONENT", "lb.TargetGroup", "lb_cookie stickiness 86400 s", "TOTAL",
				"Versus the guide's ~$", "prices.json", "Breakdown:"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("report lacks %q", want)
				}
			}
		})
	}
}

func TestPlanUnknownStack(t *testing.T) {
	var out bytes.Buffer
	if _, err := plan.Run(&out, "../../../environments", "nosuch"); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("error = %v, want one naming the stack", err)
	}
}
