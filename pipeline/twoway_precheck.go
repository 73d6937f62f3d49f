package pipeline

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/proto"
)

// twoWayPrecheck checks what two-way sync needs beyond the forward
// direction's checks: keys on every table, the destination able to be a
// source (the reverse direction's slot and publication), replication
// origins on both sides, commit timestamps for last_writer_wins, and
// sequences that would hand out the same values on both sides.
func twoWayPrecheck(ctx context.Context, spec *proto.TaskSpec, facts *proto.SourceFacts, c *proto.Checks) {
	if spec.TwoWay == nil || spec.TwoWay.Reverse {
		return
	}
	var keyless []string
	for _, d := range facts.Defs {
		if len(d.PrimaryKey) == 0 {
			keyless = append(keyless, d.ID.String())
		}
	}
	if len(keyless) > 0 {
		c.Fail("two_way.primary_keys", fmt.Sprintf("tables without a primary key cannot be synced two ways (a conflict is found and resolved by key): %s", strings.Join(keyless, ", ")),
			"add a primary key (ALTER TABLE ... ADD PRIMARY KEY (...)) or leave the tables out of objects")
	} else if facts.Defs != nil {
		c.Pass("two_way.primary_keys", "every table has a primary key")
	}
	ep, ok := spec.Destination.Config.(proto.TwoWayEndpoint)
	if !ok {
		return // Validate refused it already
	}
	lww := spec.TwoWay.Policy() == proto.ConflictLastWriterWins
	sides := []struct{ name, dsn string }{{"source", spec.Source.ConnDSN()}, {"destination", ep.AsSource().ConnDSN()}}
	seqs := map[string][]sequenceInfo{}
	for _, side := range sides {
		conn, err := pgconfig.Connect(ctx, side.dsn, "sluice precheck")
		if err != nil {
			continue // the direction's own connect check says why
		}
		twoWaySide(ctx, conn, side.name, lww, c)
		seqs[side.name] = readSequences(ctx, conn, facts.Defs)
		conn.Close(context.Background())
	}
	checkSequences(seqs["source"], seqs["destination"], c)
}

// twoWaySide checks one database of a two-way task: it is both a source
// (wal_level, a free slot, replication) and a destination whose apply
// sets replication origins.
func twoWaySide(ctx context.Context, conn *pgx.Conn, side string, lww bool, c *proto.Checks) {
	var walLevel, commitTS, user string
	var super, repl, originFn bool
	var freeSlots, freeOrigins int
	err := conn.QueryRow(ctx, `SELECT current_setting('wal_level'), current_setting('track_commit_timestamp'), current_user,
		r.rolsuper, r.rolreplication,
		has_function_privilege('pg_replication_origin_session_setup(text)', 'EXECUTE'),
		current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots),
		current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_origin_status)
		FROM pg_roles r WHERE r.rolname = current_user`).Scan(&walLevel, &commitTS, &user, &super, &repl, &originFn, &freeSlots, &freeOrigins)
	check := "two_way." + side
	if err != nil {
		c.Fail(check+".settings", fmt.Sprintf("cannot read the %s's settings: %v", side, err), "")
		return
	}
	if side == "destination" {
		if walLevel != "logical" {
			c.Fail(check+".wal_level", fmt.Sprintf("wal_level is %q at the destination; its changes go back to the source through logical replication", walLevel),
				"set wal_level = logical at the destination (ALTER SYSTEM SET wal_level = logical) and restart it")
		} else {
			c.Pass(check+".wal_level", "wal_level is logical")
		}
		if !super && !repl {
			c.Fail(check+".replication", fmt.Sprintf("user %q may not use replication at the destination (the reverse direction reads its changes)", user),
				fmt.Sprintf("ALTER ROLE %s REPLICATION;", pgx.Identifier{user}.Sanitize()))
		}
		if freeSlots < 1 {
			c.Fail(check+".replication_slots", "no replication slot is free at the destination for the reverse direction",
				"raise max_replication_slots at the destination and restart it, or drop an unused slot")
		} else {
			c.Pass(check+".replication_slots", fmt.Sprintf("%d replication slots free", freeSlots))
		}
	}
	// PostgreSQL tracks at most max_replication_slots origins, and each
	// apply group of the direction writing here holds one while it writes.
	if freeOrigins < apply.DefaultGroups {
		c.Fail(check+".replication_origins_free", fmt.Sprintf("%d replication origins can still be tracked at the %s; the apply groups writing there need %d (one each)", max(freeOrigins, 0), side, apply.DefaultGroups),
			fmt.Sprintf("raise max_replication_slots at the %s by %d and restart it, or drop unused origins (SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin WHERE ...)", side, apply.DefaultGroups-max(freeOrigins, 0)))
	} else {
		c.Pass(check+".replication_origins_free", fmt.Sprintf("%d replication origins free", freeOrigins))
	}
	if !super && !originFn {
		c.Fail(check+".replication_origin", fmt.Sprintf("user %q may not set replication origins at the %s: the changes applied there would be sent back", user, side),
			fmt.Sprintf("GRANT EXECUTE ON FUNCTION pg_replication_origin_session_setup(text), pg_replication_origin_session_reset(), pg_replication_origin_xact_setup(pg_lsn, timestamptz), pg_replication_origin_create(text), pg_replication_origin_drop(text) TO %s; (as a superuser)", pgx.Identifier{user}.Sanitize()))
	} else {
		c.Pass(check+".replication_origin", "replication origins can be set")
	}
	if lww {
		if commitTS != "on" {
			c.Fail(check+".track_commit_timestamp", fmt.Sprintf("track_commit_timestamp is off at the %s; last_writer_wins compares the commit times of the rows", side),
				"ALTER SYSTEM SET track_commit_timestamp = on; then restart PostgreSQL (or choose another two_way.conflicts policy)")
		} else {
			c.Pass(check+".track_commit_timestamp", "track_commit_timestamp is on")
		}
	}
}

