package proto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// The destination: block of a task spec holds its type and the keys of
// that type's own, side by side:
//
//	destination: { type: kafka, brokers: [h:9092], acks: all }
//
// Each destination package (apply/postgres, apply/kafka, ...) owns its
// keys: a struct with yaml and json tags that it registers here, through
// the destination registry in apply, so that the block is decoded into it,
// strictly, and validated by it. proto itself names no destination type.

// DestinationConfig is a destination type's own keys, decoded. A
// destination package implements it on a pointer to its config struct.
type DestinationConfig interface {
	// Validate reports what is wrong with the block, and with the rest
	// of the spec as far as this destination is concerned (its keys in
	// objects, the settings it cannot honour), naming each field in full
	// ("destination.acks", "objects[0].topics.orders").
	Validate(spec *TaskSpec, add AddProblem)
	// Secrets points at the fields that may hold secrets: they are sealed
	// before the spec enters Raft, masked wherever the spec is shown and
	// scrubbed from logs. The destination resolves references in them
	// (${env:...}, ${file:...}, sealed values) where it connects.
	Secrets() []SecretField
}

// ObjectOptions are a destination type's own keys of an objects entry
// (Kafka's topics, partitions and partition_key): a pointer to a struct
// with yaml and json tags, validated by the DestinationConfig.
type ObjectOptions interface{}

// AddProblem reports a problem of a spec's field.
type AddProblem func(field, format string, args ...any)

// SecretKind says how a secret sits in its field.
type SecretKind uint8

const (
	// SecretInDSN: a DSN or URL whose password (and password-like query
	// parameters) are secrets; the rest of it is not.
	SecretInDSN SecretKind = iota + 1
	// SecretValue: the whole value is the secret.
	SecretValue
)

// SecretField is a field of a destination block that may hold a secret.
type SecretField struct {
	// Name is the field's key path under destination ("dsn",
	// "sasl.password"): it names the field in Raft commands that reseal
	// secrets, so it never changes.
	Name  string
	Value *string
	Kind  SecretKind
}

// DestinationKind is what a destination type registers of its config.
type DestinationKind struct {
	// Type is the name users write in destination.type.
	Type string
	// NewConfig returns an empty config to decode the block into.
	NewConfig func() DestinationConfig
	// NewObjectOptions returns empty options to decode an objects
	// entry's keys of this destination into; nil: it has none.
	NewObjectOptions func() ObjectOptions
}

var (
	kindsMu sync.RWMutex
	kinds   = map[string]DestinationKind{}
)

// RegisterDestinationKind makes a destination type's config known to the
// spec decoder. apply.Register calls it; registering a type twice panics.
func RegisterDestinationKind(k DestinationKind) {
	if k.Type == "" || k.NewConfig == nil {
		panic("proto: a destination kind needs a type and NewConfig")
	}
	kindsMu.Lock()
	defer kindsMu.Unlock()
	if _, dup := kinds[k.Type]; dup {
		panic("proto: destination type " + k.Type + " registered twice")
	}
	kinds[k.Type] = k
}

// DestinationTypes lists the registered destination types, sorted.
func DestinationTypes() []string {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	return slices.Sorted(maps.Keys(kinds))
}

func destinationKind(typ string) (DestinationKind, bool) {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	k, ok := kinds[typ]
	return k, ok
}

// DestinationSpec is where changes go: the type and its own keys.
type DestinationSpec struct {
	Type string
	// Config is the block's other keys, decoded by the destination type
	// (nil when it has none set, or the type is unknown).
	Config DestinationConfig
	// problems found while decoding, reported by Validate with the rest.
	problems SpecErrors
}

// String is the type and where it writes ("postgres postgres://app@h/wh",
// "kafka 10.0.0.1:9092"), as its config describes itself (fmt.Stringer);
// call it on a redacted spec.
func (d DestinationSpec) String() string {
	if s, ok := d.Config.(fmt.Stringer); ok {
		if where := s.String(); where != "" {
			return d.Type + " " + where
		}
	}
	return d.Type
}

