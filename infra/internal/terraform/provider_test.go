package terraform_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"github.com/quibly/quibly/infra/internal/awstest"
	"github.com/quibly/quibly/infra/internal/checkov"
	"github.com/quibly/quibly/infra/internal/mocks"
	"github.com/quibly/quibly/infra/internal/program"
	"github.com/quibly/quibly/infra/internal/terraform"
)

// The repository's stack files and the directory the written configurations go to.
const (
	envDir = "../../../environments"
	outDir = "../../../test-output/terraform"
)

var tiers = []string{"small", "medium", "large"}

var (
	schemaOnce sync.Once
	schema     *terraform.Schema
	schemaErr  error
)

// providerSchema reads the AWS provider's schema once per test binary: the
// provider is ~700 MB and its schema takes seconds to print.
func providerSchema(t *testing.T) *terraform.Schema {
	t.Helper()
	awstest.NeedTerraform(t)
	schemaOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		schema, schemaErr = terraform.LoadSchema(ctx, filepath.Join(outDir, "schema"))
	})
	if schemaErr != nil {
		t.Fatal(schemaErr)
	}
	return schema
}

// record runs a tier's stack program under the mocks, as `pulumi preview` would.
func record(t *testing.T, tier string) []mocks.Resource {
	t.Helper()
	return recordAs(t, tier, tier, &mocks.Recorder{})
}

// recordAs runs a tier's stack program into rec as a stack of another name.
func recordAs(t *testing.T, tier, stack string, rec *mocks.Recorder) []mocks.Resource {
	t.Helper()
	cfg, err := mocks.StackFile(envDir, tier)
	if err != nil {
		t.Fatal(err)
	}
	rec, err = mocks.RunWith(rec, true, stack, cfg, program.Run)
	if err != nil {
		t.Fatalf("stack %s: %v", stack, err)
	}
	return rec.Resources
}

// offline configures the provider to make no call: plan reads nothing when there is
// no state, and the credentials are never checked.
func offline(region string) map[string]any {
	return map[string]any{
		"region": region, "access_key": "mock", "secret_key": "mock",
		"skip_credentials_validation": true, "skip_requesting_account_id": true, "skip_metadata_api_check": true,
	}
}

