package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/proto"
)

// DDL sync at a PostgreSQL destination. An event carries the source
// table's shape before and after a change; the sink turns the difference
// into ALTER statements on the destination table and runs them in the
// transaction that stores the event's position. A retried event is then
// skipped by position, and a crash leaves either the whole change with
// its position or neither.

var _ apply.DDLApplier = (*Sink)(nil)

// errDDLWait: the table a WaitOnly event waits for is not there yet.
var errDDLWait = errors.New("the renamed table is not at the destination yet")

// ddlPoll is how often a WaitOnly event looks for its table.
const ddlPoll = 100 * time.Millisecond

// ApplyDDL makes the destination table of ev.Old look like ev.New and
// stores ev.Pos as its position, in one transaction.
func (s *Sink) ApplyDDL(ctx context.Context, task string, epoch uint64, ev *proto.DDLEvent, names *proto.NameMap, ops proto.DDLOpSet) error {
	if ev.Old == nil && ev.New == nil {
		return fmt.Errorf("DDL %s: event without a table", ev.Tag)
	}
	if ev.WaitOnly {
		return s.waitRenamed(ctx, task, epoch, ev, names, ops)
	}
	dest := names.Table(ev.Table())
	tables := []proto.TableID{dest}
	if ev.Renamed() {
		// Batches after the rename arrive under the new name: its rows
		// must skip the event too.
		if to := names.Table(ev.New.ID()); to != dest {
			tables = append(tables, to)
		}
	}
	return s.ddlTx(ctx, task, epoch, ev, tables, func(ctx context.Context, tx pgx.Tx) ([]string, error) {
		r := &ddlRun{tx: tx, sink: s, ev: ev, names: names, ops: ops, dest: dest}
		err := r.apply(ctx)
		return r.done, err
	})
}

// waitRenamed handles the copy of a rename that another apply group
// applies: it waits until the table is there under its new name, then
// stores the event's position under that name. When renames are not
// synced the table never gets the new name, so there is nothing to wait for.
func (s *Sink) waitRenamed(ctx context.Context, task string, epoch uint64, ev *proto.DDLEvent, names *proto.NameMap, ops proto.DDLOpSet) error {
	if ev.New == nil {
		return fmt.Errorf("DDL %s: a wait-only event needs the table's new shape", ev.Tag)
	}
	dest := names.Table(ev.New.ID())
	wait := ops.Has(proto.DDLRenameTable)
	for {
		// Each look is a transaction holding the offset rows, so an event
		// already stored returns at once (a redelivery must not wait for a
		// table renamed again since), and a fenced writer learns it here.
		err := s.ddlTx(ctx, task, epoch, ev, []proto.TableID{dest}, func(ctx context.Context, tx pgx.Tx) ([]string, error) {
			if !wait {
				return nil, nil
			}
			var exists bool
			if err := tx.QueryRow(ctx, "SELECT pg_catalog.to_regclass($1) IS NOT NULL", tableName(dest)).Scan(&exists); err != nil {
				return nil, fmt.Errorf("DDL %s: look for %s: %w", ev.Tag, dest, err)
			}
			if !exists {
				return nil, errDDLWait
			}
			return nil, nil
		})
		if !errors.Is(err, errDDLWait) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("DDL %s: wait for %s: %w", ev.Tag, dest, ctx.Err())
		case <-time.After(ddlPoll):
		}
	}
}

