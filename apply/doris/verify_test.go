package doris_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/apply/doris"
	"github.com/sluicedb/sluice/proto"
	"github.com/sluicedb/sluice/verify/pgverify"
	"github.com/sluicedb/sluice/verify/verifytest"
)

// verifyFamilies has values of every type family the sink maps, with the
// edges Doris keeps (the infinities of dates and timestamps, padded
// DECIMAL scales, json spacing and duplicate keys, NaN in an unbounded
// numeric carried as text, text that record_out quotes); the edges it
// documents as lossy (NaN into DECIMAL, years outside 1..9999, float NaN
// and infinities in the emulator) are left out: those read as differing.
const verifyFamilies = `
SELECT setseed(0.17);
CREATE TABLE vf (
	id int PRIMARY KEY,
	i2 int2, i4 int4, i8 int8,
	n numeric, n2 numeric(12,4),
	f4 float4, f8 float8,
	bo bool,
	t text, vc varchar(20), bc char(6),
	u uuid,
	tstz timestamptz, tstz3 timestamptz(3), ts timestamp, d date,
	j json, jb jsonb,
	b bytea,
	a_i int[], a_t text[], a_n numeric[], a_tstz timestamptz[], a_b bytea[],
	iv interval, tm time, ttz timetz, ip inet, m money, r tstzrange
);
INSERT INTO vf SELECT g,
	(g * 97 % 65535 - 32767)::int2,
	((random() - 0.5) * 4e9)::int4,
	((random() - 0.5) * 9e18)::int8,
	round(((random() - 0.5) * 10 ^ (g % 30 - 10))::numeric, g % 12),
	((random() - 0.5) * 1e6)::numeric(12,4),
	((random() - 0.5) * 10 ^ (g % 60 - 30))::float4,
	((random() - 0.5) * 10 ^ (g % 600 - 300))::float8,
	random() < 0.5,
	(ARRAY['', ' ', 'a b', 'a"b', 'a\b', '(x)', 'x,y', E'tab\t', E'nl\n', 'NULL', '{}', 'ünï', '🚀', 'plain'])[1 + g % 14]
		|| CASE WHEN g % 4 = 0 THEN '' ELSE g::text END,
	left(md5(g::text), g % 21),
	left(md5(g::text), g % 7) || CASE WHEN g % 3 = 0 THEN ' ' ELSE '' END,
	md5(g::text)::uuid,
	'2000-01-01 00:00:00+00'::timestamptz + (random() - 0.5) * interval '3800 years' + (g % 1000000) * interval '1 microsecond',
	'2000-01-01 00:00:00+00'::timestamptz + (random() - 0.5) * interval '300 years' + (g % 1000) * interval '1 millisecond',
	'2000-01-01 00:00:00'::timestamp + (random() - 0.5) * interval '3800 years' + (g % 1000) * interval '1 millisecond',
	'2000-01-01'::date + ((random() - 0.5) * 1e6)::int,
	format('{"b": %s, "aa": [1, 2.50, 1e2, "x\u00e9\n\t\"q\\"], "a": {"z": null, "y": true}, "a": %s, "": "%s"}', g, g * 1.5, g)::json,
	format('{"k%s": [%s, "v"], "long key": {"x": -0.0, "xx": 12e-3}, "s": "tab\there\u0001"}', g % 7, g)::jsonb,
	substring(decode(md5(g::text) || md5((g + 1)::text), 'hex') from 1 for g % 33),
	ARRAY[g, -g, NULL, g * 1000],
	ARRAY['', 'a b', 'a"b', 'a\b', 'NULL', 'x,y', '{}', 'plain' || g, NULL],
	ARRAY[1.50, -0.001, g::numeric / 7, 1e20],
	ARRAY['2024-05-01 10:00:00.5+02'::timestamptz + g * interval '1 hour', '0044-03-15 12:00:00+00 BC', 'infinity'],
	ARRAY[decode(md5(g::text), 'hex'), '\x'::bytea, NULL],
	make_interval(days => g, secs => g / 7.0), '10:00:00.5'::time + g * interval '1 second', '10:00:00+05:30'::timetz, ('10.0.0.' || g % 255)::inet,
	(g * 1.25)::money, tstzrange('2024-05-01 10:00:00+00'::timestamptz, '2024-05-01 10:00:00+00'::timestamptz + g * interval '1 day')
	FROM generate_series(1, 120) g;
INSERT INTO vf (id) VALUES (1000);
INSERT INTO vf (id, n, n2, f4, f8, t, tstz, tstz3, ts, d, j, jb, b, a_i) VALUES
	(1001, 'NaN', 0, 0, 0, '', 'infinity', 'infinity', '-infinity', 'infinity', '"null"', '"s"', '', '{}'),
	(1002, 'Infinity', 1.5, 1e30, 1e300, ' ', '-infinity', '-infinity', 'infinity', '-infinity', '[]', '{}', '\x00', '{0}'),
	(1003, '0.000', -0.0001, 1.17549435e-38, 2.2250738585072014e-308, '\', '9999-12-31 23:59:58.999999+00', '0001-01-01 00:00:00+00', '0001-01-01 00:00:00', '0001-01-01',
		'{"a":1,"a":2}', '{"aaa": 1, "b": 2, "aa": 3}', '\xdeadbeef', '{-2147483648,2147483647}'),
	(1004, '-0.0100', 99999999.9999, 3.4028235e38, 1.7976931348623157e308, E'\r\n', '1999-12-31 23:59:59.999999-14:59', '2024-05-01 10:00:00.123+00', '2000-02-29 23:59:59.999', '2000-02-29',
		'"\u00e9\u0001\ud83d\ude80"', '[1.0, 1e-2, 100000000000000000000, 0.00000000000000000001]', NULL, NULL),
	(1005, 1e-30, 2, 0.0001, 0.00001, 'x', '1970-01-01 00:00:00+00', '1970-01-01 00:00:00+00', '1970-01-01 00:00:00', '1970-01-01', '{}', 'true', NULL, NULL);
CREATE TABLE vf_keyless AS SELECT t, n, tstz, jb, a_t FROM vf WHERE id % 5 = 0 UNION ALL SELECT t, n, tstz, jb, a_t FROM vf WHERE id % 10 = 0;
`

