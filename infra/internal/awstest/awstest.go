// Package awstest gives tests the local AWS API that scripts/aws-local.sh runs (moto)
// and the AWS CLI beside it, for what servers and scripts call on AWS at run time.
package awstest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quibly/quibly/infra/internal/terraform"
)

// Region is the region the tests' resources live in.
const Region = "us-east-1"

// API is a handle on the local AWS API.
type API struct {
	t        testing.TB
	Endpoint string
	cli      string
}

// Missing stops a test that lacks a service or tool: a skip, or a failure under
// CI=true, where a test never skips for want of what the project's machines carry.
func Missing(t testing.TB, why any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// NeedTerraform stops the test (Missing) unless terraform is on the PATH.
func NeedTerraform(t testing.TB) {
	t.Helper()
	if _, err := terraform.New(t.TempDir()); err != nil {
		Missing(t, err)
	}
}

// New returns the local AWS API named by QUIBLY_TEST_AWS_ENDPOINT and QUIBLY_TEST_AWS_CLI
// (`eval "$(scripts/aws-local.sh env)"`). Without them the test skips, or fails under
// CI=true, where a test never skips for want of a service.
func New(t testing.TB) *API {
	t.Helper()
	endpoint, cli := os.Getenv("QUIBLY_TEST_AWS_ENDPOINT"), os.Getenv("QUIBLY_TEST_AWS_CLI")
	if endpoint == "" || cli == "" {
		Missing(t, "QUIBLY_TEST_AWS_ENDPOINT and QUIBLY_TEST_AWS_CLI are unset: run scripts/aws-local.sh up and eval \"$(scripts/aws-local.sh env)\" (make test-infra does)")
	}
	api := &API{t: t, Endpoint: endpoint, cli: cli}
	if _, err := api.Try("sts", "get-caller-identity"); err != nil {
		t.Fatalf("the local AWS API at %s does not answer (scripts/aws-local.sh status): %v", endpoint, err)
	}
	return api
}

// Env is the environment a process needs to use the local API through the AWS CLI:
// the endpoint, dummy credentials, the region, and the CLI first on PATH.
func (a *API) Env() []string {
	var env []string
	for _, kv := range os.Environ() {
		// Nothing from the caller's own AWS set-up may reach past the local API.
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"AWS_ENDPOINT_URL="+a.Endpoint,
		"AWS_ACCESS_KEY_ID=testing",
		"AWS_SECRET_ACCESS_KEY=testing",
		"AWS_REGION="+Region,
		"AWS_DEFAULT_REGION="+Region,
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"AWS_EC2_METADATA_DISABLED=true",
		"PATH="+filepath.Dir(a.cli)+string(os.PathListSeparator)+os.Getenv("PATH"),
	)
}

// Try runs the AWS CLI against the local API and returns its trimmed output.
func (a *API) Try(args ...string) (string, error) {
	cmd := exec.Command(a.cli, args...)
	cmd.Env = a.Env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("aws %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// CLI runs the AWS CLI against the local API and fails the test if it fails.
func (a *API) CLI(args ...string) string {
	a.t.Helper()
	out, err := a.Try(args...)
	if err != nil {
		a.t.Fatal(err)
	}
	return out
}

// DatabaseURL is the local PostgreSQL of scripts/services.sh (QUIBLY_TEST_DATABASE_URL),
// with the same rule: a skip without it, a failure under CI=true.
func DatabaseURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("QUIBLY_TEST_DATABASE_URL")
	if u == "" {
		Missing(t, "QUIBLY_TEST_DATABASE_URL is unset: run scripts/services.sh up and eval \"$(scripts/services.sh env)\" (make test-infra does)")
	}
	return u
}

// Name returns a fresh name with prefix: the local API's state is shared by every
// test that runs against it, so each test's resources are its own.
func Name(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// Heredoc returns the body of the here-document that marker ends in script
// (`cat > FILE <<'MARKER'` ... `MARKER`), so a test can run the files a boot script writes.
func Heredoc(script, marker string) (string, error) {
	start := strings.Index(script, "<<'"+marker+"'\n")
	if start < 0 {
		return "", fmt.Errorf("no here-document %s in the script", marker)
	}
	body := script[start+len(marker)+5:]
	end := strings.Index(body, "\n"+marker+"\n")
	if end < 0 {
		return "", fmt.Errorf("here-document %s has no end", marker)
	}
	return body[:end+1], nil
}

// Node is one server's boot files, unpacked from its user data into a directory so the
// test runs them as the instance would: QUIBLY_ETC and QUIBLY_HOME point into it.
type Node struct {
	Etc, Home string
	// Fetch, DBSetup and Run are quibly-fetch, quibly-db-setup and quibly-run, exactly
	// as the user data writes them.
	Fetch, DBSetup, Run string
}

// UnpackBoot writes the files userData installs on an instance under dir.
func UnpackBoot(userData, dir string) (Node, error) {
	n := Node{Etc: filepath.Join(dir, "etc"), Home: filepath.Join(dir, "opt"),
		Fetch: filepath.Join(dir, "bin", "quibly-fetch"), DBSetup: filepath.Join(dir, "bin", "quibly-db-setup"),
		Run: filepath.Join(dir, "bin", "quibly-run")}
	files := []struct{ path, marker string }{
		{filepath.Join(n.Etc, "boot.env"), "QUIBLY_BOOT_ENV"},
		{filepath.Join(n.Etc, "quibly.env"), "QUIBLY_ENV"},
		{n.Fetch, "QUIBLY_FETCH"},
		{n.DBSetup, "QUIBLY_DB_SETUP"},
		{n.Run, "QUIBLY_RUN"},
	}
	for _, f := range files {
		body, err := Heredoc(userData, f.marker)
		if err != nil {
			return n, err
		}
		if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
			return n, err
		}
		if err := os.WriteFile(f.path, []byte(body), 0o755); err != nil {
			return n, err
		}
	}
	// The boot script downloads RDS's authorities here; its contents don't matter to the tests.
	if err := os.WriteFile(filepath.Join(n.Etc, "rds-ca.pem"), []byte("test\n"), 0o644); err != nil {
		return n, err
	}
	return n, os.MkdirAll(filepath.Join(n.Home, "releases"), 0o755)
}

// Env is the environment the boot scripts run with on this node.
func (n Node) Env(api *API) []string {
	return append(api.Env(), "QUIBLY_ETC="+n.Etc, "QUIBLY_HOME="+n.Home)
}
