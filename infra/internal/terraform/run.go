package terraform

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// MirrorEnv names a filesystem mirror of Terraform providers to install the AWS
// provider from, for machines without the public registry.
const MirrorEnv = "QUIBLY_TF_MIRROR"

// mirrors are where a provider mirror is looked for when MirrorEnv is unset:
// Terraform's own implied local mirror directories, and /opt/tf-plugins.
var mirrors = []string{"/opt/tf-plugins", "~/.terraform.d/plugins", "/usr/local/share/terraform/plugins", "/usr/share/terraform/plugins"}

// Mirror returns the filesystem mirror that holds the AWS provider ProviderVersion,
// or "" when there is none (init then downloads it from the public registry).
func Mirror() string {
	cands := mirrors
	if m := os.Getenv(MirrorEnv); m != "" {
		cands = []string{m}
	}
	home, _ := os.UserHomeDir()
	for _, m := range cands {
		if rest, ok := strings.CutPrefix(m, "~/"); ok {
			m = filepath.Join(home, rest)
		}
		if _, err := os.Stat(filepath.Join(m, "registry.terraform.io", "hashicorp", "aws", ProviderVersion)); err == nil {
			return m
		}
	}
	return ""
}

// Terraform runs the terraform CLI in one working directory.
type Terraform struct {
	Bin, Dir string
	env      []string
}

// Diagnostic is one error or warning Terraform reported.
type Diagnostic struct {
	Severity string `json:"severity"`
	Summary  string `json:"summary"`
	Detail   string `json:"detail"`
	Address  string `json:"address"`
}

func (d Diagnostic) String() string {
	s := d.Severity + ": " + d.Summary
	if d.Address != "" {
		s += " (" + d.Address + ")"
	}
	if d.Detail != "" {
		s += ": " + strings.Join(strings.Fields(d.Detail), " ")
	}
	return s
}

