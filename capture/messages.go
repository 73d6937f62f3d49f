package capture

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sluicedb/sluice/proto"
)

// Sluice writes nothing into tables a publication can catch: the
// heartbeat and the DDL log are logical decoding messages
// (pg_logical_emit_message), which reach only decoders that ask for them
// (pgoutput's messages option). A user's own FOR ALL TABLES publication
// beside Sluice does not see them, and its subscribers need no Sluice
// table.
//
// Every slot of the database decodes every message, so each carries its
// task and a capture takes only its own.

const (
	// HeartbeatPrefix is the prefix of the heartbeat messages: sent
	// outside any transaction (non-transactional), decoded at once.
	HeartbeatPrefix = "sluice"
	// DDLPrefix is the prefix of the DDL log messages: transactional,
	// part of the DDL's transaction and decoded in WAL order with its
	// rows.
	DDLPrefix = "sluice_ddl"
)

// heartbeatPayload is a heartbeat message's content: the task and the
// source's clock at the write, in Unix microseconds.
type heartbeatPayload struct {
	Task string `json:"task"`
	TS   int64  `json:"ts"`
}

// heartbeatSQL writes one heartbeat message of the task $1.
const heartbeatSQL = `SELECT pg_logical_emit_message(false, '` + HeartbeatPrefix + `',
	json_build_object('task', $1::text, 'ts', (extract(epoch FROM clock_timestamp()) * 1000000)::int8)::text)`

// ddlLogEntry is one entry of the DDL log: a DDL message's content (or,
// from an older Sluice, a row of sluice.ddl_log). The shapes and object
// are JSON; absent or null when the change has none.
type ddlLogEntry struct {
	Task     string          `json:"task"`
	Tag      string          `json:"tag"`
	Query    string          `json:"query"`
	OldShape json.RawMessage `json:"old_shape"`
	NewShape json.RawMessage `json:"new_shape"`
	Object   json.RawMessage `json:"object"`
}

// logicalMessage is a pgoutput Message ('M', protocol version 1).
type logicalMessage struct {
	transactional bool
	lsn           proto.LSN
	prefix        string
	content       []byte
}

func parseMessage(data []byte) (logicalMessage, error) {
	r := reader{b: data[1:]}
	m := logicalMessage{transactional: r.byte1()&1 != 0, lsn: proto.LSN(r.u64()), prefix: r.str()}
	m.content = r.bytes(int(r.u32()))
	return m, r.err
}

// message handles a logical decoding message: the task's heartbeats and
// DDL log entries; others' (other tasks, other tools) are left alone.
func (s *sessionState) message(ctx context.Context, data []byte) error {
	m, err := parseMessage(data)
	if err != nil {
		return err
	}
	switch m.prefix {
	case HeartbeatPrefix:
		if m.transactional {
			return nil
		}
		var p heartbeatPayload
		if err := json.Unmarshal(m.content, &p); err != nil {
			return fmt.Errorf("heartbeat message at %s: %w", m.lsn, err)
		}
		if p.Task != s.c.cfg.Task {
			return nil
		}
		return s.heartbeatAt(ctx, m.lsn, p.TS)
	case DDLPrefix:
		if !m.transactional || s.peerTx {
			return nil
		}
		var e ddlLogEntry
		if err := json.Unmarshal(m.content, &e); err != nil {
			return fmt.Errorf("DDL message at %s: %w", m.lsn, err)
		}
		if e.Task != s.c.cfg.Task {
			return nil
		}
		return s.ddl(ctx, &e)
	}
	return nil
}

// heartbeatColumns describe a heartbeat row as the heartbeat table of
// older versions had it, so the heartbeat subject carries what it always
// did.
var heartbeatColumns = []proto.Column{
	{Name: "task", TypeOID: 25, TypeMod: -1, Key: true},
	{Name: "ts", TypeOID: 1184, TypeMod: -1},
}

// heartbeatAt publishes the task's heartbeat decoded at lsn, written at
// tsUS (the source's clock), as a row of proto.HeartbeatTable at position
// (lsn, 0). The message comes between transactions: every transaction
// that committed before it has been received, so the open batches go
// first (the heartbeat follows every row committed before it in the
// stream, as latency and the destinations' heartbeat readers expect), and
// lsn is a transaction boundary the confirmed LSN may move to (invariant
// 1: a transaction committing after it has its commit record after it,
// and comes again after a restart from lsn).
func (s *sessionState) heartbeatAt(ctx context.Context, lsn proto.LSN, tsUS int64) error {
	if s.inTx {
		// Not sent by pgoutput without streaming (a transaction is sent
		// whole at its commit); should it come, the heartbeat is left
		// out rather than put inside the transaction's rows.
		return nil
	}
	if err := s.publishOpen(ctx); err != nil {
		return err
	}
	ts := time.UnixMicro(tsUS).UTC().Format("2006-01-02 15:04:05.999999+00")
	row := proto.Row{
		Op:           proto.OpUpdate,
		Pos:          proto.Position{LSN: lsn},
		CommitTimeUS: tsUS,
		New:          proto.Tuple{Kinds: []byte{proto.KindText, proto.KindText}, Values: [][]byte{[]byte(s.c.cfg.Task), []byte(ts)}},
	}
	buf := proto.AppendBatchHeader(getBuffer(smallBuffer), proto.HeartbeatTable, heartbeatColumns, proto.IdentityDefault)
	buf = proto.AppendRow(buf, &row)
	if err := s.pub.publish(ctx, proto.Subject(s.c.cfg.Task, proto.HeartbeatTable), proto.BatchMsgID(proto.HeartbeatTable, row.Pos, row.Pos), buf); err != nil {
		return err
	}
	s.c.Stats.RowsCaptured.Add(1)
	s.boundaryOwed = true
	if lsn > s.lastCommit {
		s.lastCommit = lsn
	}
	return s.flushAll(ctx)
}

// event turns the entry into a table's schema change or, for another
// object than a table, an object event (both nil: an object no working
// copy takes).
func (e *ddlLogEntry) event(pos proto.Position) (*proto.DDLEvent, *proto.ObjectEvent, error) {
	ev := &proto.DDLEvent{Pos: pos, Tag: e.Tag, Query: e.Query}
	if present(e.Object) {
		obj, err := objectEvent(e.Object, &proto.ObjectEvent{Pos: pos, Tag: e.Tag, Query: e.Query})
		return nil, obj, err
	}
	for _, sh := range []struct {
		name string
		raw  json.RawMessage
		to   **proto.TableDef
	}{{"old_shape", e.OldShape, &ev.Old}, {"new_shape", e.NewShape, &ev.New}} {
		if !present(sh.raw) {
			continue
		}
		*sh.to = &proto.TableDef{}
		if err := json.Unmarshal(sh.raw, *sh.to); err != nil {
			return nil, nil, fmt.Errorf("DDL log entry: %s: %w", sh.name, err)
		}
	}
	if ev.Old == nil && ev.New == nil {
		return nil, nil, fmt.Errorf("DDL log entry without a shape")
	}
	return ev, nil, nil
}

// present: a JSON value that is there and not null.
func present(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}
