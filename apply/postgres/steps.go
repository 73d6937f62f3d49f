package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/proto"
)

// Schema sync as a list of statements: ApplyPreData and ApplyPostData run
// them, and a task's plan (Plan) prints them, so what is printed is what
// runs.

// ddlStep is one statement of schema sync.
type ddlStep struct {
	What string
	SQL  string
	// exists, if set, says the object is at the destination already: a
	// statement that cannot be run twice is skipped then.
	exists func(ctx context.Context, conn *pgx.Conn) (bool, error)
	// objects stands for the working-copy objects of its phase
	// (createObjects), created in passes; preData says which phase.
	objects, preData bool
	// then, if set, runs after the statement, or when the object was
	// there already.
	then func(ctx context.Context, conn *pgx.Conn) error
}

func step(what, sql string) ddlStep { return ddlStep{What: what, SQL: sql} }

// preDataSteps are the statements before the load.
func preDataSteps(s *proto.Schema, o *SchemaOptions) []ddlStep {
	var out []ddlStep
	for _, name := range s.Schemas {
		out = append(out, step("create schema "+quoteDDLIdent(name), "CREATE SCHEMA IF NOT EXISTS "+quoteDDLIdent(name)))
	}
	for _, name := range s.Extensions {
		// CASCADE installs the extensions it requires (earthdistance
		// needs cube) without us ordering them.
		stmt := "CREATE EXTENSION IF NOT EXISTS " + quoteDDLIdent(name)
		if schema := s.ExtensionSchemas[name]; schema != "" {
			stmt += " WITH SCHEMA " + quoteDDLIdent(schema)
		}
		out = append(out, step("create extension "+quoteDDLIdent(name), stmt+" CASCADE"))
	}
	// Sequences before types: a domain's default may call nextval.
	for _, seq := range s.Sequences {
		if seq.DDL != "" { // an identity sequence: its table makes it
			out = append(out, step("create sequence "+ddlObjectName(seq.Schema, seq.Name), seq.DDL))
		}
	}
	for _, t := range s.Types {
		st := step("create type "+ddlObjectName(t.Schema, t.Name), t.DDL)
		st.exists = func(ctx context.Context, conn *pgx.Conn) (bool, error) {
			var exists bool
			err := conn.QueryRow(ctx, `
				SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
				               WHERE n.nspname = $1 AND t.typname = $2)`, t.Schema, t.Name).Scan(&exists)
			return exists, err
		}
		out = append(out, st)
	}
	// Routines before the tables whose defaults, checks and indexes may
	// call them (those that need a table wait for the phase after).
	out = append(out, ddlStep{What: "create routines and operators", objects: true, preData: true})
	for i := range s.Tables {
		t := &s.Tables[i]
		keep := t.PartitionBy != "" && !o.flatten(t.ID)
		sql := createTableSQL(t.ID, t)
		if keep {
			sql += " PARTITION BY " + t.PartitionBy
		}
		out = append(out, step("create table "+t.ID.String(), sql))
		if keep {
			for _, p := range t.Partitions {
				sql := "CREATE TABLE IF NOT EXISTS " + ddlTableIdent(p.ID) + " PARTITION OF " + ddlTableIdent(p.Parent) + " " + p.Bound
				if p.PartitionBy != "" {
					sql += " PARTITION BY " + p.PartitionBy
				}
				out = append(out, step("create partition "+p.ID.String()+" of "+p.Parent.String(), sql))
			}
		}
		// USING INDEX waits for the index, after the load.
		if t.ReplicaIdentity == proto.IdentityFull || t.ReplicaIdentity == proto.IdentityNothing {
			out = append(out, step("set replica identity of "+t.ID.String(), "ALTER TABLE "+ddlTableIdent(t.ID)+" REPLICA IDENTITY "+replicaIdentitySQL(t)))
		}
	}
	// Linking sequences to their columns now, not only when values are
	// synced, makes a dropped destination table take its sequence along.
	return o.dialectSteps(s, append(out, ownedBySteps(s)...))
}

// ownedBySteps link sequences to their columns (OWNED BY); identity
// sequences are linked by their table and refuse it.
func ownedBySteps(s *proto.Schema) []ddlStep {
	var out []ddlStep
	for _, seq := range s.Sequences {
		if seq.DDL != "" && seq.OwnedBy != "" {
			out = append(out, step("set owner column of sequence "+ddlObjectName(seq.Schema, seq.Name),
				"ALTER SEQUENCE "+pgx.Identifier{seq.Schema, seq.Name}.Sanitize()+" OWNED BY "+seq.OwnedBy))
		}
	}
	return out
}

