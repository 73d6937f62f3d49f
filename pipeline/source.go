package pipeline

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/proto"
)

// The pipeline drives its source through the interfaces here. PGSource
// implements them over a real PostgreSQL (package capture); the
// pipeline's tests use fakes.

// Source is a task's PostgreSQL source, as one attempt sees its spec.
type Source interface {
	// Session opens a session for the task's catalog reads and its
	// objects in the source (publication, slot bookkeeping, DDL capture).
	Session(ctx context.Context) (Session, error)
	// CreateSlot creates the task's replication slot; its exported
	// snapshot is the consistent cut of the full sync (invariant 4).
	CreateSlot(ctx context.Context) (Snapshot, error)
	// TemporarySnapshot exports a snapshot of now through a temporary
	// slot: tables copied in it skip their changes up to its LSN.
	TemporarySnapshot(ctx context.Context) (Snapshot, error)
	// OpenSnapshot opens a session in an exported snapshot. It holds the
	// snapshot open while copy units on any node import it.
	OpenSnapshot(ctx context.Context, name string) (SnapshotSession, error)
	// RunCapture streams the task's changes from start on, until ctx ends
	// or it fails. handover, if not nil, is the snapshot of the slot just
	// created, whose session the capture goes on with; onDDL, if not nil,
	// sees each schema change before it is published.
	RunCapture(ctx context.Context, start proto.LSN, handover Snapshot, onDDL func(context.Context, *proto.DDLEvent) error) error
}

// Session is a plain session on the source.
type Session interface {
	// PrepareSource makes the publication of tables (with the spec's
	// row filters and column lists) and the heartbeat table.
	PrepareSource(ctx context.Context, tables []proto.TableID) error
	// InstallDDLCapture installs the event triggers of DDL sync.
	InstallDDLCapture(ctx context.Context, tables []proto.TableID) error
	LookupSlot(ctx context.Context) (capture.SlotInfo, error)
	DropSlot(ctx context.Context) error
	// ListTables lists the tables the spec selects now.
	ListTables(ctx context.Context) ([]proto.TableID, error)
	// PresentTables are those of tables that still exist.
	PresentTables(ctx context.Context, tables []proto.TableID) ([]proto.TableID, error)
	// DDLTables are the tables DDL capture added to the publication.
	DDLTables(ctx context.Context) ([]proto.TableID, error)
	// LinkedTables are those of tables foreign keys link, to their
	// anchors (capture.LinkedTables).
	LinkedTables(ctx context.Context, tables []proto.TableID) (map[string]string, error)
	// ReadSchema reads the schema of the selection.
	ReadSchema(ctx context.Context) (*proto.Schema, error)
	Close()
}

// Snapshot is a snapshot exported by a slot's creation.
type Snapshot interface {
	// LSN is the slot's consistent point.
	LSN() proto.LSN
	// Name is the snapshot's name, which sessions import.
	Name() string
	// Close releases the session that keeps it importable.
	Close()
}

// SnapshotSession is a session in an exported snapshot.
type SnapshotSession interface {
	// ReadSchema reads the selection's schema as of the snapshot.
	ReadSchema(ctx context.Context) (*proto.Schema, error)
	// PlanChunks splits a table into ranges of pages.
	PlanChunks(ctx context.Context, t *proto.TableDef, pagesPerChunk int64) ([]capture.Chunk, error)
	// ServerMajor is the source's PostgreSQL major version.
	ServerMajor(ctx context.Context) (int, error)
	// Export exports the snapshot again, for the copy units.
	Export(ctx context.Context) (string, error)
	// Alive checks that the session, and so the snapshot, still holds.
	Alive(ctx context.Context) error
	Close()
}

// PGSource is a task's source over a real PostgreSQL server.
type PGSource struct {
	Spec *proto.TaskSpec
	// Capture is the base configuration of the task's capture (batching,
	// intervals); RunCapture fills in the task, the DSN and what the spec
	// says.
	Capture   capture.Config
	JetStream jetstream.JetStream
	Logger    *slog.Logger
	// OnCapture, if set, sees each capture started (for live metrics).
	OnCapture func(*capture.Capture)

	running atomic.Pointer[capture.Capture] // the capture RunCapture started last
}

var _ Source = (*PGSource)(nil)

func (s *PGSource) dsn() string { return s.Spec.Source.ConnDSN() }

// Session connects to the source.
func (s *PGSource) Session(ctx context.Context) (Session, error) {
	conn, err := pgconfig.Connect(ctx, s.dsn(), "sluice task "+s.Spec.Name)
	if err != nil {
		return nil, err
	}
	return &pgSession{conn: conn, spec: s.Spec}, nil
}

func (s *PGSource) CreateSlot(ctx context.Context) (Snapshot, error) {
	e, err := capture.CreateSlot(ctx, s.dsn(), s.Spec.Name)
	if err != nil {
		return nil, err
	}
	return pgSnapshot{e}, nil
}

func (s *PGSource) TemporarySnapshot(ctx context.Context) (Snapshot, error) {
	e, err := capture.CreateTemporarySnapshot(ctx, s.dsn(), s.Spec.Name)
	if err != nil {
		return nil, err
	}
	return pgSnapshot{e}, nil
}

