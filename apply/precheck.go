package apply

import (
	"context"
	"fmt"
	"strings"

	"github.com/sluicedb/sluice/proto"
)

// Precheck checks a task's destination (the registry's Precheck of its
// type), after the source's checks found src.
func Precheck(ctx context.Context, spec *proto.TaskSpec, src *proto.SourceFacts, c *proto.Checks) {
	d, err := Lookup(spec.Destination.Type)
	if err != nil {
		c.Fail("destination.type", err.Error(), "")
		return
	}
	d.Precheck(ctx, spec, src, c)
}

// CheckNaming checks the names tables get at the destination: no two
// tables get one name, and none lands in schema sluice (Sluice's own
// tables) or a pg_ schema.
func CheckNaming(spec *proto.TaskSpec, tables []proto.TableID, c *proto.Checks) {
	if len(tables) == 0 {
		return
	}
	names := spec.Names()
	var clash []proto.TableID
	seen := map[string]proto.TableID{}
	var twice []string
	for _, t := range tables {
		target := names.Table(t)
		if target.Schema == proto.ReservedSchema || strings.HasPrefix(target.Schema, "pg_") {
			clash = append(clash, target)
		}
		if prev, ok := seen[target.Key()]; ok {
			twice = append(twice, fmt.Sprintf("%s and %s both become %s", prev, t, target))
		}
		seen[target.Key()] = t
	}
	if len(twice) > 0 {
		c.Fail("destination.naming", "two tables get one name at the destination: "+strings.Join(twice, "; "), "change rename or name_case so that every table keeps a name of its own")
		return
	}
	if len(clash) > 0 {
		c.Fail("destination.naming", "schema sluice holds Sluice's own tables at the destination (positions, heartbeats): "+JoinTables(clash)+" cannot be synced into it",
			"leave schema sluice out of objects")
		return
	}
	c.Pass("destination.naming", "every table name is free to use at the destination")
}

// JoinTables lists tables for a message.
func JoinTables(ts []proto.TableID) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = t.String()
	}
	return strings.Join(s, ", ")
}
