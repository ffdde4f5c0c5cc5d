package program_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/quibly/quibly/infra/internal/awstest"
	"github.com/quibly/quibly/infra/internal/fleet"
	"github.com/quibly/quibly/infra/internal/program"
)

const (
	repoRoot   = "../../.."
	awsAdapter = repoRoot + "/scripts/ops/adapters/aws.sh"
)

// The operator's AWS adapter downloads the certificate authorities the servers trust
// for RDS from the stack's output, which is the servers' own constant: one URL, in Go.
func TestOpsAdapterTrustsTheSameRDSAuthorities(t *testing.T) {
	if got := program.Exports(&program.Outputs{})["rdsCaBundleUrl"]; got != pulumi.String(fleet.RDSCABundle) {
		t.Errorf("the stack exports rdsCaBundleUrl = %v, want the servers' bundle %s", got, fleet.RDSCABundle)
	}
	src, err := os.ReadFile(awsAdapter)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`bundle=\$\(out rdsCaBundleUrl\)`).Match(src) || !strings.Contains(string(src), `curl -fsS --retry 3 -o "$ca.part" "$bundle"`) {
		t.Errorf("%s does not download the bundle the stack names (rdsCaBundleUrl)", awsAdapter)
	}
	if strings.Contains(string(src), "truststore.pki.rds.amazonaws.com") {
		t.Errorf("%s writes the RDS bundle's address a second time", awsAdapter)
	}
}

// Every stack output the AWS ops adapter reads is one the program exports, and the
// adapter's test outputs are exactly the program's.
func TestOpsAdapterReadsExportedOutputs(t *testing.T) {
	exported := slices.Sorted(maps.Keys(program.Exports(&program.Outputs{})))
	src, err := os.ReadFile(awsAdapter)
	if err != nil {
		t.Fatal(err)
	}
	reads := regexp.MustCompile(`\$\(out ([A-Za-z]+)\)`).FindAllStringSubmatch(string(src), -1)
	if len(reads) < 5 {
		t.Fatalf("found %d `$(out KEY)` reads in %s; the pattern no longer matches how it reads outputs", len(reads), awsAdapter)
	}
	for _, r := range reads {
		if !slices.Contains(exported, r[1]) {
			t.Errorf("%s reads the stack output %q, which the program does not export (exports: %v)", awsAdapter, r[1], exported)
		}
	}
	var sample map[string]any
	raw, err := os.ReadFile(repoRoot + "/scripts/ops/testdata/stack-outputs.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &sample); err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(sample)); !slices.Equal(got, exported) {
		t.Errorf("scripts/ops/testdata/stack-outputs.json has the keys %v; the program exports %v", got, exported)
	}
}

// opsStack is a stack's run-time resources in the local AWS API, and the instances
// behind it: each one's boot files unpacked from its real user data, run by a stand-in
// for SSM Run Command (the local API accepts commands but runs none).
type opsStack struct {
	t       *testing.T
	api     *awstest.API
	name    string // the stack, as the ops scripts are given it
	prefix  string // what the stack's names start with: its parameters are /PREFIX/...
	port    int    // the app's port on the instances
	dir     string
	tg      string
	outputs map[string]any
	ids     map[string]string // SERVER_ID -> instance id
	// dbAppSecret is the servers' database login secret.
	dbAppSecret string
}

const opsPort = 5080