func (s *PGSource) OpenSnapshot(ctx context.Context, name string) (SnapshotSession, error) {
	r, err := capture.OpenSnapshotReader(ctx, s.dsn(), name, s.Spec.Name)
	if err != nil {
		return nil, err
	}
	return pgSnapshotSession{r: r, spec: s.Spec}, nil
}

func (s *PGSource) RunCapture(ctx context.Context, start proto.LSN, handover Snapshot, onDDL func(context.Context, *proto.DDLEvent) error) error {
	cfg := s.Capture
	cfg.Task, cfg.SourceDSN = s.Spec.Name, s.dsn()
	cfg.Operations, cfg.Columns, cfg.Filter = s.Spec.Operations, s.Spec.SelectedColumns, s.Spec.RowFilter
	cfg.OnDDL = onDDL
	cfg.DropOrigin = s.Spec.PeerOrigin()
	cfg.JetStream, cfg.Logger = s.JetStream, s.Logger
	c, err := capture.New(cfg)
	if err != nil {
		return err
	}
	s.running.Store(c)
	if s.OnCapture != nil {
		s.OnCapture(c)
	}
	var conn *pgconn.PgConn
	if h, ok := handover.(pgSnapshot); ok {
		conn, h.e.Conn = h.e.Conn, nil
	}
	return c.Run(ctx, start, conn)
}

// Changes counts the changes of the task's tables the capture has seen
// (activitySource): quiet points bring sequences in step.
func (s *PGSource) Changes() int64 {
	if c := s.running.Load(); c != nil {
		return c.Stats.ChangesCaptured.Load()
	}
	return 0
}

type pgSession struct {
	conn *pgx.Conn
	spec *proto.TaskSpec
}

func (p *pgSession) PrepareSource(ctx context.Context, tables []proto.TableID) error {
	return capture.PrepareSource(ctx, p.conn, p.spec.Name, tables, p.spec.RowFilter, p.spec.SelectedColumns, p.spec.Sync.DDLEnabled())
}

func (p *pgSession) InstallDDLCapture(ctx context.Context, tables []proto.TableID) error {
	return capture.InstallDDLCapture(ctx, p.conn, p.spec.Name, tables, p.spec.WholeSchemas())
}

func (p *pgSession) LookupSlot(ctx context.Context) (capture.SlotInfo, error) {
	return capture.LookupSlot(ctx, p.conn, p.spec.Name)
}

func (p *pgSession) DropSlot(ctx context.Context) error {
	return capture.DropSlot(ctx, p.conn, p.spec.Name)
}

func (p *pgSession) ListTables(ctx context.Context) ([]proto.TableID, error) {
	return capture.ListTables(ctx, p.conn, p.spec.Objects)
}

func (p *pgSession) PresentTables(ctx context.Context, tables []proto.TableID) ([]proto.TableID, error) {
	return capture.PresentTables(ctx, p.conn, tables)
}

func (p *pgSession) DDLTables(ctx context.Context) ([]proto.TableID, error) {
	return capture.DDLTables(ctx, p.conn, p.spec.Name)
}

func (p *pgSession) LinkedTables(ctx context.Context, tables []proto.TableID) (map[string]string, error) {
	return capture.LinkedTables(ctx, p.conn, tables)
}

func (p *pgSession) ReadSchema(ctx context.Context) (*proto.Schema, error) {
	return capture.ReadTransformedSchema(ctx, p.conn, p.spec)
}

func (p *pgSession) TaskSequences(ctx context.Context, tables []proto.TableID) ([]capture.SequenceRef, error) {
	return capture.TaskSequences(ctx, p.conn, p.spec.Objects, tables)
}

func (p *pgSession) LastValues(ctx context.Context, oids []uint32) (map[uint32]int64, []uint32, error) {
	return capture.LastValues(ctx, p.conn, oids)
}

func (p *pgSession) Close() { p.conn.Close(context.Background()) }

type pgSnapshot struct{ e *capture.ExportedSnapshot }

func (s pgSnapshot) LSN() proto.LSN { return s.e.LSN }
func (s pgSnapshot) Name() string   { return s.e.Name }
func (s pgSnapshot) Close()         { s.e.Close() }

type pgSnapshotSession struct {
	r    *capture.SnapshotReader
	spec *proto.TaskSpec
}

func (s pgSnapshotSession) ReadSchema(ctx context.Context) (*proto.Schema, error) {
	return capture.ReadTransformedSchema(ctx, s.r.Tx(), s.spec)
}

func (s pgSnapshotSession) PlanChunks(ctx context.Context, t *proto.TableDef, pagesPerChunk int64) ([]capture.Chunk, error) {
	return s.r.PlanChunks(ctx, t, pagesPerChunk)
}

func (s pgSnapshotSession) ServerMajor(ctx context.Context) (int, error) {
	var major int
	err := s.r.Tx().QueryRow(ctx, `SELECT current_setting('server_version_num')::int / 10000`).Scan(&major)
	return major, err
}

func (s pgSnapshotSession) Export(ctx context.Context) (string, error) { return s.r.Export(ctx) }
func (s pgSnapshotSession) Alive(ctx context.Context) error            { return s.r.Alive(ctx) }
func (s pgSnapshotSession) Close()                                     { s.r.Close() }
