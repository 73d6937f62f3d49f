package kafka

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/sluicedb/sluice/apply/pgvalue"
	"github.com/sluicedb/sluice/proto"
)

// The Avro format writes one Record per event, in the layout data
// transmission services use for change records: the position and time of
// the change, an operation, the object's name, the columns' names and
// type numbers, and the before and after images as arrays of typed values.
// The schema is avroSchema below; AvroSchema returns it for consumers.
//
// How a record is filled:
//   - id is the commit LSN (rows of a transaction share it);
//     sourcePosition the position "0/16B3748#3" (commit LSN, index in the
//     transaction), which orders changes; safeSourcePosition the commit LSN
//     alone, where a reader can resume without losing a transaction;
//     sourceTimestamp the commit time in Unix seconds; sourceTxid the xid.
//   - source.version is empty: the encoder is not told the server's.
//   - operation: INSERT, UPDATE, DELETE, TRUNCATE, DDL or HEARTBEAT. A
//     full-sync row is an INSERT with the tag snapshot=true.
//   - objectName is "database.schema.table"; tags.pk_uk_info is
//     {"PRIMARY":[key column names]} for a table with a key.
//   - fields are the columns with their type OID in dataTypeNumber (an OID
//     above 2^31 reads as a negative int). beforeImages and afterImages are
//     null where the change has no such row, else an array with one value
//     per column of fields; the afterImages of a DDL event is the
//     statement's text.
//
// Values (a union per column):
//
//	SQL NULL                      null
//	unknown value                 EmptyObject NONE: an unchanged TOASTed value, a non-key
//	                              column of a key-only old row (EmptyObject NULL is unused)
//	int2, int4, int8, oid         Integer{precision: width in bytes, value: digits}
//	bool                          Integer{precision: 1, value: "1" or "0"}
//	numeric                       Decimal{value: exact text, precision, scale} from the
//	                              type modifier; unconstrained: precision 0 and the value's
//	                              own scale
//	float4, float8                Float{value, precision: 24 or 53 bits, scale: 0}
//	text, varchar, bpchar, name,  Character{charset: "utf8", value: bytes}
//	"char"
//	bytea                         BinaryObject{type: "bytea", value: bytes}
//	timestamptz                   Timestamp{timestamp: Unix seconds, millis, micros}
//	timestamp, date, time         DateTime with the parts the type has (year astronomical:
//	                              1 BC is 0)
//	timetz                        TimestampWithTimeZone{value: DateTime, timezone: "+05:30"}
//	json, jsonb, arrays           TextObject{type: type name, value: JSON as in values.go}
//	anything else, and date/time  TextObject{type: type name, value: text form}
//	values without a number form
//	(infinity)
//
// Without a schema registry the message value is the Avro binary of the
// record. With one, the value is in Confluent's framing (0x00, the schema
// id in 4 bytes big-endian, the Avro binary), the schema registered under
// the subject "<topic>-value".

const avroNamespace = "com.sluicedb.sluice.avro"

