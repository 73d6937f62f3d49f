package kafka

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/jsonstr"
	"github.com/sluicedb/sluice/proto"
)

// The Debezium format is the envelope Debezium's PostgreSQL connector
// writes through JsonConverter with schemas.enable=false:
//
//	{"before": {...}|null, "after": {...}|null, "source": {...},
//	 "op": "c"|"u"|"d"|"r"|"t", "ts_ms": ..., "transaction": {...}|null}
//
// Values are those of values.go. Where Sluice knows less than Debezium's
// source block asks for, it says what it has: "lsn" is the commit LSN of
// the transaction (not the change's own), "sequence" is the JSON text
// ["<commit lsn>","<index in transaction>"], which orders changes as the
// position does, and data_collection_order is the index in the
// transaction plus one, like total_order. An unchanged TOASTed value is
// Debezium's placeholder "__debezium_unavailable_value", unless the old
// row (REPLICA IDENTITY FULL) holds it. The before image of a delete, or
// of an update that changed the key, under the default replica identity
// has the key columns and null for the others, as in Debezium. Schema
// changes are a message in the layout of Debezium's schema-change topic;
// heartbeats are {"ts_ms", "source"}.

// toastPlaceholder is Debezium's default unavailable.value.placeholder
// (kafkatest.ToastPlaceholder, as a consumer knows it).
const toastPlaceholder = "__debezium_unavailable_value"

type debeziumEncoder struct {
	task string
	now  func() time.Time
}

func (e *debeziumEncoder) Name() string { return FormatDebezium }

func (e *debeziumEncoder) Encode(_ context.Context, _ string, ev *Event) (key, value []byte, err error) {
	now := e.now()
	switch {
	case ev.DDL != nil:
		value, err = e.schemaChange(ev, now)
		return nil, value, err
	case ev.Heartbeat:
		return nil, e.heartbeat(ev), nil
	}
	if err := checkRow(ev); err != nil {
		return nil, nil, err
	}
	op, err := debeziumOp(ev)
	if err != nil {
		return nil, nil, err
	}
	r := ev.Row
	before, after := images(ev)
	o := newObject(make([]byte, 0, 512+2*(r.New.Size()+r.Old.Size())))
	o.key("before")
	o.b = appendDebeziumImage(o.b, before)
	o.key("after")
	o.b = appendDebeziumImage(o.b, after)
	o.key("source")
	o.b = e.appendSource(o.b, ev, sourceInfo{table: ev.Table, pos: r.Pos, commitUS: r.CommitTimeUS, xid: r.Xid, row: true})
	o.str("op", op)
	appendTimes(&o, now)
	o.key("transaction")
	if ev.Snapshot {
		o.b = append(o.b, "null"...) // Debezium's snapshot reads belong to no transaction
	} else {
		order := uint64(r.Pos.Idx) + 1
		t := newObject(o.b)
		t.str("id", strconv.FormatUint(uint64(r.Xid), 10)+":"+strconv.FormatUint(uint64(r.Pos.LSN), 10))
		t.uint("total_order", order)
		t.uint("data_collection_order", order)
		o.b = t.close()
	}
	if r.Op != proto.OpTruncate {
		key = messageKey(ev, before, after)
	}
	return key, o.close(), nil
}

// debeziumOp is the envelope's op for a row event.
func debeziumOp(ev *Event) (string, error) {
	if ev.Snapshot {
		if ev.Row.Op != proto.OpInsert {
			return "", fmt.Errorf("%w: snapshot row of %s with operation %s", ErrInvalidEvent, ev.Table, ev.Row.Op)
		}
		return "r", nil
	}
	switch ev.Row.Op {
	case proto.OpInsert:
		return "c", nil
	case proto.OpUpdate:
		return "u", nil
	case proto.OpDelete:
		return "d", nil
	case proto.OpTruncate:
		return "t", nil
	}
	return "", fmt.Errorf("%w: %s row with operation %s", ErrInvalidEvent, ev.Table, ev.Row.Op)
}

// appendDebeziumImage appends a row image as an object of every column;
// null for no image.
func appendDebeziumImage(b []byte, im *rowImage) []byte {
	if im == nil {
		return append(b, "null"...)
	}
	o := newObject(b)
	for i, c := range im.cols {
		o.key(c.Name)
		switch k, v := im.cell(i); k {
		case cellValue:
			o.b = appendValue(o.b, c.TypeOID, v)
		case cellToast:
			o.b = jsonstr.Append(o.b, toastPlaceholder)
		default:
			o.b = append(o.b, "null"...)
		}
	}
	return o.close()
}

// appendTimes appends the envelope's processing time.
func appendTimes(o *jsonObject, now time.Time) {
	o.int("ts_ms", now.UnixMilli())
	o.int("ts_us", now.UnixMicro())
	o.int("ts_ns", now.UnixNano())
}

// sourceInfo is what the source block describes.
type sourceInfo struct {
	table    proto.TableID
	pos      proto.Position
	commitUS int64
	xid      uint32
	row      bool // a row event: it has a transaction id
}

