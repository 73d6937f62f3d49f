package emu

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// loadResult is a stream load's answer, with Doris's field names.
type loadResult struct {
	TxnID                  int64  `json:"TxnId"`
	Label                  string `json:"Label"`
	Comment                string `json:"Comment"`
	TwoPhaseCommit         string `json:"TwoPhaseCommit"`
	Status                 string `json:"Status"`
	ExistingJobStatus      string `json:"ExistingJobStatus,omitempty"`
	Message                string `json:"Message"`
	NumberTotalRows        int64  `json:"NumberTotalRows"`
	NumberLoadedRows       int64  `json:"NumberLoadedRows"`
	NumberFilteredRows     int64  `json:"NumberFilteredRows"`
	NumberUnselectedRows   int64  `json:"NumberUnselectedRows"`
	LoadBytes              int64  `json:"LoadBytes"`
	LoadTimeMs             int64  `json:"LoadTimeMs"`
	BeginTxnTimeMs         int64  `json:"BeginTxnTimeMs"`
	StreamLoadPutTimeMs    int64  `json:"StreamLoadPutTimeMs"`
	ReadDataTimeMs         int64  `json:"ReadDataTimeMs"`
	WriteDataTimeMs        int64  `json:"WriteDataTimeMs"`
	CommitAndPublishTimeMs int64  `json:"CommitAndPublishTimeMs"`
	ErrorURL               string `json:"ErrorURL,omitempty"`
}

func (e *Emulator) beHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /api/{db}/{table}/_stream_load", e.handleStreamLoad)
	mux.HandleFunc("GET /api/_load_error_log", e.handleErrorLog)
	// Doris's BE takes 2PC operations too.
	mux.HandleFunc("PUT /api/{db}/_stream_load_2pc", e.handle2PC)
	mux.HandleFunc("PUT /api/{db}/{table}/_stream_load_2pc", e.handle2PC)
	return mux
}

func (e *Emulator) handleErrorLog(w http.ResponseWriter, r *http.Request) {
	text, ok := e.errLogs.get(r.URL.Query().Get("file"))
	if !ok {
		http.Error(w, "error log not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, text)
}

func (e *Emulator) handleStreamLoad(w http.ResponseWriter, r *http.Request) {
	_, user, ok := e.authenticate(r)
	if !ok {
		unauthorized(w)
		return
	}
	e.stats.loads.Add(1)
	e.sweep()
	start := time.Now()
	db, table := r.PathValue("db"), r.PathValue("table")
	res := &loadResult{Label: r.Header.Get("label"), TwoPhaseCommit: fmt.Sprint(isTrue(r.Header.Get("two_phase_commit"))), TxnID: -1}
	if res.Label == "" {
		res.Label = newLabel()
	}
	answer := func() {
		res.LoadTimeMs = time.Since(start).Milliseconds()
		writeJSON(w, http.StatusOK, res)
	}
	fail := func(err error) {
		res.Status, res.Message = "Fail", err.Error()
		answer()
	}

	f := e.faults.next()
	switch f {
	case faultDropConnection:
		e.dropConnection(w, r)
		return
	case faultTooManyVersions:
		_, _ = io.Copy(io.Discard, r.Body)
		fail(errors.New("[E-235]failed to init rowset builder. version count: 2001, exceed limit: 2000, tablet: 10086"))
		return
	}

	if err := user.check(PrivLoad); err != nil {
		fail(err)
		return
	}
	t, err := e.cat.table(db, table)
	if err != nil {
		fail(err)
		return
	}
	e.cat.mu.RLock()
	snap := *t
	snap.Columns = append([]Column(nil), t.Columns...)
	e.cat.mu.RUnlock()
	spec, err := parseLoadSpec(r.Header, &snap)
	if err != nil {
		fail(err)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		fail(fmt.Errorf("[INTERNAL_ERROR]read body: %v", err))
		return
	}
	res.LoadBytes = int64(len(body))
	e.stats.bytes.Add(int64(len(body)))

	tx, existing := e.txns.begin(db, res.Label, t)
	if existing != nil {
		status, _ := e.txns.snapshot(existing)
		if e.opts.LabelExistsNewForm {
			res.Status = "Fail"
			res.Message = fmt.Sprintf("[LABEL_ALREADY_EXISTS]Label [%s] has already been used, relate to txn [%d], existing job status [%s]",
				res.Label, existing.id, status.jobStatus())
		} else {
			res.Status = "Label Already Exists"
			res.ExistingJobStatus = status.jobStatus()
			res.Message = fmt.Sprintf("errCode = 2, detailMessage = Label [%s] has already been used, relate to txn [%d]", res.Label, existing.id)
		}
		answer()
		return
	}
	res.TxnID = tx.id
	abort := func(err error) {
		_ = e.abort(tx, err.Error())
		fail(err)
	}

	var recs []record
	if spec.format == "json" {
		if recs, err = readJSON(body, spec); err != nil {
			abort(err)
			return
		}
	} else {
		recs = readCSV(body, spec)
	}
	b, filtered := buildBatch(&snap, spec, recs)
	res.NumberTotalRows = int64(len(recs))
	res.NumberFilteredRows = int64(len(filtered))
	res.NumberLoadedRows = res.NumberTotalRows - res.NumberFilteredRows
	if len(filtered) > 0 {
		name := e.errLogs.add(tx.id, filtered)
		res.ErrorURL = "http://" + e.BEAddr() + "/api/_load_error_log?file=" + url.QueryEscape(name)
	}
	if res.NumberTotalRows > 0 && float64(res.NumberFilteredRows)/float64(res.NumberTotalRows) > spec.maxFilter {
		abort(errors.New("[DATA_QUALITY_ERROR]too many filtered rows"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Minute)
	defer cancel()
	if err := e.stage(ctx, tx, b); err != nil {
		e.dropStage(tx)
		abort(err)
		return
	}
	e.stats.rows.Add(res.NumberLoadedRows)
	if spec.twoPC {
		e.txns.set(tx, TxnPrecommitted, "")
		res.Status, res.Message = "Success", "OK"
		answer()
		return
	}
	if f == faultPublishTimeout {
		// Committed but not yet visible: the sweep publishes it after
		// PublishDelay, or an earlier publish on the table does.
		e.txns.setCommitted(tx, time.Now().Add(e.opts.PublishDelay))
		e.stats.commits.Add(1)
		res.Status, res.Message = "Publish Timeout", "transaction commit successfully, BUT data will be visible later"
		answer()
		return
	}
	e.pub.Lock()
	err = e.publish(ctx, tx)
	if err == nil {
		e.txns.set(tx, TxnVisible, "")
		e.stats.commits.Add(1)
	}
	e.pub.Unlock()
	if err != nil {
		abort(err)
		return
	}
	res.Status, res.Message = "Success", "OK"
	answer()
}

// dropConnection reads part of the body, then closes the TCP connection
// without an answer, as a BE crashing mid-load would.
func (e *Emulator) dropConnection(w http.ResponseWriter, r *http.Request) {
	buf := make([]byte, 4096)
	_, _ = io.ReadAtLeast(r.Body, buf, 1)
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

func newLabel() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
