package terraform

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"github.com/quibly/quibly/infra/internal/mocks"
)

// Mode says which values the provider is given.
type Mode int

const (
	// Known gives every value, as `pulumi up` does when it creates a resource: the
	// provider's validators see them all.
	Known Mode = iota
	// Unknown makes every value that comes from another resource's output a
	// reference, unknown until apply, as `pulumi preview` gives it.
	Unknown
)

func (m Mode) String() string {
	if m == Unknown {
		return "unknown"
	}
	return "known"
}

// ProviderVersion is the AWS provider that pulumi-aws 6.83 bridges.
const ProviderVersion = "5.100.0"

// ref is one resource attribute another resource can refer to.
type ref struct{ addr, attr string }

func (r ref) expr() string { return "${" + r.addr + "." + r.attr + "}" }

// Options say how a graph is written.
type Options struct {
	// Provider is the AWS provider's configuration block.
	Provider map[string]any
	Mode     Mode
	// StandIns are the Terraform types written as terraform_data holding their
	// inputs and the outputs the mock gave them, with why: for an API the local AWS
	// (moto) lacks. Others refer to a stand-in's outputs as they would to the type's.
	StandIns map[string]string
	// Timeout, when set, bounds each create and delete of a resource that takes a
	// timeouts block, so a wait on a state the local API never reaches ends.
	Timeout string
	// Outputs are the stack's outputs as the program exported them under the mocks;
	// they become Terraform outputs, referring to what they came from in Unknown
	// mode, so `terraform output` gives the applied stack's real ones.
	Outputs map[string]any
}

// converter holds what converting one graph needs across its resources.
type converter struct {
	schema *Schema
	opts   Options
	addrs  map[string]string   // URN → Terraform address, custom resources
	kids   map[string][]string // parent URN → child URNs
	refs   map[string][]refAt  // URN → the outputs others may refer to
}

// refAt is one output value of a resource and the attribute it is.
type refAt struct {
	value string
	ref   ref
}

// standInPrefix starts the name of a stand-in, so it cannot clash with a real terraform_data.
const standInPrefix = "standin-"

// Document writes the custom resources of a recorded graph as a Terraform JSON
// configuration. Every resource type, property and option is mapped or the
// conversion fails naming it.
func Document(resources []mocks.Resource, schema *Schema, opts Options) (map[string]any, error) {
	c := &converter{schema: schema, opts: opts, addrs: map[string]string{}, kids: map[string][]string{}, refs: map[string][]refAt{}}
	used := map[string]bool{}
	var unmapped []string
	for _, r := range resources {
		if r.Parent != "" {
			c.kids[r.Parent] = append(c.kids[r.Parent], r.URN)
		}
		if !r.Custom {
			continue
		}
		typ, ok := Types[r.Type]
		if !ok {
			unmapped = append(unmapped, r.Type+" ("+r.Name+")")
			continue
		}
		lbl := label(r.Name)
		if _, standIn := opts.StandIns[typ]; standIn {
			typ, lbl = "terraform_data", standInPrefix+lbl
		}
		addr := typ + "." + lbl
		for i := 2; used[addr]; i++ {
			addr = fmt.Sprintf("%s.%s_%d", typ, lbl, i)
		}
		used[addr] = true
		c.addrs[r.URN] = addr
	}
	if len(unmapped) > 0 {
		return nil, fmt.Errorf("no Terraform type for %s: add it to terraform.Types", strings.Join(unmapped, ", "))
	}
	for _, r := range resources {
		if r.Custom {
			c.refs[r.URN] = c.outputsOf(r)
		}
	}
	out := map[string]map[string]any{}
	for _, r := range resources {
		if !r.Custom {
			continue
		}
		body, err := c.resource(r)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", r.Type, r.Name, err)
		}
		typ, lbl, _ := strings.Cut(c.addrs[r.URN], ".")
		if out[typ] == nil {
			out[typ] = map[string]any{}
		}
		out[typ][lbl] = body
	}
	doc := map[string]any{
		"terraform": terraformBlock(),
		"provider":  map[string]any{"aws": opts.Provider},
		"resource":  out,
	}
	if len(opts.Outputs) > 0 {
		var all []string
		for _, r := range resources {
			if r.Custom {
				all = append(all, r.URN)
			}
		}
		outputs := map[string]any{}
		for k, v := range opts.Outputs {
			val := plainValue(v)
			if opts.Mode == Unknown {
				val = c.reference(val, all, map[string]bool{})
			}
			outputs[k] = map[string]any{"value": val}
		}
		doc["output"] = outputs
	}
	return doc, nil
}

