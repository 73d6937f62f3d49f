package kafka

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sluicedb/sluice/apply/pgvalue"
	"github.com/sluicedb/sluice/proto"
	"github.com/sluicedb/sluice/verify/rowside"
)

// Reading messages back (sluice verify folds a table's topic): each
// format's row messages carry the whole row after the change (and the
// row before it, or its key, for a delete), so every format can be read
// back into the row's values. A value the message does not know (an
// unchanged TOAST value: Debezium's placeholder, Canal's left-out
// column, Avro's EmptyObject NONE) is rowside.Unknown; a column the
// message does not have at all (added to the table after the message was
// written) is absent.

// changeKind is what a message does to the table's rows.
type changeKind uint8

const (
	changeNone     changeKind = iota // not a row of this table: another table's, a schema change, a heartbeat
	changeUpsert                     // insert, update, full-sync read: the row after is the row
	changeDelete                     // the row before goes
	changeTruncate                   // every row of the table in the message's partition goes
)

// rowChange is one message as the fold reads it: values of the compared
// columns (VerifyTable.Columns' order), and the message's place in the
// source's change stream.
type rowChange struct {
	kind          changeKind
	before, after []any // nil: the message has no such image
	pos           proto.Position
}

// absent marks a compared column a message does not have.
type absentValue struct{}

var absent any = absentValue{}

// readChange reads a message of format (debezium, canal, avro) as a
// change of table t.
func readChange(format, database string, t *proto.VerifyTable, value []byte) (rowChange, error) {
	switch format {
	case FormatCanal:
		return readCanal(t, value)
	case FormatAvro:
		return readAvro(database, t, value)
	}
	return readDebezium(t, value)
}

// jsonImage is a JSON row image's compared columns: a value as the JSON
// carries it; Debezium's placeholder is Unknown; a member missing is
// missing (absent, or, in Canal, Unknown).
func jsonImage(t *proto.VerifyTable, m map[string]json.RawMessage, missing any) []any {
	if m == nil {
		return nil
	}
	out := make([]any, len(t.DestColumns))
	for i, name := range t.DestColumns {
		raw, ok := m[name]
		switch {
		case !ok:
			out[i] = missing
		case string(raw) == `"`+toastPlaceholder+`"`:
			out[i] = rowside.Unknown
		default:
			out[i] = rowside.JSONValue(t.Types[i], raw)
		}
	}
	return out
}

// debeziumEnvelope is what the fold reads of a Debezium message.
type debeziumEnvelope struct {
	Op     string                     `json:"op"`
	Before map[string]json.RawMessage `json:"before"`
	After  map[string]json.RawMessage `json:"after"`
	Source *struct {
		Schema   string `json:"schema"`
		Table    string `json:"table"`
		Sequence string `json:"sequence"`
		LSN      uint64 `json:"lsn"`
	} `json:"source"`
}

func readDebezium(t *proto.VerifyTable, value []byte) (rowChange, error) {
	var m debeziumEnvelope
	if err := json.Unmarshal(value, &m); err != nil {
		return rowChange{}, fmt.Errorf("not a Debezium message: %w", err)
	}
	if m.Source == nil || m.Source.Schema != t.Dest.Schema || m.Source.Table != t.Dest.Name {
		return rowChange{}, nil
	}
	ch := rowChange{pos: proto.Position{LSN: proto.LSN(m.Source.LSN)}}
	var seq []string
	if json.Unmarshal([]byte(m.Source.Sequence), &seq) == nil && len(seq) == 2 {
		lsn, err1 := strconv.ParseUint(seq[0], 10, 64)
		idx, err2 := strconv.ParseUint(seq[1], 10, 32)
		if err1 == nil && err2 == nil {
			ch.pos = proto.Position{LSN: proto.LSN(lsn), Idx: uint32(idx)}
		}
	}
	switch m.Op {
	case "c", "r", "u":
		ch.kind = changeUpsert
	case "d":
		ch.kind = changeDelete
	case "t":
		ch.kind = changeTruncate
	default:
		return rowChange{}, nil // a schema change or a heartbeat
	}
	ch.before, ch.after = jsonImage(t, m.Before, absent), jsonImage(t, m.After, absent)
	return ch, nil
}

// canalMessage is what the fold reads of a Canal message.
type canalMessage struct {
	Data   []map[string]json.RawMessage `json:"data"`
	Type   string                       `json:"type"`
	IsDdl  bool                         `json:"isDdl"`
	Schema string                       `json:"schema"`
	Table  string                       `json:"table"`
	ID     uint64                       `json:"id"`
}

func readCanal(t *proto.VerifyTable, value []byte) (rowChange, error) {
	var m canalMessage
	if err := json.Unmarshal(value, &m); err != nil {
		return rowChange{}, fmt.Errorf("not a Canal message: %w", err)
	}
	if m.Schema != t.Dest.Schema || m.Table != t.Dest.Name {
		return rowChange{}, nil
	}
	ch := rowChange{pos: proto.Position{LSN: proto.LSN(m.ID)}}
	var image []any
	if len(m.Data) == 1 {
		// Canal leaves out a value it does not know.
		image = jsonImage(t, m.Data[0], rowside.Unknown)
	}
	switch {
	case m.Type == "TRUNCATE":
		ch.kind = changeTruncate
	case m.IsDdl || image == nil:
		return rowChange{}, nil
	case m.Type == "INSERT" || m.Type == "UPDATE":
		ch.kind, ch.after = changeUpsert, image
	case m.Type == "DELETE":
		ch.kind, ch.before = changeDelete, image
	default:
		return rowChange{}, nil
	}
	return ch, nil
}