func (e *debeziumEncoder) appendSource(b []byte, ev *Event, s sourceInfo) []byte {
	o := newObject(b)
	o.str("version", "sluice")
	o.str("connector", "postgresql")
	o.str("name", e.task)
	o.int("ts_ms", s.commitUS/1000)
	o.int("ts_us", s.commitUS)
	o.int("ts_ns", s.commitUS*1000)
	snapshot := "false"
	if ev.Snapshot {
		snapshot = "true"
	}
	o.str("snapshot", snapshot)
	o.str("db", ev.Database)
	o.str("sequence", string(appendStrings(nil, []string{
		strconv.FormatUint(uint64(s.pos.LSN), 10), strconv.FormatUint(uint64(s.pos.Idx), 10),
	})))
	o.str("schema", s.table.Schema)
	o.str("table", s.table.Name)
	if s.row {
		o.uint("txId", uint64(s.xid))
	} else {
		o.raw("txId", "null")
	}
	o.uint("lsn", uint64(s.pos.LSN))
	o.raw("xmin", "null")
	return o.close()
}

// heartbeat is {"ts_ms": commit ms, "source": {...}}: the position the
// stream has reached, with no table.
func (e *debeziumEncoder) heartbeat(ev *Event) []byte {
	var s sourceInfo
	if ev.Row != nil {
		s.pos, s.commitUS = ev.Row.Pos, ev.Row.CommitTimeUS
	}
	o := newObject(nil)
	o.int("ts_ms", s.commitUS/1000)
	o.key("source")
	o.b = e.appendSource(o.b, ev, s)
	return o.close()
}

// Debezium's schema-change message (rare: built with encoding/json).
type debeziumSchemaChange struct {
	Source       json.RawMessage       `json:"source"`
	TsMs         int64                 `json:"ts_ms"`
	DatabaseName string                `json:"databaseName"`
	SchemaName   string                `json:"schemaName"`
	DDL          string                `json:"ddl"`
	TableChanges []debeziumTableChange `json:"tableChanges"`
}

type debeziumTableChange struct {
	Type  string        `json:"type"` // CREATE, ALTER, DROP
	ID    string        `json:"id"`   // "schema"."table"
	Table debeziumTable `json:"table"`
}

type debeziumTable struct {
	PrimaryKeyColumnNames []string         `json:"primaryKeyColumnNames"`
	Columns               []debeziumColumn `json:"columns"`
}

type debeziumColumn struct {
	Name                   string  `json:"name"`
	TypeName               string  `json:"typeName"`
	TypeExpression         string  `json:"typeExpression"`
	Position               int     `json:"position"`
	Optional               bool    `json:"optional"`
	AutoIncremented        bool    `json:"autoIncremented"`
	Generated              bool    `json:"generated"`
	DefaultValueExpression *string `json:"defaultValueExpression"`
}

// schemaChange describes a DDL event: the statement and the table's shape
// after it (before it, for a drop). The table is named as the destination
// sees it; its columns as the source has them (a shape carries no
// renames).
func (e *debeziumEncoder) schemaChange(ev *Event, now time.Time) ([]byte, error) {
	d := ev.DDL
	shape, kind := d.New, "ALTER"
	switch {
	case d.Old == nil:
		kind = "CREATE"
	case d.New == nil:
		shape, kind = d.Old, "DROP"
	}
	if shape == nil {
		return nil, fmt.Errorf("%w: DDL event without a table shape", ErrInvalidEvent)
	}
	table := ddlTable(ev)
	// Debezium names a table change by the table as it is after the
	// change: a consumer follows a rename by it.
	changed := table
	if ev.NewTable != (proto.TableID{}) {
		changed = ev.NewTable
	}
	commitUS := commitMicros(ev, now)
	msg := debeziumSchemaChange{
		Source:       e.appendSource(nil, ev, sourceInfo{table: table, pos: d.Pos, commitUS: commitUS}),
		TsMs:         commitUS / 1000,
		DatabaseName: ev.Database,
		SchemaName:   table.Schema,
		DDL:          d.Query,
		TableChanges: []debeziumTableChange{{
			Type:  kind,
			ID:    pgx.Identifier{changed.Schema, changed.Name}.Sanitize(),
			Table: debeziumTableOf(shape),
		}},
	}
	return json.Marshal(msg)
}

func debeziumTableOf(s *proto.TableDef) debeziumTable {
	t := debeziumTable{PrimaryKeyColumnNames: []string{}, Columns: make([]debeziumColumn, 0, len(s.Columns))}
	if len(s.PrimaryKey) > 0 {
		t.PrimaryKeyColumnNames = s.PrimaryKey
	}
	for i, c := range s.Columns {
		col := debeziumColumn{
			Name:            c.Name,
			TypeName:        c.Type,
			TypeExpression:  c.Type,
			Position:        i + 1,
			Optional:        !c.NotNull,
			AutoIncremented: c.Identity != 0 || strings.HasPrefix(c.Default, "nextval("),
			Generated:       c.Generated != "",
		}
		if c.Default != "" {
			col.DefaultValueExpression = &c.Default
		}
		t.Columns = append(t.Columns, col)
	}
	return t
}
