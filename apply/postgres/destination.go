package postgres

import (
	"context"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/proto"
)

// Destination is the PostgreSQL destination (destination.type: postgres),
// for the registry (apply/destinations).
var Destination apply.Destination = destination{}

type destination struct{}

// Config is the PostgreSQL destination's block:
//
//	destination: { type: postgres, dsn: "postgres://app@10.0.0.9:5432/wh", password_file: /etc/sluice/wh.pw }
type Config struct {
	DSN string `yaml:"dsn,omitempty" json:"dsn,omitempty"`
	// PasswordFile names a file holding the password, read on the node
	// that connects (it never enters Raft); it wins over a password in
	// the DSN.
	PasswordFile string `yaml:"password_file,omitempty" json:"password_file,omitempty"`
}

// ConnDSN is the DSN to connect with (see proto.SourceSpec.ConnDSN).
func (c *Config) ConnDSN() string { return proto.WithPasswordFile(c.DSN, c.PasswordFile) }

// AsSource is the database as a source (proto.TwoWayEndpoint): the
// reverse direction of a two-way task reads it.
func (c *Config) AsSource() proto.SourceSpec {
	return proto.SourceSpec{DSN: c.DSN, PasswordFile: c.PasswordFile}
}

// WithDatabase writes to src's database (proto.TwoWayEndpoint).
func (c *Config) WithDatabase(src proto.SourceSpec) proto.DestinationConfig {
	return &Config{DSN: src.DSN, PasswordFile: src.PasswordFile}
}

// String is the DSN (shown on a redacted spec).
func (c *Config) String() string { return c.DSN }

// Validate checks the block (proto.DestinationConfig).
func (c *Config) Validate(spec *proto.TaskSpec, add proto.AddProblem) {
	if c.DSN == "" {
		add("destination.dsn", "is required (a PostgreSQL URL like postgres://user:pass@host:5432/db)")
	} else if err := proto.CheckPostgresDSN(c.DSN); err != nil {
		add("destination.dsn", "%v", err)
	}
	if c.PasswordFile != "" {
		if err := proto.CheckPasswordFile(c.PasswordFile); err != nil {
			add("destination.password_file", "%v", err)
		}
	}
	for i := range spec.Objects {
		if o, ok := spec.Objects[i].Options.(*ObjectOptions); ok {
			o.validate(i, add)
		}
	}
}

// Secrets is the DSN's password (proto.DestinationConfig).
func (c *Config) Secrets() []proto.SecretField {
	return []proto.SecretField{{Name: "dsn", Value: &c.DSN, Kind: proto.SecretInDSN}}
}

func (destination) Kind() proto.DestinationKind {
	return proto.DestinationKind{
		Type:             "postgres",
		NewConfig:        func() proto.DestinationConfig { return &Config{} },
		NewObjectOptions: func() proto.ObjectOptions { return &ObjectOptions{} },
	}
}

func (destination) Capabilities() apply.Capabilities {
	return apply.Capabilities{SchemaSync: true, RenamesAfterLoad: true, DDL: true, KeepsExistingTables: true, Sequences: true}
}

// configOf is the spec's PostgreSQL block (empty if the spec has none);
// a dialect's block (adbpg, polardb-o) says how it connects as one.
func configOf(spec *proto.TaskSpec) *Config {
	switch cfg := spec.Destination.Config.(type) {
	case *Config:
		return cfg
	case interface{ postgresConfig() *Config }:
		return cfg.postgresConfig()
	}
	return &Config{}
}

// Open opens a sink for one use of a task (sinkOptions).
func (destination) Open(ctx context.Context, spec *proto.TaskSpec, use apply.Use) (apply.TaskSink, error) {
	return Open(ctx, sinkOptions(spec, use))
}

// sinkOptions are a sink's options with the sessions its use needs: an
// apply group writes a table's changes over DefaultShards sessions beside
// one for its bookkeeping; the capture unit's bookkeeping takes two;
// others one.
func sinkOptions(spec *proto.TaskSpec, use apply.Use) Options {
	conns := int32(1)
	switch use.Kind {
	case apply.UseApply:
		conns = DefaultShards + 1
	case apply.UseTask:
		conns = 2
	}
	return Options{
		DSN: configOf(spec).ConnDSN(), MaxConns: conns, Application: "sluice task " + spec.Name + " " + use.String(), Logger: use.Logger,
		TwoWay: twoWayOf(spec), Schema: schemaOptions(spec),
	}
}

// twoWayOf is the sink's two-way settings for one direction of a two-way
// task (nil for a one-way task). Every use gets them: apply and DDL write
// under the direction's origins, and the task's reset drops them.
func twoWayOf(spec *proto.TaskSpec) *TwoWay {
	if spec.TwoWay == nil {
		return nil
	}
	return &TwoWay{Task: spec.ForwardName(), Direction: spec.Direction(), Policy: spec.TwoWay.Policy(), Origin: spec.ApplyOrigin()}
}

// Classify sorts the sessions' errors (pgconfig.Classify).
func (destination) Classify(err error) proto.ErrorKind { return pgconfig.Classify(err) }

// Endpoints is the server, host:port.
func (destination) Endpoints(spec *proto.TaskSpec) []string {
	if e := pgconfig.Endpoint(configOf(spec).DSN); e != "" {
		return []string{e}
	}
	return nil
}