// sequenceInfo is a sequence a selected table's column defaults use.
type sequenceInfo struct {
	name      string
	increment int64
	last      int64 // its last value (or start when never used)
}

func readSequences(ctx context.Context, conn *pgx.Conn, defs []proto.TableDef) []sequenceInfo {
	var out []sequenceInfo
	seen := map[string]bool{}
	for _, d := range defs {
		for _, s := range d.Sequences {
			if seen[s.Key()] {
				continue
			}
			seen[s.Key()] = true
			var inc, last int64
			err := conn.QueryRow(ctx, `SELECT increment_by, COALESCE(last_value, start_value) FROM pg_sequences WHERE schemaname = $1 AND sequencename = $2`,
				s.Schema, s.Name).Scan(&inc, &last)
			if err != nil {
				continue // absent on this side (not created yet)
			}
			out = append(out, sequenceInfo{name: s.String(), increment: inc, last: last})
		}
	}
	return out
}

// checkSequences warns of sequences both sides would draw the same values
// from: inserts on both sides would then collide on their keys. Two
// sequences are split when they step by the same n > 1 from different
// residues modulo n.
func checkSequences(src, dst []sequenceInfo, c *proto.Checks) {
	at := map[string]sequenceInfo{}
	for _, s := range dst {
		at[s.name] = s
	}
	var overlap []string
	for _, s := range src {
		d, ok := at[s.name]
		split := ok && s.increment == d.increment && abs(s.increment) > 1 && mod(s.last, s.increment) != mod(d.last, d.increment)
		if !split {
			overlap = append(overlap, s.name)
		}
	}
	if len(overlap) == 0 {
		c.Pass("two_way.sequences", "no sequence hands out the same values on both sides")
		return
	}
	c.Warn("two_way.sequences", fmt.Sprintf("both sides draw keys from the same range of %s: rows inserted on both sides would collide (insert conflicts)", strings.Join(overlap, ", ")),
		"split each sequence once the forward copy is in, e.g. at the source: ALTER SEQUENCE s INCREMENT BY 2 RESTART WITH <an odd value above the maximum>; at the destination: ALTER SEQUENCE s INCREMENT BY 2 RESTART WITH <an even value above it>")
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

func mod(v, n int64) int64 {
	n = abs(n)
	return ((v % n) + n) % n
}
