package capture

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/proto"
)

// A task's sequences are those its tables' column defaults call, those its
// columns own (serial and identity columns), and those its objects select:
// every sequence of a whole schema, or the ones an entry names
// (objects[].sequences). The schema read creates them at the destination;
// TaskSequences lists them again, cheaply, for keeping their values in
// step while the task runs (proto/sequences.go).

// tableSequencesSQL finds the sequences the column defaults of the tables
// $1 call (a default records its dependency on the regclass constant in
// nextval('...'::regclass)) and those owned by their columns, identity
// ones included.
const tableSequencesSQL = `
	SELECT d.refobjid FROM pg_catalog.pg_depend d
	JOIN pg_catalog.pg_attrdef ad ON d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND d.objid = ad.oid
	JOIN pg_catalog.pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
	WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND ad.adrelid = ANY($1::oid[])
	UNION
	SELECT d.objid FROM pg_catalog.pg_depend d
	JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
	WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
	  AND d.refobjid = ANY($1::oid[]) AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')`

// tableSequences lists the sequences of the tables (oids): those their
// column defaults call and those their columns own (tableSequencesSQL).
func tableSequences(ctx context.Context, q Querier, tables []uint32) ([]uint32, error) {
	var oids []uint32
	err := eachCatalogRow(ctx, q, tableSequencesSQL, []any{tables}, func(rows pgx.Rows) error {
		var oid uint32
		if err := rows.Scan(&oid); err != nil {
			return err
		}
		oids = append(oids, oid)
		return nil
	})
	return oids, err
}

