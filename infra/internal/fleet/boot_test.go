package fleet

import (
	"bufio"
	"fmt"
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
	// A "release" prints its version, its arguments and the environment it was started with.
	for _, v := range []string{"v1", "v2"} {
		bin := filepath.Join(dir, "quibly-"+v)
		if err := os.WriteFile(bin, []byte("#!/bin/sh\necho release="+v+"\necho args=\"$*\"\nenv\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		api.CLI("s3api", "put-object", "--bucket", bucket, "--key", "quibly/"+v+"/quibly-linux-arm64", "--body", bin)
	}
	nodeParam := NodeVersionParameter(name, "server-1")
	stackParam := "/" + name + "/app-version"
	api.CLI("ssm", "put-parameter", "--name", nodeParam, "--type", "String", "--value", "v1")
	api.CLI("ssm", "put-parameter", "--name", stackParam, "--type", "String", "--value", "v2")

	secret := func(what, value string) string {
		return api.CLI("secretsmanager", "create-secret", "--name", name+"/"+what, "--secret-string", value, "--query", "ARN", "--output", "text")
	}
	appArn := secret("app", `{"JWT_SECRET":"jwt-secret-1","REDIS_PASSWORD":"redis $(id) pw"}`)
	kafkaArn := secret("kafka", `{"username":"quibly","password":"kafka-pw"}`)
	dbArn := secret("db-master", `{"username":"master","password":"master-pw-1"}`)
	dbAppArn := secret("db-app", `{"username":"quibly_app","password":"app-pw-1"}`)

	userData, err := UserData(BootSettings{ServerID: "server-1", Port: 5080, Region: awstest.Region,
		ArtifactBucket: bucket, Arch: "arm64", VersionParameter: nodeParam, MemoryMax: "1G", StopTimeoutSeconds: 35,
		FrontendURL: "https://chat.example.com", RedisHost: "redis.internal", RedisPort: 6379,
		KafkaBrokers: "b-1:9096,b-2:9096", KafkaTopic: "quibly.messages", KafkaReplication: 2,
		DBHost: "db.internal", DBPort: 5432, DBName: "quibly",
		AppSecretArn: appArn, KafkaSecretArn: kafkaArn, DBSecretArn: dbArn, DBAppSecretArn: dbAppArn})
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

	for _, script := range []struct {
		path, args, secretArn, adminArn string
	}{
		// The server: its own login's secret, never the master's.
		{node.Run, "", dbAppArn, ""},
		// The role set-up: the master's secret as the administrator.
		{node.DBSetup, "-setup-db -env-file ", dbAppArn, dbArn},
	} {
		out, err := run(script.path)
		if err != nil {
			t.Fatalf("%s: %v\n%s", filepath.Base(script.path), err, out)
		}
		env := map[string]string{}
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), "="); ok {
				env[k] = v
			}
		}
		name := filepath.Base(script.path)
		if env["release"] != "v2" || env["args"] != script.args {
			t.Errorf("%s started release %q with %q, want v2 with %q", name, env["release"], env["args"], script.args)
		}
		if env["DATABASE_SECRET_ARN"] != script.secretArn || env["DATABASE_ADMIN_SECRET_ARN"] != script.adminArn {
			t.Errorf("%s: DATABASE_SECRET_ARN=%q DATABASE_ADMIN_SECRET_ARN=%q, want %q and %q", name,
				env["DATABASE_SECRET_ARN"], env["DATABASE_ADMIN_SECRET_ARN"], script.secretArn, script.adminArn)
		}
		db, err := url.Parse(env["DATABASE_URL"])
		if err != nil {
			t.Fatalf("%s: DATABASE_URL does not parse: %v", name, err)
		}
		q := db.Query()
		if db.User != nil || db.Host != "db.internal:5432" || db.Path != "/quibly" ||
			q.Get("sslmode") != "verify-full" || q.Get("sslrootcert") != filepath.Join(node.Etc, "rds-ca.pem") {
			t.Errorf("%s: DATABASE_URL = %s; want no login in it, db.internal:5432/quibly, verify-full against the RDS bundle", name, env["DATABASE_URL"])
		}
		for k, v := range env {
			if strings.Contains(v, "master-pw") || strings.Contains(v, "app-pw") {
				t.Errorf("%s: %s holds a database password; the server reads its login from the secret", name, k)
			}
		}
		if script.path != node.Run {
			continue
		}
		for k, want := range map[string]string{
			"JWT_SECRET": "jwt-secret-1", "REDIS_PASSWORD": "redis $(id) pw",
			"KAFKA_USERNAME": "quibly", "KAFKA_PASSWORD": "kafka-pw",
		} {
			if env[k] != want {
				t.Errorf("server environment %s = %q, want %q", k, env[k], want)
			}
		}
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

// quibly-db-setup with the real server binary, the local AWS API and the local
// PostgreSQL: the servers' role is created from its secret, nodes starting at once
// don't trip over each other, and putting a new password in the secret and running it
// again (what a rotation does) changes the role's password.
func TestBootDatabaseSetup(t *testing.T) {
	api := awstest.New(t)
	dbURL, err := url.Parse(awstest.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "quibly")
	if out, err := exec.Command("go", "build", "-o", bin, "../../../app/cmd/quibly").CombinedOutput(); err != nil {
		t.Fatalf("building the server: %v\n%s", err, out)
	}
	name := awstest.Name("quibly-dbsetup")
	bucket := name + "-artifacts"
	api.CLI("s3api", "create-bucket", "--bucket", bucket)
	api.CLI("s3api", "put-object", "--bucket", bucket, "--key", "quibly/real/quibly-linux-arm64", "--body", bin)
	param := NodeVersionParameter(name, "server-1")
	api.CLI("ssm", "put-parameter", "--name", param, "--type", "String", "--value", "real")

	adminPassword, _ := dbURL.User.Password()
	role := strings.ReplaceAll(name, "-", "_")
	loginJSON := func(user, password string) string {
		return `{"username":"` + user + `","password":"` + password + `"}`
	}
	masterArn := api.CLI("secretsmanager", "create-secret", "--name", name+"/master",
		"--secret-string", loginJSON(dbURL.User.Username(), adminPassword), "--query", "ARN", "--output", "text")
	appArn := api.CLI("secretsmanager", "create-secret", "--name", name+"/db-app",
		"--secret-string", loginJSON(role, "first-"+name), "--query", "ARN", "--output", "text")

	dbName := strings.TrimPrefix(dbURL.Path, "/")
	psql := func(user, password, sql string) (string, error) {
		cmd := exec.Command("psql", "-X", "-A", "-t", "-w", "-h", dbURL.Hostname(), "-p", dbURL.Port(), "-U", user, "-d", dbName, "-c", sql)
		cmd.Env = append(os.Environ(), "PGPASSWORD="+password)
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	t.Cleanup(func() {
		if out, err := psql(dbURL.User.Username(), adminPassword, fmt.Sprintf(
			"REVOKE ALL ON DATABASE %s FROM %s; REVOKE ALL ON SCHEMA public FROM %s; DROP ROLE IF EXISTS %s", dbName, role, role, role)); err != nil {
			t.Errorf("dropping role %s: %v: %s", role, err, out)
		}
	})

	var port int
	fmt.Sscan(dbURL.Port(), &port)
	userData, err := UserData(BootSettings{ServerID: "server-1", Port: 5080, Region: awstest.Region,
		ArtifactBucket: bucket, Arch: "arm64", VersionParameter: param, MemoryMax: "1G", StopTimeoutSeconds: 35,
		FrontendURL: "https://chat.example.com", RedisHost: "r", RedisPort: 6379, KafkaBrokers: "b-1:9096", KafkaTopic: "t",
		KafkaReplication: 2, DBHost: dbURL.Hostname(), DBPort: port, DBName: dbName,
		AppSecretArn: "arn:a", KafkaSecretArn: "arn:k", DBSecretArn: masterArn, DBAppSecretArn: appArn})
	if err != nil {
		t.Fatal(err)
	}
	var nodes []awstest.Node
	for i := range 3 {
		node, err := awstest.UnpackBoot(userData, filepath.Join(dir, fmt.Sprint("node-", i)))
		if err != nil {
			t.Fatal(err)
		}
		// The local PostgreSQL has no TLS: the one line the test changes.
		env := filepath.Join(node.Etc, "boot.env")
		b, _ := os.ReadFile(env)
		local := strings.Replace(string(b), "sslmode=verify-full&sslrootcert=$etc/rds-ca.pem", "sslmode=disable", 1)
		if local == string(b) {
			t.Fatal("boot.env has no DATABASE_URL with sslmode=verify-full")
		}
		if err := os.WriteFile(env, []byte(local), 0o644); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, node)
	}
	run := func(node awstest.Node, script string) error {
		cmd := exec.Command("bash", script)
		cmd.Env = node.Env(api)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", filepath.Base(script), err, out)
		}
		return nil
	}
	for _, n := range nodes {
		if err := run(n, n.Fetch); err != nil {
			t.Fatal(err)
		}
	}
	// Three nodes start at once.
	errs := make(chan error, len(nodes))
	for _, n := range nodes {
		go func() { errs <- run(n, n.DBSetup) }()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if out, err := psql(role, "first-"+name, "SELECT current_user"); err != nil || out != role {
		t.Fatalf("logging in as %s with its secret's password: %v %s", role, err, out)
	}

	api.CLI("secretsmanager", "put-secret-value", "--secret-id", appArn, "--secret-string", loginJSON(role, "second-"+name))
	if err := run(nodes[0], nodes[0].DBSetup); err != nil {
		t.Fatal(err)
	}
	if out, err := psql(role, "second-"+name, "SELECT current_user"); err != nil || out != role {
		t.Fatalf("after the rotation, logging in with the new password: %v %s", err, out)
	}
	if out, err := psql(role, "first-"+name, "SELECT 1"); err == nil || !strings.Contains(out, "password authentication failed") {
		t.Fatalf("after the rotation the old password still logs in (%v): %s", err, out)
	}
	if out, err := psql(role, "second-"+name, "SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = current_user"); err != nil || out != "f" {
		t.Fatalf("the servers' role has more than login rights: %v %s", err, out)
	}
}
