package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// recorder is a server that speaks PostgreSQL's protocol, runs nothing
// and records every statement it is sent, with its parameters: the apply
// statements of a dialect whose server cannot run here (Greenplum) are
// rendered by the sink's own code against it, for golden files. Each
// statement answers as having touched as many rows as its first array
// parameter has elements (INSERT ... WHERE NOT EXISTS: none), queries
// return no rows, and COPY counts the lines it got.
type recorder struct {
	ln  net.Listener
	mu  sync.Mutex
	log []string
	wg  sync.WaitGroup
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ln: ln}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				defer c.Close()
				r.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		r.wg.Wait()
	})
	return r
}

// conn connects to the recorder; statements with arguments go in the
// extended protocol without a describe round (the recorder knows no
// parameter types).
func (r *recorder) conn(t *testing.T) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig("postgres://rec@" + r.ln.Addr().String() + "/rec?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// take returns the statements recorded since the last take.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.log
	r.log = nil
	return out
}

func (r *recorder) record(s string) {
	r.mu.Lock()
	r.log = append(r.log, s)
	r.mu.Unlock()
}

func (r *recorder) serve(c net.Conn) {
	be := pgproto3.NewBackend(c, c)
	if _, err := be.ReceiveStartupMessage(); err != nil {
		return
	}
	be.Send(&pgproto3.AuthenticationOk{})
	for k, v := range map[string]string{"server_version": "recorder", "client_encoding": "UTF8", "standard_conforming_strings": "on", "DateStyle": "ISO, MDY", "integer_datetimes": "on"} {
		be.Send(&pgproto3.ParameterStatus{Name: k, Value: v})
	}
	be.Send(&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{0, 0, 0, 1}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if be.Flush() != nil {
		return
	}
	var sql string
	var params []string
	var rows int
	// named holds the connection's prepared statements, by name.
	named := map[string]string{}
	for {
		msg, err := be.Receive()
		if err != nil {
			return
		}
		switch m := msg.(type) {
		case *pgproto3.Query:
			if strings.HasPrefix(m.String, "COPY ") {
				r.record(m.String)
				be.Send(&pgproto3.CopyInResponse{})
				if be.Flush() != nil {
					return
				}
				lines := 0
				var data bytes.Buffer
			copying:
				for {
					msg, err := be.Receive()
					if err != nil {
						return
					}
					switch d := msg.(type) {
					case *pgproto3.CopyData:
						data.Write(d.Data)
					case *pgproto3.CopyDone:
						break copying
					case *pgproto3.CopyFail:
						return
					}
				}
				for _, l := range strings.SplitAfter(data.String(), "\n") {
					if l != "" {
						r.record("  " + strings.TrimSuffix(l, "\n"))
						lines++
					}
				}
				be.Send(&pgproto3.CommandComplete{CommandTag: fmt.Appendf(nil, "COPY %d", lines)})
			} else {
				if s := strings.ToLower(m.String); s != "begin" && s != "commit" && s != "rollback" {
					r.record(m.String)
				}
				be.Send(&pgproto3.CommandComplete{CommandTag: tagOf(m.String, 1)})
			}
			be.Send(&pgproto3.ReadyForQuery{TxStatus: 'T'})
		case *pgproto3.Parse:
			sql = m.Query
			if m.Name != "" {
				named[m.Name] = m.Query
			}
			be.Send(&pgproto3.ParseComplete{})
		case *pgproto3.Bind:
			if m.PreparedStatement != "" {
				sql = named[m.PreparedStatement]
			}
			params, rows = describeParams(m)
			be.Send(&pgproto3.BindComplete{})
		case *pgproto3.Describe:
			be.Send(&pgproto3.NoData{})
		case *pgproto3.Execute:
			r.record(sql)
			for i, p := range params {
				r.record(fmt.Sprintf("  $%d = %s", i+1, p))
			}
			be.Send(&pgproto3.CommandComplete{CommandTag: tagOf(sql, rows)})
		case *pgproto3.Sync:
			be.Send(&pgproto3.ReadyForQuery{TxStatus: 'T'})
		case *pgproto3.Terminate:
			return
		}
		if be.Flush() != nil {
			return
		}
	}
}

// tagOf is the command tag of sql having touched n rows (n < 0: it has
// no array parameter; an UPDATE then finds no row, unless it is the
// apply's update of a single row by key, anything else one).
func tagOf(sql string, n int) []byte {
	word, _, _ := strings.Cut(strings.TrimSpace(sql), " ")
	w := strings.ToUpper(word)
	switch {
	case strings.Contains(sql, "WHERE NOT EXISTS"):
		n = 0
	case n < 0 && w == "UPDATE" && !strings.Contains(sql, " AS t SET "):
		n = 0
	case n < 0:
		n = 1
	}
	switch w {
	case "INSERT":
		return fmt.Appendf(nil, "INSERT 0 %d", n)
	case "UPDATE", "DELETE":
		return fmt.Appendf(nil, "%s %d", w, n)
	case "SELECT":
		return []byte("SELECT 0")
	default:
		return []byte(w)
	}
}

// describeParams shows a Bind's parameters (text[] and bigint[] arrays
// in binary form decoded, text as it is), and the length of its first
// array (1 without one).
func describeParams(b *pgproto3.Bind) ([]string, int) {
	out := make([]string, len(b.Parameters))
	rows := -1
	for i, p := range b.Parameters {
		binaryFormat := len(b.ParameterFormatCodes) == 1 && b.ParameterFormatCodes[0] == 1 ||
			i < len(b.ParameterFormatCodes) && b.ParameterFormatCodes[i] == 1
		switch {
		case p == nil:
			out[i] = "NULL"
		case !binaryFormat:
			out[i] = fmt.Sprintf("%q", p)
			if len(p) > 1 && p[0] == '{' && rows < 0 {
				rows = len(splitTopLevel(string(p[1 : len(p)-1])))
			}
		default:
			elems, err := decodeArray(p)
			if err != nil {
				out[i] = fmt.Sprintf("%x", p)
				if len(p) == 8 {
					out[i] = fmt.Sprint(int64(binary.BigEndian.Uint64(p)))
				}
				continue
			}
			if rows < 0 {
				rows = len(elems)
			}
			out[i] = "{" + strings.Join(elems, ", ") + "}"
		}
	}
	return out, rows
}

// decodeArray reads a one-dimensional array in binary form, its
// elements as text (int4 and int8 as numbers).
func decodeArray(b []byte) ([]string, error) {
	if len(b) < 12 {
		return nil, errors.New("short")
	}
	dims := binary.BigEndian.Uint32(b)
	elem := binary.BigEndian.Uint32(b[8:])
	if dims == 0 {
		return []string{}, nil
	}
	if dims != 1 || len(b) < 20 {
		return nil, errors.New("not one dimension")
	}
	n := int(binary.BigEndian.Uint32(b[12:]))
	rd := bytes.NewReader(b[20:])
	out := make([]string, 0, n)
	for range n {
		var l int32
		if err := binary.Read(rd, binary.BigEndian, &l); err != nil {
			return nil, err
		}
		if l < 0 {
			out = append(out, "NULL")
			continue
		}
		v := make([]byte, l)
		if _, err := io.ReadFull(rd, v); err != nil {
			return nil, err
		}
		switch {
		case elem == 23 && l == 4:
			out = append(out, fmt.Sprint(int32(binary.BigEndian.Uint32(v))))
		case elem == 20 && l == 8:
			out = append(out, fmt.Sprint(int64(binary.BigEndian.Uint64(v))))
		default:
			out = append(out, fmt.Sprintf("%q", v))
		}
	}
	return out, nil
}
