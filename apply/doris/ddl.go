package doris

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sluicedb/sluice/proto"
)

// ApplyDDL makes a schema change of the source at the table: ADD COLUMN,
// DROP COLUMN and RENAME COLUMN as light schema changes (one column per
// statement), CREATE TABLE, RENAME TABLE and DROP TABLE; the rest
// (constraints, indexes, type changes) Doris has no use for or cannot
// make light: they are logged and skipped. The event's position is stored
// in sluice_offsets (under both names on a rename), so a retried event is
// skipped; each step also checks the table first, so a step that ran
// before a crash is not run again.
func (s *Sink) ApplyDDL(ctx context.Context, task string, epoch uint64, ev *proto.DDLEvent, names *proto.NameMap, ops proto.DDLOpSet) error {
	oldT := names.Table(ev.Table())
	newT := oldT
	if ev.New != nil {
		newT = names.Table(ev.New.ID)
	}
	key := tblKey(oldT)
	prev, err := s.position(ctx, task, key, epoch)
	if err != nil {
		return err
	}
	if !prev.pos.Less(ev.Pos) {
		return nil
	}
	if ev.WaitOnly {
		// Another group renames the table: its changes here wait until
		// Doris has it under the new name.
		if err := s.awaitTable(ctx, dorisName(newT)); err != nil {
			return err
		}
		return s.recordDDL(ctx, task, epoch, ev.Pos, prev, tblKey(newT), "")
	}
	name := dorisName(oldT)
	for _, ch := range ev.Changes() {
		if !ops.Has(ch.Kind.Operation()) {
			continue
		}
		if err := s.applyChange(ctx, ev, names, oldT, newT, ch); err != nil {
			return fmt.Errorf("DDL sync of %s (%s): %w", oldT, ch.Kind, err)
		}
	}
	s.forget(name)
	s.forget(dorisName(newT))
	var renamed string
	if newT != oldT {
		renamed = tblKey(newT)
	}
	return s.recordDDL(ctx, task, epoch, ev.Pos, prev, key, renamed)
}

// recordDDL stores a schema change's position under key, and, weakly,
// under the table's new name (renamed, "" for none): the apply group
// that consumes the new name may have moved past it already, and its
// row stands.
func (s *Sink) recordDDL(ctx context.Context, task string, epoch uint64, pos proto.Position, prev offsetRow, key, renamed string) error {
	rows := map[string]offsetRow{}
	row := offsetRow{pos: pos, epoch: epoch, gen: prev.gen, recordID: prev.recordID, prevPos: prev.pos, prevRec: prev.recordID}
	rows[key] = row
	if renamed != "" {
		row.weak = true
		rows[renamed] = row
	}
	if err := s.writeOffsets(ctx, task, epoch, rows); err != nil {
		return err
	}
	s.mu.Lock()
	s.known[knownKey(task, key)] = rows[key]
	// The new name's row is read again when used: another group's may
	// stand instead of the weak one.
	delete(s.known, knownKey(task, renamed))
	s.mu.Unlock()
	return nil
}

func (s *Sink) applyChange(ctx context.Context, ev *proto.DDLEvent, names *proto.NameMap, oldT, newT proto.TableID, ch proto.Change) error {
	name := dorisName(oldT)
	colName := func(c string) string { return names.Column(ev.Table(), c) }
	info := func() (*tableInfo, error) {
		s.forget(name)
		return s.describe(ctx, name)
	}
	switch ch.Kind {
	case proto.CreateTable:
		if cur, err := s.describe(ctx, dorisName(newT)); err != nil || cur != nil {
			return err
		}
		ts, err := planTable(ev.New, dorisName(newT), func(c string) string { return names.Column(ev.New.ID, c) }, optionsFor(s.spec, ev.New.ID))
		if err != nil {
			return err
		}
		return s.c.exec(ctx, ts.createSQL(s.cfg.ReplicationNum))
	case proto.DropTable:
		return s.c.exec(ctx, "DROP TABLE IF EXISTS "+quote(name))
	case proto.RenameTable:
		cur, err := info()
		if err != nil || cur == nil {
			return err // renamed already
		}
		return s.c.exec(ctx, "ALTER TABLE "+quote(name)+" RENAME "+quote(dorisName(newT)))
	}
	// Column steps run on the table under its new name once renamed.
	if newT != oldT {
		name = dorisName(newT)
	}
	cur, err := info()
	if err != nil {
		return err
	}
	if cur == nil {
		return fmt.Errorf("table %s does not exist", name)
	}
	switch ch.Kind {
	case proto.AddColumn:
		c := ch.Column
		if _, ok := cur.types[colName(c.Name)]; ok {
			return nil
		}
		typ, _ := dorisType(c.TypeOID, c.Type, false)
		stmt := fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s NULL", quote(name), quote(colName(c.Name)), typ)
		if cur.model == EngineDuplicate && cur.extras {
			// The extra columns stay last.
			if i := slices.Index(cur.cols, colIsDeleted); i > 0 {
				stmt += " AFTER " + quote(cur.cols[i-1])
			}
		}
		return s.c.exec(ctx, stmt)
	case proto.DropColumn:
		if _, ok := cur.types[colName(ch.Column.Name)]; !ok {
			return nil
		}
		return s.c.exec(ctx, fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s", quote(name), quote(colName(ch.Column.Name))))
	case proto.RenameColumn:
		from, to := colName(ch.OldColumn.Name), colName(ch.Column.Name)
		if _, ok := cur.types[from]; !ok {
			return nil
		}
		return s.c.exec(ctx, fmt.Sprintf("ALTER TABLE %s RENAME COLUMN %s %s", quote(name), quote(from), quote(to)))
	case proto.AlterColumn:
		// A type change Doris can make (widening: INT to BIGINT, a longer
		// VARCHAR, a wider DECIMAL); one it refuses fails the task with
		// its reason, since rows of the new type would not load.
		col := colName(ch.Column.Name)
		curType, ok := cur.types[col]
		if !ok {
			return nil
		}
		isKey := slices.Contains(cur.keys, col)
		typ, _ := dorisType(ch.Column.TypeOID, ch.Column.Type, isKey)
		if strings.EqualFold(strings.ReplaceAll(typ, " ", ""), curType) {
			return nil // a default or NOT NULL: Doris keeps neither from the source
		}
		null := " NULL"
		if isKey {
			null = " NOT NULL"
		}
		return s.c.exec(ctx, fmt.Sprintf("ALTER TABLE %s MODIFY COLUMN %s %s%s", quote(name), quote(col), typ, null))
	}
	s.log.Warn("doris: schema change skipped: Doris has no use for it", "table", name, "change", ch.Kind.String())
	return nil
}

// awaitTable waits, bounded, until the database has table.
func (s *Sink) awaitTable(ctx context.Context, table string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		info, err := s.describe(ctx, table)
		if err != nil {
			return err
		}
		if info != nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("doris: table %s does not exist yet: waiting for its rename in another apply group", table)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
