// Package kafkatest reads back what Sluice wrote to Kafka, as a consumer
// of its Debezium messages would: the sink conformance suite
// (apply/sinktest) and the pipeline suite (pipeline/pipelinetest) compare
// it with what the source holds.
package kafkatest

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicedb/sluice/apply/pgvalue"
	"github.com/sluicedb/sluice/apply/sinktest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

func TopicExists(t *testing.T, k *testenv.Kafka, topic string) bool {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(k.Brokers...)}, k.ClientOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topics, err := kadm.NewClient(cl).ListTopics(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	d, ok := topics[topic]
	return ok && d.Err == nil
}

// Folded is what a consumer that folds a topic's Debezium messages knows:
// each table's rows, keyed by partition and message key (a keyless
// table's key is the whole row, so equal rows share a key and are
// counted, and a message written twice shows as a doubled row), and each
// table's columns from its latest schema-change message.
type Folded struct {
	rows map[proto.TableID]map[slot][]map[string]json.RawMessage
	// Columns are each table's columns as its latest schema-change
	// message describes them (sinktest.Destination.Columns).
	Columns map[proto.TableID][]string
}

type slot struct {
	partition int32
	key       string
}

// message is the part of a Debezium message the fold reads: a row
// change, or a schema change (tableChanges).
type message struct {
	Op     string                     `json:"op"`
	After  map[string]json.RawMessage `json:"after"`
	Source struct {
		Schema   string `json:"schema"`
		Table    string `json:"table"`
		Sequence string `json:"sequence"`
	} `json:"source"`
	TableChanges []struct {
		Type  string `json:"type"`
		ID    string `json:"id"`
		Table struct {
			Columns []struct {
				Name                   string  `json:"name"`
				TypeName               string  `json:"typeName"`
				Optional               bool    `json:"optional"`
				DefaultValueExpression *string `json:"defaultValueExpression"`
			} `json:"columns"`
		} `json:"table"`
	} `json:"tableChanges"`
}

// FoldTopic replays a topic's messages in order. A schema change names
// the table as it is after the change (as Debezium's tableChanges id
// does); one whose id is not its source table renames that table, and
// the table's rows go with it.
func FoldTopic(t *testing.T, k *testenv.Kafka, topic string) *Folded {
	t.Helper()
	f := &Folded{rows: map[proto.TableID]map[slot][]map[string]json.RawMessage{}, Columns: map[proto.TableID][]string{}}
	if !TopicExists(t, k, topic) {
		return f
	}
	seen := map[string]bool{} // schema changes by table and position
	for _, r := range k.ReadTopic(t, topic) {
		var m message
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatalf("message %s: %v", r.Value, err)
		}
		src := proto.TableID{Schema: m.Source.Schema, Name: m.Source.Table}
		if m.TableChanges != nil {
			if at := src.String() + " at " + m.Source.Sequence; seen[at] {
				t.Errorf("the schema change of %s is written twice", at)
			} else {
				seen[at] = true
			}
			f.schemaChange(t, src, &m)
			continue
		}
		state := f.rows[src]
		if state == nil {
			state = map[slot][]map[string]json.RawMessage{}
			f.rows[src] = state
		}
		key := slot{r.Partition, string(r.Key)}
		switch m.Op {
		case "c", "r":
			state[key] = append(state[key], m.After)
		case "u":
			if n := len(state[key]); n > 0 {
				state[key][n-1] = m.After
			} else {
				t.Fatalf("update of key %s, which %s does not hold", key.key, src)
			}
		case "d":
			if n := len(state[key]); n > 0 {
				state[key] = state[key][:n-1]
			} else {
				t.Fatalf("delete of key %s, which %s does not hold", key.key, src)
			}
		case "t": // written to every partition, in order with its changes
			for held := range state {
				if held.partition == r.Partition {
					delete(state, held)
				}
			}
		default:
			t.Fatalf("op %q", m.Op)
		}
	}
	return f
}