func newOpsStack(t *testing.T, api *awstest.API, servers int) *opsStack {
	s := &opsStack{t: t, api: api, name: awstest.Name("qops"), port: opsPort, dir: t.TempDir(), ids: map[string]string{}}
	s.prefix = s.name
	cli := api.CLI
	vpc := cli("ec2", "create-vpc", "--cidr-block", "10.20.0.0/16", "--query", "Vpc.VpcId", "--output", "text")
	var subnets []string
	for i, az := range []string{"a", "b"} {
		subnets = append(subnets, cli("ec2", "create-subnet", "--vpc-id", vpc, "--cidr-block", fmt.Sprintf("10.20.%d.0/24", i),
			"--availability-zone", awstest.Region+az, "--query", "Subnet.SubnetId", "--output", "text"))
	}
	lb := strings.Fields(cli("elbv2", "create-load-balancer", "--name", s.name, "--subnets", subnets[0], subnets[1],
		"--query", "LoadBalancers[0].[LoadBalancerArn,DNSName]", "--output", "text"))
	s.tg = cli("elbv2", "create-target-group", "--name", s.name, "--protocol", "HTTP", "--port", fmt.Sprint(opsPort),
		"--vpc-id", vpc, "--target-type", "instance", "--query", "TargetGroups[0].TargetGroupArn", "--output", "text")
	cli("elbv2", "create-listener", "--load-balancer-arn", lb[0], "--protocol", "HTTP", "--port", "80",
		"--default-actions", "Type=forward,TargetGroupArn="+s.tg)

	bucket := s.name + "-artifacts"
	cli("s3api", "create-bucket", "--bucket", bucket)
	s.uploadReleases(bucket, "arm64")
	cli("ssm", "put-parameter", "--name", s.stackParam(), "--type", "String", "--value", "v1")
	s.writeStandIns()
	ids := strings.Fields(cli("ec2", "run-instances", "--image-id", "ami-0abcdef1234567890", "--count", fmt.Sprint(servers),
		"--subnet-id", subnets[0], "--query", "Instances[].InstanceId", "--output", "text"))
	for i, id := range ids {
		server := fleet.ServerID(i + 1)
		s.ids[server] = id
		param := fleet.NodeVersionParameter(s.name, server)
		cli("ssm", "put-parameter", "--name", param, "--type", "String", "--value", "v1")
		userData, err := fleet.UserData(fleet.BootSettings{ServerID: server, Port: opsPort, Region: awstest.Region,
			ArtifactBucket: bucket, Arch: "arm64", VersionParameter: param, MemoryMax: "1G", StopTimeoutSeconds: 35,
			FrontendURL: "https://chat.example.com", RedisHost: "r", RedisPort: 6379, KafkaBrokers: "b-1:9096", KafkaTopic: "t",
			KafkaReplication: 2, DBHost: "d", DBPort: 5432, DBName: "quibly", AppSecretArn: "arn:a", KafkaSecretArn: "arn:k", DBSecretArn: "arn:d"})
		if err != nil {
			t.Fatal(err)
		}
		s.boot(server, userData)
		cli("elbv2", "register-targets", "--target-group-arn", s.tg, "--targets", fmt.Sprintf("Id=%s,Port=%d", id, opsPort))
	}
	s.dbAppSecret = cli("secretsmanager", "create-secret", "--name", s.name+"/db-app",
		"--secret-string", `{"username":"quibly_app","password":"first-password"}`, "--query", "ARN", "--output", "text")
	instances := map[string]string{}
	maps.Copy(instances, s.ids)
	s.outputs = map[string]any{
		"url": "http://" + lb[1], "albDnsName": lb[1], "instances": instances,
		"redisEndpoint": "r", "kafkaBrokers": "b-1:9096", "databaseHost": "d",
		"artifactBucket": bucket, "appVersionParameter": s.stackParam(),
		"appSecretArn": "arn:a", "kafkaSecretArn": "arn:k", "databaseSecretArn": "arn:d", "databaseAppSecretArn": s.dbAppSecret, "alarmTopicArn": "arn:s",
		"nodeVersionParameterPrefix": "/" + s.name + "/nodes/", "appPort": opsPort, "appArch": "arm64", "ami": "ami-0abcdef1234567890",
		"rdsCaBundleUrl": fleet.RDSCABundle,
	}
	if got, want := slices.Sorted(maps.Keys(s.outputs)), slices.Sorted(maps.Keys(program.Exports(&program.Outputs{}))); !slices.Equal(got, want) {
		t.Fatalf("the test's stack outputs %v are not the program's %v", got, want)
	}
	s.writeOutputs("outputs.json", s.outputs)
	return s
}

// ssmStandIn runs a command sent to instance $1 as that instance would: /opt/quibly is
// its unpacked home and /usr/local/bin its unpacked boot scripts, `systemctl restart`
// runs its real quibly-fetch, and its /health answers what the release it runs says
// (nothing when stopped). With the file fail-db-setup present, quibly-db-setup fails
// as it would if the database refused the master user.
const ssmStandIn = `#!/bin/bash
set -uo pipefail
node=$OPS_TEST_DIR/nodes/$1
[ -d "$node" ] || { echo "InvalidInstanceId: $1" >&2; exit 1; }
export QUIBLY_ETC=$node/etc QUIBLY_HOME=$node/opt
printf '%s\t%s\n' "$1" "$2" >>"$OPS_TEST_DIR/ssm.log"
if [[ $2 == *quibly-db-setup* && -e $OPS_TEST_DIR/fail-db-setup ]]; then
  echo "quibly: store: connecting as the administrator: FATAL: password authentication failed" >&2
  exit 1
fi
systemctl() {
  case "$*" in
    "restart quibly.service") rm -f "$node/running"; bash "$node/bin/quibly-fetch" >&2 && touch "$node/running" ;;
    "stop quibly.service") rm -f "$node/running" ;;
    *) echo "systemctl $*: not stood in for" >&2; return 1 ;;
  esac
}
curl() {
  [[ "$*" == *"http://127.0.0.1:$OPS_TEST_PORT/health"* ]] || { echo "curl $*: not the app's health URL" >&2; return 2; }
  [ -e "$node/running" ] || { printf 000; return 7; }
  sed -n 's/^# health=//p' "$QUIBLY_HOME/current/quibly" | tr -d '\n'
}
cmd=${2//\/opt\/quibly/$QUIBLY_HOME}
eval "${cmd//\/usr\/local\/bin\//$node/bin/}"
`