// terraformBlock pins the AWS provider every configuration here is written for.
func terraformBlock() map[string]any {
	return map[string]any{"required_providers": map[string]any{
		"aws": map[string]any{"source": "hashicorp/aws", "version": ProviderVersion},
	}}
}

// plainValue copies an exported value (strings, numbers, maps and lists of them)
// with every string escaped.
func plainValue(v any) any {
	switch v := v.(type) {
	case string:
		return escape(v)
	case map[string]any:
		out := map[string]any{}
		for k, e := range v {
			out[k] = plainValue(e)
		}
		return out
	case map[string]string:
		out := map[string]any{}
		for k, e := range v {
			out[k] = escape(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = plainValue(e)
		}
		return out
	}
	return v
}

var notLabel = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// label is a Terraform resource name for a Pulumi one.
func label(name string) string {
	l := notLabel.ReplaceAllString(name, "_")
	if l == "" || !(l[0] == '_' || (l[0] >= 'A' && l[0] <= 'Z') || (l[0] >= 'a' && l[0] <= 'z')) {
		l = "r_" + l
	}
	return l
}

// outputsOf lists the values of r that only exist once r does: its id and what the
// provider computes (an ARN, an endpoint), not what it was given.
func (c *converter) outputsOf(r mocks.Resource) []refAt {
	addr := c.addrs[r.URN]
	block := c.schema.Resources[Types[r.Type]]
	attrOf := func(a string) string { return a }
	if strings.HasPrefix(addr, "terraform_data."+standInPrefix) {
		attrOf = func(a string) string { return "output." + a }
	}
	var out []refAt
	if r.ID != "" {
		out = append(out, refAt{r.ID, ref{addr, attrOf("id")}})
	}
	for _, k := range sortedKeys(r.Outputs) {
		v := r.Outputs[resource.PropertyKey(k)]
		if !v.IsString() || v.StringValue() == "" {
			continue
		}
		if in, given := r.Inputs[resource.PropertyKey(k)]; given && in.DeepEquals(v) {
			continue
		}
		attr, ok := name(k, func(n string) bool { _, ok := block.Attributes[n]; return ok })
		if !ok {
			continue
		}
		out = append(out, refAt{v.StringValue(), ref{addr, attrOf(attr)}})
	}
	return out
}

func (c *converter) resource(r mocks.Resource) (map[string]any, error) {
	block := c.schema.Resources[Types[r.Type]]
	if block == nil {
		return nil, fmt.Errorf("the provider's schema has no %s (a newer provider than the one the schema came from?)", Types[r.Type])
	}
	body := map[string]any{}
	referenced := map[string]bool{}
	for _, k := range sortedKeys(r.Inputs) {
		v := r.Inputs[resource.PropertyKey(k)]
		tf, ok := name(k, block.has)
		if renamed, is := Renames[r.Type][k]; is {
			tf, ok = renamed, block.has(renamed)
		}
		if !ok {
			return nil, fmt.Errorf("input %q has no counterpart in %s's schema", k, Types[r.Type])
		}
		val, err := c.value(v, block, tf, k)
		if err != nil {
			return nil, err
		}
		if val == nil {
			continue
		}
		if c.opts.Mode == Unknown {
			val = c.reference(val, r.PropertyDeps[k], referenced)
		}
		body[tf] = val
	}
	if err := c.autonames(r, block, body); err != nil {
		return nil, err
	}
	if bt, ok := block.BlockTypes["timeouts"]; ok && c.opts.Timeout != "" && body["timeouts"] == nil {
		t := map[string]any{}
		for _, op := range []string{"create", "delete"} {
			if _, ok := bt.Block.Attributes[op]; ok {
				t[op] = c.opts.Timeout
			}
		}
		body["timeouts"] = t
	}
	standIn := strings.HasPrefix(c.addrs[r.URN], "terraform_data."+standInPrefix)
	if standIn {
		body = c.standIn(r, body)
	}
	if deps := c.dependsOn(r, referenced); len(deps) > 0 {
		body["depends_on"] = deps
	}
	if len(r.IgnoreChanges) > 0 && !standIn {
		var ignore []string
		for _, p := range r.IgnoreChanges {
			tf, err := ignorePath(block, p)
			if err != nil {
				return nil, err
			}
			ignore = append(ignore, tf)
		}
		body["lifecycle"] = map[string]any{"ignore_changes": ignore}
	}
	return body, nil
}

// standIn is the terraform_data body of a stand-in: its input is the resource's
// inputs (so references in them still resolve and order it) and the outputs the
// mock gave it, which its output then holds for others to refer to.
func (c *converter) standIn(r mocks.Resource, body map[string]any) map[string]any {
	input := map[string]any{}
	for k, v := range body {
		if k != "timeouts" {
			input[k] = v
		}
	}
	for _, o := range c.refs[r.URN] {
		input[strings.TrimPrefix(o.ref.attr, "output.")] = escape(o.value)
	}
	return map[string]any{"input": input}
}

// ignorePath is the Terraform form of a Pulumi ignoreChanges path: a.b.c becomes
// a[0].b[0].c where a and b are blocks (pulumi-aws flattens a block of at most one).
func ignorePath(block *Block, path string) (string, error) {
	var out []string
	b := block
	for _, seg := range strings.Split(path, ".") {
		if b == nil {
			return "", fmt.Errorf("ignoreChanges %q: %s is inside an attribute", path, seg)
		}
		tf, ok := name(seg, b.has)
		if !ok {
			return "", fmt.Errorf("ignoreChanges %q: no Terraform attribute or block %s", path, seg)
		}
		if bt, isBlock := b.BlockTypes[tf]; isBlock {
			if bt.MaxItems != 1 || bt.NestingMode != "list" {
				return "", fmt.Errorf("ignoreChanges %q: %s is a repeated block", path, seg)
			}
			out = append(out, tf+"[0]")
			b = &bt.Block
			continue
		}
		out = append(out, tf)
		b = nil
	}
	return strings.Join(out, "."), nil
}

// value converts an input named tf in block.
func (c *converter) value(v resource.PropertyValue, block *Block, tf, path string) (any, error) {
	if at, ok := block.Attributes[tf]; ok {
		t, err := parseType(at.Type)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return c.attr(v, t, path)
	}
	return c.block(v, block.BlockTypes[tf], path)
}

// autonames sets what Pulumi names by itself where the program leaves a name out:
// the provider requires some names, and checks the length and characters of all.
func (c *converter) autonames(r mocks.Resource, block *Block, body map[string]any) error {
	for _, k := range sortedKeys(r.Outputs) {
		if _, given := r.Inputs[resource.PropertyKey(k)]; given {
			continue
		}
		tf, ok := name(k, func(n string) bool { _, ok := block.Attributes[n]; return ok })
		if !ok || body[tf] != nil || body[tf+"_prefix"] != nil {
			continue // given, or left to the provider to make from the prefix
		}
		at := block.Attributes[tf]
		if at.Required || (at.Optional && (tf == "name" || strings.HasSuffix(tf, "_name"))) {
			val, err := c.value(r.Outputs[resource.PropertyKey(k)], block, tf, k)
			if err != nil {
				return err
			}
			body[tf] = val
		}
	}
	// pulumi-aws names every resource that has a name the program leaves unset.
	if at, ok := block.Attributes["name"]; ok && (at.Required || at.Optional) && body["name"] == nil && body["name_prefix"] == nil {
		body["name"] = mocks.AutoName(r.Name)
	}
	var missing []string
	for n, at := range block.Attributes {
		if at.Required && body[n] == nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("required %s not set by the program nor named by Pulumi", strings.Join(missing, ", "))
	}
	return nil
}

// dependsOn is what r depends on that its values do not already refer to: the
// explicit dependsOn of the program (a component stands for everything in it) and,
// in Unknown mode, an input built from an output in a way no text shows.
func (c *converter) dependsOn(r mocks.Resource, referenced map[string]bool) []string {
	seen := map[string]bool{}
	var out []string
	var add func(urn string)
	add = func(urn string) {
		if addr, ok := c.addrs[urn]; ok {
			if !seen[addr] && !referenced[addr] && addr != c.addrs[r.URN] {
				seen[addr] = true
				out = append(out, addr)
			}
			return
		}
		for _, kid := range c.kids[urn] {
			add(kid)
		}
	}
	for _, urn := range r.DependsOn {
		add(urn)
	}
	sort.Strings(out)
	return out
}

// reference replaces, in the string values of val, each output value of the
// resources deps names with a reference to it, longest first, and records which
// resources it referred to.
func (c *converter) reference(val any, deps []string, referenced map[string]bool) any {
	var cands []refAt
	for _, urn := range deps {
		cands = append(cands, c.refs[urn]...)
	}
	if len(cands) == 0 {
		return val
	}
	slices.SortStableFunc(cands, func(a, b refAt) int { return len(b.value) - len(a.value) })
	var walk func(v any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case string:
			for _, cand := range cands {
				if strings.Contains(v, cand.value) {
					v = strings.ReplaceAll(v, cand.value, cand.ref.expr())
					referenced[cand.ref.addr] = true
				}
			}
			return v
		case []any:
			for i := range v {
				v[i] = walk(v[i])
			}
			return v
		case map[string]any:
			for k := range v {
				v[k] = walk(v[k])
			}
			return v
		}
		return v
	}
	return walk(val)
}