func (f *Folded) schemaChange(t *testing.T, src proto.TableID, m *message) {
	t.Helper()
	if len(m.TableChanges) != 1 {
		t.Fatalf("schema change of %s with %d table changes", src, len(m.TableChanges))
	}
	tc := m.TableChanges[0]
	id, ok := parseTableID(tc.ID)
	if !ok {
		t.Fatalf("schema change of %s names table %q", src, tc.ID)
	}
	if tc.Type == "DROP" {
		delete(f.Columns, id)
		return
	}
	if id != src {
		f.rows[id], f.Columns[id] = f.rows[src], f.Columns[src]
		delete(f.rows, src)
		delete(f.Columns, src)
	}
	cols := []string{}
	for _, c := range tc.Table.Columns {
		line := c.Name + " " + c.TypeName
		if !c.Optional {
			line += " not null"
		}
		if c.DefaultValueExpression != nil {
			line += " default " + *c.DefaultValueExpression
		}
		cols = append(cols, line)
	}
	f.Columns[id] = cols
}

// parseTableID reads a tableChanges id: `"schema"."table"`, quotes
// doubled inside a name.
func parseTableID(id string) (proto.TableID, bool) {
	var parts []string
	var cur strings.Builder
	quoted := false
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case c == '"' && quoted && i+1 < len(id) && id[i+1] == '"':
			cur.WriteByte('"')
			i++
		case c == '"':
			quoted = !quoted
		case c == '.' && !quoted:
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	parts = append(parts, cur.String())
	if len(parts) != 2 {
		return proto.TableID{}, false
	}
	return proto.TableID{Schema: parts[0], Name: parts[1]}, true
}

// Read is what the fold holds of a table: each row's cols in canonical
// form. A column a row's message does not have (it was added after the
// message) is NULL, as for a consumer whose schema evolves.
func (f *Folded) Read(t *testing.T, tb proto.TableID, cols []proto.Column) []sinktest.Row {
	t.Helper()
	var out []sinktest.Row
	for _, rows := range f.rows[tb] {
		for _, img := range rows {
			r := sinktest.Row{}
			for _, c := range cols {
				r[c.Name] = sinktest.Null
				if raw, ok := img[c.Name]; ok {
					v, err := Canonical(c.TypeOID, raw)
					if err != nil {
						t.Errorf("%s.%s: %v", tb, c.Name, err)
					}
					r[c.Name] = v
				}
			}
			out = append(out, r)
		}
	}
	return out
}

// ReadHeartbeats reads the task's heartbeat messages (keyed by the task)
// from the heartbeat topic: the positions their source blocks carry.
func ReadHeartbeats(t *testing.T, k *testenv.Kafka, topic, task string) []proto.Position {
	t.Helper()
	if !TopicExists(t, k, topic) {
		return nil
	}
	key, err := json.Marshal(struct {
		Task string `json:"task"`
	}{task})
	if err != nil {
		t.Fatal(err)
	}
	var out []proto.Position
	for _, r := range k.ReadTopic(t, topic) {
		if string(r.Key) != string(key) {
			continue
		}
		var m struct {
			Source struct {
				LSN      uint64 `json:"lsn"`
				Sequence string `json:"sequence"`
			} `json:"source"`
		}
		var seq []string
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatalf("heartbeat %s: %v", r.Value, err)
		}
		if err := json.Unmarshal([]byte(m.Source.Sequence), &seq); err != nil || len(seq) != 2 {
			t.Fatalf("heartbeat %s: sequence %q", r.Value, m.Source.Sequence)
		}
		idx, err := strconv.ParseUint(seq[1], 10, 32)
		if err != nil {
			t.Fatalf("heartbeat %s: %v", r.Value, err)
		}
		out = append(out, proto.Position{LSN: proto.LSN(m.Source.LSN), Idx: uint32(idx)})
	}
	return out
}

