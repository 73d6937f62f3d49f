// Package doris is the Apache Doris / SelectDB destination
// (destination.type: doris): schema sync into Unique and Duplicate
// tables, full sync and incremental changes by Stream Load over the FE's
// HTTP port, exactly once by two-phase commit and positions kept in Doris
// itself (sluice_offsets).
package doris

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"regexp"
	"strings"
	"sync"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/internal/secret"
	"github.com/sluicedb/sluice/proto"
)

// Options open a sink.
type Options struct {
	Task   string
	Config Config
	// Spec, when set, gives the destination's names and the objects'
	// Doris keys (engine, bucket_count, distribution_key).
	Spec   *proto.TaskSpec
	Logger *slog.Logger
}

// Sink writes one unit's share of a task to Doris.
type Sink struct {
	c     *client
	cfg   Config
	spec  *proto.TaskSpec
	names *proto.NameMap
	log   *slog.Logger

	mu     sync.Mutex
	tables map[string]*tableInfo // by Doris table name
	// known is the last offsets row this sink read or wrote per
	// (task, table): the position the next batch of the table follows.
	known map[string]offsetRow
}

var (
	_ apply.TaskSink   = (*Sink)(nil)
	_ apply.DDLApplier = (*Sink)(nil)
	_ apply.BatchPacer = (*Sink)(nil)
)