func readAvro(database string, t *proto.VerifyTable, value []byte) (rowChange, error) {
	if len(value) >= 5 && value[0] == 0 {
		// Confluent framing: magic byte, schema id. (A plain record
		// starts with its version, 1, which Avro writes as 2.)
		value = value[5:]
	}
	var rec avroRecord
	if err := avroAPI.Unmarshal(avroParsed, value, &rec); err != nil {
		return rowChange{}, fmt.Errorf("not an Avro Record: %w", err)
	}
	if rec.ObjectName == nil || *rec.ObjectName != database+"."+t.Dest.Schema+"."+t.Dest.Name {
		return rowChange{}, nil
	}
	ch := rowChange{pos: parsePosition(rec.SourcePosition)}
	switch rec.Operation {
	case "INSERT", "UPDATE":
		ch.kind = changeUpsert
	case "DELETE":
		ch.kind = changeDelete
	case "TRUNCATE":
		return rowChange{kind: changeTruncate, pos: ch.pos}, nil
	default:
		return rowChange{}, nil
	}
	at := map[string]int{}
	for i, f := range rec.Fields {
		at[f.Name] = i
	}
	var err error
	if ch.before, err = avroRowImage(t, at, rec.BeforeImages); err != nil {
		return rowChange{}, err
	}
	if ch.after, err = avroRowImage(t, at, rec.AfterImages); err != nil {
		return rowChange{}, err
	}
	return ch, nil
}

// parsePosition reads a position as Position.String writes it
// ("0/16B3748#3"); zero if it does not parse.
func parsePosition(s string) proto.Position {
	lsnText, idxText, _ := strings.Cut(s, "#")
	lsn, err := proto.ParseLSN(lsnText)
	if err != nil {
		return proto.Position{}
	}
	idx, _ := strconv.ParseUint(idxText, 10, 32)
	return proto.Position{LSN: lsn, Idx: uint32(idx)}
}

// avroRowImage is an Avro image's compared columns, by the record's
// field names.
func avroRowImage(t *proto.VerifyTable, at map[string]int, image any) ([]any, error) {
	if image == nil {
		return nil, nil
	}
	var values []any
	switch x := image.(type) {
	case map[string]any: // the union's array branch, by name
		values, _ = x["array"].([]any)
	case []any:
		values = x
	}
	if values == nil {
		return nil, fmt.Errorf("avro image of %T", image)
	}
	out := make([]any, len(t.DestColumns))
	for i, name := range t.DestColumns {
		j, ok := at[name]
		if !ok || j >= len(values) {
			out[i] = absent
			continue
		}
		out[i] = avroGoValue(values[j])
	}
	return out, nil
}

// avroGoValue is an Avro value branch (avro.go) as a Go value rowside
// takes: the branch's text or number, a date or time as its PostgreSQL
// text, a timestamptz as its instant.
func avroGoValue(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case avroEmpty:
		if x == avroUnknown {
			return rowside.Unknown
		}
		return nil
	case avroInteger:
		return json.Number(x.Value) // a bool is 1 or 0
	case avroCharacter:
		return string(x.Value)
	case avroDecimal:
		return x.Value
	case avroFloat:
		return x.Value
	case avroTimestamp:
		return time.Unix(x.Timestamp, int64(x.Millis)*1e6+int64(x.Micros)*1e3).UTC()
	case avroDateTime:
		return string(pgvalue.AppendDateTime(nil, dateTimeOfAvro(x)))
	case avroTimestampTZ:
		dt := dateTimeOfAvro(x.Value)
		if off, ok := parseOffset(x.Timezone); ok {
			dt.Offset, dt.HasOffset = off, true
		}
		return string(pgvalue.AppendDateTime(nil, dt))
	case avroBinary:
		return x.Value
	case avroText:
		return x.Value
	}
	return fmt.Sprint(v)
}

func dateTimeOfAvro(a avroDateTime) pgvalue.DateTime {
	get := func(p *int32) int {
		if p == nil {
			return 0
		}
		return int(*p)
	}
	return pgvalue.DateTime{
		Year: get(a.Year), Month: get(a.Month), Day: get(a.Day),
		Hour: get(a.Hour), Minute: get(a.Minute), Second: get(a.Second), Microsecond: get(a.Micros),
		HasDate: a.Year != nil, HasTime: a.Hour != nil,
	}
}

// parseOffset reads an offset as offsetText writes it: ±HH:MM[:SS].
func parseOffset(s string) (int, bool) {
	if len(s) < 6 || (s[0] != '+' && s[0] != '-') {
		return 0, false
	}
	parts := strings.Split(s[1:], ":")
	secs := 0
	for i, mult := range []int{3600, 60, 1} {
		if i >= len(parts) {
			break
		}
		n, err := strconv.Atoi(parts[i])
		if err != nil {
			return 0, false
		}
		secs += n * mult
	}
	if s[0] == '-' {
		secs = -secs
	}
	return secs, true
}
