package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/proto"
)

// DDL sync at a PostgreSQL destination. An event carries the source
// table's shape before and after a change; the sink turns the difference
// into ALTER statements on the destination table and runs them in the
// transaction that stores the event's position. A retried event is then
// skipped by position, and a crash leaves either the whole change with
// its position or neither.

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
	ev = s.dialect.ddlEvent(ev) // both shapes as the server takes them (dialect.go)
	if ev.WaitOnly {
		return s.waitRenamed(ctx, task, epoch, ev, names, ops)
	}
	dest := names.Table(ev.Table())
	tables := []proto.TableID{dest}
	if ev.Renamed() {
		// Batches after the rename arrive under the new name: its rows
		// must skip the event too.
		if to := names.Table(ev.New.ID); to != dest {
			tables = append(tables, to)
		}
	}
	return s.ddlTx(ctx, task, epoch, ev, tables, func(ctx context.Context, tx pgx.Tx) ([]string, error) {
		r := &ddlRun{tx: tx, sink: s, task: task, ev: ev, names: names, ops: ops, dest: dest}
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
	dest := names.Table(ev.New.ID)
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

// beginDDL starts the transaction of a schema change at lsn; end
// rolls it back unless it was committed, and releases its session.
func (s *Sink) beginDDL(ctx context.Context, lsn proto.LSN) (tx pgx.Tx, end func(), err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	unbind := func() {}
	if s.tw != nil {
		// Two-way: the change's writes (a table rewrite) must not come
		// back from the other side either.
		if unbind, err = s.bindOrigin(ctx, conn); err != nil {
			conn.Release()
			return nil, nil, err
		}
	}
	end = func() { unbind(); conn.Release() }
	if tx, err = conn.Begin(ctx); err != nil {
		end()
		return nil, nil, err
	}
	end = func() { tx.Rollback(context.Background()); unbind(); conn.Release() } //nolint:errcheck // after a commit there is nothing to roll back
	if s.tw != nil {
		if err := xactOrigin(ctx, tx, lsn, 0); err != nil {
			end()
			return nil, nil, err
		}
	}
	return tx, end, nil
}

func (s *Sink) ddlTxOnce(ctx context.Context, task string, epoch uint64, ev *proto.DDLEvent, table proto.TableID, positions []shardPosition, fn func(context.Context, pgx.Tx) ([]string, error)) (done []string, skipped bool, err error) {
	tx, end, err := s.beginDDL(ctx, ev.Pos.LSN)
	if err != nil {
		return nil, false, err
	}
	defer end()
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
	if err := s.writeOffsets(ctx, tx, task, epoch, positions); err != nil {
		return nil, false, err
	}
	return done, false, tx.Commit(ctx)
}

// ddlRun builds and runs the statements of one event.
type ddlRun struct {
	tx    pgx.Tx
	sink  *Sink
	task  string
	ev    *proto.DDLEvent
	names *proto.NameMap
	ops   proto.DDLOpSet
	// dest is the destination table the statements change.
	dest proto.TableID
	done []string
}

func (r *ddlRun) exec(ctx context.Context, stmt string) error {
	stmt = r.sink.dialect.statement(stmt)
	if _, err := r.tx.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("DDL %s on %s: %s: %w", r.ev.Tag, r.dest, stmt, err)
	}
	r.done = append(r.done, stmt)
	return nil
}

// apply runs the steps of the event's shape diff that ops selects.
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
	if to := r.names.Table(r.ev.New.ID); to != r.dest && r.ops.Has(proto.DDLRenameTable) {
		if err := r.renameTable(ctx, to); err != nil {
			return err
		}
	}
	return r.withSourceNames(ctx, r.ev.Old, r.ev.New, r.alterTable)
}

