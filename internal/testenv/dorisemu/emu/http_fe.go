package emu

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

func (e *Emulator) feHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /api/{db}/{table}/_stream_load", e.handleRedirect)
	mux.HandleFunc("PUT /api/{db}/_stream_load_2pc", e.handle2PC)
	mux.HandleFunc("PUT /api/{db}/{table}/_stream_load_2pc", e.handle2PC)
	mux.HandleFunc("GET /api/{db}/get_load_state", e.handleLoadState)
	mux.HandleFunc("POST /api/query/{cluster}/{db}", e.handleQuery)
	mux.HandleFunc("POST /api/query/{cluster}/{$}", e.handleQuery)
	mux.HandleFunc("GET /api/health", e.handleHealth)
	return mux
}

// feOK is the envelope of the FE's REST answers.
type feAnswer struct {
	Msg   string `json:"msg"`
	Code  int    `json:"code"`
	Data  any    `json:"data"`
	Count int    `json:"count"`
}

// handleRedirect answers a stream load sent to the FE with 307 to the BE,
// as Doris does once the credentials check out; the Location carries them
// as user info, like Doris's redirect.
func (e *Emulator) handleRedirect(w http.ResponseWriter, r *http.Request) {
	name, u, ok := e.authenticate(r)
	if !ok {
		unauthorized(w)
		return
	}
	loc := url.URL{Scheme: "http", Host: e.BEAddr(), Path: r.URL.Path, RawQuery: r.URL.RawQuery,
		User: url.UserPassword(name, u.Password)}
	w.Header().Set("Location", loc.String())
	w.WriteHeader(http.StatusTemporaryRedirect)
}

func (e *Emulator) handleHealth(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := e.authenticate(r); !ok {
		unauthorized(w)
		return
	}
	writeJSON(w, http.StatusOK, feAnswer{Msg: "success", Data: map[string]int{"online_backend_num": 1, "total_backend_num": 1}})
}

func (e *Emulator) handleLoadState(w http.ResponseWriter, r *http.Request) {
	_, u, ok := e.authenticate(r)
	if !ok {
		unauthorized(w)
		return
	}
	e.sweep()
	db := r.PathValue("db")
	if err := u.check(PrivLoad); err != nil {
		writeJSON(w, http.StatusOK, feAnswer{Msg: err.Error(), Code: 1})
		return
	}
	if !e.cat.hasDB(db) {
		writeJSON(w, http.StatusOK, feAnswer{Msg: unknownDB(db).Error(), Code: 1})
		return
	}
	state := TxnUnknown
	if tx := e.txns.get(db, 0, r.URL.Query().Get("label")); tx != nil {
		state, _ = e.txns.snapshot(tx)
	}
	writeJSON(w, http.StatusOK, feAnswer{Msg: "success", Data: state.String()})
}

// handle2PC commits or aborts a precommitted load by txn_id or label.
func (e *Emulator) handle2PC(w http.ResponseWriter, r *http.Request) {
	_, u, ok := e.authenticate(r)
	if !ok {
		unauthorized(w)
		return
	}
	e.sweep()
	answer := func(status, msg string) {
		writeJSON(w, http.StatusOK, map[string]string{"status": status, "msg": msg})
	}
	if err := u.check(PrivLoad); err != nil {
		answer("Fail", err.Error())
		return
	}
	db := r.PathValue("db")
	if !e.cat.hasDB(db) {
		answer("Fail", errorf("unknown database, database=%s", db).Error())
		return
	}
	op := strings.ToLower(strings.TrimSpace(r.Header.Get("txn_operation")))
	if op != "commit" && op != "abort" {
		answer("Fail", "transaction operation should be 'commit' or 'abort'")
		return
	}
	label := r.Header.Get("label")
	var id int64
	if label == "" {
		v := r.Header.Get("txn_id")
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			answer("Fail", "convert txn_id ["+v+"] failed")
			return
		}
		id = n
	}
	tx := e.txns.get(db, id, label)
	if tx == nil {
		if label != "" {
			answer("Fail", errorf("label [%s] is not exist", label).Error())
		} else {
			answer("Fail", errorf("transaction [%d] not found", id).Error())
		}
		return
	}
	var err error
	if op == "commit" {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Minute)
		err = e.commit(ctx, tx)
		cancel()
	} else {
		err = e.abort(tx, "User Abort")
	}
	if err != nil {
		answer("Fail", err.Error())
		return
	}
	answer("Success", "transaction ["+strconv.FormatInt(tx.id, 10)+"] "+op+" successfully.")
}

// handleQuery runs one SQL statement: POST {"stmt": "..."}.
func (e *Emulator) handleQuery(w http.ResponseWriter, r *http.Request) {
	name, u, ok := e.authenticate(r)
	if !ok {
		unauthorized(w)
		return
	}
	e.sweep()
	var req struct {
		Stmt string `json:"stmt"`
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil || strings.TrimSpace(req.Stmt) == "" {
		writeJSON(w, http.StatusOK, feAnswer{Msg: "errCode = 2, detailMessage = stmt is empty or not valid JSON", Code: 1})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := e.exec(ctx, session{user: name, u: u, db: r.PathValue("db")}, req.Stmt)
	if err != nil {
		writeJSON(w, http.StatusOK, feAnswer{Msg: queryError(err), Code: 1})
		return
	}
	if res == nil || res.Columns == nil {
		writeJSON(w, http.StatusOK, feAnswer{Msg: "success", Data: map[string]any{"type": "exec_status", "status": map[string]any{}}})
		return
	}
	meta := make([]map[string]string, len(res.Columns))
	for i, c := range res.Columns {
		meta[i] = map[string]string{"name": c, "type": res.Types[i]}
	}
	rows := res.Rows
	if rows == nil {
		rows = [][]*string{}
	}
	writeJSON(w, http.StatusOK, feAnswer{Msg: "success", Data: map[string]any{
		"type": "result_set", "meta": meta, "data": rows, "time": time.Since(start).Milliseconds()}})
}
