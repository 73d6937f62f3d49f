package proto

import (
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// yaml.v3 refuses unknown keys only in a Decoder with KnownFields, which a
// custom UnmarshalYAML cannot use for its node: the blocks whose keys
// depend on the destination's type are checked here instead, against the
// yaml tags of the struct they decode into.

var yamlUnmarshaler = reflect.TypeFor[yaml.Unmarshaler]()

// unknownKeys calls report for every mapping key in n that the type t
// (a struct, possibly behind pointers, slices and maps) has no field for.
func unknownKeys(n *yaml.Node, t reflect.Type, path string, report func(field string, line int)) {
	n = resolveAlias(n)
	if n == nil || t == nil {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(yamlUnmarshaler) {
		return // it checks its own keys
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return
		}
		fields := yamlFields(t)
		n = flattenMerges(n)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				report(joinField(path, k.Value), k.Line)
				continue
			}
			unknownKeys(v, ft, joinField(path, k.Value), report)
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, c := range n.Content {
			unknownKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), report)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		n = flattenMerges(n)
		for i := 0; i+1 < len(n.Content); i += 2 {
			unknownKeys(n.Content[i+1], t.Elem(), joinField(path, n.Content[i].Value), report)
		}
	}
}

func joinField(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlFields maps the keys a struct decodes to the fields' types, inline
// structs included.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(","+opts+",", ",inline,") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range yamlFields(ft) {
					out[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

// resolveAlias follows an alias (*anchor) to the node it names.
func resolveAlias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		return resolveAlias(n.Content[0])
	}
	return n
}

// flattenMerges returns a mapping with its merge keys (<<: *anchor)
// replaced by the keys they bring, the mapping's own keys winning, as
// YAML merges them.
func flattenMerges(n *yaml.Node) *yaml.Node {
	hasMerge := false
	for i := 0; i+1 < len(n.Content); i += 2 {
		if isMergeKey(n.Content[i]) {
			hasMerge = true
			break
		}
	}
	if !hasMerge {
		return n
	}
	out := *n
	out.Content = nil
	own := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !isMergeKey(n.Content[i]) {
			own[n.Content[i].Value] = true
		}
	}
	seen := map[string]bool{}
	add := func(k, v *yaml.Node, merged bool) {
		if merged && (own[k.Value] || seen[k.Value]) {
			return
		}
		seen[k.Value] = true
		out.Content = append(out.Content, k, v)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !isMergeKey(k) {
			add(k, v, false)
			continue
		}
		v = resolveAlias(v)
		sources := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			sources = v.Content
		}
		for _, src := range sources {
			src = resolveAlias(src)
			if src.Kind != yaml.MappingNode {
				continue
			}
			src = flattenMerges(src)
			for j := 0; j+1 < len(src.Content); j += 2 {
				add(src.Content[j], src.Content[j+1], true)
			}
		}
	}
	return &out
}

func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "!!merge" || k.Tag == "" && k.Style == 0)
}
