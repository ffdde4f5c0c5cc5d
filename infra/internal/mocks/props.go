package mocks

import "github.com/pulumi/pulumi/sdk/v3/go/common/resource"

// Get walks nested objects, unwrapping secrets and outputs.
func Get(in resource.PropertyMap, path ...string) (resource.PropertyValue, bool) {
	v := resource.NewObjectProperty(in)
	for _, k := range path {
		v = unwrap(v)
		if !v.IsObject() {
			return resource.PropertyValue{}, false
		}
		next, ok := v.ObjectValue()[resource.PropertyKey(k)]
		if !ok {
			return resource.PropertyValue{}, false
		}
		v = next
	}
	return unwrap(v), true
}

func unwrap(v resource.PropertyValue) resource.PropertyValue {
	for {
		switch {
		case v.IsSecret():
			v = v.SecretValue().Element
		case v.IsOutput():
			v = v.OutputValue().Element
		default:
			return v
		}
	}
}

// Str is the string at path, or "".
func Str(in resource.PropertyMap, path ...string) string {
	if v, ok := Get(in, path...); ok && v.IsString() {
		return v.StringValue()
	}
	return ""
}

// Num is the number at path, or 0.
func Num(in resource.PropertyMap, path ...string) float64 {
	if v, ok := Get(in, path...); ok && v.IsNumber() {
		return v.NumberValue()
	}
	return 0
}

// Bool is the bool at path, or false.
func Bool(in resource.PropertyMap, path ...string) bool {
	if v, ok := Get(in, path...); ok && v.IsBool() {
		return v.BoolValue()
	}
	return false
}

// List is the array at path, or nil.
func List(in resource.PropertyMap, path ...string) []resource.PropertyValue {
	if v, ok := Get(in, path...); ok && v.IsArray() {
		return v.ArrayValue()
	}
	return nil
}