// New prepares dir for terraform: a CLI configuration that installs the AWS
// provider from the mirror when there is one, and an environment with nothing
// of the caller's own Terraform or AWS set-up in it.
func New(dir string) (*Terraform, error) {
	bin, err := exec.LookPath("terraform")
	if err != nil {
		return nil, errors.New("terraform is not on the PATH (Terraform 1.11 runs the AWS provider's checks)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	cli := "provider_installation {\n  direct {}\n}\n"
	if m := Mirror(); m != "" {
		cli = fmt.Sprintf("provider_installation {\n  filesystem_mirror {\n    path    = %q\n    include = [\"registry.terraform.io/hashicorp/aws\"]\n  }\n  direct {\n    exclude = [\"registry.terraform.io/hashicorp/aws\"]\n  }\n}\n", m)
	}
	rc := filepath.Join(abs, ".terraformrc")
	if err := os.WriteFile(rc, []byte(cli), 0o644); err != nil {
		return nil, err
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TF_") && !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	env = append(env, "TF_CLI_CONFIG_FILE="+rc, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1")
	return &Terraform{Bin: bin, Dir: abs, env: env}, nil
}

// WriteConfig writes doc as the directory's only configuration file.
func (t *Terraform) WriteConfig(doc map[string]any) error {
	raw, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(t.Dir, "main.tf.json"), raw, 0o644)
}

func (t *Terraform) run(ctx context.Context, args ...string) (stdout []byte, err error) {
	cmd := exec.CommandContext(ctx, t.Bin, args...)
	cmd.Dir, cmd.Env = t.Dir, t.env
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("terraform %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return out.Bytes(), err
}

// Init installs the provider.
func (t *Terraform) Init(ctx context.Context) error {
	_, err := t.run(ctx, "init", "-input=false", "-no-color")
	return err
}

// Schema reads the provider's schema for the types in Types.
func (t *Terraform) Schema(ctx context.Context) (*Schema, error) {
	out, err := t.run(ctx, "providers", "schema", "-json")
	if err != nil {
		return nil, err
	}
	return ParseSchema(out)
}

// LoadSchema reads the AWS provider's schema in a working directory of its own:
// init, then `providers schema`. terraform_data is in the schema only when a
// configuration uses it, so the directory's configuration does.
func LoadSchema(ctx context.Context, dir string) (*Schema, error) {
	tf, err := New(dir)
	if err != nil {
		return nil, err
	}
	doc := map[string]any{
		"terraform": terraformBlock(),
		"resource":  map[string]any{"terraform_data": map[string]any{"schema": map[string]any{}}},
	}
	if err := tf.WriteConfig(doc); err != nil {
		return nil, err
	}
	if err := tf.Init(ctx); err != nil {
		return nil, err
	}
	return tf.Schema(ctx)
}

// Validate runs `terraform validate` and returns what it reported.
func (t *Terraform) Validate(ctx context.Context) ([]Diagnostic, error) {
	out, runErr := t.run(ctx, "validate", "-json", "-no-color")
	var res struct {
		Diagnostics []Diagnostic `json:"diagnostics"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, errors.Join(fmt.Errorf("terraform validate: unreadable output %q", out), runErr)
	}
	if runErr != nil && len(res.Diagnostics) == 0 {
		return nil, runErr
	}
	return res.Diagnostics, nil
}

// jsonDiagnostics reads the diagnostics of a command's -json output stream.
func jsonDiagnostics(out []byte) ([]Diagnostic, error) {
	var diags []Diagnostic
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var line struct {
			Type       string      `json:"type"`
			Diagnostic *Diagnostic `json:"diagnostic"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Type == "diagnostic" && line.Diagnostic != nil {
			diags = append(diags, *line.Diagnostic)
		}
	}
	return diags, sc.Err()
}

// streamed runs a command with -json output and returns its diagnostics; a failure
// that reported none is an error.
func (t *Terraform) streamed(ctx context.Context, args ...string) ([]Diagnostic, error) {
	out, runErr := t.run(ctx, args...)
	diags, err := jsonDiagnostics(out)
	if err != nil {
		return nil, err
	}
	if runErr != nil && len(diags) == 0 {
		return nil, runErr
	}
	return diags, nil
}

// Apply creates what the configuration describes, parallelism at a time.
func (t *Terraform) Apply(ctx context.Context, parallelism int) ([]Diagnostic, error) {
	return t.streamed(ctx, "apply", "-input=false", "-auto-approve", "-lock=false", "-json", fmt.Sprintf("-parallelism=%d", parallelism))
}

// Destroy deletes what Apply created.
func (t *Terraform) Destroy(ctx context.Context, parallelism int) ([]Diagnostic, error) {
	return t.streamed(ctx, "destroy", "-input=false", "-auto-approve", "-lock=false", "-json", fmt.Sprintf("-parallelism=%d", parallelism))
}

// Outputs are the applied configuration's outputs (`terraform output -json`).
func (t *Terraform) Outputs(ctx context.Context) (map[string]any, error) {
	out, err := t.run(ctx, "output", "-json")
	if err != nil {
		return nil, err
	}
	var raw map[string]struct {
		Value any `json:"value"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("terraform output: %w", err)
	}
	values := map[string]any{}
	for k, v := range raw {
		values[k] = v.Value
	}
	return values, nil
}

// StateResource is one resource in the state, with its attributes.
type StateResource struct {
	Address string         `json:"address"`
	Type    string         `json:"type"`
	Name    string         `json:"name"`
	Values  map[string]any `json:"values"`
}

// State lists the resources in the state (`terraform show -json`).
func (t *Terraform) State(ctx context.Context) ([]StateResource, error) {
	out, err := t.run(ctx, "show", "-json")
	if err != nil {
		return nil, err
	}
	var doc struct {
		Values struct {
			RootModule struct {
				Resources []StateResource `json:"resources"`
			} `json:"root_module"`
		} `json:"values"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("terraform show: %w", err)
	}
	return doc.Values.RootModule.Resources, nil
}

// Plan runs `terraform plan` with no state, so nothing is read from AWS, and
// returns what it reported.
func (t *Terraform) Plan(ctx context.Context) ([]Diagnostic, error) {
	return t.streamed(ctx, "plan", "-input=false", "-lock=false", "-refresh=false", "-json", "-out=plan.bin")
}

// ShowPlan returns the saved plan as JSON (`terraform show -json`), for scanners.
func (t *Terraform) ShowPlan(ctx context.Context) ([]byte, error) {
	return t.run(ctx, "show", "-json", "plan.bin")
}