// ddlTx runs fn in a transaction that holds the offset rows of tables and
// stores ev.Pos for all their shards. It skips the event when the first
// table's shards are all at or above ev.Pos: the change is there already.
func (s *Sink) ddlTx(ctx context.Context, task string, epoch uint64, ev *proto.DDLEvent, tables []proto.TableID, fn func(context.Context, pgx.Tx) ([]string, error)) error {
	ids := make(map[string]proto.TableID, len(tables))
	pos := make(map[string]proto.Position, len(tables))
	for _, t := range tables {
		ids[t.Key()], pos[t.Key()] = t, ev.Pos
	}
	positions := s.allShards(ids, pos)
	// Another owner of the group may have moved the positions: lockOffsets
	// then learns them, and the next attempt decides against them.
	for attempt := 0; ; attempt++ {
		done, skipped, err := s.ddlTxOnce(ctx, task, epoch, ev, tables[0], positions, fn)
		if errors.Is(err, errFloorMoved) && attempt < 3 {
			continue
		}
		if err != nil || skipped {
			if err != nil && !errors.Is(err, errDDLWait) {
				for _, t := range tables {
					s.forgetTable(t)
				}
			}
			return err
		}
		s.remember(positions)
		// The cached column plans of the table no longer hold.
		for _, t := range tables {
			s.forgetTable(t)
		}
		for _, stmt := range done {
			s.logger.Info("applied DDL", "task", task, "table", tables[0].String(), "tag", ev.Tag, "pos", ev.Pos.String(), "statement", stmt)
		}
		return nil
	}
}

func (s *Sink) ddlTxOnce(ctx context.Context, task string, epoch uint64, ev *proto.DDLEvent, table proto.TableID, positions []shardPosition, fn func(context.Context, pgx.Tx) ([]string, error)) (done []string, skipped bool, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, false, err
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, false, err
	}
	defer tx.Rollback(context.Background())
	if err := s.lockOffsets(ctx, tx, task, epoch, positions); err != nil {
		return nil, false, err
	}
	// One transaction writes every shard of a DDL event, so a shard below
	// the event means the change is not there yet.
	applied := true
	for _, floor := range s.shardFloors(table) {
		if floor.Less(ev.Pos) {
			applied = false
		}
	}
	if applied {
		s.logger.Debug("DDL already applied; skipping it", "task", task, "table", table.String(), "tag", ev.Tag, "pos", ev.Pos.String())
		return nil, true, nil
	}
	if done, err = fn(ctx, tx); err != nil {
		return nil, false, err
	}
	if err := writeOffsets(ctx, tx, task, epoch, positions); err != nil {
		return nil, false, err
	}
	return done, false, tx.Commit(ctx)
}

// ddlRun builds and runs the statements of one event.
type ddlRun struct {
	tx    pgx.Tx
	sink  *Sink
	ev    *proto.DDLEvent
	names *proto.NameMap
	ops   proto.DDLOpSet
	// dest is the destination table the statements change.
	dest proto.TableID
	done []string
}

func (r *ddlRun) exec(ctx context.Context, stmt string) error {
	if _, err := r.tx.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("DDL %s on %s: %s: %w", r.ev.Tag, r.dest, stmt, err)
	}
	r.done = append(r.done, stmt)
	return nil
}

func (r *ddlRun) apply(ctx context.Context) error {
	switch {
	case r.ev.New == nil:
		if r.ops.Has(proto.DDLDropTable) {
			return r.exec(ctx, "DROP TABLE IF EXISTS "+ddlTableIdent(r.dest)+" CASCADE")
		}
		return nil
	case r.ev.Old == nil:
		if r.ops.Has(proto.DDLCreateTable) {
			return r.createTable(ctx)
		}
		return nil
	}
	return r.alterTable(ctx)
}

func (r *ddlRun) createTable(ctx context.Context) error {
	nw := r.ev.New
	if err := r.exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+quoteDDLIdent(r.dest.Schema)); err != nil {
		return err
	}
	if err := r.createSequences(ctx); err != nil {
		return err
	}
	parts := make([]string, len(nw.Columns))
	for i, c := range nw.Columns {
		parts[i] = r.columnSQL(nw, c)
	}
	if err := r.exec(ctx, "CREATE TABLE IF NOT EXISTS "+ddlTableIdent(r.dest)+" ("+strings.Join(parts, ", ")+")"); err != nil {
		return err
	}
	for _, c := range keysFirst(nw.Constraints) {
		if err := r.addConstraint(ctx, c); err != nil {
			return err
		}
	}
	for _, ix := range nw.Indexes {
		if err := r.createIndex(ctx, ix); err != nil {
			return err
		}
	}
	if nw.Identity == "f" {
		return r.exec(ctx, "ALTER TABLE "+ddlTableIdent(r.dest)+" REPLICA IDENTITY FULL")
	}
	return nil
}

