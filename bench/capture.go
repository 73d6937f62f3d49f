package main

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/internal/broker"
	"github.com/sluicedb/sluice/proto"
)

// Capture alone: PostgreSQL -> JetStream, in this process, with the
// capture package and an embedded JetStream (one durable consumer so the
// interest-retention stream keeps every message), against PostgreSQL's
// own logical replication catching up on the same WAL. Both the Sluice
// slot and a disabled subscription exist before the workload is written,
// then each catches up separately.
const (
	captureDB        = "capture"
	captureNativeDB  = "capture_native"
	captureTask      = "bench-capture"
	captureStatusInt = 20 * time.Millisecond
)

func (b *bench) runCapture(ctx context.Context) error {
	var list []workload
	for _, w := range workloads(b.cfg.Scale) {
		if b.want("capture/" + w.Name) {
			list = append(list, w)
		}
	}
	if len(list) == 0 {
		return nil
	}
	if err := createDatabase(ctx, b.src, captureDB); err != nil {
		return err
	}
	if err := createDatabase(ctx, b.dst, captureNativeDB); err != nil {
		return err
	}
	defer func() {
		b.dropDatabases(captureDB)
		if !b.cfg.Keep {
			if err := dropDatabase(context.Background(), b.dst, captureNativeDB); err != nil {
				logf("warning: drop database %s: %v", captureNativeDB, err)
			}
		}
	}()
	for _, dsn := range []string{b.src.DSN(captureDB), b.dst.DSN(captureNativeDB)} {
		conn, err := connect(ctx, dsn)
		if err != nil {
			return err
		}
		err = execSQL(ctx, conn, time.Minute, benchDDL)
		conn.Close(context.Background())
		if err != nil {
			return err
		}
	}
	nat, err := newNative(ctx, b.src, b.dst, captureDB, captureNativeDB, "bench_capture", []string{benchTable})
	if err != nil {
		return err
	}
	defer nat.Close(context.Background())
	defer func() {
		if err := capture.DropTaskObjects(context.Background(), nat.src1, captureTask); err != nil {
			logf("warning: drop capture slot: %v", err)
		}
	}()

	for _, w := range list {
		s := &scenario{
			Name: "capture/" + w.Name, Unit: "s", Rows: w.Rows,
			Description: "capture alone, " + w.What + ": Sluice's capture into JetStream (in-process, durable = acknowledged), timed until its confirmed LSN reaches the WAL position after the workload; yardstick: a native subscription catching up on the same WAL",
			Sluice:      side{Name: "sluice-capture"}, Yardstick: &side{Name: "native"},
			Target: target{MinRatio: 1.0},
		}
		for rep := 1; rep <= b.cfg.Reps; rep++ {
			rs, rn, err := b.captureRep(ctx, nat, w, rep)
			if rs != nil {
				s.Sluice.Runs = append(s.Sluice.Runs, *rs)
				logf("%s rep %d/%d sluice capture: %s", s.Name, rep, b.cfg.Reps, runLine(*rs, s.Unit))
			}
			if rn != nil {
				s.Yardstick.Runs = append(s.Yardstick.Runs, *rn)
				logf("%s rep %d/%d native:         %s", s.Name, rep, b.cfg.Reps, runLine(*rn, s.Unit))
			}
			if err != nil {
				s.Error = fmt.Sprintf("rep %d: %v", rep, err)
				break
			}
		}
		b.add(s)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// captureRep prepares both slots, writes the workload once, then times
// Sluice's capture and the native subscription one after the other.
func (b *bench) captureRep(ctx context.Context, nat *native, w workload, rep int) (*run, *run, error) {
	src := nat.src1
	if err := capture.DropTaskObjects(ctx, src, captureTask); err != nil {
		return nil, nil, err
	}
	if err := nat.Drop(ctx); err != nil {
		return nil, nil, err
	}
	if err := seedTable(ctx, src, nat.dst1, benchTable, w.SeedRows); err != nil {
		return nil, nil, err
	}
	if err := nat.Create(ctx, false); err != nil {
		return nil, nil, err
	}
	tables := []proto.TableID{{Schema: "public", Name: benchTable}}
	if err := capture.PrepareSource(ctx, src, captureTask, tables, nil, nil, false); err != nil {
		return nil, nil, err
	}
	snap, err := capture.CreateSlot(ctx, b.src.DSN(captureDB), captureTask)
	if err != nil {
		return nil, nil, err
	}
	startLSN := snap.LSN
	snap.Close()

	storeDir, err := os.MkdirTemp(b.work, "jetstream-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(storeDir)
	creds, err := broker.NewCredentials()
	if err != nil {
		return nil, nil, err
	}
	br, err := broker.Start(broker.Options{StoreDir: storeDir, Credentials: creds})
	if err != nil {
		return nil, nil, err
	}
	defer br.Shutdown()
	nc, err := br.Connect("bench capture")
	if err != nil {
		return nil, nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, err
	}
	stream, err := js.CreateOrUpdateStream(ctx, apply.StreamConfig(captureTask, 1))
	if err != nil {
		return nil, nil, err
	}
	// One durable consumer that never acknowledges: the stream keeps
	// every message, as it would for a slow apply.
	if _, err := stream.CreateOrUpdateConsumer(ctx, apply.ConsumerConfig(captureTask, 0, 1, tables, nil)); err != nil {
		return nil, nil, err
	}

	work, err := connect(ctx, b.src.DSN(captureDB))
	if err != nil {
		return nil, nil, err
	}
	defer work.Close(context.Background())
	progress := func(done int64) { logf("    workload: %s of %s rows written", count(done), count(w.Rows)) }
	if err := runWorkload(ctx, work, benchTable, w, progress); err != nil {
		return nil, nil, err
	}
	var targetText string
	if err := src.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&targetText); err != nil {
		return nil, nil, err
	}
	target, err := proto.ParseLSN(targetText)
	if err != nil {
		return nil, nil, err
	}
	if err := checkpoint(ctx, b.src, b.dst); err != nil {
		return nil, nil, err
	}

	// A: Sluice's capture.
	rs, err := b.timeCapture(ctx, js, startLSN, target, w, rep)
	if err != nil {
		return nil, nil, err
	}
	if err := verifyStream(ctx, src, stream, w); err != nil {
		return rs, nil, err
	}

	// B: the native subscription on the same WAL.
	if err := nat.PrepareEnable(ctx); err != nil {
		return rs, nil, err
	}
	m, err := startRunMeter(ctx, nil, nativePIDs(nat))
	if err != nil {
		return rs, nil, err
	}
	t0 := time.Now()
	if err := nat.Enable(ctx); err != nil {
		m.Stop()
		return rs, nil, err
	}
	err = waitMarker(ctx, nat.dst1, benchTable, endMarker, catchUpTimeout(w.Rows), nil, func() string { return nat.Status(ctx) })
	d := time.Since(t0)
	u := m.Stop()
	if err != nil {
		return rs, nil, err
	}
	if err := compareTables(ctx, src, nat.dst1, benchTable); err != nil {
		return rs, nil, err
	}
	rn := newRun(rep, d, w.Rows, &u)
	if err := nat.Drop(ctx); err != nil {
		return rs, &rn, err
	}
	if err := capture.DropTaskObjects(ctx, src, captureTask); err != nil {
		return rs, &rn, err
	}
	return rs, &rn, nil
}

// timeCapture runs the capture from the slot's start until its confirmed
// (durable) LSN reaches target. The capture confirms every 20 ms here
// (StatusInterval; the default is 1 s), so the measurement is not
// quantised by the confirmation period; everything else is the default.
func (b *bench) timeCapture(ctx context.Context, js jetstream.JetStream, start, target proto.LSN, w workload, rep int) (*run, error) {
	logPath := filepath.Join(b.work, fmt.Sprintf("capture-%s-%d.log", w.Name, rep))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	c, err := capture.New(capture.Config{
		Task: captureTask, SourceDSN: b.src.DSN(captureDB), JetStream: js,
		Logger:         slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo})),
		StatusInterval: captureStatusInt,
	})
	if err != nil {
		return nil, err
	}
	// The bench process runs the capture; its pipeline is that and the
	// slot's walsender.
	m, err := startRunMeter(ctx, []int{os.Getpid()}, []pidQuery{slotPIDs(b.src, proto.SlotName(captureTask))})
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	t0 := time.Now()
	go func() { done <- c.Run(cctx, start, nil) }()
	stop := func() {
		cancel()
		select {
		case <-done:
		case <-time.After(time.Minute):
			logf("warning: capture did not stop within a minute")
		}
	}
	deadline := t0.Add(catchUpTimeout(w.Rows))
	next := t0.Add(10 * time.Second)
	for proto.LSN(c.Stats.ConfirmedLSN.Load()) < target {
		select {
		case err := <-done:
			m.Stop()
			cancel()
			return nil, fmt.Errorf("capture stopped: %v (log %s)", err, logPath)
		default:
		}
		if time.Now().After(deadline) {
			m.Stop()
			stop()
			return nil, fmt.Errorf("capture's confirmed LSN %s did not reach %s within %v", proto.LSN(c.Stats.ConfirmedLSN.Load()), target, catchUpTimeout(w.Rows))
		}
		if time.Now().After(next) {
			logf("    waiting %.0fs: confirmed %s of %s, %d rows captured", time.Since(t0).Seconds(), proto.LSN(c.Stats.ConfirmedLSN.Load()), target, c.Stats.RowsCaptured.Load())
			next = time.Now().Add(10 * time.Second)
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			m.Stop()
			stop()
			return nil, err
		}
	}
	d := time.Since(t0)
	u := m.Stop()
	stop()
	r := newRun(rep, d, w.Rows, &u)
	r.extra("rows_captured", float64(c.Stats.RowsCaptured.Load()))
	return &r, nil
}

