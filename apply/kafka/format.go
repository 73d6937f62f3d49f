package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/sluicedb/sluice/internal/jsonstr"
	"github.com/sluicedb/sluice/proto"
)

// Message formats. Every format writes the same message key: the JSON
// object of the row's key columns ({"id":1}), values converted as in
// values.go, or of all columns for a table without a key. Keys are JSON
// even in Avro, so that a topic partitions and compacts the same whatever
// its value format, and a consumer can switch formats without rekeying.
const (
	FormatDebezium = "debezium" // Debezium's JSON envelope (JsonConverter, schemas.enable=false)
	FormatCanal    = "canal"    // Canal's flat JSON message
	FormatAvro     = "avro"     // Avro "Record" (see avro.go), optionally in Confluent framing
)

// Event is one message to encode.
type Event struct {
	Database string         // source database name
	Table    proto.TableID  // table name as the destination sees it (after renames)
	Columns  []proto.Column // column names as the destination sees them; source type OIDs
	// Row is a row change, a snapshot row or a truncate (Row.Op). For a
	// heartbeat it carries only Pos and CommitTimeUS; for a DDL event it
	// may carry CommitTimeUS (else the encoding time stands in).
	Row *proto.Row
	// Snapshot marks a full-sync row: Row.Op is OpInsert, encoded as a read.
	Snapshot bool
	// DDL is set instead of Row for a schema change; NewTable is the
	// table's new name as the destination sees it, when the change
	// renames it (Table is the name before the change).
	DDL      *proto.DDLEvent
	NewTable proto.TableID
	// Heartbeat marks a heartbeat message.
	Heartbeat bool
}

// Encoder turns events into Kafka message keys and values. Encoders are
// safe for concurrent use.
type Encoder interface {
	// Encode returns the message key and value. The key is the row's key
	// (see FormatDebezium); nil where there is none: DDL, heartbeat,
	// truncate.
	Encode(ctx context.Context, topic string, ev *Event) (key, value []byte, err error)
	// Name names the format for logs ("debezium", "canal", "avro").
	Name() string
}

// FormatConfig chooses and configures a message format.
type FormatConfig struct {
	Format string // FormatDebezium (default when empty), FormatCanal or FormatAvro
	// SchemaRegistry is, for Avro only, the base URL of a Confluent
	// compatible schema registry; empty writes plain Avro without framing.
	SchemaRegistry string
	// RegistryUser and RegistryPassword are optional basic auth.
	RegistryUser, RegistryPassword string
	// TaskName is Debezium's source.name (its topic prefix).
	TaskName string
}

// NewEncoder returns the encoder cfg names, checking the configuration.
func NewEncoder(cfg FormatConfig) (Encoder, error) {
	if cfg.SchemaRegistry != "" && cfg.Format != FormatAvro {
		return nil, fmt.Errorf("a schema registry is set, but message format %q does not use one (only %q does)", formatOrDefault(cfg.Format), FormatAvro)
	}
	switch cfg.Format {
	case "", FormatDebezium:
		return &debeziumEncoder{task: cfg.TaskName, now: time.Now}, nil
	case FormatCanal:
		return &canalEncoder{now: time.Now}, nil
	case FormatAvro:
		return newAvroEncoder(cfg)
	}
	return nil, fmt.Errorf("unknown message format %q (one of %q, %q, %q)", cfg.Format, FormatDebezium, FormatCanal, FormatAvro)
}

func formatOrDefault(f string) string {
	if f == "" {
		return FormatDebezium
	}
	return f
}

// ErrInvalidEvent reports an event an encoder cannot encode: no row, or a
// row whose width differs from its columns.
var ErrInvalidEvent = errors.New("invalid event")

// checkRow validates a row event before any encoder indexes into it.
func checkRow(ev *Event) error {
	if ev.Row == nil {
		return fmt.Errorf("%w: %s has no row, DDL or heartbeat", ErrInvalidEvent, ev.Table)
	}
	for _, t := range []proto.Tuple{ev.Row.New, ev.Row.Old} {
		if t.Len() != 0 && (t.Len() != len(ev.Columns) || len(t.Values) != t.Len()) {
			return fmt.Errorf("%w: %s row at %s has %d values for %d columns", ErrInvalidEvent, ev.Table, ev.Row.Pos, t.Len(), len(ev.Columns))
		}
	}
	return nil
}

// cellKind is what a row image knows of one column.
type cellKind uint8

const (
	cellUnknown cellKind = iota // not in the image: a non-key column of a key-only old image
	cellNull
	cellValue
	cellToast // an unchanged TOASTed value the change did not carry
)

// rowImage is a row before or after a change.
type rowImage struct {
	cols []proto.Column
	t    proto.Tuple
	// keyOnly: only the key columns are known. PostgreSQL logs the old row
	// of an update or delete whole only under REPLICA IDENTITY FULL; else
	// it logs the key columns and sends NULL for the others.
	keyOnly bool
	// old is where a TOAST-unchanged column's value can be found: under
	// REPLICA IDENTITY FULL the old image has it.
	old *rowImage
}

// cell returns what the image holds for column i.
func (im *rowImage) cell(i int) (cellKind, []byte) {
	if im.keyOnly && !im.cols[i].Key {
		return cellUnknown, nil
	}
	switch im.t.Kinds[i] {
	case proto.KindNull:
		return cellNull, nil
	case proto.KindText:
		return cellValue, im.t.Values[i]
	case proto.KindToast:
		if im.old != nil {
			if k, v := im.old.cell(i); k == cellNull || k == cellValue {
				return k, v
			}
		}
		return cellToast, nil
	}
	return cellUnknown, nil
}