// pulumiStandIn records its arguments, and what `config set` reads from stdin;
// `stack output` answers what the stack would after the recorded change
// (outputs-after.json).
const pulumiStandIn = `#!/bin/bash
printf '%s\n' "$*" >>"$OPS_TEST_DIR/pulumi.log"
case "$*" in
  *"stack output"*) cat "$OPS_TEST_DIR/outputs-after.json" ;;
  *"config set --secret"*) cat >"$OPS_TEST_DIR/pulumi-stdin" ;;
esac
`

// uploadReleases puts the releases the tests deploy into bucket. A release says
// which /health status it answers; "bad" never becomes healthy.
func (s *opsStack) uploadReleases(bucket, arch string) {
	for v, health := range map[string]int{"v1": 200, "v2": 200, "bad": 503} {
		f := filepath.Join(s.dir, "release-"+v)
		if err := os.WriteFile(f, []byte(fmt.Sprintf("#!/bin/sh\n# health=%d\n", health)), 0o755); err != nil {
			s.t.Fatal(err)
		}
		s.api.CLI("s3api", "put-object", "--bucket", bucket, "--key", "quibly/"+v+"/quibly-linux-"+arch, "--body", f)
	}
}

// writeStandIns puts the stand-ins for SSM Run Command and the Pulumi CLI in place.
func (s *opsStack) writeStandIns() {
	s.writeFile("ssm-run", ssmStandIn)
	s.writeFile("pulumi", pulumiStandIn)
}

// boot unpacks an instance's boot files from its user data and boots it.
func (s *opsStack) boot(server, userData string) {
	if _, err := awstest.UnpackBoot(userData, filepath.Join(s.dir, "nodes", s.ids[server])); err != nil {
		s.t.Fatal(err)
	}
	s.ssm(server, "systemctl restart quibly.service") // first boot
}

func (s *opsStack) stackParam() string { return "/" + s.prefix + "/app-version" }

func (s *opsStack) writeFile(name, body string) {
	if err := os.WriteFile(filepath.Join(s.dir, name), []byte(body), 0o755); err != nil {
		s.t.Fatal(err)
	}
}

func (s *opsStack) writeOutputs(name string, outputs map[string]any) {
	b, err := json.MarshalIndent(outputs, "", "  ")
	if err != nil {
		s.t.Fatal(err)
	}
	s.writeFile(name, string(b))
}

func (s *opsStack) env() []string {
	pulumiBin, _ := filepath.Abs(filepath.Join(s.dir, "pulumi"))
	return append(s.api.Env(),
		"OPS_TEST_DIR="+s.dir, fmt.Sprintf("OPS_TEST_PORT=%d", s.port),
		"QUIBLY_STACK_OUTPUTS="+filepath.Join(s.dir, "outputs.json"),
		"QUIBLY_SSM_RUN="+filepath.Join(s.dir, "ssm-run"),
		"PULUMI="+pulumiBin,
		"QUIBLY_HEALTH_TIMEOUT=4", "QUIBLY_LB_TIMEOUT=20")
}

// ops runs scripts/ops/SCRIPT with the stack as ENV.
func (s *opsStack) ops(script string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(repoRoot, "scripts/ops", script), append([]string{s.name}, args...)...)
	cmd.Env = s.env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (s *opsStack) ssm(server, command string) string {
	cmd := exec.Command(filepath.Join(s.dir, "ssm-run"), s.ids[server], command)
	cmd.Env = s.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("%s on %s: %v\n%s", command, server, err, out)
	}
	return strings.TrimSpace(string(out))
}

func (s *opsStack) param(name string) string {
	out, err := s.api.Try("ssm", "get-parameter", "--name", name, "--query", "Parameter.Value", "--output", "text")
	if err != nil {
		return "-"
	}
	return out
}

func (s *opsStack) nodeParam(server string) string {
	return s.param(fleet.NodeVersionParameter(s.prefix, server))
}

