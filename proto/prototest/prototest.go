// Package prototest registers a destination type, "test", for the tests of
// packages that decode task specs but stand below the destination
// registry (proto, coordinator, internal/secret): importing it is enough.
// Its block has a DSN and a password, both secrets, and its objects
// entries take a "tags" map, so specs of it exercise every path a real
// destination's do.
package prototest

import (
	"fmt"

	"github.com/sluicedb/sluice/proto"
)

// Type is the test destination's type.
const Type = "test"

// Config is the test destination's block.
type Config struct {
	DSN      string `yaml:"dsn,omitempty" json:"dsn,omitempty"`
	Password string `yaml:"password,omitempty" json:"password,omitempty"`
	// Limit stands for a setting with a bounded value.
	Limit int `yaml:"limit,omitempty" json:"limit,omitempty"`
}

// ObjectOptions are the test destination's keys of an objects entry.
type ObjectOptions struct {
	Tags map[string]string `yaml:"tags,omitempty" json:"tags,omitempty"`
}

// Validate requires a DSN and a limit of at most 10.
func (c *Config) Validate(spec *proto.TaskSpec, add proto.AddProblem) {
	if c.DSN == "" {
		add("destination.dsn", "is required")
	}
	if c.Limit < 0 || c.Limit > 10 {
		add("destination.limit", "must be between 0 and 10")
	}
	for i, o := range spec.Objects {
		if opts, ok := o.Options.(*ObjectOptions); ok {
			for k, v := range opts.Tags {
				if v == "" {
					add(fmt.Sprintf("objects[%d].tags.%s", i, k), "is empty")
				}
			}
		}
	}
}

// Secrets are the DSN's password and the password.
func (c *Config) Secrets() []proto.SecretField {
	return []proto.SecretField{
		{Name: "dsn", Value: &c.DSN, Kind: proto.SecretInDSN},
		{Name: "password", Value: &c.Password, Kind: proto.SecretValue},
	}
}

// String is the DSN.
func (c *Config) String() string { return c.DSN }

// AsSource reads the DSN back (proto.TwoWayEndpoint), so specs of the
// test type can be two-way.
func (c *Config) AsSource() proto.SourceSpec { return proto.SourceSpec{DSN: c.DSN} }

// WithDatabase writes to src's database (proto.TwoWayEndpoint).
func (c *Config) WithDatabase(src proto.SourceSpec) proto.DestinationConfig {
	return &Config{DSN: src.DSN, Limit: c.Limit}
}

func init() {
	proto.RegisterDestinationKind(proto.DestinationKind{
		Type:             Type,
		NewConfig:        func() proto.DestinationConfig { return &Config{} },
		NewObjectOptions: func() proto.ObjectOptions { return &ObjectOptions{} },
	})
}

// Destination is a test destination writing to dsn.
func Destination(dsn string) proto.DestinationSpec {
	return proto.NewDestination(Type, &Config{DSN: dsn})
}

// ConfigOf returns a spec's test config (nil if it has none).
func ConfigOf(spec *proto.TaskSpec) *Config {
	c, _ := spec.Destination.Config.(*Config)
	return c
}