// createSequences creates the sequences the new shape's defaults use. The
// names are the source's (the defaults name them so), created bare: the
// source's values are not known here, and the rows carry their own.
func (r *ddlRun) createSequences(ctx context.Context) error {
	for _, seq := range r.ev.New.Sequences {
		if parts, ok := parseQualifiedName(seq); ok && len(parts) == 2 {
			if err := r.exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+quoteDDLIdent(parts[0])); err != nil {
				return err
			}
		}
		if err := r.exec(ctx, "CREATE SEQUENCE IF NOT EXISTS "+seq); err != nil {
			return err
		}
	}
	return nil
}

// columnSQL is a column's definition, for CREATE TABLE and ADD COLUMN.
func (r *ddlRun) columnSQL(sh *proto.TableShape, c proto.ShapeColumn) string {
	s := quoteDDLIdent(r.names.Column(sh.ID(), c.Name)) + " " + c.Type
	switch {
	case c.Generated == "s":
		s += " GENERATED ALWAYS AS (" + r.mapDef(sh, c.Default) + ") STORED"
	case c.Identity != "":
		s += " GENERATED " + identityKind(c.Identity[0]) + " AS IDENTITY"
	case c.Default != "":
		s += " DEFAULT " + c.Default
	}
	if c.NotNull {
		s += " NOT NULL"
	}
	return s
}

func (r *ddlRun) alterTable(ctx context.Context) error {
	old, nw := r.ev.Old, r.ev.New
	if to := r.names.Table(nw.ID()); to != r.dest && r.ops.Has(proto.DDLRenameTable) {
		if err := r.renameTable(ctx, to); err != nil {
			return err
		}
	}
	table := ddlTableIdent(r.dest)
	alter := func(action string) error { return r.exec(ctx, "ALTER TABLE "+table+" "+action) }

	if r.ops.Has(proto.DDLDropIndex) {
		for _, oi := range old.Indexes {
			changed, err := r.indexChanged(oi)
			if err != nil {
				return err
			}
			if changed {
				if err := r.exec(ctx, "DROP INDEX IF EXISTS "+pgx.Identifier{r.dest.Schema, oi.Name}.Sanitize()); err != nil {
					return err
				}
			}
		}
	}
	if r.ops.Has(proto.DDLDropConstraint) {
		for _, oc := range old.Constraints {
			if oc.Type != "n" && r.constraintChanged(oc) {
				if err := alter("DROP CONSTRAINT IF EXISTS " + quoteDDLIdent(oc.Name)); err != nil {
					return err
				}
			}
		}
	}
	// Columns are matched by number: a number on both sides with another
	// name is a rename.
	if r.ops.Has(proto.DDLDropColumn) {
		for _, oc := range old.Columns {
			if _, ok := nw.Column(oc.Num); !ok {
				// No CASCADE: what else at the destination depends on the
				// column is not the source's to drop.
				if err := alter("DROP COLUMN IF EXISTS " + r.oldColumn(oc.Name)); err != nil {
					return err
				}
			}
		}
	}
	if r.ops.Has(proto.DDLRenameColumn) {
		for _, oc := range old.Columns {
			nc, ok := nw.Column(oc.Num)
			if !ok {
				continue
			}
			from, to := r.names.Column(old.ID(), oc.Name), r.names.Column(nw.ID(), nc.Name)
			if from != to {
				if err := alter("RENAME COLUMN " + quoteDDLIdent(from) + " TO " + quoteDDLIdent(to)); err != nil {
					return err
				}
			}
		}
	}
	seqs := false
	if r.ops.Has(proto.DDLAddColumn) {
		for _, nc := range nw.Columns {
			if _, ok := old.Column(nc.Num); ok {
				continue
			}
			if nc.Default != "" && nc.Identity == "" && nc.Generated == "" && !seqs {
				if err := r.createSequences(ctx); err != nil {
					return err
				}
				seqs = true
			}
			if err := alter("ADD COLUMN IF NOT EXISTS " + r.columnSQL(nw, nc)); err != nil {
				return err
			}
		}
	}
	if r.ops.Has(proto.DDLAlterColumn) {
		for _, oc := range old.Columns {
			nc, ok := nw.Column(oc.Num)
			if !ok {
				continue
			}
			if oc.Default != nc.Default && nc.Default != "" && nc.Identity == "" && nc.Generated == "" && !seqs {
				if err := r.createSequences(ctx); err != nil {
					return err
				}
				seqs = true
			}
			for _, action := range alterColumn(quoteDDLIdent(r.names.Column(nw.ID(), nc.Name)), oc, nc) {
				if err := alter(action); err != nil {
					return err
				}
			}
		}
		if old.Identity != nw.Identity {
			if mode := replicaIdentity(nw.Identity); mode != "" {
				if err := alter("REPLICA IDENTITY " + mode); err != nil {
					return err
				}
			} else {
				r.sink.logger.Warn("DDL: the destination keeps its replica identity (the source's index is not known)", "table", r.dest.String(), "identity", nw.Identity)
			}
		}
	}
	if r.ops.Has(proto.DDLAddConstraint) {
		for _, nc := range keysFirst(nw.Constraints) {
			oc, ok := findConstraint(old, nc.Name)
			if ok && !r.constraintChanged(oc) {
				continue
			}
			if err := r.addConstraint(ctx, nc); err != nil {
				return err
			}
		}
	}
	if r.ops.Has(proto.DDLCreateIndex) {
		for _, ni := range nw.Indexes {
			oi, ok := findIndex(old, ni.Name)
			if ok {
				changed, err := r.indexChanged(oi)
				if err != nil {
					return err
				}
				if !changed {
					continue
				}
			}
			if err := r.createIndex(ctx, ni); err != nil {
				return err
			}
		}
	}
	return nil
}