// withSourceNames runs fn while the destination table's columns carry
// their source names (those of before, as the event's definitions do),
// and gives them their destination names again after it (those of after,
// as the event leaves them). The definitions fn runs are the source's
// text: PostgreSQL maps them to the destination's names when the columns
// are renamed back, as schema sync's renames after the load do. Columns
// the destination does not have under the expected name are left alone
// (the task does not sync them, or some operations are not synced).
func (r *ddlRun) withSourceNames(ctx context.Context, before, after *proto.TableDef, fn func(context.Context) error) error {
	have, err := r.columns(ctx)
	if err != nil {
		return err
	}
	var in [][2]string
	for _, c := range before.Columns {
		if d := r.names.Column(before.ID, c.Name); d != c.Name && have[d] {
			in = append(in, [2]string{d, c.Name})
		}
	}
	if err := r.renameColumns(ctx, in); err != nil {
		return err
	}
	if err := fn(ctx); err != nil {
		return err
	}
	if have, err = r.columns(ctx); err != nil {
		return err
	}
	var out [][2]string
	for _, c := range after.Columns {
		if d := r.names.Column(after.ID, c.Name); d != c.Name && have[c.Name] {
			out = append(out, [2]string{c.Name, d})
		}
	}
	return r.renameColumns(ctx, out)
}

// columns are the destination table's columns.
func (r *ddlRun) columns(ctx context.Context) (map[string]bool, error) {
	rows, err := r.tx.Query(ctx, `SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped`, ddlTableIdent(r.dest))
	if err != nil {
		return nil, fmt.Errorf("DDL %s on %s: read its columns: %w", r.ev.Tag, r.dest, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("DDL %s on %s: read its columns: %w", r.ev.Tag, r.dest, err)
	}
	have := make(map[string]bool, len(names))
	for _, n := range names {
		have[n] = true
	}
	return have, nil
}

// renameColumns renames columns from -> to, through names of their own
// first, so that two columns may trade names.
func (r *ddlRun) renameColumns(ctx context.Context, moves [][2]string) error {
	rename := func(from, to string) error {
		return r.exec(ctx, "ALTER TABLE "+ddlTableIdent(r.dest)+" RENAME COLUMN "+quoteDDLIdent(from)+" TO "+quoteDDLIdent(to))
	}
	for i, m := range moves {
		if err := rename(m[0], "sluice_rename_"+strconv.Itoa(i)); err != nil {
			return err
		}
	}
	for i, m := range moves {
		if err := rename("sluice_rename_"+strconv.Itoa(i), m[1]); err != nil {
			return err
		}
	}
	return nil
}

// createTable creates a table the source created: under the source's
// column names, with its keys, checks and indexes, then renamed as the
// task renames its columns.
func (r *ddlRun) createTable(ctx context.Context) error {
	nw := r.ev.New
	if err := r.exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+quoteDDLIdent(r.dest.Schema)); err != nil {
		return err
	}
	if err := r.createSequences(ctx); err != nil {
		return err
	}
	bare := *nw
	bare.Constraints = nil
	if err := r.exec(ctx, createTableSQL(r.dest, &bare)+r.sink.dialect.tableSuffix(nw)); err != nil {
		return err
	}
	return r.withSourceNames(ctx, nw, nw, func(ctx context.Context) error {
		for _, fk := range []bool{false, true} {
			for i := range nw.Constraints {
				if c := &nw.Constraints[i]; (c.Kind == proto.ConstraintForeignKey) == fk {
					if err := r.addConstraint(ctx, c); err != nil {
						return err
					}
				}
			}
		}
		for i := range nw.Indexes {
			if err := r.exec(ctx, indexSQL(r.dest, &nw.Indexes[i])); err != nil {
				return err
			}
		}
		if mode := replicaIdentitySQL(nw); mode != "" && nw.ReplicaIdentity != proto.IdentityDefault {
			return r.exec(ctx, "ALTER TABLE "+ddlTableIdent(r.dest)+" REPLICA IDENTITY "+mode)
		}
		return nil
	})
}

// createSequences creates the sequences the new definition's defaults
// use, bare: the source's values are not known here, and the rows carry
// their own.
func (r *ddlRun) createSequences(ctx context.Context) error {
	for _, seq := range r.ev.New.Sequences {
		if err := r.exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+quoteDDLIdent(seq.Schema)); err != nil {
			return err
		}
		if err := r.exec(ctx, "CREATE SEQUENCE IF NOT EXISTS "+ddlTableIdent(seq)); err != nil {
			return err
		}
	}
	return nil
}