// avroSchema is the Record schema.
const avroSchema = `{
  "type": "record", "name": "Record", "namespace": "com.sluicedb.sluice.avro",
  "doc": "A change, schema change or heartbeat of a PostgreSQL source, written by Sluice.",
  "fields": [
    {"name": "version", "type": "int", "doc": "Layout version: 1."},
    {"name": "id", "type": "long", "doc": "Commit LSN of the source transaction."},
    {"name": "sourceTimestamp", "type": "long", "doc": "Commit time, Unix seconds."},
    {"name": "sourcePosition", "type": "string", "doc": "Commit LSN and index in the transaction: 0/16B3748#3."},
    {"name": "safeSourcePosition", "type": "string", "doc": "Commit LSN: a reader resuming here loses no transaction."},
    {"name": "sourceTxid", "type": "string", "doc": "Source transaction id (xid)."},
    {"name": "source", "type": {"type": "record", "name": "Source", "fields": [
      {"name": "sourceType", "type": "string"},
      {"name": "version", "type": "string"}
    ]}},
    {"name": "operation", "type": {"type": "enum", "name": "Operation", "symbols": [
      "INSERT", "UPDATE", "DELETE", "DDL", "BEGIN", "COMMIT", "ROLLBACK", "ABORT", "HEARTBEAT",
      "CHECKPOINT", "COMMAND", "FILL", "FINISH", "CONTROL", "RDB", "NOOP", "INIT", "TRUNCATE"
    ]}},
    {"name": "objectName", "type": ["null", "string"], "default": null, "doc": "database.schema.table"},
    {"name": "processTimestamps", "type": ["null", {"type": "array", "items": "long"}], "default": null, "doc": "Encoding time, Unix milliseconds."},
    {"name": "tags", "type": {"type": "map", "values": "string"}},
    {"name": "fields", "type": ["null", {"type": "array", "items": {"type": "record", "name": "Field", "fields": [
      {"name": "name", "type": "string"},
      {"name": "dataTypeNumber", "type": "int", "doc": "PostgreSQL type OID."}
    ]}}], "default": null},
    {"name": "beforeImages", "type": ["null", "string", {"type": "array", "items": [
      "null",
      {"type": "record", "name": "Integer", "fields": [
        {"name": "precision", "type": "int", "doc": "Width in bytes."},
        {"name": "value", "type": "string"}
      ]},
      {"type": "record", "name": "Character", "fields": [
        {"name": "charset", "type": "string"},
        {"name": "value", "type": "bytes"}
      ]},
      {"type": "record", "name": "Decimal", "fields": [
        {"name": "value", "type": "string"},
        {"name": "precision", "type": "int"},
        {"name": "scale", "type": "int"}
      ]},
      {"type": "record", "name": "Float", "fields": [
        {"name": "value", "type": "double"},
        {"name": "precision", "type": "int"},
        {"name": "scale", "type": "int"}
      ]},
      {"type": "record", "name": "Timestamp", "fields": [
        {"name": "timestamp", "type": "long", "doc": "Unix seconds."},
        {"name": "millis", "type": "int", "doc": "Milliseconds within the second."},
        {"name": "micros", "type": "int", "default": 0, "doc": "Microseconds within the millisecond."}
      ]},
      {"type": "record", "name": "DateTime", "fields": [
        {"name": "year", "type": ["null", "int"], "default": null, "doc": "Astronomical: 1 BC is 0."},
        {"name": "month", "type": ["null", "int"], "default": null},
        {"name": "day", "type": ["null", "int"], "default": null},
        {"name": "hour", "type": ["null", "int"], "default": null},
        {"name": "minute", "type": ["null", "int"], "default": null},
        {"name": "second", "type": ["null", "int"], "default": null},
        {"name": "micros", "type": ["null", "int"], "default": null}
      ]},
      {"type": "record", "name": "TimestampWithTimeZone", "fields": [
        {"name": "value", "type": "DateTime"},
        {"name": "timezone", "type": "string", "doc": "Offset from UTC: +05:30."}
      ]},
      {"type": "record", "name": "BinaryObject", "fields": [
        {"name": "type", "type": "string"},
        {"name": "value", "type": "bytes"}
      ]},
      {"type": "record", "name": "TextObject", "fields": [
        {"name": "type", "type": "string"},
        {"name": "value", "type": "string"}
      ]},
      {"type": "enum", "name": "EmptyObject", "symbols": ["NULL", "NONE"]}
    ]}], "default": null},
    {"name": "afterImages", "type": ["null", "string", {"type": "array", "items": [
      "null", "Integer", "Character", "Decimal", "Float", "Timestamp", "DateTime",
      "TimestampWithTimeZone", "BinaryObject", "TextObject", "EmptyObject"
    ]}], "default": null}
  ]
}`

// AvroSchema returns the schema of the Avro format's records (JSON).
func AvroSchema() string { return avroSchema }

