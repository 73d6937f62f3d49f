package proto

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"

	"gopkg.in/yaml.v3"
)

// An objects entry holds Sluice's own keys (schema, tables, rename, ...)
// and, beside them, keys of the destination's type (Options). Its own
// keys decode here; the others wait for the destination's type, which is
// a sibling of objects (TaskSpec.bindObjectOptions).

// objectFields is ObjectSpec without its methods, to decode its own keys.
type objectFields ObjectSpec

// ownObjectKeys are the keys ObjectSpec itself decodes.
var ownObjectKeys = yamlFields(reflect.TypeOf(objectFields{}))

// rawOptions keeps an entry's keys that no registered destination type
// decoded (read from JSON), so that they are written back unchanged.
type rawOptions map[string]json.RawMessage

// UnmarshalYAML decodes the entry's own keys and keeps the others.
func (o *ObjectSpec) UnmarshalYAML(n *yaml.Node) error {
	*o = ObjectSpec{}
	n = resolveAlias(n)
	if n.Kind != yaml.MappingNode {
		return n.Decode((*objectFields)(o)) // yaml's own error
	}
	n = flattenMerges(n)
	own := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column}
	extra := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if _, ok := ownObjectKeys[k.Value]; ok {
			own.Content = append(own.Content, k, n.Content[i+1])
		} else {
			extra.Content = append(extra.Content, k, n.Content[i+1])
		}
	}
	if err := own.Decode((*objectFields)(o)); err != nil {
		return err
	}
	if len(extra.Content) > 0 {
		o.extraYAML = extra
	}
	return nil
}

// MarshalYAML writes the entry's own keys, then its options'.
func (o ObjectSpec) MarshalYAML() (any, error) {
	var out yaml.Node
	if err := out.Encode((objectFields)(o)); err != nil {
		return nil, err
	}
	if o.Options != nil {
		if err := appendYAMLKeys(&out, o.Options); err != nil {
			return nil, err
		}
	}
	return &out, nil
}

// MarshalJSON writes the entry's own keys and its options' side by side.
func (o ObjectSpec) MarshalJSON() ([]byte, error) {
	own, err := json.Marshal((objectFields)(o))
	if err != nil {
		return nil, err
	}
	if o.Options == nil {
		return own, nil
	}
	opts, err := json.Marshal(o.Options)
	if err != nil {
		return nil, err
	}
	return joinObjects(own, opts), nil
}

// joinObjects joins two JSON objects' members into one (b's only if it is
// an object: a nil config marshals as null).
func joinObjects(a, b []byte) []byte {
	a, b = bytes.TrimSpace(a), bytes.TrimSpace(b)
	if len(b) <= 2 || b[0] != '{' {
		return a
	}
	if len(a) <= 2 {
		return b
	}
	out := make([]byte, 0, len(a)+len(b))
	out = append(out, a[:len(a)-1]...)
	out = append(out, ',')
	return append(out, b[1:]...)
}

// UnmarshalJSON decodes the entry's own keys and keeps the others for the
// destination's type, strictly: TaskSpec.UnmarshalJSON decodes them.
func (o *ObjectSpec) UnmarshalJSON(b []byte) error {
	*o = ObjectSpec{}
	extra, err := DecodeOwnKeys(b, func(k string) bool { _, ok := ownObjectKeys[k]; return ok }, (*objectFields)(o), decodeJSONStrict)
	if err != nil {
		return err
	}
	if len(extra) > 0 {
		o.extraJSON = extra
	}
	return nil
}

// DecodeOwnKeys decodes the keys of the JSON object b that own says are
// its own into out, with decode (a strict decoder), and returns the
// others as they are: an objects entry holds Sluice's keys and its
// destination's side by side.
func DecodeOwnKeys(b []byte, own func(key string) bool, out any, decode func([]byte, any) error) (map[string]json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, err
	}
	extra := map[string]json.RawMessage{}
	for k, v := range fields {
		if !own(k) {
			extra[k] = v
			delete(fields, k)
		}
	}
	mine, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	return extra, decode(mine, out)
}

// taskFields is TaskSpec without its methods.
type taskFields TaskSpec