// streamSum is what the change stream holds for the table.
type streamSum struct {
	inserts, updates, deletes int64
	newSum                    big.Int // sum over new tuples of the row hash
	deletedIDs                big.Int // sum of deleted keys
}

// verifyStream reads every message of the table's subject back and checks
// it against the source: the number of each kind of change, the sum of
// the deleted keys, and the hash sum of every new tuple, which must equal
// the hash sum of the source table (every row left in it was inserted or
// updated by the workload exactly once).
func verifyStream(ctx context.Context, src *pgx.Conn, stream jetstream.Stream, w workload) error {
	subject := proto.Subject(captureTask, proto.TableID{Schema: "public", Name: benchTable})
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return err
	}
	want := info.State.Subjects[subject]
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return err
	}
	var got streamSum
	var seen uint64
	deadline := time.Now().Add(catchUpTimeout(w.Rows))
	for seen < want {
		if time.Now().After(deadline) {
			return fmt.Errorf("read %d of %d stream messages before the deadline", seen, want)
		}
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return err
		}
		for msg := range batch.Messages() {
			seen++
			if err := got.add(msg.Data()); err != nil {
				return err
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	var wantIns, wantUpd, wantDel int64
	switch {
	case w.Kind == "insert":
		wantIns = w.Rows + 1
	case w.Kind == "update":
		wantUpd, wantIns = w.Rows, 1
	case w.Kind == "delete":
		wantDel, wantIns = w.Rows, 1
	}
	var rows int64
	var sum string
	err = src.QueryRow(ctx, `SELECT count(*), COALESCE(sum(('x' || substr(md5(concat_ws('|', id, k, c, pad)), 1, 15))::bit(60)::bigint), 0)::text FROM bench`).Scan(&rows, &sum)
	if err != nil {
		return err
	}
	var delIDs big.Int
	if w.Kind == "delete" {
		n := big.NewInt(w.Rows)
		delIDs.Mul(n, big.NewInt(w.Rows+1))
		delIDs.Div(&delIDs, big.NewInt(2))
	}
	var problems []string
	if got.inserts != wantIns || got.updates != wantUpd || got.deletes != wantDel {
		problems = append(problems, fmt.Sprintf("changes: %d inserts, %d updates, %d deletes; want %d, %d, %d", got.inserts, got.updates, got.deletes, wantIns, wantUpd, wantDel))
	}
	if got.newSum.String() != sum {
		problems = append(problems, fmt.Sprintf("hash sum of new rows %s, source table (%d rows) %s", got.newSum.String(), rows, sum))
	}
	if got.deletedIDs.Cmp(&delIDs) != 0 {
		problems = append(problems, fmt.Sprintf("sum of deleted keys %s, want %s", got.deletedIDs.String(), delIDs.String()))
	}
	if len(problems) > 0 {
		return fmt.Errorf("CONTENT MISMATCH in stream %s (%d messages): %s", proto.StreamName(captureTask), seen, strings.Join(problems, "; "))
	}
	return nil
}

func (s *streamSum) add(data []byte) error {
	b, err := proto.DecodeBatch(data)
	if err != nil {
		return err
	}
	if b.Parts > 0 {
		return errors.New("unexpected split batch for small rows")
	}
	for i := range b.Rows {
		r := &b.Rows[i]
		switch r.Op {
		case proto.OpInsert, proto.OpUpdate:
			if r.Op == proto.OpInsert {
				s.inserts++
			} else {
				s.updates++
			}
			h := md5.New()
			for j, v := range r.New.Values {
				if r.New.Kinds[j] != proto.KindText {
					return fmt.Errorf("unexpected value kind %q in a new tuple", r.New.Kinds[j])
				}
				if j > 0 {
					io.WriteString(h, "|")
				}
				h.Write(v)
			}
			hx := hex.EncodeToString(h.Sum(nil))[:15]
			v, err := strconv.ParseUint(hx, 16, 64)
			if err != nil {
				return err
			}
			// ::bit(60)::bigint of 15 hex digits is never negative.
			s.newSum.Add(&s.newSum, new(big.Int).SetUint64(v))
		case proto.OpDelete:
			s.deletes++
			if r.Old.Len() == 0 || r.Old.Kinds[0] != proto.KindText {
				return errors.New("delete without its key")
			}
			id, err := strconv.ParseInt(string(r.Old.Values[0]), 10, 64)
			if err != nil {
				return err
			}
			s.deletedIDs.Add(&s.deletedIDs, big.NewInt(id))
		default:
			return fmt.Errorf("unexpected change %s", r.Op)
		}
	}
	return nil
}