// avroRecord is a Record; image fields hold nil, a string (DDL text) or
// []any of the value types below, which avroAPI resolves to the union's
// branches by their registered names.
type avroRecord struct {
	Version            int32             `avro:"version"`
	ID                 int64             `avro:"id"`
	SourceTimestamp    int64             `avro:"sourceTimestamp"`
	SourcePosition     string            `avro:"sourcePosition"`
	SafeSourcePosition string            `avro:"safeSourcePosition"`
	SourceTxid         string            `avro:"sourceTxid"`
	Source             avroSource        `avro:"source"`
	Operation          string            `avro:"operation"`
	ObjectName         *string           `avro:"objectName"`
	ProcessTimestamps  []int64           `avro:"processTimestamps"`
	Tags               map[string]string `avro:"tags"`
	Fields             []avroField       `avro:"fields"`
	BeforeImages       any               `avro:"beforeImages"`
	AfterImages        any               `avro:"afterImages"`
}

type avroSource struct {
	SourceType string `avro:"sourceType"`
	Version    string `avro:"version"`
}

type avroField struct {
	Name           string `avro:"name"`
	DataTypeNumber int32  `avro:"dataTypeNumber"`
}

type avroInteger struct {
	Precision int32  `avro:"precision"`
	Value     string `avro:"value"`
}

type avroCharacter struct {
	Charset string `avro:"charset"`
	Value   []byte `avro:"value"`
}

type avroDecimal struct {
	Value     string `avro:"value"`
	Precision int32  `avro:"precision"`
	Scale     int32  `avro:"scale"`
}

type avroFloat struct {
	Value     float64 `avro:"value"`
	Precision int32   `avro:"precision"`
	Scale     int32   `avro:"scale"`
}

type avroTimestamp struct {
	Timestamp int64 `avro:"timestamp"`
	Millis    int32 `avro:"millis"`
	Micros    int32 `avro:"micros"`
}

type avroDateTime struct {
	Year   *int32 `avro:"year"`
	Month  *int32 `avro:"month"`
	Day    *int32 `avro:"day"`
	Hour   *int32 `avro:"hour"`
	Minute *int32 `avro:"minute"`
	Second *int32 `avro:"second"`
	Micros *int32 `avro:"micros"`
}

type avroTimestampTZ struct {
	Value    avroDateTime `avro:"value"`
	Timezone string       `avro:"timezone"`
}

type avroBinary struct {
	Type  string `avro:"type"`
	Value []byte `avro:"value"`
}

type avroText struct {
	Type  string `avro:"type"`
	Value string `avro:"value"`
}

// avroEmpty is an EmptyObject symbol.
type avroEmpty string

const avroUnknown avroEmpty = "NONE"

// avroAPI encodes records: a configuration of its own, so that the names
// registered for union resolution stay out of hamba/avro's global one.
var avroAPI = newAvroAPI()

func newAvroAPI() avro.API {
	api := avro.Config{}.Freeze()
	for name, v := range map[string]any{
		"array":                 []any{},
		"Integer":               avroInteger{},
		"Character":             avroCharacter{},
		"Decimal":               avroDecimal{},
		"Float":                 avroFloat{},
		"Timestamp":             avroTimestamp{},
		"DateTime":              avroDateTime{},
		"TimestampWithTimeZone": avroTimestampTZ{},
		"BinaryObject":          avroBinary{},
		"TextObject":            avroText{},
		"EmptyObject":           avroEmpty(""),
	} {
		if name != "array" {
			name = avroNamespace + "." + name
		}
		api.Register(name, v)
	}
	return api
}

// avroParsed is the parsed schema; a typo in avroSchema fails every test.
var avroParsed = avro.MustParse(avroSchema)

type avroEncoder struct {
	reg *registry // nil: plain Avro
	now func() time.Time
}

func newAvroEncoder(cfg FormatConfig) (*avroEncoder, error) {
	e := &avroEncoder{now: time.Now}
	if cfg.SchemaRegistry != "" {
		reg, err := newRegistry(cfg.SchemaRegistry, cfg.RegistryUser, cfg.RegistryPassword)
		if err != nil {
			return nil, err
		}
		e.reg = reg
	}
	return e, nil
}

func (e *avroEncoder) Name() string { return FormatAvro }