// runs is the release the server's current link names.
func (s *opsStack) runs(server string) string {
	link, err := os.Readlink(filepath.Join(s.dir, "nodes", s.ids[server], "opt", "current"))
	if err != nil {
		return "none"
	}
	return filepath.Base(link)
}

func (s *opsStack) running(server string) bool {
	_, err := os.Stat(filepath.Join(s.dir, "nodes", s.ids[server], "running"))
	return err == nil
}

func (s *opsStack) targetState(server string) string {
	return s.api.CLI("elbv2", "describe-target-health", "--target-group-arn", s.tg,
		"--targets", fmt.Sprintf("Id=%s,Port=%d", s.ids[server], s.port),
		"--query", "TargetHealthDescriptions[0].TargetHealth.State", "--output", "text")
}

func (s *opsStack) pulumiLog() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "pulumi.log"))
	return string(b)
}

// expect checks every server's release, node parameter and load-balancer state.
func (s *opsStack) expect(when string, want map[string][3]string) {
	s.t.Helper()
	for server, w := range want {
		got := [3]string{s.runs(server), s.nodeParam(server), s.targetState(server)}
		if got != w {
			s.t.Errorf("%s: %s runs %s, its parameter names %s, the target group says %s; want %s, %s, %s",
				when, server, got[0], got[1], got[2], w[0], w[1], w[2])
		}
	}
}

// The AWS ops adapter's deploy, failed deploy, rollback and scale-down against a real
// AWS API: targets are deregistered and registered, parameters move per node, the
// stack's parameter only once every node runs the release.
func TestOpsAdapterAgainstAWSAPI(t *testing.T) {
	api := awstest.New(t)
	s := newOpsStack(t, api, 3)
	s.expect("after boot", map[string][3]string{
		"server-1": {"v1", "v1", "healthy"}, "server-2": {"v1", "v1", "healthy"}, "server-3": {"v1", "v1", "healthy"}})

	if out, err := s.ops("deploy.sh", "v9"); err == nil || !strings.Contains(out, "version v9 is not available") {
		t.Fatalf("deploy of a version not in the bucket: err=%v, want a refusal naming it:\n%s", err, out)
	}

	out, err := s.ops("deploy.sh", "v2")
	if err != nil {
		t.Fatalf("deploy v2: %v\n%s", err, out)
	}
	s.expect("after deploying v2", map[string][3]string{
		"server-1": {"v2", "v2", "healthy"}, "server-2": {"v2", "v2", "healthy"}, "server-3": {"v2", "v2", "healthy"}})
	if cur, prev := s.param(s.stackParam()), s.param(s.stackParam()+"-previous"); cur != "v2" || prev != "v1" {
		t.Errorf("after deploying v2 the stack's parameters say %s (previous %s), want v2 (previous v1)", cur, prev)
	}
	if want := "config set --path quibly:app.version v2 --stack " + s.name; !strings.Contains(s.pulumiLog(), want) {
		t.Errorf("the deploy did not record v2 in the stack's config (%q); pulumi was called with:\n%s", want, s.pulumiLog())
	}
	restarts := regexp.MustCompile(`(?m)^(i-[0-9a-f]+)\tsystemctl restart`).FindAllStringSubmatch(readFile(t, filepath.Join(s.dir, "ssm.log")), -1)
	var order []string
	for _, r := range restarts[3:] { // the first three are the boot
		order = append(order, r[1])
	}
	if want := []string{s.ids["server-1"], s.ids["server-2"], s.ids["server-3"]}; !slices.Equal(order, want) {
		t.Errorf("the deploy restarted %v, want one at a time in order %v", order, want)
	}

	// A release that never answers /health 200: the deploy stops at the first node, out
	// of the load balancer; no other node, nor the stack's parameter, moves.
	out, err = s.ops("deploy.sh", "bad")
	if err == nil || !strings.Contains(out, "stopped at server-1") || !strings.Contains(out, "rollback.sh "+s.name) {
		t.Fatalf("deploy of a release that never gets healthy: err=%v, want it stopped at server-1 with the rollback command:\n%s", err, out)
	}
	s.expect("after the failed deploy", map[string][3]string{
		"server-1": {"bad", "bad", "unused"}, "server-2": {"v2", "v2", "healthy"}, "server-3": {"v2", "v2", "healthy"}})
	if cur := s.param(s.stackParam()); cur != "v2" {
		t.Errorf("a failed deploy moved the stack's parameter to %s", cur)
	}
	// A node that reboots meanwhile comes back on what it ran.
	s.ssm("server-2", "systemctl restart quibly.service")
	if got := s.runs("server-2"); got != "v2" {
		t.Errorf("server-2 rebooted during the failed deploy and came up on %s, want v2", got)
	}

	out, err = s.ops("rollback.sh")
	if err != nil {
		t.Fatalf("rollback: %v\n%s", err, out)
	}
	s.expect("after the rollback", map[string][3]string{
		"server-1": {"v2", "v2", "healthy"}, "server-2": {"v2", "v2", "healthy"}, "server-3": {"v2", "v2", "healthy"}})
	if cur := s.param(s.stackParam()); cur != "v2" {
		t.Errorf("after the rollback the stack's parameter says %s, want v2", cur)
	}

	// Scale 3 -> 2: server-3 is drained and stopped before the count is applied.
	after := maps.Clone(s.outputs)
	after["instances"] = map[string]string{"server-1": s.ids["server-1"], "server-2": s.ids["server-2"]}
	s.writeOutputs("outputs-after.json", after)
	out, err = s.ops("scale.sh", "2")
	if err != nil {
		t.Fatalf("scale to 2: %v\n%s", err, out)
	}
	if st := s.targetState("server-3"); st != "unused" || s.running("server-3") {
		t.Errorf("after scaling to 2, server-3 is %s in the target group and running=%v; want unused and stopped", st, s.running("server-3"))
	}
	log := s.pulumiLog()
	set, up := strings.Index(log, "config set --path quibly:fleet.instances 2 --stack "+s.name), strings.Index(log, "up --stack "+s.name+" --yes")
	if set < 0 || up < set {
		t.Errorf("scale did not set fleet.instances=2 and then run pulumi up; pulumi was called with:\n%s", log)
	}
	if !strings.Contains(out, "scaled "+s.name+" to 2 nodes") {
		t.Errorf("scale output does not report the result:\n%s", out)
	}
}