// verifyColumn is a source column as schema sync and verify read it.
type verifyColumn struct {
	name, typ, base string // format_type, and verify's base type name
	oid             uint32
	key             int // position in the primary key, 0 if not in it
}

func sourceColumns(t *testing.T, pool *pgxpool.Pool, table string) []verifyColumn {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid,
		       CASE WHEN t.typcategory = 'A' THEN coalesce(et.typname::text || '[]', 'array') ELSE t.typname::text END,
		       coalesce((SELECT u.n FROM pg_index i, unnest(i.indkey) WITH ORDINALITY AS u(att, n) WHERE i.indrelid = a.attrelid AND i.indisprimary AND u.att = a.attnum), 0)
		FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
		WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, table)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (verifyColumn, error) {
		var c verifyColumn
		err := r.Scan(&c.name, &c.typ, &c.oid, &c.base, &c.key)
		return c, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sourceTuples reads a table's rows in PostgreSQL's text output as the
// capture's sessions print it (the same settings as verify's).
func sourceTuples(t *testing.T, pool *pgxpool.Pool, table string, cols []verifyColumn) []proto.Tuple {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read only
	if _, err := tx.Exec(ctx, pgverify.Settings); err != nil {
		t.Fatal(err)
	}
	exprs := make([]string, len(cols))
	for i, c := range cols {
		exprs[i] = pgx.Identifier{c.name}.Sanitize() + "::text"
	}
	rows, err := tx.Query(ctx, "SELECT ARRAY["+strings.Join(exprs, ", ")+"]::text[] FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	texts, err := pgx.CollectRows(rows, pgx.RowTo[[]*string])
	if err != nil {
		t.Fatal(err)
	}
	out := make([]proto.Tuple, len(texts))
	for r, vals := range texts {
		for _, v := range vals {
			if v == nil {
				out[r].Kinds, out[r].Values = append(out[r].Kinds, proto.KindNull), append(out[r].Values, nil)
				continue
			}
			out[r].Kinds, out[r].Values = append(out[r].Kinds, proto.KindText), append(out[r].Values, []byte(*v))
		}
	}
	return out
}

// The rows the sink's VerifyReader reads out of Doris hash as pgverify's
// SQL hashes the same rows at the source, for every type family, in a
// Unique table, a Duplicate table (folded from its changes: updates,
// deletes, a key deleted and inserted again) and a keyless Duplicate
// table (copies added and taken away), all loaded through the sink.
func TestVerifyReaderMatchesPostgres(t *testing.T) {
	ctx := context.Background()
	pool := verifytest.Source(t, verifyFamilies)
	srv := server(t, "verify")
	src := pgverify.New(pool, pgverify.Source)
	for _, c := range []struct{ source, dest, engine string }{
		{"vf", "vf_unique", doris.EngineUnique},
		{"vf", "vf_duplicate", doris.EngineDuplicate},
		{"vf_keyless", "vf_keyless", doris.EngineDuplicate},
	} {
		t.Run(c.dest, func(t *testing.T) {
			cols := sourceColumns(t, pool, c.source)
			def := proto.TableDef{ID: proto.TableID{Schema: "public", Name: c.dest}}
			vt := &proto.VerifyTable{Source: proto.TableID{Schema: "public", Name: c.source}, Dest: def.ID, LegacyHash: true}
			var pcols []proto.Column
			keyAt := map[int]int{}
			for i, col := range cols {
				def.Columns = append(def.Columns, proto.ColumnDef{Name: col.name, Type: col.typ, TypeOID: col.oid, NotNull: col.key > 0})
				pcols = append(pcols, proto.Column{Name: col.name, TypeOID: col.oid, Key: col.key > 0})
				vt.Columns, vt.Types = append(vt.Columns, col.name), append(vt.Types, col.base)
				if col.key > 0 {
					keyAt[col.key] = i
					def.PrimaryKey = append(def.PrimaryKey, col.name)
				}
			}
			for p := 1; p <= len(keyAt); p++ {
				vt.Key = append(vt.Key, keyAt[p])
			}
			vt.DestColumns = vt.Columns
			spec := &proto.TaskSpec{Name: "verify", Objects: []proto.ObjectSpec{{Schema: "public",
				Options: &doris.ObjectOptions{Engine: map[string]string{c.dest: c.engine}}}}}
			sink := openSinkSpec(t, srv, spec)
			if err := sink.ApplyPreData(ctx, &proto.Schema{Tables: []proto.TableDef{def}}); err != nil {
				t.Fatal(err)
			}
			final := sourceTuples(t, pool, c.source, cols)
			// The changes that leave the destination holding final: every
			// third row first inserted with another row's values and then
			// updated (its old row carried whole), a key that comes and
			// goes, and, keyless, an extra copy deleted again.
			var changes []proto.Row
			add := func(op proto.Op, old, new proto.Tuple) {
				changes = append(changes, proto.Row{Op: op, Pos: proto.Position{LSN: proto.LSN(100 + len(changes))}, Old: old, New: new, CommitTimeUS: 1_700_000_000_000_000})
			}
			other := func(i int) proto.Tuple {
				o := final[(i+1)%len(final)]
				tp := proto.Tuple{Kinds: slices.Clone(o.Kinds), Values: slices.Clone(o.Values)}
				for _, k := range vt.Key {
					tp.Kinds[k], tp.Values[k] = final[i].Kinds[k], final[i].Values[k]
				}
				return tp
			}
			for i, tp := range final {
				if i%3 == 0 {
					add(proto.OpInsert, proto.Tuple{}, other(i))
					continue
				}
				add(proto.OpInsert, proto.Tuple{}, tp)
			}
			if vt.Keyless() {
				add(proto.OpInsert, proto.Tuple{}, final[0])
				add(proto.OpDelete, final[0], proto.Tuple{})
			} else {
				gone := other(0)
				gone.Values[vt.Key[0]] = []byte("99999")
				add(proto.OpInsert, proto.Tuple{}, gone)
				add(proto.OpDelete, gone, proto.Tuple{})
				// Deleted, then inserted again as it is.
				add(proto.OpDelete, final[1], proto.Tuple{})
				add(proto.OpInsert, proto.Tuple{}, final[1])
			}
			for i, tp := range final {
				if i%3 == 0 {
					if vt.Keyless() {
						add(proto.OpDelete, other(i), proto.Tuple{})
						add(proto.OpInsert, proto.Tuple{}, tp)
					} else {
						add(proto.OpUpdate, other(i), tp)
					}
				}
			}
			last := changes[len(changes)-1].Pos
			ch := &apply.Changes{Task: "verify", Epoch: 1, Positions: map[string]proto.Position{def.ID.Key(): last},
				Tables:   map[string]proto.TableID{def.ID.Key(): def.ID},
				Segments: []*apply.Segment{{Table: def.ID, Columns: pcols, Identity: proto.IdentityFull, Rows: changes}}}
			if err := sink.Apply(ctx, ch); err != nil {
				t.Fatal(err)
			}

			want, err := src.Rows(ctx, vt, false, proto.KeyRange{})
			if err != nil {
				t.Fatal(err)
			}
			wantSum, err := src.Checksums(ctx, vt, false, []proto.KeyRange{{}})
			if err != nil {
				t.Fatal(err)
			}
			var v apply.Verifiable = sink
			r := v.VerifyReader()
			got, err := r.Rows(ctx, vt, false, proto.KeyRange{})
			if err != nil {
				t.Fatal(err)
			}
			verifytest.SameRows(t, "doris", vt, want, got)
			gotSum, err := r.Checksums(ctx, vt, false, []proto.KeyRange{{}})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(gotSum, wantSum) {
				t.Errorf("checksum %+v, source %+v", gotSum, wantSum)
			}
		})
	}
}