// NewDestination returns a destination of a registered type with its
// config set; tests and tools build specs with it.
func NewDestination(typ string, cfg DestinationConfig) DestinationSpec {
	return DestinationSpec{Type: typ, Config: cfg}
}

// UnmarshalYAML reads the type, then decodes the other keys into the
// type's config, strictly: unknown keys and bad values are kept as
// problems that Validate reports, with their lines, beside every other
// problem of the spec.
func (d *DestinationSpec) UnmarshalYAML(n *yaml.Node) error {
	*d = DestinationSpec{}
	n = resolveAlias(n)
	if n.Kind != yaml.MappingNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: destination must be a mapping (type: ..., and the type's keys)", n.Line)}}
	}
	n = flattenMerges(n)
	rest := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "type" {
			if err := v.Decode(&d.Type); err != nil {
				d.problems = append(d.problems, &FieldError{Field: "destination.type", Msg: fmt.Sprintf("must be a name (line %d)", v.Line)})
			}
			continue
		}
		rest.Content = append(rest.Content, k, v)
	}
	kind, ok := destinationKind(d.Type)
	if !ok {
		return nil // Validate names the type as unknown
	}
	cfg := kind.NewConfig()
	d.problems = append(d.problems, decodeStrict(rest, cfg, "destination")...)
	d.Config = cfg
	return nil
}

// MarshalYAML writes the type first, then the config's keys.
func (d DestinationSpec) MarshalYAML() (any, error) {
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	out.Content = append(out.Content, scalarNode("type"), scalarNode(d.Type))
	if d.Config != nil {
		if err := appendYAMLKeys(out, d.Config); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// appendYAMLKeys appends the keys (and values) of v's YAML mapping to
// the mapping out.
func appendYAMLKeys(out *yaml.Node, v any) error {
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		return err
	}
	if n.Kind == yaml.MappingNode {
		out.Content = append(out.Content, n.Content...)
	}
	return nil
}

func scalarNode(v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
}

// MarshalJSON writes {"type": ..., the config's keys...}.
func (d DestinationSpec) MarshalJSON() ([]byte, error) {
	typ, err := json.Marshal(struct {
		Type string `json:"type"`
	}{d.Type})
	if err != nil || d.Config == nil {
		return typ, err
	}
	cfg, err := json.Marshal(d.Config)
	if err != nil {
		return nil, err
	}
	return joinObjects(typ, cfg), nil
}

// UnmarshalJSON reads what MarshalJSON wrote (the replicated state and the
// API store specs this way), strictly: a key the type's config does not
// know fails. A type this build does not know keeps its keys as they are.
func (d *DestinationSpec) UnmarshalJSON(b []byte) error {
	*d = DestinationSpec{}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return err
	}
	if raw, ok := fields["type"]; ok {
		if err := json.Unmarshal(raw, &d.Type); err != nil {
			return fmt.Errorf("destination.type: %w", err)
		}
		delete(fields, "type")
	}
	kind, ok := destinationKind(d.Type)
	if !ok {
		if len(fields) > 0 {
			d.Config = rawConfig(fields)
		}
		return nil
	}
	rest, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	cfg := kind.NewConfig()
	if err := decodeJSONStrict(rest, cfg); err != nil {
		return fmt.Errorf("destination (%s): %w", d.Type, err)
	}
	d.Config = cfg
	return nil
}

// rawConfig keeps the keys of a destination type this build does not
// know, so that what it read is written back unchanged.
type rawConfig map[string]json.RawMessage

func (rawConfig) Validate(*TaskSpec, AddProblem) {}
func (rawConfig) Secrets() []SecretField         { return nil }

// decodeJSONStrict decodes b into out, refusing unknown keys.
func decodeJSONStrict(b []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(out)
}

// clone deep-copies the destination (its config through its JSON form,
// which every config has, so no destination writes a Clone of its own).
func (d DestinationSpec) clone() DestinationSpec {
	c := DestinationSpec{Type: d.Type, problems: slices.Clone(d.problems)}
	switch cfg := d.Config.(type) {
	case nil:
	case rawConfig:
		c.Config = rawConfig(maps.Clone(cfg))
	default:
		kind, ok := destinationKind(d.Type)
		if !ok {
			c.Config = cfg
			break
		}
		fresh := kind.NewConfig()
		if err := cloneJSON(cfg, fresh); err != nil {
			panic(fmt.Sprintf("proto: clone the %s destination's config: %v", d.Type, err))
		}
		c.Config = fresh
	}
	return c
}

