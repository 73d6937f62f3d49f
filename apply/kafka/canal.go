package kafka

import (
	"bytes"
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/apply/pgvalue"
	"github.com/sluicedb/sluice/proto"
)

// The Canal format is Canal's flat JSON message, as its MQ producer writes
// it and Flink's canal-json reads it:
//
//	{"data": [{col: value}] | null, "old": [{col: old value}] | null,
//	 "type": "INSERT"|"UPDATE"|"DELETE"|"TRUNCATE"|<DDL verb>|"HEARTBEAT",
//	 "pkNames": [...] | null, "isDdl": bool, "sql": "...",
//	 "database": db, "schema": schema, "table": table,
//	 "ts": encoding ms, "es": commit ms, "id": commit LSN,
//	 "sqlType": {col: type OID}, "mysqlType": {col: type name}}
//
// Choices where PostgreSQL is not MySQL:
//   - Values are the typed JSON values of values.go, not Canal's strings
//     (consumers such as Flink accept both; typed values keep int8 exact
//     and json embedded).
//   - "database" is the source database; "schema" is added (MySQL has no
//     schemas, so Canal has no such field; readers ignore unknown fields).
//   - "sqlType" holds the PostgreSQL type OID (Canal: java.sql.Types) and
//     "mysqlType" the PostgreSQL type name with its modifier ("varchar(10)").
//   - Full-sync (snapshot) rows are "INSERT", as Canal writes the rows of a
//     full sync; nothing marks them.
//   - A column whose value the change does not carry (an unchanged TOASTed
//     value with no old row to take it from, a non-key column of a key-only
//     old row) is left out of "data" and "old", never written as null.
//   - "old" of an update holds the columns whose value changed, as far as
//     the old row tells: null when PostgreSQL sent no old row (the default
//     replica identity when the key did not change).
//   - A truncate is what Canal makes of MySQL's: "TRUNCATE" with isDdl
//     true and the statement in "sql". A schema change has isDdl true, the
//     statement in "sql" and the first word of its command tag as "type"
//     ("ALTER TABLE" → "ALTER").
//   - A heartbeat is type "HEARTBEAT" with no data: Canal has none, so
//     heartbeats belong on a topic of their own.
type canalEncoder struct {
	now func() time.Time
}

func (e *canalEncoder) Name() string { return FormatCanal }

func (e *canalEncoder) Encode(_ context.Context, _ string, ev *Event) (key, value []byte, err error) {
	now := e.now()
	switch {
	case ev.DDL != nil:
		return nil, e.control(ev, ddlVerb(ev.DDL), ev.DDL.Query, ddlTable(ev), now), nil
	case ev.Heartbeat:
		return nil, e.control(ev, "HEARTBEAT", "", proto.TableID{}, now), nil
	}
	if err := checkRow(ev); err != nil {
		return nil, nil, err
	}
	r := ev.Row
	if r.Op == proto.OpTruncate {
		sql := "TRUNCATE TABLE " + pgx.Identifier{ev.Table.Schema, ev.Table.Name}.Sanitize()
		return nil, e.control(ev, "TRUNCATE", sql, ev.Table, now), nil
	}
	if _, err := debeziumOp(ev); err != nil { // the same checks of Op and Snapshot
		return nil, nil, err
	}
	before, after := images(ev)
	o := newObject(make([]byte, 0, 512+2*(r.New.Size()+r.Old.Size())))
	o.key("data")
	data := after
	if r.Op == proto.OpDelete {
		data = before
	}
	if data == nil {
		o.b = append(o.b, "null"...)
	} else {
		o.b = append(o.b, '[')
		o.b = appendCanalImage(o.b, data)
		o.b = append(o.b, ']')
	}
	o.key("old")
	if r.Op == proto.OpUpdate && before != nil && after != nil {
		o.b = append(o.b, '[')
		o.b = appendCanalChanged(o.b, before, after)
		o.b = append(o.b, ']')
	} else {
		o.b = append(o.b, "null"...)
	}
	o.str("type", canalType(r.Op))
	o.key("pkNames")
	o.b = appendStrings(o.b, keyNames(ev.Columns))
	o.bool("isDdl", false)
	o.str("sql", "")
	e.appendPlace(&o, ev, ev.Table, r.Pos, r.CommitTimeUS, now)
	o.key("sqlType")
	types := newObject(o.b)
	for _, c := range ev.Columns {
		types.uint(c.Name, uint64(c.TypeOID))
	}
	o.b = types.close()
	o.key("mysqlType")
	names := newObject(o.b)
	for _, c := range ev.Columns {
		names.str(c.Name, pgvalue.TypeName(c.TypeOID, c.TypeMod))
	}
	o.b = names.close()
	return messageKey(ev, before, after), o.close(), nil
}

func canalType(op proto.Op) string {
	switch op {
	case proto.OpUpdate:
		return "UPDATE"
	case proto.OpDelete:
		return "DELETE"
	}
	return "INSERT"
}

// appendCanalImage appends a row image's known columns.
func appendCanalImage(b []byte, im *rowImage) []byte {
	o := newObject(b)
	for i, c := range im.cols {
		k, v := im.cell(i)
		o.known(c, k, v)
	}
	return o.close()
}

// appendCanalChanged appends the old values of the columns an update
// changed, among those both images know.
func appendCanalChanged(b []byte, before, after *rowImage) []byte {
	o := newObject(b)
	for i, c := range before.cols {
		bk, bv := before.cell(i)
		ak, av := after.cell(i)
		if !known(bk) || !known(ak) || (bk == ak && bytes.Equal(bv, av)) {
			continue
		}
		o.key(c.Name)
		if bk == cellNull {
			o.b = append(o.b, "null"...)
		} else {
			o.b = appendValue(o.b, c.TypeOID, bv)
		}
	}
	return o.close()
}

func known(k cellKind) bool { return k == cellNull || k == cellValue }

// control is a message without rows: a schema change, a truncate or a
// heartbeat.
func (e *canalEncoder) control(ev *Event, typ, sql string, table proto.TableID, now time.Time) []byte {
	o := newObject(nil)
	o.raw("data", "null")
	o.raw("old", "null")
	o.str("type", typ)
	o.raw("pkNames", "null")
	o.bool("isDdl", typ != "HEARTBEAT")
	o.str("sql", sql)
	e.appendPlace(&o, ev, table, position(ev), commitMicros(ev, now), now)
	o.raw("sqlType", "null")
	o.raw("mysqlType", "null")
	return o.close()
}

// appendPlace appends where and when the change happened.
func (e *canalEncoder) appendPlace(o *jsonObject, ev *Event, table proto.TableID, pos proto.Position, commitUS int64, now time.Time) {
	o.str("database", ev.Database)
	o.str("schema", table.Schema)
	o.str("table", table.Name)
	o.int("ts", now.UnixMilli())
	o.int("es", commitUS/1000)
	o.uint("id", uint64(pos.LSN))
}

// ddlVerb is the first word of a DDL event's command tag ("ALTER TABLE" →
// "ALTER"), or what its shapes say when it has no tag.
func ddlVerb(d *proto.DDLEvent) string {
	if verb, _, _ := strings.Cut(strings.TrimSpace(d.Tag), " "); verb != "" {
		return strings.ToUpper(verb)
	}
	switch {
	case d.Old == nil:
		return "CREATE"
	case d.New == nil:
		return "DROP"
	}
	return "ALTER"
}