// plain unwraps a secret or a known output; an unknown value is an error, since
// the mocks answer every output.
func plain(v resource.PropertyValue, path string) (resource.PropertyValue, error) {
	for {
		switch {
		case v.IsSecret():
			v = v.SecretValue().Element
		case v.IsOutput():
			o := v.OutputValue()
			if !o.Known {
				return v, fmt.Errorf("%s: unknown under the mocks", path)
			}
			v = o.Element
		case v.IsComputed():
			return v, fmt.Errorf("%s: unknown under the mocks", path)
		default:
			return v, nil
		}
	}
}

// escape keeps a literal string literal: Terraform's JSON syntax reads ${ and %{ in
// a string as a template (user data scripts have plenty).
func escape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "${", "$${"), "%{", "%%{")
}

// attr converts a value of an attribute of cty type t.
func (c *converter) attr(v resource.PropertyValue, t *ctyType, path string) (any, error) {
	v, err := plain(v, path)
	if err != nil || v.IsNull() {
		return nil, err
	}
	switch {
	case v.IsString():
		return escape(v.StringValue()), nil
	case v.IsNumber():
		return v.NumberValue(), nil
	case v.IsBool():
		return v.BoolValue(), nil
	case v.IsArray():
		elem := t.Elem
		if elem == nil {
			elem = &ctyType{Kind: "dynamic"}
		}
		out := []any{}
		for i, e := range v.ArrayValue() {
			ev, err := c.attr(e, elem, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out = append(out, ev)
		}
		return out, nil
	case v.IsObject():
		out := map[string]any{}
		obj := v.ObjectValue()
		for _, k := range sortedKeys(obj) {
			key, et := k, t.Elem
			switch t.Kind {
			case "object":
				n, ok := name(k, func(n string) bool { _, ok := t.Attrs[n]; return ok })
				if !ok {
					return nil, fmt.Errorf("%s.%s: no such attribute in the provider's schema", path, k)
				}
				key, et = n, t.Attrs[n]
			case "map":
			default:
				et = &ctyType{Kind: "dynamic"}
			}
			ev, err := c.attr(obj[resource.PropertyKey(k)], et, path+"."+k)
			if err != nil {
				return nil, err
			}
			if ev != nil {
				out[key] = ev
			}
		}
		// An object value has every attribute of its type: what the program left
		// out is null (a route table's routes are such objects).
		for n := range t.Attrs {
			if _, set := out[n]; !set && t.Kind == "object" {
				out[n] = nil
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: a %s cannot be written as Terraform JSON", path, v.TypeString())
}

// block converts a nested block: one object, or a list of them.
func (c *converter) block(v resource.PropertyValue, bt BlockType, path string) (any, error) {
	v, err := plain(v, path)
	if err != nil || v.IsNull() {
		return nil, err
	}
	if v.IsArray() {
		out := []any{}
		for i, e := range v.ArrayValue() {
			body, err := c.blockBody(e, &bt.Block, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out = append(out, body)
		}
		return out, nil
	}
	return c.blockBody(v, &bt.Block, path)
}

func (c *converter) blockBody(v resource.PropertyValue, block *Block, path string) (any, error) {
	v, err := plain(v, path)
	if err != nil {
		return nil, err
	}
	if !v.IsObject() {
		return nil, fmt.Errorf("%s: a block must be an object, not a %s", path, v.TypeString())
	}
	out := map[string]any{}
	obj := v.ObjectValue()
	for _, k := range sortedKeys(obj) {
		tf, ok := name(k, block.has)
		if !ok {
			return nil, fmt.Errorf("%s.%s: no such attribute or block in the provider's schema", path, k)
		}
		val, err := c.value(obj[resource.PropertyKey(k)], block, tf, path+"."+k)
		if err != nil {
			return nil, err
		}
		if val != nil {
			out[tf] = val
		}
	}
	return out, nil
}

func sortedKeys(m resource.PropertyMap) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	return keys
}