// renameTable moves the destination table to its new name; the statements
// after it change the table under that name.
func (r *ddlRun) renameTable(ctx context.Context, to proto.TableID) error {
	from := r.dest
	if from.Schema != to.Schema {
		if err := r.exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+quoteDDLIdent(to.Schema)); err != nil {
			return err
		}
		if err := r.exec(ctx, "ALTER TABLE "+ddlTableIdent(from)+" SET SCHEMA "+quoteDDLIdent(to.Schema)); err != nil {
			return err
		}
		from.Schema = to.Schema
	}
	if from.Name != to.Name {
		if err := r.exec(ctx, "ALTER TABLE "+ddlTableIdent(from)+" RENAME TO "+quoteDDLIdent(to.Name)); err != nil {
			return err
		}
	}
	r.dest = to
	return nil
}

func (r *ddlRun) oldColumn(name string) string {
	return quoteDDLIdent(r.names.Column(r.ev.Old.ID(), name))
}

// alterColumn is the ALTER COLUMN actions that turn column o into n.
func alterColumn(col string, o, n proto.ShapeColumn) []string {
	var out []string
	add := func(action string) { out = append(out, "ALTER COLUMN "+col+" "+action) }
	// Identity and generated columns have no default of their own.
	plain := func(c proto.ShapeColumn) bool { return c.Identity == "" && c.Generated == "" }
	dropped := false
	if o.Type != n.Type {
		// A default may not cast to the new type by itself: drop it first
		// and set the new one after.
		if plain(o) && o.Default != "" {
			add("DROP DEFAULT")
			dropped = true
		}
		if n.Generated != "" { // computed again, not cast
			add("TYPE " + n.Type)
		} else {
			add("TYPE " + n.Type + " USING " + col + "::" + n.Type)
		}
	}
	// Before the identity: an identity column must be NOT NULL.
	if n.NotNull && !o.NotNull {
		add("SET NOT NULL")
	}
	switch {
	case o.Identity == n.Identity:
	case n.Identity == "":
		add("DROP IDENTITY IF EXISTS")
	case o.Identity == "":
		add("ADD GENERATED " + identityKind(n.Identity[0]) + " AS IDENTITY")
	default:
		add("SET GENERATED " + identityKind(n.Identity[0]))
	}
	if o.Generated == "s" && n.Generated == "" {
		add("DROP EXPRESSION IF EXISTS")
	}
	if plain(n) {
		switch {
		case n.Default != "" && (n.Default != o.Default || dropped || !plain(o)):
			add("SET DEFAULT " + n.Default)
		case n.Default == "" && o.Default != "" && plain(o) && !dropped:
			add("DROP DEFAULT")
		}
	}
	if o.NotNull && !n.NotNull && n.Identity == "" {
		add("DROP NOT NULL")
	}
	return out
}

