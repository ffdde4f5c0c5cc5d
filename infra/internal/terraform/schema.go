package terraform

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode"
)

// Schema is what `terraform providers schema -json` says of the resource types in
// Types: the names and shapes the conversion checks every property against.
type Schema struct {
	Resources map[string]*Block
}

// Block is one resource's (or nested block's) attributes and blocks.
type Block struct {
	Attributes map[string]Attribute `json:"attributes"`
	BlockTypes map[string]BlockType `json:"block_types"`
}

// Attribute is one attribute; Type is its cty type in JSON ("string",
// ["list","string"], ["object",{...}]).
type Attribute struct {
	Type     json.RawMessage `json:"type"`
	Required bool            `json:"required"`
	Optional bool            `json:"optional"`
	Computed bool            `json:"computed"`
}

// BlockType is a nested block.
type BlockType struct {
	NestingMode string `json:"nesting_mode"`
	Block       Block  `json:"block"`
	MaxItems    int    `json:"max_items"`
}

// ParseSchema reads the output of `terraform providers schema -json` and keeps the
// resource types in Types. A type the providers do not have is an error: the table
// names a type the provider version does not know.
func ParseSchema(raw []byte) (*Schema, error) {
	var doc struct {
		ProviderSchemas map[string]struct {
			ResourceSchemas map[string]struct {
				Block Block `json:"block"`
			} `json:"resource_schemas"`
		} `json:"provider_schemas"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("provider schema: %w", err)
	}
	all := map[string]*Block{}
	for _, p := range doc.ProviderSchemas {
		for typ, rs := range p.ResourceSchemas {
			all[typ] = &rs.Block
		}
	}
	s := &Schema{Resources: map[string]*Block{}}
	var missing []string
	for _, typ := range Types {
		b, ok := all[typ]
		if !ok {
			missing = append(missing, typ)
			continue
		}
		s.Resources[typ] = b
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("provider schema has no resource type %s", strings.Join(missing, ", "))
	}
	return s, nil
}

// snake is the Terraform name a Pulumi property name comes from: pulumi-aws names
// a property by camel-casing the provider's snake_case one.
func snake(camel string) string {
	var b strings.Builder
	for i, r := range camel {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// singulars are the names a pluralised Pulumi name may come from: pulumi-aws
// pluralises a repeated block (route → routes, default_action → defaultActions,
// metric_query → metricQueries).
func singulars(name string) []string {
	var out []string
	if s, ok := strings.CutSuffix(name, "ies"); ok {
		out = append(out, s+"y")
	}
	if s, ok := strings.CutSuffix(name, "es"); ok {
		out = append(out, s)
	}
	if s, ok := strings.CutSuffix(name, "s"); ok {
		out = append(out, s)
	}
	return out
}

// name finds the Terraform name of a Pulumi property among the names a block or
// object has (has says whether one exists).
func name(pulumi string, has func(string) bool) (string, bool) {
	s := snake(pulumi)
	if has(s) {
		return s, true
	}
	for _, c := range singulars(s) {
		if has(c) {
			return c, true
		}
	}
	return "", false
}

func (b *Block) has(n string) bool {
	if _, ok := b.Attributes[n]; ok {
		return true
	}
	_, ok := b.BlockTypes[n]
	return ok
}

// ctyType is a decoded cty type: Kind is "string", "number", "bool", "dynamic",
// "list", "set", "map", "object" or "tuple".
type ctyType struct {
	Kind  string
	Elem  *ctyType            // list, set, map
	Attrs map[string]*ctyType // object
}

func parseType(raw json.RawMessage) (*ctyType, error) {
	var prim string
	if err := json.Unmarshal(raw, &prim); err == nil {
		return &ctyType{Kind: prim}, nil
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(raw, &parts); err != nil || len(parts) != 2 {
		return nil, fmt.Errorf("cty type %s: not a type", raw)
	}
	var kind string
	if err := json.Unmarshal(parts[0], &kind); err != nil {
		return nil, fmt.Errorf("cty type %s: %w", raw, err)
	}
	t := &ctyType{Kind: kind}
	switch kind {
	case "list", "set", "map":
		elem, err := parseType(parts[1])
		if err != nil {
			return nil, err
		}
		t.Elem = elem
	case "object":
		var attrs map[string]json.RawMessage
		if err := json.Unmarshal(parts[1], &attrs); err != nil {
			return nil, fmt.Errorf("cty type %s: %w", raw, err)
		}
		t.Attrs = map[string]*ctyType{}
		for k, v := range attrs {
			at, err := parseType(v)
			if err != nil {
				return nil, err
			}
			t.Attrs[k] = at
		}
	default:
		t.Kind = "dynamic" // a tuple or anything newer: passed through as it is
	}
	return t, nil
}