// selectSequences resolves the sequences objects select themselves: those
// of a whole schema that no column owns (owned ones come with their table,
// if the task syncs it) and those an entry names. What an entry names that is missing or
// cannot be selected is returned as a *SelectionError, all of it at once,
// beside the sequences that can.
func selectSequences(ctx context.Context, q Querier, objects []proto.ObjectSpec) ([]uint32, error) {
	selErr := &SelectionError{}
	var out []uint32
	for _, o := range objects {
		var exists bool
		if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)`, o.Schema).Scan(&exists); err != nil {
			return nil, fmt.Errorf("look up schema %s: %w", quoteIdentName(o.Schema), err)
		}
		if !exists {
			continue // the table selection names it
		}
		var err error
		switch {
		case len(o.Tables) == 0:
			err = eachCatalogRow(ctx, q, `
				SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
				WHERE n.nspname = $1 AND c.relkind = 'S' AND c.relpersistence <> 't'
				  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
				                  WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid
				                    AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype IN ('a', 'i'))
				ORDER BY c.relname`, []any{o.Schema}, func(rows pgx.Rows) error {
				var oid uint32
				if err := rows.Scan(&oid); err != nil {
					return err
				}
				out = append(out, oid)
				return nil
			})
		case len(o.Sequences) > 0:
			err = eachCatalogRow(ctx, q, `
				SELECT l.name, c.oid, coalesce(c.relkind::text, ''), coalesce(idt.owner, '')
				FROM unnest($2::text[]) WITH ORDINALITY AS l(name, i)
				LEFT JOIN (pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace AND n.nspname = $1)
				       ON c.relname = l.name
				LEFT JOIN LATERAL (
				    SELECT pg_catalog.format('%I.%I.%I', rn.nspname, r.relname, a.attname) AS owner
				    FROM pg_catalog.pg_depend d
				    JOIN pg_catalog.pg_class r ON r.oid = d.refobjid
				    JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
				    JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attnum = d.refobjsubid
				    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid
				      AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype = 'i'
				    LIMIT 1) idt ON true
				ORDER BY l.i`, []any{o.Schema, o.Sequences}, func(rows pgx.Rows) error {
				var name, kind, identityOf string
				var oid *uint32
				if err := rows.Scan(&name, &oid, &kind, &identityOf); err != nil {
					return err
				}
				id := proto.TableID{Schema: o.Schema, Name: name}
				switch {
				case oid == nil:
					selErr.Missing = append(selErr.Missing, "sequence "+id.String())
				case kind != "S":
					selErr.Unsupported = append(selErr.Unsupported, fmt.Sprintf("%s (not a sequence: list it under tables)", id))
				case identityOf != "":
					selErr.Unsupported = append(selErr.Unsupported, fmt.Sprintf("%s (the identity sequence of %s: it is synced with its table)", id, identityOf))
				default:
					out = append(out, *oid)
				}
				return nil
			})
		}
		if err != nil {
			return nil, fmt.Errorf("list the sequences of schema %s: %w", quoteIdentName(o.Schema), err)
		}
	}
	if len(selErr.Missing) > 0 || len(selErr.Unsupported) > 0 {
		return out, selErr
	}
	return out, nil
}

// unionOIDs appends to a the OIDs of b it does not hold.
func unionOIDs(a, b []uint32) []uint32 {
	have := make(map[uint32]bool, len(a))
	for _, oid := range a {
		have[oid] = true
	}
	for _, oid := range b {
		if !have[oid] {
			have[oid] = true
			a = append(a, oid)
		}
	}
	return a
}

// SequenceRef is one of a task's sequences at the source.
type SequenceRef struct {
	ID  proto.TableID
	OID uint32
	// Owner is the synced table one of whose columns owns the sequence
	// (serial, identity), nil otherwise: at the destination the sequence
	// moves to that table's schema with its renames.
	Owner *proto.TableID
}

// TaskSequences lists the sequences of a task that syncs tables (sorted
// by schema and name): one catalog query for the tables' sequences, and
// one per objects entry that selects sequences itself. Tables that no
// longer exist are left out.
func TaskSequences(ctx context.Context, q Querier, objects []proto.ObjectSpec, tables []proto.TableID) ([]SequenceRef, error) {
	schemas := make([]string, len(tables))
	names := make([]string, len(tables))
	for i, t := range tables {
		schemas[i], names[i] = t.Schema, t.Name
	}
	var tableOIDs []uint32
	synced := map[uint32]proto.TableID{}
	err := eachCatalogRow(ctx, q, `
		SELECT c.oid, n.nspname, c.relname FROM unnest($1::text[], $2::text[]) AS l(schema_name, table_name)
		JOIN pg_catalog.pg_namespace n ON n.nspname = l.schema_name
		JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = l.table_name`, []any{schemas, names},
		func(rows pgx.Rows) error {
			var oid uint32
			var t proto.TableID
			if err := rows.Scan(&oid, &t.Schema, &t.Name); err != nil {
				return err
			}
			tableOIDs = append(tableOIDs, oid)
			synced[oid] = t
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("look up the task's tables: %w", err)
	}
	seqOIDs, err := tableSequences(ctx, q, tableOIDs)
	if err != nil {
		return nil, fmt.Errorf("list the sequences of the task's tables: %w", err)
	}
	selected, err := selectSequences(ctx, q, objects)
	var selErr *SelectionError
	if err != nil && !errors.As(err, &selErr) {
		return nil, err
	}
	// A named sequence dropped since the task started is no reason to stop
	// keeping the others in step: it is left out here.
	seqOIDs = unionOIDs(seqOIDs, selected)
	var out []SequenceRef
	err = eachCatalogRow(ctx, q, `
		SELECT s.oid, n.nspname, s.relname, coalesce(d.refobjid, 0)
		FROM pg_catalog.pg_class s
		JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace
		LEFT JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = s.oid
		     AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')
		WHERE s.oid = ANY($1::oid[]) AND s.relkind = 'S'
		ORDER BY n.nspname, s.relname`, []any{seqOIDs}, func(rows pgx.Rows) error {
		var ref SequenceRef
		var owner uint32
		if err := rows.Scan(&ref.OID, &ref.ID.Schema, &ref.ID.Name, &owner); err != nil {
			return err
		}
		if t, ok := synced[owner]; ok {
			ref.Owner = &t
		}
		out = append(out, ref)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the task's sequences: %w", err)
	}
	return out, nil
}

// LastValues reads the last value of each sequence (by OID) in one query,
// with pg_sequence_last_value: cheap for thousands of sequences, each
// read without locking it. A sequence not called since it was created or
// restarted has no value and is absent from values, as is one dropped
// since; one the session's user may not read (neither SELECT nor USAGE)
// is in denied.
func LastValues(ctx context.Context, q Querier, oids []uint32) (values map[uint32]int64, denied []uint32, err error) {
	values = make(map[uint32]int64, len(oids))
	err = eachCatalogRow(ctx, q, `
		SELECT q.seqrelid, p.readable, CASE WHEN p.readable THEN pg_catalog.pg_sequence_last_value(q.seqrelid) END
		FROM pg_catalog.pg_sequence q
		CROSS JOIN LATERAL (SELECT pg_catalog.has_sequence_privilege(q.seqrelid, 'SELECT, USAGE') AS readable) p
		WHERE q.seqrelid = ANY($1::oid[])`, []any{oids}, func(rows pgx.Rows) error {
		var oid uint32
		var readable bool
		var v *int64
		if err := rows.Scan(&oid, &readable, &v); err != nil {
			return err
		}
		switch {
		case !readable:
			denied = append(denied, oid)
		case v != nil:
			values[oid] = *v
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read the sequences' values: %w", err)
	}
	return values, denied, nil
}

// readableSequence is true for a sequence c whose row the session's user
// may read: SELECT on it, and USAGE on its schema to name it.
//
// The CASE comes first: PostgreSQL orders a WHERE clause's conditions as
// it likes, and has_sequence_privilege fails on any other relation.
const readableSequence = `CASE WHEN c.relkind = 'S' THEN pg_catalog.has_sequence_privilege(c.oid, 'SELECT') AND pg_catalog.has_schema_privilege(c.relnamespace, 'USAGE') ELSE false END`

// sequenceStateBatch bounds the size of one UNION ALL query.
const sequenceStateBatch = 500

// SequenceStates reads last_value and is_called from the sequences
// themselves (what setval takes: pg_sequence_last_value hides a value
// not handed out yet), a batch of them per query. Sequences the user may
// not SELECT from, or dropped since, are in denied; the others are read.
func SequenceStates(ctx context.Context, q Querier, oids []uint32) (map[uint32]proto.SequenceState, []uint32, error) {
	// The current names: a sequence renamed since it was listed is
	// still found.
	names := map[uint32]string{}
	err := eachCatalogRow(ctx, q, `
		SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.oid = ANY($1::oid[]) AND c.relkind = 'S' AND `+readableSequence, []any{oids},
		func(rows pgx.Rows) error {
			var oid uint32
			var schema, name string
			if err := rows.Scan(&oid, &schema, &name); err != nil {
				return err
			}
			names[oid] = pgx.Identifier{schema, name}.Sanitize()
			return nil
		})
	if err != nil {
		return nil, nil, fmt.Errorf("check the privileges on the sequences: %w", err)
	}
	var denied, read []uint32
	for _, oid := range oids {
		if names[oid] == "" {
			denied = append(denied, oid)
		} else {
			read = append(read, oid)
		}
	}
	states := make(map[uint32]proto.SequenceState, len(read))
	for lo := 0; lo < len(read); lo += sequenceStateBatch {
		hi := min(lo+sequenceStateBatch, len(read))
		parts := make([]string, 0, hi-lo)
		for _, oid := range read[lo:hi] {
			parts = append(parts, fmt.Sprintf("SELECT %d::pg_catalog.oid, last_value, is_called FROM %s", oid, names[oid]))
		}
		err := eachCatalogRow(ctx, q, strings.Join(parts, " UNION ALL "), nil, func(rows pgx.Rows) error {
			var oid uint32
			var st proto.SequenceState
			if err := rows.Scan(&oid, &st.LastValue, &st.IsCalled); err != nil {
				return err
			}
			states[oid] = st
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("read the sequences' values: %w", err)
		}
	}
	return states, denied, nil
}

// sequences checks the task's sequences (source.sequences): those objects
// name exist and may be named, and the user may read all of them. Without
// SELECT on one, schema sync cannot read its value (a failure); without
// schema sync its value is not kept in step (a warning).
func (p *prechecker) sequences(ctx context.Context, conn *pgx.Conn, tables []proto.TableID) {
	const check = "source.sequences"
	_, err := selectSequences(ctx, conn, p.spec.Objects)
	var selErr *SelectionError
	if errors.As(err, &selErr) {
		var parts []string
		if len(selErr.Missing) > 0 {
			parts = append(parts, "not found in the source: "+strings.Join(selErr.Missing, ", "))
		}
		if len(selErr.Unsupported) > 0 {
			parts = append(parts, "cannot be selected: "+strings.Join(selErr.Unsupported, ", "))
		}
		p.Fail(check, strings.Join(parts, "; "), "fix the names under objects[].sequences")
		return
	}
	if err != nil {
		p.Fail(check, err.Error(), "")
		return
	}
	refs, err := TaskSequences(ctx, conn, p.spec.Objects, tables)
	if err != nil {
		p.Fail(check, err.Error(), "")
		return
	}
	oids := make([]uint32, len(refs))
	for i, r := range refs {
		oids[i] = r.OID
	}
	readable := map[uint32]bool{}
	err = eachCatalogRow(ctx, conn, `SELECT c.oid FROM pg_catalog.pg_class c WHERE c.oid = ANY($1::oid[]) AND `+readableSequence,
		[]any{oids}, func(rows pgx.Rows) error {
			var oid uint32
			if err := rows.Scan(&oid); err != nil {
				return err
			}
			readable[oid] = true
			return nil
		})
	if err != nil {
		p.Fail(check, "cannot check the privileges on the sequences: "+err.Error(), "")
		return
	}
	var denied, quoted []string
	for _, r := range refs {
		if !readable[r.OID] {
			denied = append(denied, r.ID.String())
			quoted = append(quoted, pgx.Identifier{r.ID.Schema, r.ID.Name}.Sanitize())
		}
	}
	if len(denied) == 0 {
		p.Pass(check, fmt.Sprintf("%d sequences, all readable", len(refs)))
		return
	}
	user := pgx.Identifier{conn.Config().User}.Sanitize()
	fix := fmt.Sprintf("GRANT SELECT ON SEQUENCE %s TO %s; (and USAGE on their schemas)", strings.Join(quoted, ", "), user)
	if len(denied) > maxNamed {
		fix = fmt.Sprintf("GRANT SELECT ON ALL SEQUENCES IN SCHEMA ... TO %s; (and USAGE on the schemas)", user)
	}
	msg := fmt.Sprintf("user %q may not read %d of the task's sequences (%s)", conn.Config().User, len(denied), namedSome(denied))
	if p.spec.Sync.SchemaEnabled() {
		p.Fail(check, msg+": schema sync reads their values", fix)
		return
	}
	p.Warn(check, msg+": their values are not kept in step at the destination, nor set at cutover", fix)
}

// maxNamed bounds the names a message lists.
const maxNamed = 10

// namedSome lists the first maxNamed names, and how many more there are.
func namedSome(names []string) string {
	if len(names) <= maxNamed {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:maxNamed], ", "), len(names)-maxNamed)
}