// alterTable runs the diff's steps other than a rename of the table,
// under the source's column names (withSourceNames).
func (r *ddlRun) alterTable(ctx context.Context) error {
	table := ddlTableIdent(r.dest)
	alter := func(action string) error { return r.exec(ctx, "ALTER TABLE "+table+" "+action) }
	seqs := false
	sequences := func() error {
		if seqs {
			return nil
		}
		seqs = true
		return r.createSequences(ctx)
	}
	for _, ch := range r.ev.Changes() {
		if !r.ops.Has(ch.Kind.Operation()) {
			continue
		}
		var err error
		switch ch.Kind {
		case proto.DropIndex:
			err = r.exec(ctx, "DROP INDEX IF EXISTS "+pgx.Identifier{r.dest.Schema, ch.Index.Name}.Sanitize())
		case proto.DropConstraint:
			err = alter("DROP CONSTRAINT IF EXISTS " + quoteDDLIdent(ch.Constraint.Name))
		case proto.DropColumn:
			// No CASCADE: what else at the destination depends on the
			// column is not the source's to drop.
			err = alter("DROP COLUMN IF EXISTS " + quoteDDLIdent(ch.Column.Name))
		case proto.RenameColumn:
			err = alter("RENAME COLUMN " + quoteDDLIdent(ch.OldColumn.Name) + " TO " + quoteDDLIdent(ch.Column.Name))
		case proto.AddColumn:
			if plainDefault(ch.Column) {
				if err = sequences(); err != nil {
					break
				}
			}
			err = alter("ADD COLUMN IF NOT EXISTS " + columnSQL(*ch.Column))
		case proto.AlterColumn:
			if ch.Column.Default != ch.OldColumn.Default && plainDefault(ch.Column) {
				if err = sequences(); err != nil {
					break
				}
			}
			for _, action := range alterColumn(quoteDDLIdent(ch.Column.Name), ch.OldColumn, ch.Column) {
				if err = alter(action); err != nil {
					break
				}
			}
		case proto.SetReplicaIdentity:
			if mode := replicaIdentitySQL(r.ev.New); mode != "" {
				err = alter("REPLICA IDENTITY " + mode)
			} else {
				r.sink.logger.Warn("DDL: the destination keeps its replica identity (the source's index is not known)", "table", r.dest.String())
			}
		case proto.AddConstraint:
			err = r.addConstraint(ctx, ch.Constraint)
		case proto.CreateIndex:
			err = r.exec(ctx, indexSQL(r.dest, ch.Index))
		case proto.AttachPartition, proto.DetachPartition:
			err = r.partition(ctx, ch)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// plainDefault: a column with a default of its own (not an identity or
// generated column), which may call a sequence.
func plainDefault(c *proto.ColumnDef) bool {
	return c.Default != "" && c.Identity == 0 && c.Generated == ""
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

// alterColumn is the ALTER COLUMN actions that turn column o into n.
func alterColumn(col string, o, n *proto.ColumnDef) []string {
	var out []string
	add := func(action string) { out = append(out, "ALTER COLUMN "+col+" "+action) }
	// Identity and generated columns have no default of their own.
	plain := func(c *proto.ColumnDef) bool { return c.Identity == 0 && c.Generated == "" }
	dropped := false
	if o.Type != n.Type || o.Collation != n.Collation {
		// A default may not cast to the new type by itself: drop it first
		// and set the new one after.
		if plain(o) && o.Default != "" {
			add("DROP DEFAULT")
			dropped = true
		}
		typ := n.Type
		if n.Collation != "" {
			typ += " COLLATE " + n.Collation
		}
		if n.Generated != "" { // computed again, not cast
			add("TYPE " + typ)
		} else {
			add("TYPE " + typ + " USING " + col + "::" + n.Type)
		}
	}
	// Before the identity: an identity column must be NOT NULL.
	if n.NotNull && !o.NotNull {
		add("SET NOT NULL")
	}
	switch {
	case o.Identity == n.Identity:
	case n.Identity == 0:
		add("DROP IDENTITY IF EXISTS")
	case o.Identity == 0:
		add("ADD GENERATED " + identityKind(n.Identity) + " AS IDENTITY")
	default:
		add("SET GENERATED " + identityKind(n.Identity))
	}
	if o.Generated != "" && n.Generated == "" {
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
	if o.NotNull && !n.NotNull && n.Identity == 0 {
		add("DROP NOT NULL")
	}
	return out
}

// addConstraint adds a constraint of the new definition unless the table
// has one of that name already (a table created before the event).
func (r *ddlRun) addConstraint(ctx context.Context, c *proto.ConstraintDef) error {
	table := ddlTableIdent(r.dest)
	exists, err := hasConstraint(ctx, r.tx, r.dest, c.Name)
	if err != nil {
		return fmt.Errorf("DDL %s on %s: look up constraint %s: %w", r.ev.Tag, r.dest, c.Name, err)
	}
	if exists {
		return nil
	}
	def := c.Def
	if c.Kind == proto.ConstraintForeignKey && c.References != nil {
		// A key to a table that is not synced cannot be made; the rows
		// still can.
		to := r.names.Table(c.References.Table)
		var there bool
		if err := r.tx.QueryRow(ctx, "SELECT pg_catalog.to_regclass($1) IS NOT NULL", tableName(to)).Scan(&there); err != nil {
			return fmt.Errorf("DDL %s on %s: look for %s: %w", r.ev.Tag, r.dest, to, err)
		}
		if !there {
			r.sink.logger.Warn("DDL: foreign key left out: the table it references is not at the destination",
				"table", r.dest.String(), "constraint", c.Name, "references", to.String())
			return nil
		}
		def = foreignKeySQL(c, r.names)
		if held := deferrableKey(def, !r.sink.replicaMode.Load()); held != def {
			def = held
			if err := r.exec(ctx, "ALTER TABLE "+table+" ADD CONSTRAINT "+quoteDDLIdent(c.Name)+" "+def); err != nil {
				return err
			}
			return hold(ctx, r.tx, r.task, r.dest, heldForeignKey, c.Name, "NOT DEFERRABLE")
		}
	}
	return r.exec(ctx, "ALTER TABLE "+table+" ADD CONSTRAINT "+quoteDDLIdent(c.Name)+" "+def)
}

// partition adds a partition of a kept partitioned table, or takes one
// away: dropped at the source (its rows went without a change each), it
// is dropped here; detached, it is detached here too, and keeps its rows
// as at the source. A table the destination flattened has no partitions:
// nothing to do, but a partition dropped at the source leaves its rows
// here.
func (r *ddlRun) partition(ctx context.Context, ch proto.Change) error {
	p := ch.Partition
	parent := p.Parent
	if parent == r.ev.New.ID || (r.ev.Old != nil && parent == r.ev.Old.ID) {
		parent = r.dest // the root, under its destination name
	}
	var kept bool
	if err := r.tx.QueryRow(ctx, `SELECT coalesce((SELECT relkind = 'p' FROM pg_catalog.pg_class WHERE oid = to_regclass($1)), false)`,
		ddlTableIdent(r.dest)).Scan(&kept); err != nil {
		return err
	}
	if !kept {
		if ch.Kind == proto.DetachPartition && r.ev.Tag == "DROP TABLE" {
			r.sink.logger.Warn("DDL: a partition was dropped at the source; the destination table is not partitioned and keeps its rows",
				"table", r.dest.String(), "partition", p.ID.String())
		}
		return nil
	}
	var attachedTo string
	if err := r.tx.QueryRow(ctx, `SELECT coalesce((SELECT h.inhparent::regclass::text FROM pg_catalog.pg_inherits h WHERE h.inhrelid = to_regclass($1)), '')`,
		ddlTableIdent(p.ID)).Scan(&attachedTo); err != nil {
		return err
	}
	if ch.Kind == proto.DetachPartition {
		switch {
		case r.ev.Tag == "DROP TABLE":
			return r.exec(ctx, "DROP TABLE IF EXISTS "+ddlTableIdent(p.ID))
		case attachedTo != "":
			return r.exec(ctx, "ALTER TABLE "+ddlTableIdent(parent)+" DETACH PARTITION "+ddlTableIdent(p.ID))
		}
		return nil
	}
	if attachedTo != "" {
		return nil
	}
	var exists bool
	if err := r.tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, ddlTableIdent(p.ID)).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return r.exec(ctx, "ALTER TABLE "+ddlTableIdent(parent)+" ATTACH PARTITION "+ddlTableIdent(p.ID)+" "+p.Bound)
	}
	sql := "CREATE TABLE " + ddlTableIdent(p.ID) + " PARTITION OF " + ddlTableIdent(parent) + " " + p.Bound
	if p.PartitionBy != "" {
		sql += " PARTITION BY " + p.PartitionBy
	}
	return r.exec(ctx, sql)
}