// postDataSteps are the statements after the load.
func postDataSteps(s *proto.Schema, o *SchemaOptions) []ddlStep {
	var out []ddlStep
	synced := make(map[proto.TableID]bool, len(s.Tables))
	for i := range s.Tables {
		synced[s.Tables[i].ID] = true
	}
	// Every table's indexes before any foreign key: a key may reference a
	// unique index that is not a constraint.
	for i := range s.Tables {
		t := &s.Tables[i]
		for j := range t.Indexes {
			out = append(out, step("create index "+quoteDDLIdent(t.Indexes[j].Name)+" on "+t.ID.String(), indexSQL(t.ID, &t.Indexes[j])))
		}
		for j := range t.Constraints {
			if c := &t.Constraints[j]; !preData(c) && c.Kind != proto.ConstraintForeignKey {
				out = append(out, constraintStep(t.ID, c.Name, c.Def))
			}
		}
		if t.ReplicaIdentity == proto.IdentityIndex && t.IdentityIndex != "" {
			out = append(out, step("set replica identity of "+t.ID.String(), "ALTER TABLE "+ddlTableIdent(t.ID)+" REPLICA IDENTITY "+replicaIdentitySQL(t)))
		}
	}
	// A kept partitioned table's partitions: what they have of their own.
	for i := range s.Tables {
		t := &s.Tables[i]
		if t.PartitionBy == "" || o.flatten(t.ID) {
			continue
		}
		for _, p := range t.Partitions {
			for j := range p.Indexes {
				out = append(out, step("create index "+quoteDDLIdent(p.Indexes[j].Name)+" on "+p.ID.String(), indexSQL(p.ID, &p.Indexes[j])))
			}
			for j := range p.Constraints {
				c := &p.Constraints[j]
				if c.Kind == proto.ConstraintForeignKey {
					if c.References == nil || !synced[c.References.Table] {
						continue
					}
					out = append(out, foreignKeyStep(p.ID, c, o))
					continue
				}
				out = append(out, constraintStep(p.ID, c.Name, c.Def))
			}
		}
	}
	for i := range s.Tables {
		t := &s.Tables[i]
		for j := range t.Constraints {
			// A key to a table that is not synced would fail or, worse,
			// block writes at the destination.
			if c := &t.Constraints[j]; c.Kind == proto.ConstraintForeignKey && c.References != nil && synced[c.References.Table] {
				out = append(out, foreignKeyStep(t.ID, c, o))
			}
		}
	}
	return o.dialectSteps(s, append(out, ddlStep{What: "create views, triggers, rules and comments", objects: true}))
}

// constraintStep adds a constraint to table unless it has one of that
// name (ADD CONSTRAINT has no IF NOT EXISTS).
func constraintStep(table proto.TableID, name, def string) ddlStep {
	st := step("add constraint "+quoteDDLIdent(name)+" to "+table.String(), "ALTER TABLE "+ddlTableIdent(table)+" ADD CONSTRAINT "+quoteDDLIdent(name)+" "+def)
	st.exists = func(ctx context.Context, conn *pgx.Conn) (bool, error) { return hasConstraint(ctx, conn, table, name) }
	return st
}

// foreignKeyStep adds a foreign key: DEFERRABLE without replica mode, and
// then held (held.go) until cutover gives it the source's definition.
func foreignKeyStep(table proto.TableID, c *proto.ConstraintDef, o *SchemaOptions) ddlStep {
	def := deferrableKey(c.Def, o.noReplicaMode())
	st := constraintStep(table, c.Name, def)
	if def != c.Def {
		st.then = func(ctx context.Context, conn *pgx.Conn) error {
			return hold(ctx, conn, o.Task, table, heldForeignKey, c.Name, "NOT DEFERRABLE")
		}
	}
	return st
}

// runSteps runs a phase's statements.
func runSteps(ctx context.Context, conn *pgx.Conn, steps []ddlStep, s *proto.Schema, o *SchemaOptions) error {
	for _, st := range steps {
		if st.objects {
			if err := createObjects(ctx, conn, s.Objects, st.preData, o); err != nil {
				return err
			}
			continue
		}
		there := false
		if st.exists != nil {
			var err error
			if there, err = st.exists(ctx, conn); err != nil {
				return fmt.Errorf("%s: %w", st.What, err)
			}
		}
		if !there {
			if err := execDDL(ctx, conn, st.What, st.SQL); err != nil {
				return err
			}
		}
		if st.then != nil {
			if err := st.then(ctx, conn); err != nil {
				return fmt.Errorf("%s: %w", st.What, err)
			}
		}
	}
	return nil
}
