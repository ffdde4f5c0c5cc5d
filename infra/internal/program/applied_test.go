package program_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/quibly/quibly/infra/internal/awstest"
	"github.com/quibly/quibly/infra/internal/config"
	"github.com/quibly/quibly/infra/internal/fleet"
	"github.com/quibly/quibly/infra/internal/mocks"
	"github.com/quibly/quibly/infra/internal/program"
	"github.com/quibly/quibly/infra/internal/terraform"
)

// standIns are what the apply to moto writes as terraform_data instead of the real
// resource, each because moto (scripts/aws-local.sh pins the version) lacks an API
// the provider calls. Everything else is created through the real provider.
var standIns = map[string]string{
	"aws_msk_configuration":             "moto has no MSK CreateConfiguration",
	"aws_msk_cluster":                   "moto's MSK cluster stays CREATING, never ACTIVE",
	"aws_msk_scram_secret_association":  "moto has no MSK BatchAssociateScramSecret",
	"aws_elasticache_replication_group": "moto creates the group but not its member cache clusters, which the provider reads back",
	"aws_elasticache_subnet_group":      "moto has no DeleteCacheSubnetGroup, so destroy would retry until its timeout",
	"aws_appautoscaling_target":         "moto has no Application Auto Scaling ListTagsForResource, which the provider retries until its timeout",
	"aws_s3_bucket_policy":              "moto enforces the bucket's TLS-only policy and serves plain HTTP, so every later call on the bucket would be refused",
	"aws_s3_bucket_logging":             "moto checks that the target bucket's policy lets logging.s3.amazonaws.com write, and that policy is a stand-in here (above)",
}

// localAWS points every service the program uses at the local API.
func localAWS(endpoint string) map[string]any {
	endpoints := map[string]any{}
	for _, svc := range []string{"acm", "applicationautoscaling", "cloudwatch", "ec2", "elasticache", "elbv2", "iam",
		"kafka", "kms", "rds", "route53", "s3", "secretsmanager", "sns", "ssm", "sts"} {
		endpoints[svc] = endpoint
	}
	return map[string]any{
		"region": awstest.Region, "access_key": "testing", "secret_key": "testing",
		"skip_credentials_validation": true, "skip_requesting_account_id": true, "skip_metadata_api_check": true,
		"s3_use_path_style": true, "endpoints": []any{endpoints},
	}
}

// appliedStack is a tier applied through the real AWS provider to the local API.
type appliedStack struct {
	stack   string
	state   []terraform.StateResource
	outputs map[string]any // the program's exports, with the values the apply gave them
	mocked  map[string]any // the same, as the mocks answered
}

