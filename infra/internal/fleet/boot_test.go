package fleet

import (
	"bufio"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quibly/quibly/infra/internal/awstest"
)

// The boot scripts, as the user data writes them, against a real AWS API (moto):
// quibly-fetch takes the release the node's own parameter names from the bucket, and
// quibly-run starts it with the secrets from Secrets Manager in its environment.
func TestBootScriptsAgainstAWSAPI(t *testing.T) {
	api := awstest.New(t)
	name := awstest.Name("quibly-boot")
	bucket := name + "-artifacts"
	api.CLI("s3api", "create-bucket", "--bucket", bucket)
	dir := t.TempDir()
	// A "release" prints its version and the environment it was started with.
	for _, v := range []string{"v1", "v2"} {
		bin := filepath.Join(dir, "quibly-"+v)
		if err := os.WriteFile(bin, []byte("#!/bin/sh\necho release="+v+"\nenv\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		api.CLI("s3api", "put-object", "--bucket", bucket, "--key", "quibly/"+v+"/quibly-linux-arm64", "--body", bin)
	}
	nodeParam := NodeVersionParameter(name, "server-1")
	stackParam := "/" + name + "/app-version"
	api.CLI("ssm", "put-parameter", "--name", nodeParam, "--type", "String", "--value", "v1")
	api.CLI("ssm", "put-parameter", "--name", stackParam, "--type", "String", "--value", "v2")

	// Passwords with what a URL or a shell would trip on.
	dbPassword := `p@ss/w:rd?#%' "$x`
	secret := func(what, value string) string {
		return api.CLI("secretsmanager", "create-secret", "--name", name+"/"+what, "--secret-string", value, "--query", "ARN", "--output", "text")
	}
	appArn := secret("app", `{"JWT_SECRET":"jwt-secret-1","REDIS_PASSWORD":"redis $(id) pw"}`)
	kafkaArn := secret("kafka", `{"username":"quibly","password":"kafka-pw"}`)
	dbArn := secret("db", `{"username":"quibly_app","password":"p@ss/w:rd?#%' \"$x"}`)

	userData, err := UserData(BootSettings{ServerID: "server-1", Port: 5080, Region: awstest.Region,
		ArtifactBucket: bucket, Arch: "arm64", VersionParameter: nodeParam, MemoryMax: "1G", StopTimeoutSeconds: 35,
		FrontendURL: "https://chat.example.com", RedisHost: "redis.internal", RedisPort: 6379,
		KafkaBrokers: "b-1:9096,b-2:9096", KafkaTopic: "quibly.messages", KafkaReplication: 2,
		DBHost: "db.internal", DBPort: 5432, DBName: "quibly",
		AppSecretArn: appArn, KafkaSecretArn: kafkaArn, DBSecretArn: dbArn})
	if err != nil {
		t.Fatal(err)
	}
	node, err := awstest.UnpackBoot(userData, filepath.Join(dir, "node"))
	if err != nil {
		t.Fatal(err)
	}
	run := func(script string) (string, error) {
		cmd := exec.Command("bash", script)
		cmd.Env = node.Env(api)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	fetch := func(want string) {
		t.Helper()
		out, err := run(node.Fetch)
		if err != nil {
			t.Fatalf("quibly-fetch: %v\n%s", err, out)
		}
		got, err := os.Readlink(filepath.Join(node.Home, "current"))
		if err != nil || filepath.Base(got) != want {
			t.Fatalf("after quibly-fetch, current -> %q (%v); want the release %s (output: %s)", got, err, want, out)
		}
	}
	// The node's own parameter decides, not the stack's.
	fetch("v1")
	api.CLI("ssm", "put-parameter", "--name", nodeParam, "--type", "String", "--value", "v2", "--overwrite")
	fetch("v2")

	out, err := run(node.Run)
	if err != nil {
		t.Fatalf("quibly-run: %v\n%s", err, out)
	}
	env := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	if env["release"] != "v2" {
		t.Errorf("quibly-run started release %q, want v2:\n%s", env["release"], out)
	}
	for k, want := range map[string]string{
		"JWT_SECRET": "jwt-secret-1", "REDIS_PASSWORD": "redis $(id) pw",
		"KAFKA_USERNAME": "quibly", "KAFKA_PASSWORD": "kafka-pw",
	} {
		if env[k] != want {
			t.Errorf("server environment %s = %q, want %q", k, env[k], want)
		}
	}
	db, err := url.Parse(env["DATABASE_URL"])
	if err != nil {
		t.Fatalf("DATABASE_URL does not parse: %v", err)
	}
	pw, _ := db.User.Password()
	q := db.Query()
	if db.User.Username() != "quibly_app" || pw != dbPassword || db.Host != "db.internal:5432" || db.Path != "/quibly" ||
		q.Get("sslmode") != "verify-full" || q.Get("sslrootcert") != filepath.Join(node.Etc, "rds-ca.pem") {
		t.Errorf("DATABASE_URL = user %q password %q host %q path %q query %v; want quibly_app, the secret's password, db.internal:5432, /quibly, verify-full against the RDS bundle",
			db.User.Username(), pw, db.Host, db.Path, q)
	}

	// A parameter that names no release, or one that is not in the bucket, stops the start.
	for _, bad := range []string{"../etc", "v3"} {
		api.CLI("ssm", "put-parameter", "--name", nodeParam, "--type", "String", "--value", bad, "--overwrite")
		if out, err := run(node.Fetch); err == nil {
			t.Errorf("quibly-fetch with the parameter at %q succeeded:\n%s", bad, out)
		}
		if got, _ := os.Readlink(filepath.Join(node.Home, "current")); filepath.Base(got) != "v2" {
			t.Errorf("a failed quibly-fetch (%q) moved current to %q", bad, got)
		}
	}
}