func (e *avroEncoder) Encode(ctx context.Context, topic string, ev *Event) (key, value []byte, err error) {
	rec, key, err := e.record(ev)
	if err != nil {
		return nil, nil, err
	}
	var prefix []byte
	if e.reg != nil {
		id, err := e.reg.id(ctx, topic+"-value", avroSchema)
		if err != nil {
			return nil, nil, err
		}
		prefix = binary.BigEndian.AppendUint32([]byte{0}, uint32(id))
	}
	body, err := avroAPI.Marshal(avroParsed, rec)
	if err != nil {
		return nil, nil, fmt.Errorf("avro record of %s: %w", ev.Table, err)
	}
	if prefix != nil {
		body = append(prefix, body...)
	}
	return key, body, nil
}

// record fills the Record of an event, and returns the row's key.
func (e *avroEncoder) record(ev *Event) (*avroRecord, []byte, error) {
	pos, now := position(ev), e.now()
	commitUS := commitMicros(ev, now)
	rec := &avroRecord{
		Version:            1,
		ID:                 int64(pos.LSN),
		SourceTimestamp:    floorDiv(commitUS, 1e6),
		SourcePosition:     pos.String(),
		SafeSourcePosition: pos.LSN.String(),
		Source:             avroSource{SourceType: "PostgreSQL"},
		ProcessTimestamps:  []int64{now.UnixMilli()},
		Tags:               map[string]string{},
	}
	switch {
	case ev.DDL != nil:
		rec.Operation = "DDL"
		rec.ObjectName = objectName(ev.Database, ddlTable(ev))
		rec.AfterImages = ev.DDL.Query
		return rec, nil, nil
	case ev.Heartbeat:
		rec.Operation = "HEARTBEAT"
		return rec, nil, nil
	}
	if err := checkRow(ev); err != nil {
		return nil, nil, err
	}
	if _, err := debeziumOp(ev); err != nil { // the same checks of Op and Snapshot
		return nil, nil, err
	}
	r := ev.Row
	rec.SourceTxid = strconv.FormatUint(uint64(r.Xid), 10)
	rec.ObjectName = objectName(ev.Database, ev.Table)
	if ev.Snapshot {
		rec.Tags["snapshot"] = "true"
	}
	if names := keyNames(ev.Columns); names != nil {
		rec.Tags["pk_uk_info"] = string(append(append([]byte(`{"PRIMARY":`), appendStrings(nil, names)...), '}'))
	}
	switch r.Op {
	case proto.OpInsert:
		rec.Operation = "INSERT"
	case proto.OpUpdate:
		rec.Operation = "UPDATE"
	case proto.OpDelete:
		rec.Operation = "DELETE"
	case proto.OpTruncate:
		rec.Operation = "TRUNCATE"
		return rec, nil, nil
	}
	rec.Fields = make([]avroField, len(ev.Columns))
	for i, c := range ev.Columns {
		rec.Fields[i] = avroField{Name: c.Name, DataTypeNumber: int32(c.TypeOID)}
	}
	before, after := images(ev)
	rec.BeforeImages = avroImage(before)
	rec.AfterImages = avroImage(after)
	return rec, messageKey(ev, before, after), nil
}

func objectName(db string, t proto.TableID) *string {
	s := db + "." + t.Schema + "." + t.Name
	return &s
}

// avroImage is a row image as the union's array branch; nil (null) for no
// image.
func avroImage(im *rowImage) any {
	if im == nil {
		return nil
	}
	out := make([]any, len(im.cols))
	for i, c := range im.cols {
		k, v := im.cell(i)
		switch k {
		case cellNull:
			out[i] = nil
		case cellValue:
			out[i] = avroValue(c, v)
		default:
			out[i] = avroUnknown
		}
	}
	return out
}