// check writes resources as Terraform JSON in dir and returns every error and
// warning validate and plan report.
func check(t *testing.T, dir string, resources []mocks.Resource, mode terraform.Mode) ([]terraform.Diagnostic, *terraform.Terraform) {
	t.Helper()
	doc, err := terraform.Document(resources, providerSchema(t), terraform.Options{Provider: offline("us-east-1"), Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	tf, err := terraform.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := tf.WriteConfig(doc); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := tf.Init(ctx); err != nil {
		t.Fatal(err)
	}
	diags, err := tf.Validate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if hasError(diags) {
		return diags, tf // plan would only repeat them
	}
	planned, err := tf.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return append(diags, planned...), tf
}

func hasError(diags []terraform.Diagnostic) bool {
	for _, d := range diags {
		if d.Severity == "error" {
			return true
		}
	}
	return false
}

// Every tier, with every value known (what `up` gives the provider when it creates)
// and with references left unknown (what `preview` gives it), passes the real AWS
// provider's validate and plan without an error or a warning. The plan with
// references (checkov's graph checks follow them from one resource to another) then
// passes checkov but for the committed waivers, and every waiver still waives
// something.
func TestEveryTierPassesTheAWSProviderAndCheckov(t *testing.T) {
	waivers, err := checkov.LoadWaivers(waiversFile)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	used, scanned := map[int]bool{}, 0
	t.Cleanup(func() { // after every parallel subtest
		if scanned != len(tiers) {
			return // a -run filter left a tier out; its waivers may be the unused ones
		}
		for i, w := range waivers {
			if !used[i] {
				t.Errorf("%s: waiver %s %s matches no finding in any tier; remove it", waiversFile, w.Check, w.Resource)
			}
		}
	})
	for _, stack := range tiers {
		resources := record(t, stack)
		for _, mode := range []terraform.Mode{terraform.Known, terraform.Unknown} {
			t.Run(stack+"/"+mode.String(), func(t *testing.T) {
				t.Parallel()
				diags, tf := check(t, filepath.Join(outDir, stack+"-"+mode.String()), resources, mode)
				for _, d := range diags {
					t.Errorf("%s", d)
				}
				if mode != terraform.Unknown || t.Failed() {
					return
				}
				findings := scan(t, tf)
				mu.Lock()
				defer mu.Unlock()
				scanned++
				unwaived := waivers.Unwaived(stack, findings, used)
				for _, f := range unwaived {
					t.Errorf("checkov: %s (fix it, or waive it with a reason in %s)", f, waiversFile)
				}
				t.Logf("checkov: %d findings, %d of them waived", len(findings), len(findings)-len(unwaived))
			})
		}
	}
}

// waiversFile holds the checkov findings accepted on purpose.
const waiversFile = "../../checkov-waivers.yaml"

// scan runs checkov over the plan in tf's directory. It never skips under CI=true.
func scan(t *testing.T, tf *terraform.Terraform) []checkov.Finding {
	t.Helper()
	bin, err := checkov.Binary()
	if err != nil {
		awstest.Missing(t, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	plan, err := tf.ShowPlan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(tf.Dir, "plan.json")
	if err := os.WriteFile(file, plan, 0o644); err != nil {
		t.Fatal(err)
	}
	findings, err := checkov.Scan(ctx, bin, file)
	if err != nil {
		t.Fatal(err)
	}
	return findings
}

// The same pipeline refuses a graph with a fault the provider knows of, so a clean
// result above means the provider looked.
func TestTheAWSProviderRefusesInjectedFaults(t *testing.T) {
	tests := []struct {
		name  string
		typ   string // the pulumi-aws type whose first resource gets the fault
		path  []string
		value any
		want  string // in the reported error
	}{
		{"a load balancer name over 32 characters", "aws:lb/loadBalancer:LoadBalancer", []string{"name"}, strings.Repeat("n", 40), `"name" cannot be longer than 32 characters`},
		{"a stickiness duration over 7 days", "aws:lb/targetGroup:TargetGroup", []string{"stickiness", "cookieDuration"}, 999999, "cookie_duration to be in the range"},
		{"an instance metadata option AWS does not have", "aws:ec2/instance:Instance", []string{"metadataOptions", "httpTokens"}, "sometimes", "http_tokens to be one of"},
		{"automatic failover with one cache node", "aws:elasticache/replicationGroup:ReplicationGroup", []string{"automaticFailoverEnabled"}, true, `"num_cache_clusters": must be at least 2 if automatic_failover_enabled is true`},
	}
	clean := record(t, "small")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resources := inject(t, clean, tt.typ, tt.path, tt.value)
			diags, _ := check(t, filepath.Join(outDir, "fault-"+strings.ReplaceAll(tt.name, " ", "-")), resources, terraform.Known)
			var errs []string
			for _, d := range diags {
				if d.Severity == "error" {
					errs = append(errs, d.String())
				}
			}
			if !strings.Contains(strings.Join(errs, "\n"), tt.want) {
				t.Fatalf("the provider did not refuse the fault (want an error naming %q); it said: %q", tt.want, errs)
			}
		})
	}
}

// inject returns a copy of resources whose first resource of type typ has value at path.
func inject(t *testing.T, resources []mocks.Resource, typ string, path []string, value any) []mocks.Resource {
	t.Helper()
	out := append([]mocks.Resource(nil), resources...)
	for i, r := range out {
		if r.Type != typ {
			continue
		}
		in := r.Inputs.Copy()
		m := in
		for _, k := range path[:len(path)-1] {
			inner, ok := m[resource.PropertyKey(k)]
			if !ok || !inner.IsObject() {
				t.Fatalf("%s %s has no object at %s", typ, r.Name, k)
			}
			copied := inner.ObjectValue().Copy()
			m[resource.PropertyKey(k)] = resource.NewObjectProperty(copied)
			m = copied
		}
		m[resource.PropertyKey(path[len(path)-1])] = resource.NewPropertyValue(value)
		out[i].Inputs = in
		return out
	}
	t.Fatalf("no %s in the graph", typ)
	return nil
}
