package postgres

import (
	"fmt"
	"time"

	"github.com/sluicedb/sluice/proto"
)

// ObjectOptions are the PostgreSQL destination's keys of an objects
// entry:
//
//	objects:
//	  - schema: public
//	    partitions: keep          # keep (default) | flatten
//	    refresh: interval         # materialized views: after_full (default) | never | interval
//	    refresh_interval: 10m     # with refresh: interval (default 5m)
type ObjectOptions struct {
	// Partitions: a partitioned table is kept partitioned, with its
	// partitions (keep), or becomes one plain table (flatten).
	Partitions string `yaml:"partitions,omitempty" json:"partitions,omitempty"`
	// Refresh says when the schema's materialized views are populated.
	Refresh         string         `yaml:"refresh,omitempty" json:"refresh,omitempty"`
	RefreshInterval proto.Duration `yaml:"refresh_interval,omitempty" json:"refresh_interval,omitempty"`
}

// Partition settings (objects[].partitions).
const (
	PartitionsKeep    = "keep"
	PartitionsFlatten = "flatten"
)

// DefaultRefreshInterval is refresh: interval's period.
const DefaultRefreshInterval = 5 * time.Minute

func (o *ObjectOptions) validate(i int, add proto.AddProblem) {
	field := fmt.Sprintf("objects[%d]", i)
	switch o.Partitions {
	case "", PartitionsKeep, PartitionsFlatten:
	default:
		add(field+".partitions", "unknown value %q (keep or flatten)", o.Partitions)
	}
	switch o.Refresh {
	case "", RefreshAfterFull, RefreshNever, RefreshInterval:
	default:
		add(field+".refresh", "unknown value %q (after_full, never or interval)", o.Refresh)
	}
	switch d := o.RefreshInterval; {
	case d.Invalid():
		add(field+".refresh_interval", "must be a duration such as 10m")
	case d != 0 && o.Refresh != RefreshInterval:
		add(field+".refresh_interval", "is for refresh: interval")
	case d != 0 && time.Duration(d) < time.Second:
		add(field+".refresh_interval", "must be at least 1s")
	}
}

// objectOptions is the entry's options for a schema (defaults when none).
func objectOptions(spec *proto.TaskSpec, schema string) *ObjectOptions {
	if o, ok := spec.ObjectOptionsFor(schema).(*ObjectOptions); ok && o != nil {
		return o
	}
	return &ObjectOptions{}
}

// schemaOptions are the spec's choices for schema sync.
func schemaOptions(spec *proto.TaskSpec) *SchemaOptions {
	return &SchemaOptions{
		Task:    spec.Name,
		Flatten: func(t proto.TableID) bool { return objectOptions(spec, t.Schema).Partitions == PartitionsFlatten },
		Refresh: func(schema string) string {
			if r := objectOptions(spec, schema).Refresh; r != "" {
				return r
			}
			return RefreshAfterFull
		},
	}
}

// RefreshEvery is the period of refresh: interval (0 for the others).
func (o *ObjectOptions) RefreshEvery() time.Duration {
	if o.Refresh != RefreshInterval {
		return 0
	}
	if o.RefreshInterval > 0 {
		return time.Duration(o.RefreshInterval)
	}
	return DefaultRefreshInterval
}