// cloneJSON copies from into to (a fresh value of the same type) through
// their JSON form.
func cloneJSON(from, to any) error {
	b, err := json.Marshal(from)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, to)
}

// redacted masks the destination's secrets (on a clone).
func (d DestinationSpec) redacted() DestinationSpec {
	c := d.clone()
	if c.Config == nil {
		return c
	}
	for _, f := range c.Config.Secrets() {
		switch {
		case *f.Value == "":
		case f.Kind == SecretInDSN:
			*f.Value = RedactDSN(*f.Value)
		default:
			*f.Value = "xxxxx"
		}
	}
	return c
}

// validate reports the decoding problems, the type, and then what the
// type's config finds.
func (d *DestinationSpec) validate(s *TaskSpec, add AddProblem) {
	for _, p := range d.problems {
		add(p.Field, "%s", p.Msg)
	}
	if d.Type == "" {
		add("destination.type", "is required (one of: %s)", strings.Join(DestinationTypes(), ", "))
		return
	}
	if _, ok := destinationKind(d.Type); !ok {
		add("destination.type", "unknown type %q (one of: %s)", d.Type, strings.Join(DestinationTypes(), ", "))
		return
	}
	if d.Config == nil {
		kind, _ := destinationKind(d.Type)
		d.Config = kind.NewConfig()
	}
	d.Config.Validate(s, add)
}

// bindObjectOptions decodes each objects entry's keys that are not
// Sluice's own into the destination's object options, once the
// destination's type is known (it comes from a sibling of objects).
func (s *TaskSpec) bindObjectOptions() {
	kind, known := destinationKind(s.Destination.Type)
	for i := range s.Objects {
		o := &s.Objects[i]
		field := fmt.Sprintf("objects[%d]", i)
		switch {
		case o.extraYAML != nil:
			extra := o.extraYAML
			o.extraYAML = nil
			if known && kind.NewObjectOptions != nil {
				opts := kind.NewObjectOptions()
				for _, p := range decodeStrict(extra, opts, field) {
					if strings.HasPrefix(p.Msg, "unknown field") {
						p.Msg += notForType(s.Destination.Type, known)
					}
					o.problems = append(o.problems, p)
				}
				o.Options = opts
				continue
			}
			for j := 0; j+1 < len(extra.Content); j += 2 {
				k := extra.Content[j]
				o.problems = append(o.problems, &FieldError{Field: field + "." + k.Value, Msg: fmt.Sprintf("unknown field (line %d)%s", k.Line, notForType(s.Destination.Type, known))})
			}
		case o.extraJSON != nil:
			extra := o.extraJSON
			o.extraJSON = nil
			if !known || kind.NewObjectOptions == nil {
				o.Options = extra // kept as read
				continue
			}
			b, _ := json.Marshal(extra)
			opts := kind.NewObjectOptions()
			if err := decodeJSONStrict(b, opts); err != nil {
				o.problems = append(o.problems, &FieldError{Field: field, Msg: err.Error()})
			}
			o.Options = opts
		}
	}
}

func notForType(typ string, known bool) string {
	if !known || typ == "" {
		return ""
	}
	return ": not a key of a " + typ + " destination"
}

// decodeStrict decodes n into out (a pointer to a struct) and returns its
// problems, each naming its field under path: keys out does not have,
// with their lines, and values of the wrong kind.
func decodeStrict(n *yaml.Node, out any, path string) SpecErrors {
	var errs SpecErrors
	if err := n.Decode(out); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, m := range te.Errors {
				errs = append(errs, &FieldError{Field: path, Msg: m})
			}
		} else {
			errs = append(errs, &FieldError{Field: path, Msg: err.Error()})
		}
	}
	unknownKeys(n, reflect.TypeOf(out), path, func(field string, line int) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf("unknown field (line %d)", line)})
	})
	return errs
}