// Open connects to the FE and makes sure the database and Sluice's own
// tables (sluice_offsets, sluice_plans, sluice_chunks) exist.
func Open(ctx context.Context, opts Options) (*Sink, error) {
	pw, err := secret.ResolveField(opts.Config.PasswordRef())
	if err != nil {
		return nil, fmt.Errorf("doris: password: %w", err)
	}
	secret.Register(pw)
	c, err := newClient(opts.Config.URL, opts.Config.User, pw, opts.Config.Database)
	if err != nil {
		return nil, err
	}
	s := &Sink{c: c, cfg: opts.Config, spec: opts.Spec, log: opts.Logger, tables: map[string]*tableInfo{}, known: map[string]offsetRow{}}
	if s.log == nil {
		s.log = slog.Default()
	}
	if opts.Spec != nil {
		s.names = opts.Spec.Names()
	}
	if err := s.ensureDatabase(ctx); err != nil {
		return nil, err
	}
	if err := s.ensureMetaTables(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Close releases nothing the server holds: every load is finished or
// aborted before the call that made it returns.
func (s *Sink) Close(context.Context) error {
	s.c.http.CloseIdleConnections()
	return nil
}

// BatchWait: a table's changes gather for the batch interval, so that
// Doris sees at most one load per table per interval; a backlog loads in
// batches of at most 50,000 rows or 16 MiB of changes (a batch's load is
// built in memory, and the next one gathers while it loads).
func (s *Sink) BatchWait() apply.BatchPolicy {
	return apply.BatchPolicy{MaxWait: s.cfg.BatchEvery(), MaxRows: 50000, MaxBytes: 16 << 20}
}

func (s *Sink) ensureDatabase(ctx context.Context) error {
	if ok, err := s.c.databaseExists(ctx); err != nil || ok {
		return err
	}
	if err := s.c.inSystem().exec(ctx, "CREATE DATABASE IF NOT EXISTS "+quote(s.c.db)); err != nil {
		return fmt.Errorf("create database %s: %w", s.c.db, err)
	}
	return nil
}

// Sluice's own tables. Offsets and plans take the epoch and the plan as
// their sequence column: a write of a lower one never replaces a higher.
var metaTables = []string{
	"CREATE TABLE IF NOT EXISTS `sluice_offsets` (\n" +
		"  `task` VARCHAR(256) NOT NULL, `tbl` VARCHAR(1024) NOT NULL, `epoch` BIGINT NOT NULL,\n" +
		"  `lsn` VARCHAR(32) NULL, `idx` BIGINT NULL, `gen` BIGINT NULL, `record_id` BIGINT NULL,\n" +
		"  `label` VARCHAR(128) NULL, `txn` BIGINT NULL,\n" +
		"  `prev_lsn` VARCHAR(32) NULL, `prev_idx` BIGINT NULL, `prev_record_id` BIGINT NULL\n" +
		") UNIQUE KEY(`task`, `tbl`)\nDISTRIBUTED BY HASH(`task`) BUCKETS 1\n" +
		"PROPERTIES (\"enable_unique_key_merge_on_write\" = \"true\", \"light_schema_change\" = \"true\", \"function_column.sequence_col\" = \"epoch\"%s)",
	"CREATE TABLE IF NOT EXISTS `sluice_plans` (\n" +
		"  `task` VARCHAR(256) NOT NULL, `tbl` VARCHAR(1024) NOT NULL, `plan` BIGINT NOT NULL, `finished` INT NULL, `nonce` BIGINT NULL\n" +
		") UNIQUE KEY(`task`, `tbl`)\nDISTRIBUTED BY HASH(`task`) BUCKETS 1\n" +
		"PROPERTIES (\"enable_unique_key_merge_on_write\" = \"true\", \"light_schema_change\" = \"true\", \"function_column.sequence_col\" = \"plan\"%s)",
	"CREATE TABLE IF NOT EXISTS `sluice_chunks` (\n" +
		"  `task` VARCHAR(256) NOT NULL, `tbl` VARCHAR(1024) NOT NULL, `plan` BIGINT NOT NULL, `chunk` INT NOT NULL,\n" +
		"  `rows_loaded` BIGINT NULL, `label` VARCHAR(128) NULL, `txn` BIGINT NULL\n" +
		") UNIQUE KEY(`task`, `tbl`, `plan`, `chunk`)\nDISTRIBUTED BY HASH(`task`) BUCKETS 1\n" +
		"PROPERTIES (\"enable_unique_key_merge_on_write\" = \"true\", \"light_schema_change\" = \"true\"%s)",
}

func (s *Sink) ensureMetaTables(ctx context.Context) error {
	extra := ""
	if s.cfg.ReplicationNum > 0 {
		extra = fmt.Sprintf(", \"replication_num\" = \"%d\"", s.cfg.ReplicationNum)
	}
	for _, ddl := range metaTables {
		if err := s.c.exec(ctx, fmt.Sprintf(ddl, extra)); err != nil {
			return fmt.Errorf("create Sluice's tables in %s: %w", s.c.db, err)
		}
	}
	return nil
}

// table returns what the sink knows of a Doris table, reading it once.
func (s *Sink) table(ctx context.Context, name string) (*tableInfo, error) {
	s.mu.Lock()
	info := s.tables[name]
	s.mu.Unlock()
	if info != nil {
		return info, nil
	}
	info, err := s.describe(ctx, name)
	if err != nil {
		return nil, err
	}
	if info == nil {
		return nil, fmt.Errorf("doris: table %s.%s does not exist (with schema sync off, create it first: a Unique or Duplicate table)", s.c.db, name)
	}
	if info.model != EngineUnique && info.model != EngineDuplicate {
		return nil, fmt.Errorf("doris: table %s.%s is a %s-model table: Sluice writes Unique and Duplicate tables", s.c.db, name, info.model)
	}
	s.mu.Lock()
	s.tables[name] = info
	s.mu.Unlock()
	return info, nil
}

func (s *Sink) forget(name string) {
	s.mu.Lock()
	delete(s.tables, name)
	s.mu.Unlock()
}

// dorisName is a destination table's name in Doris: the database has no
// schemas, so the name alone.
func dorisName(t proto.TableID) string { return t.Name }

// labelTag names a table inside a label: its name's first characters and
// a hash of its key, as labels allow only [A-Za-z0-9_-] and 128 bytes.
func labelTag(t proto.TableID) string {
	h := fnv.New32a()
	h.Write([]byte(t.Key()))
	name := labelUnsafe.ReplaceAllString(t.Name, "_")
	if len(name) > 24 {
		name = name[:24]
	}
	return fmt.Sprintf("%s_%08x", name, h.Sum32())
}

var labelUnsafe = regexp.MustCompile(`[^A-Za-z0-9_-]`)

func labelTask(task string) string {
	t := labelUnsafe.ReplaceAllString(task, "_")
	if len(t) > 40 {
		t = t[:40]
	}
	return t
}

func asSQLError(err error, target **SQLError) bool { return errors.As(err, target) }

// sqlString is a string literal for a statement.
func sqlString(s string) string { return quoteString(s) }

// inList renders a list of string literals.
func inList(vals []string) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = sqlString(v)
	}
	return strings.Join(q, ", ")
}