// applyTier runs the tier's program under the mocks as a stack of its own name (names
// in the local API are shared by every test and run), writes it as Terraform JSON,
// applies it to the local API and destroys it when the test ends.
func applyTier(t *testing.T, api *awstest.API, tier string) *appliedStack {
	t.Helper()
	awstest.NeedTerraform(t)
	stack := strings.ReplaceAll(awstest.Name("s"), "-", "")[:7]
	cfg, err := mocks.StackFile(envDir, tier)
	if err != nil {
		t.Fatal(err)
	}
	// The image id is the one the program's SSM parameter names in the local API.
	rec := &mocks.Recorder{Parameter: func(name string) (string, error) {
		return api.Try("ssm", "get-parameter", "--name", name, "--query", "Parameter.Value", "--output", "text")
	}}
	exported := map[string]any{}
	body := func(ctx *pulumi.Context) error {
		c, err := config.Load(ctx)
		if err != nil {
			return err
		}
		out, err := program.Deploy(ctx, c)
		if err != nil {
			return err
		}
		all := pulumi.Map{}
		maps.Copy(all, program.Exports(out))
		ctx.Export("exports", all.ToMapOutput().ApplyT(func(v map[string]any) map[string]any {
			maps.Copy(exported, v)
			return v
		}))
		return nil
	}
	if _, err := mocks.RunWith(rec, true, stack, cfg, body); err != nil {
		t.Fatalf("stack %s: %v", tier, err)
	}

	out := filepath.Join(repoRoot, "test-output", "terraform")
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	schema, err := terraform.LoadSchema(ctx, filepath.Join(out, "schema-apply"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := terraform.Document(rec.Resources, schema, terraform.Options{Provider: localAWS(api.Endpoint),
		Mode: terraform.Unknown, StandIns: standIns, Timeout: "3m", Outputs: exported})
	if err != nil {
		t.Fatal(err)
	}
	// A directory per stack: two runs against one local API must not share a state.
	dir := filepath.Join(out, "apply-"+tier+"-"+stack)
	tf, err := terraform.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := tf.WriteConfig(doc); err != nil {
		t.Fatal(err)
	}
	if err := tf.Init(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
		defer cancel()
		diags, err := tf.Destroy(ctx, 20)
		if err != nil {
			t.Errorf("destroy: %v", err)
		}
		for _, d := range diags {
			t.Errorf("destroy: %s", d)
		}
		if err == nil && len(diags) == 0 {
			_ = os.RemoveAll(dir) // kept when destroy failed, to see what was left
		}
	})
	diags, err := tf.Apply(ctx, 20)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diags {
		t.Errorf("apply: %s", d)
	}
	if t.Failed() {
		t.FailNow()
	}
	a := &appliedStack{stack: stack, mocked: exported}
	if a.state, err = tf.State(ctx); err != nil {
		t.Fatal(err)
	}
	if a.outputs, err = tf.Outputs(ctx); err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, byName := range doc["resource"].(map[string]map[string]any) {
		want += len(byName)
	}
	if len(a.state) != want {
		t.Errorf("the state holds %d resources, the configuration %d", len(a.state), want)
	}
	return a
}

// values are the attributes of the state's resources of a type, in state order.
func (a *appliedStack) values(typ string) []map[string]any {
	var out []map[string]any
	for _, r := range a.state {
		if r.Type == typ {
			out = append(out, r.Values)
		}
	}
	return out
}

// The small tier, created through the real provider's code against the local AWS
// API (stand-ins above aside), with the AWS ops adapter run against what it made:
// the program's outputs as the apply resolved them, its instances, target group,
// bucket and parameters. Destroy then removes it all.
func TestOpsAdapterAgainstTheAppliedSmallTier(t *testing.T) {
	api := awstest.New(t)
	a := applyTier(t, api, "small")

	// What AWS makes came from the local API, not from the mocks.
	for _, k := range []string{"albDnsName", "artifactBucket", "databaseAppSecretArn", "instances"} {
		if got, mocked := fmt.Sprint(a.outputs[k]), fmt.Sprint(a.mocked[k]); got == mocked || a.outputs[k] == nil {
			t.Errorf("output %s = %s after the apply, as the mocks had it", k, got)
		}
	}
	instances, _ := a.outputs["instances"].(map[string]any)
	tgs := a.values("aws_lb_target_group")
	if len(instances) != 2 || len(tgs) != 1 {
		t.Fatalf("the applied stack has instances %v and %d target groups; want 2 and 1", instances, len(tgs))
	}
	s := &opsStack{t: t, api: api, name: a.stack, dir: t.TempDir(), ids: map[string]string{}, outputs: a.outputs,
		tg: tgs[0]["arn"].(string), port: int(tgs[0]["port"].(float64)), dbAppSecret: a.outputs["databaseAppSecretArn"].(string)}
	s.prefix = strings.TrimSuffix(strings.TrimPrefix(a.outputs["appVersionParameter"].(string), "/"), "/app-version")
	for server, id := range instances {
		s.ids[server] = id.(string)
	}
	running := api.CLI("ec2", "describe-instances", "--instance-ids", s.ids["server-1"], s.ids["server-2"],
		"--query", "Reservations[].Instances[].State.Name", "--output", "text")
	if strings.Join(strings.Fields(running), " ") != "running running" {
		t.Fatalf("the instances are %q in the local API, want both running", running)
	}

	s.uploadReleases(a.outputs["artifactBucket"].(string), a.outputs["appArch"].(string))
	s.writeStandIns()
	s.writeOutputs("outputs.json", s.outputs)
	api.CLI("ssm", "put-parameter", "--overwrite", "--name", s.stackParam(), "--value", "v1")
	for server, id := range s.ids {
		api.CLI("ssm", "put-parameter", "--overwrite", "--name", fleet.NodeVersionParameter(s.prefix, server), "--value", "v1")
		raw := api.CLI("ec2", "describe-instance-attribute", "--instance-id", id, "--attribute", "userData",
			"--query", "UserData.Value", "--output", "text")
		userData, err := base64.StdEncoding.DecodeString(raw)
		if err != nil {
			t.Fatalf("%s's user data: %v", server, err)
		}
		s.boot(server, string(userData))
	}
	// The apply registered the instances; the load balancer sees them healthy once they serve.
	s.expect("after boot", map[string][3]string{"server-1": {"v1", "v1", "healthy"}, "server-2": {"v1", "v1", "healthy"}})

	out, err := s.ops("deploy.sh", "v2")
	if err != nil {
		t.Fatalf("deploy v2: %v\n%s", err, out)
	}
	s.expect("after deploying v2", map[string][3]string{"server-1": {"v2", "v2", "healthy"}, "server-2": {"v2", "v2", "healthy"}})
	if cur := s.param(s.stackParam()); cur != "v2" {
		t.Errorf("after deploying v2 the stack's parameter says %s", cur)
	}

	// Scale 2 -> 1: server-2 is drained and stopped before the count is applied.
	after := maps.Clone(s.outputs)
	after["instances"] = map[string]string{"server-1": s.ids["server-1"]}
	s.writeOutputs("outputs-after.json", after)
	if out, err := s.ops("scale.sh", "1"); err != nil || !strings.Contains(out, fmt.Sprintf("scaled %s to 1 nodes", s.name)) {
		t.Fatalf("scale to 1: err=%v\n%s", err, out)
	}
	if st := s.targetState("server-2"); st != "unused" || s.running("server-2") {
		t.Errorf("after scaling to 1, server-2 is %s in the target group and running=%v; want unused and stopped", st, s.running("server-2"))
	}
	if st := s.targetState("server-1"); st != "healthy" {
		t.Errorf("after scaling to 1, server-1 is %s in the target group, want healthy", st)
	}
}