// images are the row's before and after images (nil where the change has
// none: before of an insert or of an update without an old row, after of
// a delete, both of a truncate).
func images(ev *Event) (before, after *rowImage) {
	r := ev.Row
	if r.Old.Len() > 0 && (r.Op == proto.OpUpdate || r.Op == proto.OpDelete) {
		before = &rowImage{cols: ev.Columns, t: r.Old, keyOnly: keyOnly(ev.Columns, r.Old)}
	}
	if r.New.Len() > 0 && (r.Op == proto.OpInsert || r.Op == proto.OpUpdate) {
		after = &rowImage{cols: ev.Columns, t: r.New, old: before}
	}
	return before, after
}

// keyOnly reports whether an old image holds only its key columns. A
// table under REPLICA IDENTITY FULL whose row has NULL in every non-key
// column looks the same; calling those unknown rather than NULL loses
// nothing a consumer could rely on.
func keyOnly(cols []proto.Column, old proto.Tuple) bool {
	hasKey := false
	for i, c := range cols {
		if c.Key {
			hasKey = true
		} else if old.Kinds[i] != proto.KindNull {
			return false
		}
	}
	return hasKey
}

// hasKey reports whether the table has key columns; a table without any
// is keyed by all its columns.
func hasKey(cols []proto.Column) bool {
	for _, c := range cols {
		if c.Key {
			return true
		}
	}
	return false
}

// keyColumn reports whether column i belongs in the message key.
func keyColumn(cols []proto.Column, i int, keyed bool) bool { return !keyed || cols[i].Key }

// messageKey is the JSON key of a row event: its key columns from the
// after image (the before image for a delete); nil for a truncate or a
// row without images. A column the image does not know (TOAST unchanged
// and not in the old row) is left out: nothing better exists.
func messageKey(ev *Event, before, after *rowImage) []byte {
	im := after
	if ev.Row.Op == proto.OpDelete {
		im = before
	}
	if im == nil {
		return nil
	}
	keyed := hasKey(ev.Columns)
	o := newObject(nil)
	for i, c := range ev.Columns {
		if !keyColumn(ev.Columns, i, keyed) {
			continue
		}
		k, v := im.cell(i)
		o.known(c, k, v)
	}
	return o.close()
}

// keyNames are the names of the key columns, nil for a keyless table.
func keyNames(cols []proto.Column) []string {
	var names []string
	for _, c := range cols {
		if c.Key {
			names = append(names, c.Name)
		}
	}
	return names
}

// jsonObject appends a JSON object's members to a buffer, one call per
// member, in the order given: row images keep column order, and a row
// event is encoded without building maps or reflecting over structs.
type jsonObject struct {
	b []byte
	n int
}

func newObject(b []byte) jsonObject { return jsonObject{b: append(b, '{')} }

// key starts a member; its value is appended to o.b next.
func (o *jsonObject) key(name string) {
	if o.n > 0 {
		o.b = append(o.b, ',')
	}
	o.n++
	o.b = jsonstr.Append(o.b, name)
	o.b = append(o.b, ':')
}

func (o *jsonObject) str(name, v string) {
	o.key(name)
	o.b = jsonstr.Append(o.b, v)
}

func (o *jsonObject) int(name string, v int64) {
	o.key(name)
	o.b = strconv.AppendInt(o.b, v, 10)
}

func (o *jsonObject) uint(name string, v uint64) {
	o.key(name)
	o.b = strconv.AppendUint(o.b, v, 10)
}

func (o *jsonObject) bool(name string, v bool) {
	o.key(name)
	o.b = strconv.AppendBool(o.b, v)
}

// known appends column c when the image knows its value (NULL or a
// value), and nothing for an unknown or unchanged-TOAST one.
func (o *jsonObject) known(c proto.Column, k cellKind, v []byte) {
	switch k {
	case cellNull:
		o.raw(c.Name, "null")
	case cellValue:
		o.key(c.Name)
		o.b = appendValue(o.b, c.TypeOID, v)
	}
}

// raw appends a member whose value is already JSON.
func (o *jsonObject) raw(name string, v string) {
	o.key(name)
	o.b = append(o.b, v...)
}

func (o *jsonObject) close() []byte { return append(o.b, '}') }

// appendStrings appends a JSON array of strings, null for none.
func appendStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonstr.Append(b, s)
	}
	return append(b, ']')
}

// commitMicros is the commit time of an event in Unix microseconds; DDL
// events without a row carry none, and the encoding time stands in.
func commitMicros(ev *Event, now time.Time) int64 {
	if ev.Row != nil && ev.Row.CommitTimeUS != 0 {
		return ev.Row.CommitTimeUS
	}
	if ev.DDL != nil {
		return now.UnixMicro()
	}
	return 0
}

// position is the event's place in the source's change stream.
func position(ev *Event) proto.Position {
	switch {
	case ev.DDL != nil:
		return ev.DDL.Pos
	case ev.Row != nil:
		return ev.Row.Pos
	}
	return proto.Position{}
}

// ddlTable is the table a DDL event changes, as the destination names it;
// the shape's name when the event does not say.
func ddlTable(ev *Event) proto.TableID {
	if ev.Table != (proto.TableID{}) {
		return ev.Table
	}
	return ev.DDL.Table()
}
