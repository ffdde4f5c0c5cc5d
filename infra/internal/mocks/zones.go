package mocks

import (
	"fmt"
	"slices"
	"sort"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// Zone is one availability zone as DescribeAvailabilityZones reports it.
type Zone struct {
	Name, ID, OptInStatus, Type, State string
}

// Zones is how one account sees us-east-1. Names map to ids per account, so the
// mapping is scrambled here as it is for a real account: us-east-1a is use1-az3,
// the zone MSK refuses. A Local Zone the account opted into sorts before every
// regular zone by name.
var Zones = []Zone{
	{"us-east-1-bos-1a", "use1-bos1-az1", "opted-in", "local-zone", "available"},
	{"us-east-1a", "use1-az3", "opt-in-not-required", "availability-zone", "available"},
	{"us-east-1b", "use1-az6", "opt-in-not-required", "availability-zone", "available"},
	{"us-east-1c", "use1-az1", "opt-in-not-required", "availability-zone", "available"},
	{"us-east-1d", "use1-az2", "opt-in-not-required", "availability-zone", "available"},
	{"us-east-1e", "use1-az4", "opt-in-not-required", "availability-zone", "available"},
	{"us-east-1f", "use1-az5", "opt-in-not-required", "availability-zone", "available"},
}

// zonesOf answers for us-east-1 with Zones and for any other region with three
// plain zones.
func zonesOf(region string) []Zone {
	if region == "us-east-1" {
		return Zones
	}
	var out []Zone
	for i, s := range []string{"a", "b", "c"} {
		out = append(out, Zone{region + s, fmt.Sprintf("%s-az%d", region, i+1), "opt-in-not-required", "availability-zone", "available"})
	}
	return out
}

// availabilityZones applies the arguments of aws.getAvailabilityZones the way the
// EC2 API and the provider do: state, the exclusions and the filters the mock
// knows; anything else is an error rather than silently ignored.
func availabilityZones(region string, args resource.PropertyMap) (resource.PropertyMap, error) {
	strs := func(k string) []string {
		var out []string
		if v, ok := args[resource.PropertyKey(k)]; ok && v.IsArray() {
			for _, e := range v.ArrayValue() {
				out = append(out, e.StringValue())
			}
		}
		return out
	}
	state := ""
	if v, ok := args["state"]; ok && v.IsString() {
		state = v.StringValue()
	}
	filters := map[string][]string{}
	if v, ok := args["filters"]; ok && v.IsArray() {
		for _, f := range v.ArrayValue() {
			o := f.ObjectValue()
			var values []string
			for _, e := range o["values"].ArrayValue() {
				values = append(values, e.StringValue())
			}
			filters[o["name"].StringValue()] = values
		}
	}
	field := map[string]func(Zone) string{
		"opt-in-status": func(z Zone) string { return z.OptInStatus },
		"zone-type":     func(z Zone) string { return z.Type },
		"zone-name":     func(z Zone) string { return z.Name },
		"zone-id":       func(z Zone) string { return z.ID },
		"state":         func(z Zone) string { return z.State },
	}
	for name := range filters {
		if field[name] == nil {
			return nil, fmt.Errorf("mock: getAvailabilityZones filter %q is not modelled", name)
		}
	}
	excludeNames, excludeIDs := strs("excludeNames"), strs("excludeZoneIds")
	// The provider sorts the zones by name; names[i] and zoneIds[i] are one zone.
	zones := slices.Clone(zonesOf(region))
	sort.Slice(zones, func(i, j int) bool { return zones[i].Name < zones[j].Name })
	var names, ids []string
	for _, z := range zones {
		if state != "" && z.State != state || slices.Contains(excludeNames, z.Name) || slices.Contains(excludeIDs, z.ID) {
			continue
		}
		keep := true
		for name, values := range filters {
			keep = keep && slices.Contains(values, field[name](z))
		}
		if keep {
			names, ids = append(names, z.Name), append(ids, z.ID)
		}
	}
	return resource.NewPropertyMapFromMap(map[string]any{"names": names, "zoneIds": ids, "id": region}), nil
}