// replicaIdentity is the REPLICA IDENTITY clause of relreplident, "" for
// an index (the shape does not say which).
func replicaIdentity(relreplident string) string {
	switch relreplident {
	case "d":
		return "DEFAULT"
	case "f":
		return "FULL"
	case "n":
		return "NOTHING"
	}
	return ""
}

// addConstraint adds a constraint of the new shape unless the table has
// one of that name already (a table created before the event).
func (r *ddlRun) addConstraint(ctx context.Context, c proto.ShapeConstraint) error {
	// PostgreSQL 18 lists NOT NULL as constraints; the columns carry it.
	if c.Type == "n" {
		return nil
	}
	table := ddlTableIdent(r.dest)
	var exists bool
	err := r.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = $1::text::regclass AND conname = $2)`,
		table, c.Name).Scan(&exists)
	if err != nil {
		return fmt.Errorf("DDL %s on %s: look up constraint %s: %w", r.ev.Tag, r.dest, c.Name, err)
	}
	if exists {
		return nil
	}
	if c.Type == "f" {
		// A key to a table that is not synced cannot be made; the rows
		// still can.
		if ref, ok := referencedTable(c.Def); ok {
			to := r.names.Table(ref)
			var there bool
			if err := r.tx.QueryRow(ctx, "SELECT pg_catalog.to_regclass($1) IS NOT NULL", tableName(to)).Scan(&there); err != nil {
				return fmt.Errorf("DDL %s on %s: look for %s: %w", r.ev.Tag, r.dest, to, err)
			}
			if !there {
				r.sink.logger.Warn("DDL: foreign key left out: the table it references is not at the destination",
					"table", r.dest.String(), "constraint", c.Name, "references", to.String())
				return nil
			}
		}
	}
	return r.exec(ctx, "ALTER TABLE "+table+" ADD CONSTRAINT "+quoteDDLIdent(c.Name)+" "+r.mapDef(r.ev.New, c.Def))
}

func (r *ddlRun) createIndex(ctx context.Context, ix proto.ShapeIndex) error {
	d, err := parseIndexDef(ix.Def)
	if err != nil {
		return fmt.Errorf("DDL %s on %s: %w", r.ev.Tag, r.dest, err)
	}
	var b strings.Builder
	b.WriteString("CREATE ")
	if d.unique {
		b.WriteString("UNIQUE ")
	}
	b.WriteString("INDEX IF NOT EXISTS ")
	b.WriteString(quoteDDLIdent(ix.Name))
	b.WriteString(" ON ")
	if d.only {
		b.WriteString("ONLY ")
	}
	b.WriteString(ddlTableIdent(r.dest))
	b.WriteByte(' ')
	b.WriteString(r.mapDef(r.ev.New, d.using))
	return r.exec(ctx, b.String())
}

// constraintChanged reports whether old constraint oc is missing from the
// new shape or defined otherwise there. Definitions are compared with
// their columns by number: renaming a column changes no constraint.
func (r *ddlRun) constraintChanged(oc proto.ShapeConstraint) bool {
	nc, ok := findConstraint(r.ev.New, oc.Name)
	return !ok || nc.Type != oc.Type || byNumber(r.ev.Old, oc.Def) != byNumber(r.ev.New, nc.Def)
}

// indexChanged is constraintChanged for an index of the old shape.
func (r *ddlRun) indexChanged(oi proto.ShapeIndex) (bool, error) {
	ni, ok := findIndex(r.ev.New, oi.Name)
	if !ok {
		return true, nil
	}
	o, err := parseIndexDef(oi.Def)
	if err != nil {
		return false, fmt.Errorf("DDL %s on %s: %w", r.ev.Tag, r.dest, err)
	}
	n, err := parseIndexDef(ni.Def)
	if err != nil {
		return false, fmt.Errorf("DDL %s on %s: %w", r.ev.Tag, r.dest, err)
	}
	return o.unique != n.unique || o.only != n.only || byNumber(r.ev.Old, o.using) != byNumber(r.ev.New, n.using), nil
}

// keysFirst orders constraints so that foreign keys come last: one may
// reference a key of its own table.
func keysFirst(cs []proto.ShapeConstraint) []proto.ShapeConstraint {
	out := make([]proto.ShapeConstraint, 0, len(cs))
	for _, c := range cs {
		if c.Type != "f" {
			out = append(out, c)
		}
	}
	for _, c := range cs {
		if c.Type == "f" {
			out = append(out, c)
		}
	}
	return out
}

func findConstraint(sh *proto.TableShape, name string) (proto.ShapeConstraint, bool) {
	for _, c := range sh.Constraints {
		if c.Name == name {
			return c, true
		}
	}
	return proto.ShapeConstraint{}, false
}

func findIndex(sh *proto.TableShape, name string) (proto.ShapeIndex, bool) {
	for _, ix := range sh.Indexes {
		if ix.Name == name {
			return ix, true
		}
	}
	return proto.ShapeIndex{}, false
}

// mapDef gives a definition of shape sh the destination's names: its
// columns, and the table a foreign key references with that table's
// columns.
func (r *ddlRun) mapDef(sh *proto.TableShape, def string) string {
	if r.names == nil {
		return def
	}
	names := r.names
	mapped := func(t proto.TableID) func(string) (string, bool) {
		return func(col string) (string, bool) {
			if to := names.Column(t, col); to != col {
				return quoteDDLIdent(to), true
			}
			return "", false
		}
	}
	own := mapped(sh.ID())
	return rewriteDef(def, defRewrite{
		column: func(col string) (string, bool) {
			if !hasColumn(sh, col) {
				return "", false
			}
			return own(col)
		},
		reference: func(t proto.TableID) (string, func(string) (string, bool)) {
			return ddlTableIdent(names.Table(t)), mapped(t)
		},
	})
}

// byNumber writes a definition's columns as their numbers, to compare
// definitions across column renames.
func byNumber(sh *proto.TableShape, def string) string {
	return rewriteDef(def, defRewrite{column: func(col string) (string, bool) {
		for _, c := range sh.Columns {
			if c.Name == col {
				return "\x00" + strconv.Itoa(c.Num), true
			}
		}
		return "", false
	}})
}

func hasColumn(sh *proto.TableShape, name string) bool {
	for _, c := range sh.Columns {
		if c.Name == name {
			return true
		}
	}
	return false
}

// indexDef is an index definition as pg_get_indexdef prints it:
// CREATE [UNIQUE] INDEX name ON [ONLY] schema.table USING method (...) ...
type indexDef struct {
	unique, only bool
	// using is the definition from USING on: the method, the columns and
	// expressions, INCLUDE, WITH and WHERE.
	using string
}

func parseIndexDef(def string) (indexDef, error) {
	var d indexDef
	bad := func() (indexDef, error) { return indexDef{}, fmt.Errorf("cannot read index definition %q", def) }
	s, ok := strings.CutPrefix(def, "CREATE ")
	if !ok {
		return bad()
	}
	s, d.unique = strings.CutPrefix(s, "UNIQUE ")
	if s, ok = strings.CutPrefix(s, "INDEX "); !ok {
		return bad()
	}
	_, n := readName(s, 0)
	if n == 0 {
		return bad()
	}
	if s, ok = strings.CutPrefix(s[n:], " ON "); !ok {
		return bad()
	}
	s, d.only = strings.CutPrefix(s, "ONLY ")
	if _, n = readName(s, 0); n == 0 {
		return bad()
	}
	if s, ok = strings.CutPrefix(s[n:], " "); !ok || !strings.HasPrefix(s, "USING ") {
		return bad()
	}
	d.using = s
	return d, nil
}

// referencedTable is the table after REFERENCES in a foreign key's
// definition.
func referencedTable(def string) (proto.TableID, bool) {
	var ref proto.TableID
	found := false
	rewriteDef(def, defRewrite{reference: func(t proto.TableID) (string, func(string) (string, bool)) {
		ref, found = t, true
		return "", nil
	}})
	return ref, found
}

// parseQualifiedName splits a printed [schema.]name into its parts.
func parseQualifiedName(s string) ([]string, bool) {
	parts, n := readName(s, 0)
	return parts, n > 0 && n == len(s)
}

// Definitions printed by PostgreSQL (constraints, index columns,
// generated columns) name the source's columns. rewriteDef replaces them
// with a small lexer instead of a SQL parser: it skips string literals,
// reads identifiers bare or "quoted", and takes a single name for a column
// unless its place says otherwise: a qualified name, a function (name
// followed by "("), a type after "::", a collation, an access method.

// defRewrite says what rewriteDef replaces. Either may be nil.
type defRewrite struct {
	// column returns what to write for a name that may be a column of
	// the table; false keeps the name as it is.
	column func(name string) (string, bool)
	// reference returns what to write for the table a foreign key
	// references, and the column function for its column list.
	reference func(t proto.TableID) (string, func(string) (string, bool))
}

// typeWords continue a type name after its first word ("character
// varying", "timestamp without time zone", "interval day to second").
var typeWords = map[string]bool{
	"varying": true, "precision": true, "with": true, "without": true, "time": true, "zone": true,
	"to": true, "year": true, "month": true, "day": true, "hour": true, "minute": true, "second": true,
}

func rewriteDef(def string, rw defRewrite) string {
	l := defLexer{rw: rw}
	var b strings.Builder
	b.Grow(len(def))
	for i := 0; i < len(def); {
		c := def[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			b.WriteByte(c)
			i++
			continue
		}
		if l.ref == refList && c != '(' {
			l.ref, l.refColumn = refNone, nil
		}
		switch {
		case c == '\'':
			j := skipString(def, i, false)
			b.WriteString(def[i:j])
			i, l.inType, l.afterDot = j, false, false
			continue
		case c >= '0' && c <= '9':
			j := i
			for j < len(def) && (isIdentByte(def[j]) || def[j] == '.') {
				j++
			}
			b.WriteString(def[i:j])
			i, l.afterDot = j, false
			continue
		case c == ':' && i+1 < len(def) && def[i+1] == ':':
			b.WriteString("::")
			i += 2
			l.inType, l.typeFirst, l.afterDot = true, true, false
			continue
		case c == '"' || isIdentStart(c):
			parts, n := readName(def, i)
			if n == 0 { // an unterminated quote: keep the rest
				b.WriteString(def[i:])
				return b.String()
			}
			raw := def[i : i+n]
			if (raw == "E" || raw == "e") && i+n < len(def) && def[i+n] == '\'' { // E'...'
				j := skipString(def, i+n, true)
				b.WriteString(def[i:j])
				i, l.inType, l.afterDot = j, false, false
				continue
			}
			i += n
			b.WriteString(l.word(raw, parts, i < len(def) && def[i] == '('))
			l.afterDot = false
			continue
		}
		// Punctuation and operators.
		b.WriteByte(c)
		i++
		l.afterDot = c == '.'
		switch {
		case l.ref == refList: // c is "("
			l.ref = refColumns
		case l.ref == refColumns && c == ')':
			l.ref, l.refColumn = refNone, nil
		}
		if l.inType && !strings.ContainsRune("()[].", rune(c)) {
			l.inType = false
		}
	}
	return b.String()
}

// defLexer is what rewriteDef knows of the tokens before the current one.
type defLexer struct {
	rw        defRewrite
	inType    bool // after "::": the words of a type name
	typeFirst bool // the type's first name is next
	skipName  bool // the next name is no column (after COLLATE, USING)
	afterDot  bool // the last token was ".": a field, not a column
	ref       int
	refColumn func(string) (string, bool)
}

// Where rewriteDef is in a foreign key's REFERENCES clause.
const (
	refNone    = iota
	refTable   // REFERENCES read: the table is next
	refList    // the table read: its column list may follow
	refColumns // in the column list
)

// word is what to write for a name (raw as printed, parts its unquoted
// parts); call: a "(" follows it.
func (l *defLexer) word(raw string, parts []string, call bool) string {
	switch {
	case l.ref == refTable:
		l.ref = refList
		if len(parts) == 2 && l.rw.reference != nil {
			table, columns := l.rw.reference(proto.TableID{Schema: parts[0], Name: parts[1]})
			l.refColumn = columns
			if table != "" {
				return table
			}
		}
		return raw
	case l.ref == refColumns:
		if l.refColumn != nil && len(parts) == 1 {
			if to, ok := l.refColumn(parts[0]); ok {
				return to
			}
		}
		return raw
	case l.inType && l.typeFirst:
		l.typeFirst = false
		return raw
	case l.inType && len(parts) == 1 && typeWords[raw]:
		return raw
	}
	l.inType = false
	switch {
	case l.skipName:
		l.skipName = false
		return raw
	case raw == "REFERENCES":
		l.ref, l.refColumn = refTable, nil
		return raw
	case raw == "COLLATE" || raw == "USING":
		l.skipName = true
		return raw
	case len(parts) != 1 || call || l.afterDot || l.rw.column == nil:
		return raw
	}
	if to, ok := l.rw.column(parts[0]); ok {
		return to
	}
	return raw
}

// skipString returns the index after the string constant that starts
// with the quote at i. Quotes are doubled inside; backslashes escape only
// in an E'...' string.
func skipString(s string, i int, escapes bool) int {
	for j := i + 1; j < len(s); j++ {
		switch {
		case escapes && s[j] == '\\':
			j++
		case s[j] == '\'':
			if j+1 < len(s) && s[j+1] == '\'' {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(s)
}

// readName reads a name at i, bare or quoted, qualified by dots without
// spaces (as PostgreSQL prints them), and returns its parts and length; 0
// when there is none.
func readName(s string, i int) ([]string, int) {
	var parts []string
	start := i
	for {
		part, n := readIdent(s, i)
		if n == 0 {
			return nil, 0
		}
		parts = append(parts, part)
		i += n
		if i+1 < len(s) && s[i] == '.' && (s[i+1] == '"' || isIdentStart(s[i+1])) {
			i++
			continue
		}
		return parts, i - start
	}
}

// readIdent reads one identifier at i: its name and length, 0 when none.
func readIdent(s string, i int) (string, int) {
	if i >= len(s) {
		return "", 0
	}
	if s[i] != '"' {
		if !isIdentStart(s[i]) {
			return "", 0
		}
		j := i + 1
		for j < len(s) && isIdentByte(s[j]) {
			j++
		}
		return s[i:j], j - i
	}
	var b strings.Builder
	for j := i + 1; j < len(s); j++ {
		if s[j] != '"' {
			b.WriteByte(s[j])
			continue
		}
		if j+1 < len(s) && s[j+1] == '"' {
			b.WriteByte('"')
			j++
			continue
		}
		return b.String(), j + 1 - i
	}
	return "", 0
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentByte(c byte) bool { return isIdentStart(c) || c == '$' || (c >= '0' && c <= '9') }