// The servers' database password rotation: the secret takes a new password and the
// first node runs quibly-db-setup; when that fails, the old password goes back. The
// password never shows in the output or a command line.
func TestOpsRotateDBPasswordAgainstAWSAPI(t *testing.T) {
	api := awstest.New(t)
	s := newOpsStack(t, api, 2)
	login := func() (user, password string) {
		var v struct{ Username, Password string }
		if err := json.Unmarshal([]byte(api.CLI("secretsmanager", "get-secret-value", "--secret-id", s.dbAppSecret,
			"--query", "SecretString", "--output", "text")), &v); err != nil {
			t.Fatal(err)
		}
		return v.Username, v.Password
	}

	s.writeFile("fail-db-setup", "")
	out, err := s.ops("rotate-db-password.sh")
	if err == nil || !strings.Contains(out, "password is unchanged") {
		t.Fatalf("rotation whose quibly-db-setup fails: err=%v, want it to say the password is unchanged:\n%s", err, out)
	}
	if user, pw := login(); user != "quibly_app" || pw != "first-password" {
		t.Fatalf("after a failed rotation the secret holds %s/%s, want the old login back", user, pw)
	}
	if strings.Contains(s.pulumiLog(), "dbAppPassword") {
		t.Fatalf("a failed rotation recorded a password in the stack's config:\n%s", s.pulumiLog())
	}

	if err := os.Remove(filepath.Join(s.dir, "fail-db-setup")); err != nil {
		t.Fatal(err)
	}
	out, err = s.ops("rotate-db-password.sh")
	if err != nil {
		t.Fatalf("rotation: %v\n%s", err, out)
	}
	user, pw := login()
	if user != "quibly_app" || !regexp.MustCompile(`^[0-9a-f]{48}$`).MatchString(pw) {
		t.Fatalf("after the rotation the secret holds user %q and a password of %d characters; want quibly_app and 48 hex digits", user, len(pw))
	}
	if setups := strings.Count(readFile(t, filepath.Join(s.dir, "ssm.log")), s.ids["server-1"]+"\t/usr/local/bin/quibly-db-setup"); setups != 2 {
		t.Errorf("quibly-db-setup ran %d times on server-1, want once per rotation (2)", setups)
	}
	if !strings.Contains(s.pulumiLog(), "config set --secret quibly:dbAppPassword --stack "+s.name) ||
		readFile(t, filepath.Join(s.dir, "pulumi-stdin")) != pw {
		t.Errorf("the new password was not recorded in the stack's config through stdin; pulumi was called with:\n%s", s.pulumiLog())
	}
	if strings.Contains(out, pw) || strings.Contains(s.pulumiLog(), pw) || strings.Contains(readFile(t, filepath.Join(s.dir, "ssm.log")), pw) {
		t.Error("the new password shows in the output or a command line")
	}
	if entries, _ := filepath.Glob("/tmp/tmp.*/password"); len(entries) > 0 {
		t.Errorf("password files left behind: %v", entries)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
