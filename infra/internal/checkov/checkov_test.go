package checkov

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWaiversCoverByCheckResourcePatternAndTier(t *testing.T) {
	w := Waivers{
		{Check: "CKV2_AWS_34", Resource: "aws_ssm_parameter.fleet-*", Reason: "version strings"},
		{Check: "CKV_AWS_2", Resource: "aws_lb_listener.loadbalancer-http", Tiers: []string{"small"}, Reason: "plain HTTP"},
	}
	tests := []struct {
		name    string
		tier    string
		finding Finding
		waived  bool
	}{
		{"pattern matches", "large", Finding{Check: "CKV2_AWS_34", Resource: "aws_ssm_parameter.fleet-server-1-app-version"}, true},
		{"other check on a matching resource", "large", Finding{Check: "CKV2_AWS_35", Resource: "aws_ssm_parameter.fleet-x"}, false},
		{"pattern does not match", "large", Finding{Check: "CKV2_AWS_34", Resource: "aws_ssm_parameter.secrets"}, false},
		{"tier named", "small", Finding{Check: "CKV_AWS_2", Resource: "aws_lb_listener.loadbalancer-http"}, true},
		{"tier not named", "medium", Finding{Check: "CKV_AWS_2", Resource: "aws_lb_listener.loadbalancer-http"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			used := map[int]bool{}
			left := w.Unwaived(tt.tier, []Finding{tt.finding}, used)
			if (len(left) == 0) != tt.waived || (len(used) > 0) != tt.waived {
				t.Fatalf("waived=%v used=%v, want waived %v", len(left) == 0, used, tt.waived)
			}
		})
	}
}

func TestLoadWaiversRefusesIncompleteEntries(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"no reason", "- {check: CKV_AWS_1, resource: 'aws_s3_bucket.x'}", "needs a check"},
		{"short reason", "- {check: CKV_AWS_1, resource: 'aws_s3_bucket.x', reason: because}", "needs a check"},
		{"bad pattern", "- {check: CKV_AWS_1, resource: 'aws_s3_bucket.[', reason: 'a reason long enough to judge'}", "needs a check"},
		{"unknown field", "- {check: CKV_AWS_1, resource: x, reason: 'a reason long enough to judge', tier: small}", "field tier not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "w.yaml")
			if err := os.WriteFile(file, []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadWaivers(file); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one naming %q", err, tt.want)
			}
		})
	}
}

func TestTheCommittedWaiversLoad(t *testing.T) {
	if _, err := LoadWaivers("../../checkov-waivers.yaml"); err != nil {
		t.Fatal(err)
	}
}
