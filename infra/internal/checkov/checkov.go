// Package checkov runs checkov, the field's IaC scanner, over a Terraform plan and
// holds the project's waivers: the findings accepted on purpose, each with its
// reason. Anything else checkov fails is a defect of the stack.
package checkov

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Env is the variable that names the checkov binary (scripts/checkov.sh env sets it).
const Env = "QUIBLY_CHECKOV"

// Finding is one failed check on one resource.
type Finding struct {
	Check    string // e.g. CKV_AWS_91
	Name     string // what the check wants
	Resource string // terraform address, e.g. aws_lb.quibly-small
}

func (f Finding) String() string { return fmt.Sprintf("%s %s: %s", f.Check, f.Resource, f.Name) }

// Binary is the checkov to run: $QUIBLY_CHECKOV, else checkov on the PATH.
func Binary() (string, error) {
	if p := os.Getenv(Env); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("checkov: %s=%s: %w (run: make checkov)", Env, p, err)
		}
		return p, nil
	}
	p, err := exec.LookPath("checkov")
	if err != nil {
		return "", fmt.Errorf("checkov is not installed (run: make checkov; the tests find it through %s)", Env)
	}
	return p, nil
}

// Scan runs checkov over a plan written by `terraform show -json` and returns the
// failed checks. It makes no network call (no platform key, no download).
func Scan(ctx context.Context, bin, planJSON string) ([]Finding, error) {
	cmd := exec.CommandContext(ctx, bin, "-f", planJSON, "--framework", "terraform_plan",
		"--output", "json", "--compact", "--quiet", "--skip-download")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	// checkov exits 1 when a check fails; anything else, or no report, is an error.
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		return nil, fmt.Errorf("checkov %s: %w: %s", planJSON, err, tail(stderr.String()))
	}
	var report struct {
		CheckType string `json:"check_type"`
		Results   struct {
			Failed []struct {
				CheckID   string `json:"check_id"`
				CheckName string `json:"check_name"`
				Resource  string `json:"resource"`
			} `json:"failed_checks"`
		} `json:"results"`
		Summary struct {
			Passed int `json:"passed"`
		} `json:"summary"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil || report.CheckType != "terraform_plan" {
		return nil, fmt.Errorf("checkov %s: no terraform_plan report (%v): %s", planJSON, err, tail(stdout.String()+stderr.String()))
	}
	if report.Summary.Passed == 0 {
		return nil, fmt.Errorf("checkov %s: no check passed, so none ran", planJSON)
	}
	out := make([]Finding, 0, len(report.Results.Failed))
	for _, f := range report.Results.Failed {
		out = append(out, Finding{Check: f.CheckID, Name: f.CheckName, Resource: f.Resource})
	}
	return out, nil
}

func tail(s string) string {
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return strings.TrimSpace(s)
}

// Waiver accepts one check on the resources its pattern matches, in the named tiers
// (every tier when none is named), for a reason a reviewer can judge.
type Waiver struct {
	Check    string   `yaml:"check"`
	Resource string   `yaml:"resource"` // a path.Match pattern over the terraform address
	Tiers    []string `yaml:"tiers"`
	Reason   string   `yaml:"reason"`
}

// Waivers is the committed list.
type Waivers []Waiver

// LoadWaivers reads the waivers file; a waiver without a check, a valid resource
// pattern or a reason is refused.
func LoadWaivers(file string) (Waivers, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var w Waivers
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	for i, v := range w {
		if _, err := path.Match(v.Resource, ""); err != nil || v.Check == "" || v.Resource == "" || len(strings.TrimSpace(v.Reason)) < 20 {
			return nil, fmt.Errorf("%s: waiver %d (%s %s) needs a check, a valid resource pattern and a reason", file, i+1, v.Check, v.Resource)
		}
	}
	return w, nil
}

func (v Waiver) covers(tier string, f Finding) bool {
	if v.Check != f.Check || (len(v.Tiers) > 0 && !slices.Contains(v.Tiers, tier)) {
		return false
	}
	ok, _ := path.Match(v.Resource, f.Resource)
	return ok
}

// Unwaived returns the findings of tier no waiver covers, and marks in used the
// waivers that covered one.
func (w Waivers) Unwaived(tier string, findings []Finding, used map[int]bool) []Finding {
	var out []Finding
	for _, f := range findings {
		covered := false
		for i, v := range w {
			if v.covers(tier, f) {
				covered, used[i] = true, true
			}
		}
		if !covered {
			out = append(out, f)
		}
	}
	return out
}