// Canonical turns a value of a Debezium message back into the suite's
// canonical form (sinktest.Row), by the mapping the README and values.go
// document, written out here again rather than taken from values.go's
// tables, so that a value written otherwise than documented fails:
// booleans are true/false, integers exact numbers, floats numbers or the
// strings NaN and ±Infinity, numeric an exact string, bytea base64,
// timestamptz RFC 3339 in UTC, json and jsonb the document itself, arrays
// of built-in types JSON arrays; every other type is its text form as a
// string. Debezium's placeholder for an unchanged TOAST value stands for
// itself whatever the type.
func Canonical(oid uint32, raw json.RawMessage) (string, error) {
	if string(raw) == "null" {
		return sinktest.Null, nil
	}
	var s string
	isString := json.Unmarshal(raw, &s) == nil
	if isString && s == ToastPlaceholder {
		return s, nil
	}
	bad := func() (string, error) { return "", fmt.Errorf("type %d written as %s, not as documented", oid, raw) }
	typ, known := pgvalue.Lookup(oid)
	if !known {
		// A type the source database defines (enum, domain, composite,
		// an extension's): its text form, whatever it looks like.
		if !isString {
			return bad()
		}
		return s, nil
	}
	switch typ.Family {
	case pgvalue.FamilyBool:
		switch string(raw) {
		case "true":
			return "t", nil
		case "false":
			return "f", nil
		}
		return bad()
	case pgvalue.FamilyInt:
		if isString || !json.Valid(raw) {
			return bad()
		}
		return string(raw), nil
	case pgvalue.FamilyFloat:
		switch {
		case !isString:
			return string(raw), nil
		case s == "NaN" || s == "Infinity" || s == "-Infinity":
			return s, nil
		}
		return bad()
	case pgvalue.FamilyJSON:
		return string(raw), nil // embedded as PostgreSQL printed it
	case pgvalue.FamilyArray:
		if isString {
			return s, nil // one JSON cannot say (bounds other than 1): its text form
		}
		return pgArray(typ.Elem, typ.Delim, raw)
	}
	if !isString {
		return bad()
	}
	switch typ.Family {
	case pgvalue.FamilyBytea:
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return bad()
		}
		return `\x` + hex.EncodeToString(b), nil
	case pgvalue.FamilyTimestamptz:
		// "2024-05-01T10:00:00.5Z" is PostgreSQL's "2024-05-01 10:00:00.5+00".
		if len(s) > 20 && s[10] == 'T' && strings.HasSuffix(s, "Z") {
			return s[:10] + " " + s[11:len(s)-1] + "+00", nil
		}
	}
	return s, nil
}

// pgArray is PostgreSQL's output of a JSON array of elem values: braces
// per dimension, elements separated by commas.
func pgArray(elem uint32, delim byte, raw json.RawMessage) (string, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return "", fmt.Errorf("array written as %s, not as a JSON array", raw)
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, item := range items {
		if i > 0 {
			b.WriteByte(delim)
		}
		v, err := pgElement(elem, delim, item)
		if err != nil {
			return "", err
		}
		b.WriteString(v)
	}
	b.WriteByte('}')
	return b.String(), nil
}

// pgElement is an array element as array_out prints it: a nested array,
// NULL, or the value, quoted when it is empty, reads as NULL, or holds a
// delimiter, brace, quote, backslash or white space.
func pgElement(elem uint32, delim byte, item json.RawMessage) (string, error) {
	if strings.HasPrefix(string(item), "[") {
		return pgArray(elem, delim, item)
	}
	v, err := Canonical(elem, item)
	switch {
	case err != nil:
		return "", err
	case v == sinktest.Null:
		return "NULL", nil
	case v == "" || strings.EqualFold(v, "NULL") || strings.ContainsAny(v, "{}\"\\ \t\n\r\v\f"+string(delim)):
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`, nil
	}
	return v, nil
}

// ToastPlaceholder is Debezium's default unavailable.value.placeholder,
// which Sluice writes for an unchanged TOAST value it cannot fill (the
// README's Kafka section).
const ToastPlaceholder = "__debezium_unavailable_value"

// Target is a Kafka-protocol broker (kfake) a task writes to, for the
// pipeline suite (pipeline/pipelinetest). Each task writes to a topic of
// its own name (destination.topic's default); Debezium messages.
type Target struct {
	K *testenv.Kafka
}

// NewTarget starts a broker to write to.
func NewTarget(t *testing.T) *Target { return &Target{K: testenv.NewKafka(t)} }

// Block is the task's destination block.
func (g *Target) Block() string {
	return "{type: kafka, brokers: [" + strings.Join(g.K.Brokers, ", ") + "]}"
}

// Read folds the task's topic and reads the table from it.
func (g *Target) Read(t *testing.T, task string, table proto.TableID, cols []proto.Column) []sinktest.Row {
	t.Helper()
	return FoldTopic(t, g.K, task).Read(t, table, cols)
}

// Unavailable is what an unchanged TOAST value the old row does not carry
// reads as.
func (g *Target) Unavailable() string { return ToastPlaceholder }

// Stop stops the broker: its messages are gone with it.
func (g *Target) Stop(t *testing.T) { g.K.Close() }

// Start cannot bring the broker back with its messages.
func (g *Target) Start(*testing.T) bool { return false }