// UnmarshalJSON decodes a spec written by json.Marshal (the replicated
// state, the API), then its objects' options by the destination's type.
func (s *TaskSpec) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode((*taskFields)(s)); err != nil {
		return err
	}
	return s.BindObjectOptions()
}

// BindObjectOptions decodes the objects entries' destination keys read
// from JSON but not decoded yet (objects decoded apart from their spec,
// as in a Raft command), by the spec's destination type.
func (s *TaskSpec) BindObjectOptions() error {
	s.bindObjectOptions()
	for _, o := range s.Objects {
		if len(o.problems) > 0 {
			return o.problems
		}
	}
	return nil
}

// Clone deep-copies a spec. TestCloneDeep fills every field by
// reflection, so a field added to TaskSpec and not copied here fails it.
func (s *TaskSpec) Clone() TaskSpec {
	c := *s
	c.Destination = s.Destination.clone()
	c.Sync.Schema = clonePtr(s.Sync.Schema)
	c.Sync.Full = clonePtr(s.Sync.Full)
	c.Sync.Incremental = clonePtr(s.Sync.Incremental)
	c.Sync.DDL = clonePtr(s.Sync.DDL)
	c.Sync.DDLOperations = slices.Clone(s.Sync.DDLOperations)
	if s.Objects != nil {
		c.Objects = make([]ObjectSpec, len(s.Objects))
		for i := range s.Objects {
			c.Objects[i] = s.Objects[i].clone(s.Destination.Type)
		}
	}
	c.Throttle = s.Throttle.Clone()
	c.PerTableMetrics = clonePtr(s.PerTableMetrics)
	if s.TwoWay != nil {
		tw := *s.TwoWay
		c.TwoWay = &tw
	}
	if s.Alerts != nil {
		al := *s.Alerts
		al.OnFailure = clonePtr(s.Alerts.OnFailure)
		al.Latency = clonePtr(s.Alerts.Latency)
		al.OnDifferences = clonePtr(s.Alerts.OnDifferences)
		c.Alerts = &al
	}
	c.Verify = s.Verify.clone()
	return c
}

func (o *ObjectSpec) clone(destType string) ObjectSpec {
	c := *o
	c.Tables = slices.Clone(o.Tables)
	c.Sequences = slices.Clone(o.Sequences)
	c.Rename = maps.Clone(o.Rename)
	c.Filter = maps.Clone(o.Filter)
	c.Operations = cloneLists(o.Operations)
	c.Columns = cloneLists(o.Columns)
	c.Transform = cloneExprs(o.Transform)
	c.AddColumns = cloneExprs(o.AddColumns)
	c.problems = slices.Clone(o.problems)
	c.extraJSON = maps.Clone(o.extraJSON)
	switch opts := o.Options.(type) {
	case nil:
	case rawOptions:
		c.Options = maps.Clone(opts)
	default:
		kind, ok := destinationKind(destType)
		if !ok || kind.NewObjectOptions == nil {
			break
		}
		fresh := kind.NewObjectOptions()
		if err := cloneJSON(opts, fresh); err != nil {
			panic(fmt.Sprintf("proto: clone the %s destination's object options: %v", destType, err))
		}
		c.Options = fresh
	}
	return c
}

// Clone deep-copies a throttle (nil stays nil).
func (t *ThrottleSpec) Clone() *ThrottleSpec {
	if t == nil {
		return nil
	}
	th := *t
	th.Full = clonePtr(t.Full)
	th.Incremental = clonePtr(t.Incremental)
	return &th
}

// cloneExprs deep-copies a table -> column -> expression map.
func cloneExprs(m map[string]map[string]string) map[string]map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]map[string]string, len(m))
	for k, v := range m {
		out[k] = maps.Clone(v)
	}
	return out
}

func cloneLists(m map[string][]string) map[string][]string {
	if m == nil {
		return nil
	}
	c := make(map[string][]string, len(m))
	for k, v := range m {
		c[k] = slices.Clone(v)
	}
	return c
}

// clonePtr copies what p points to (of a type without pointers).
func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// ObjectOptionsFor returns the options of the objects entry of schema
// (nil if none), for a destination to read its keys.
func (s *TaskSpec) ObjectOptionsFor(schema string) ObjectOptions {
	for _, o := range s.Objects {
		if o.Schema == schema {
			return o.Options
		}
	}
	return nil
}