// avroValue is one column value as the branch of the value union its type
// maps to (see the table at the top of this file).
func avroValue(c proto.Column, text []byte) any {
	t, _ := pgvalue.Lookup(c.TypeOID)
	switch t.Family {
	case pgvalue.FamilyInt:
		if _, err := pgvalue.ParseInt(text, 64); err == nil {
			return avroInteger{Precision: int32(t.Size), Value: string(text)}
		}
	case pgvalue.FamilyBool:
		if v, err := pgvalue.ParseBool(text); err == nil {
			i := avroInteger{Precision: 1, Value: "0"}
			if v {
				i.Value = "1"
			}
			return i
		}
	case pgvalue.FamilyNumeric:
		if n, err := pgvalue.ParseNumeric(text); err == nil {
			return avroNumeric(c.TypeMod, text, n)
		}
	case pgvalue.FamilyFloat:
		if f, err := pgvalue.ParseFloat(text, 8*t.Size); err == nil {
			return avroFloat{Value: f, Precision: floatPrecision(t.Size)}
		}
	case pgvalue.FamilyText:
		return avroCharacter{Charset: "utf8", Value: text} // the record does not outlive Encode
	case pgvalue.FamilyBytea:
		if raw, err := pgvalue.ParseBytea(nil, text); err == nil {
			return avroBinary{Type: t.Name, Value: raw}
		}
	case pgvalue.FamilyTimestamptz:
		if dt, err := pgvalue.ParseDateTime(text); err == nil && dt.HasDate && dt.HasOffset {
			at := dt.Time()
			ns := int32(at.Nanosecond())
			return avroTimestamp{Timestamp: at.Unix(), Millis: ns / 1e6, Micros: ns / 1e3 % 1e3}
		}
	case pgvalue.FamilyDate, pgvalue.FamilyTime, pgvalue.FamilyTimestamp:
		if dt, err := pgvalue.ParseDateTime(text); err == nil && dt.Special == pgvalue.Finite && !dt.HasOffset {
			return avroDateTimeOf(dt)
		}
	case pgvalue.FamilyTimetz:
		if dt, err := pgvalue.ParseDateTime(text); err == nil && !dt.HasDate && dt.HasOffset {
			return avroTimestampTZ{Value: avroDateTimeOf(dt), Timezone: offsetText(dt.Offset)}
		}
	case pgvalue.FamilyJSON:
		return avroText{Type: t.Name, Value: string(text)}
	case pgvalue.FamilyArray:
		if out, ok := appendArray(nil, t.Elem, t.Delim, text); ok {
			return avroText{Type: pgvalue.TypeName(c.TypeOID, -1), Value: string(out)}
		}
	}
	return avroText{Type: pgvalue.TypeName(c.TypeOID, -1), Value: string(text)}
}

// avroNumeric is a numeric as a Decimal: precision and scale from the
// type modifier; an unconstrained numeric has precision 0 and the scale
// of its value.
func avroNumeric(typmod int32, text []byte, n pgvalue.Numeric) avroDecimal {
	p, s, ok := pgvalue.NumericTypmod(typmod)
	if !ok {
		s = len(n.Frac)
	}
	return avroDecimal{Value: string(text), Precision: int32(p), Scale: int32(s)}
}

// floatPrecision is the binary precision of float4 (real = float(24)) and
// float8 (double precision = float(53)).
func floatPrecision(size int) int32 {
	if size == 4 {
		return 24
	}
	return 53
}

func avroDateTimeOf(dt pgvalue.DateTime) avroDateTime {
	var out avroDateTime
	if dt.HasDate {
		out.Year, out.Month, out.Day = int32p(dt.Year), int32p(dt.Month), int32p(dt.Day)
	}
	if dt.HasTime {
		out.Hour, out.Minute, out.Second, out.Micros = int32p(dt.Hour), int32p(dt.Minute), int32p(dt.Second), int32p(dt.Microsecond)
	}
	return out
}

func int32p(v int) *int32 {
	i := int32(v)
	return &i
}

// offsetText writes a zone offset as ±HH:MM, with :SS when it has seconds.
func offsetText(offset int) string {
	sign := '+'
	if offset < 0 {
		sign, offset = '-', -offset
	}
	s := fmt.Sprintf("%c%02d:%02d", sign, offset/3600, offset/60%60)
	if offset%60 != 0 {
		s += fmt.Sprintf(":%02d", offset%60)
	}
	return s
}

// floorDiv divides rounding toward minus infinity, so that times before
// 1970 fall in the right second.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
