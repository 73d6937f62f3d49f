package doris

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluicedb/sluice/proto"
)

// client speaks the FE's HTTP API, as the Doris connectors do: Stream
// Load (following the FE's redirect to a BE), its two-phase commit, load
// states and SQL over HTTP. One address serves everything.
type client struct {
	base           string // http(s)://host:port of the FE
	user, password string
	db             string
	http           *http.Client
}

// requestTimeout bounds a request when its context has no deadline; a
// load's is longer (the body streams as fast as the source reads).
const (
	requestTimeout = 60 * time.Second
	loadTimeout    = 30 * time.Minute
)

func newClient(rawURL, user, password, db string) (*client, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("doris: url %q is not http(s)://host:port", proto.RedactURL(rawURL))
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.ExpectContinueTimeout = 5 * time.Second
	transport.MaxIdleConnsPerHost = 16
	return &client{
		base: strings.TrimRight(u.Scheme+"://"+u.Host, "/"), user: user, password: password, db: db,
		http: &http.Client{
			Transport: transport,
			// Redirects are followed by hand: a load's body is a stream
			// that can be sent once, to the BE the FE names.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// HTTPError is an answer that is not the API's: an HTTP status the FE or
// a BE gave instead of a result (authentication, a server error).
type HTTPError struct {
	Method, URL string
	StatusCode  int
	Body        string
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("doris: %s %s: HTTP %d", e.Method, e.URL, e.StatusCode)
	if e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden {
		msg += " (check destination.user and password)"
	}
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// SQLError is Doris's refusal of a statement sent over HTTP.
type SQLError struct {
	Stmt, Msg string
}

func (e *SQLError) Error() string { return fmt.Sprintf("doris: %s: %s", truncate(e.Stmt, 200), e.Msg) }

// LoadError is a Stream Load that did not load: Doris's status and
// message, and the reasons from its error log when it filtered rows.
type LoadError struct {
	Table, Label string
	Status       string
	Message      string
	ErrorLog     string
}

func (e *LoadError) Error() string {
	msg := fmt.Sprintf("doris: stream load of %s (label %s): %s: %s", e.Table, e.Label, e.Status, e.Message)
	if e.ErrorLog != "" {
		msg += "; error log: " + e.ErrorLog
	}
	return msg
}

// TooManyVersions: the table has more versions than its compaction keeps
// up with (-235); loads must come less often.
func (e *LoadError) TooManyVersions() bool {
	return strings.Contains(e.Message, "-235") || strings.Contains(strings.ToLower(e.Message), "too many versions")
}

func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func (c *client) do(ctx context.Context, req *http.Request) (*http.Response, error) {
	req.SetBasicAuth(c.user, c.password)
	resp, err := c.http.Do(req)
	if err != nil {
		// net/http names the URL (no credentials: they are in a header).
		return nil, fmt.Errorf("doris: %w", err)
	}
	return resp, nil
}

// readJSON reads a response body into out; a non-2xx status is an
// HTTPError.
func readJSON(req *http.Request, resp *http.Response, out any) error {
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("doris: %s %s: reading the answer: %w", req.Method, req.URL.Redacted(), err)
	}
	if resp.StatusCode/100 != 2 {
		return &HTTPError{Method: req.Method, URL: req.URL.Redacted(), StatusCode: resp.StatusCode, Body: truncate(string(body), 300)}
	}
	// Numbers keep their digits: a result's BIGINT or LARGEINT read as
	// a float64 would lose them (verification compares them exactly).
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("doris: %s %s: an answer that is not the API's JSON: %s", req.Method, req.URL.Redacted(), truncate(string(body), 300))
	}
	return nil
}

func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// queryAnswer is the SQL-over-HTTP answer.
type queryAnswer struct {
	Msg  string `json:"msg"`
	Code int    `json:"code"`
	Data *struct {
		Type string `json:"type"`
		Meta []struct {
			Name string `json:"name"`
		} `json:"meta"`
		Data [][]any `json:"data"`
	} `json:"data"`
}

// result is a statement's rows, every value as text (nil: NULL).
type result struct {
	cols []string
	rows [][]*string
}

// col returns the named column's value in row i ("" for NULL or none).
func (r *result) col(i int, name string) string {
	for j, c := range r.cols {
		if strings.EqualFold(c, name) && j < len(r.rows[i]) && r.rows[i][j] != nil {
			return *r.rows[i][j]
		}
	}
	return ""
}

// first returns the first column's values (NULLs left out): what SHOW
// DATABASES and SHOW TABLES list, a single value's row.
func (r *result) first() []string {
	var out []string
	for _, row := range r.rows {
		if len(row) > 0 && row[0] != nil {
			out = append(out, *row[0])
		}
	}
	return out
}

// inSystem is the client in information_schema, which every FE has: for
// what runs before (or without) the destination database.
func (c *client) inSystem() *client {
	sys := *c
	sys.db = "information_schema"
	return &sys
}

// databaseExists reports whether the destination database exists.
func (c *client) databaseExists(ctx context.Context) (bool, error) {
	res, err := c.inSystem().query(ctx, "SHOW DATABASES")
	if err != nil {
		return false, err
	}
	return slices.Contains(res.first(), c.db), nil
}

// query runs one statement in the destination database.
func (c *client) query(ctx context.Context, stmt string) (*result, error) {
	ctx, cancel := withTimeout(ctx, requestTimeout)
	defer cancel()
	body, _ := json.Marshal(map[string]string{"stmt": stmt})
	endpoint := c.base + "/api/query/default_cluster/" + url.PathEscape(c.db)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.do(ctx, req)
	if err != nil {
		return nil, err
	}
	var ans queryAnswer
	if err := readJSON(req, resp, &ans); err != nil {
		return nil, err
	}
	if ans.Code != 0 {
		return nil, &SQLError{Stmt: stmt, Msg: ans.Msg}
	}
	out := &result{}
	if ans.Data == nil {
		return out, nil
	}
	for _, m := range ans.Data.Meta {
		out.cols = append(out.cols, m.Name)
	}
	for _, row := range ans.Data.Data {
		vals := make([]*string, len(row))
		for i, v := range row {
			switch v := v.(type) {
			case nil:
			case string:
				vals[i] = &v
			case json.Number:
				s := v.String()
				vals[i] = &s
			default:
				s := fmt.Sprint(v)
				vals[i] = &s
			}
		}
		out.rows = append(out.rows, vals)
	}
	return out, nil
}

// exec runs a statement whose rows do not matter.
func (c *client) exec(ctx context.Context, stmt string) error {
	_, err := c.query(ctx, stmt)
	return err
}

// loadAnswer is a Stream Load's answer.
type loadAnswer struct {
	TxnID             int64  `json:"TxnId"`
	Label             string `json:"Label"`
	Status            string `json:"Status"`
	ExistingJobStatus string `json:"ExistingJobStatus"`
	Message           string `json:"Message"`
	NumberLoadedRows  int64  `json:"NumberLoadedRows"`
	NumberTotalRows   int64  `json:"NumberTotalRows"`
	ErrorURL          string `json:"ErrorURL"`
}

// The statuses of a load as Doris documents them.
const (
	statusSuccess        = "Success"
	statusPublishTimeout = "Publish Timeout"
	statusLabelExists    = "Label Already Exists"
)

// labelExists: the label belongs to an earlier load; job says whether it
// is RUNNING (not finished: in its load or precommitted) or FINISHED.
// Doris answers with the status and ExistingJobStatus, newer versions
// also (or only) with "[LABEL_ALREADY_EXISTS]... existing job status
// [FINISHED]" in the message.
func (a *loadAnswer) labelExists() (job string, ok bool) {
	if a.Status == statusLabelExists {
		return strings.ToUpper(a.ExistingJobStatus), true
	}
	if strings.Contains(a.Message, "LABEL_ALREADY_EXISTS") || strings.Contains(a.Message, "has already been used") {
		if m := existingStatusRe.FindStringSubmatch(a.Message); m != nil {
			return strings.ToUpper(m[1]), true
		}
		return "", true
	}
	return "", false
}

var existingStatusRe = regexp.MustCompile(`(?i)existing job status\s*\[?\s*([A-Z_]+)`)

// loadRequest is one Stream Load.
type loadRequest struct {
	table  string
	label  string
	header map[string]string
	// open returns the body; it is called at most once, when the server
	// asks for the body (a stream is sent to one BE only).
	open func() (io.ReadCloser, error)
}

// streamLoad sends one load: to the FE, which redirects it to a BE (with
// Expect: 100-continue the body is not sent to the FE), and there with
// the same credentials.
func (c *client) streamLoad(ctx context.Context, lr loadRequest) (*loadAnswer, error) {
	ctx, cancel := withTimeout(ctx, loadTimeout)
	defer cancel()
	endpoint := c.base + "/api/" + url.PathEscape(c.db) + "/" + url.PathEscape(lr.table) + "/_stream_load"
	body := &lazyBody{open: lr.open}
	defer body.Close()
	for hop := 0; ; hop++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, endpoint, body)
		if err != nil {
			return nil, err
		}
		req.ContentLength = -1
		req.Header.Set("Expect", "100-continue")
		req.Header.Set("label", lr.label)
		for k, v := range lr.header {
			req.Header.Set(k, v)
		}
		resp, err := c.do(ctx, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusTemporaryRedirect || resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusMovedPermanently {
			resp.Body.Close()
			loc, err := resp.Location()
			if err != nil || hop > 2 {
				return nil, fmt.Errorf("doris: stream load of %s: the FE's redirect leads nowhere (%v)", lr.table, err)
			}
			if body.opened {
				return nil, fmt.Errorf("doris: stream load of %s: redirected after the body was sent", lr.table)
			}
			endpoint = loc.String()
			continue
		}
		var ans loadAnswer
		if err := readJSON(req, resp, &ans); err != nil {
			return nil, err
		}
		if ans.ErrorURL != "" {
			ans.Message += c.errorLog(ctx, ans.ErrorURL)
		}
		return &ans, nil
	}
}

// errorLog fetches the start of a failed load's error log (the rows it
// filtered and why), for the error users see.
func (c *client) errorLog(ctx context.Context, u string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return ""
	}
	resp, err := c.do(ctx, req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	if len(b) == 0 {
		return ""
	}
	return " (error log: " + truncate(strings.ReplaceAll(string(b), "\n", "; "), 1000) + ")"
}

// lazyBody opens its stream at the first Read: a request the server
// answers before reading (the FE's redirect) leaves it unopened.
type lazyBody struct {
	open   func() (io.ReadCloser, error)
	rc     io.ReadCloser
	opened bool
	err    error
}

func (b *lazyBody) Read(p []byte) (int, error) {
	if !b.opened {
		b.opened = true
		b.rc, b.err = b.open()
	}
	if b.err != nil {
		return 0, b.err
	}
	return b.rc.Read(p)
}

// Close is a no-op until the stream was opened: net/http closes a
// request's body after each try, and the redirected one still needs it.
func (b *lazyBody) Close() error {
	if b.rc != nil {
		return b.rc.Close()
	}
	return nil
}

// txnOp commits or aborts a precommitted load, by its transaction id or,
// with txn 0, by its label.
func (c *client) txnOp(ctx context.Context, table string, txn int64, label, op string) error {
	ctx, cancel := withTimeout(ctx, requestTimeout)
	defer cancel()
	endpoint := c.base + "/api/" + url.PathEscape(c.db) + "/" + url.PathEscape(table) + "/_stream_load_2pc"
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, endpoint, http.NoBody)
	if err != nil {
		return err
	}
	req.Header.Set("txn_operation", op)
	if txn > 0 {
		req.Header.Set("txn_id", strconv.FormatInt(txn, 10))
	} else {
		req.Header.Set("label", label)
	}
	resp, err := c.do(ctx, req)
	if err != nil {
		return err
	}
	var ans struct {
		Status string `json:"status"`
		Msg    string `json:"msg"`
	}
	if err := readJSON(req, resp, &ans); err != nil {
		return err
	}
	if !strings.EqualFold(ans.Status, "success") {
		return &txnError{op: op, txn: txn, label: label, msg: ans.Msg}
	}
	return nil
}

// txnError is a refused commit or abort.
type txnError struct {
	op, label string
	txn       int64
	msg       string
}

func (e *txnError) Error() string {
	return fmt.Sprintf("doris: %s of transaction %d (label %s): %s", e.op, e.txn, e.label, e.msg)
}

// done: the transaction already is where the operation would take it.
func (e *txnError) done() bool {
	m := strings.ToLower(e.msg)
	if e.op == "commit" {
		return strings.Contains(m, "visible") || strings.Contains(m, "already committed")
	}
	return strings.Contains(m, "aborted")
}

// Load states, as get_load_state names them: PREPARE is a load still
// running, PRECOMMITTED one of two-phase commit waiting for its commit.
const (
	statePrepare      = "PREPARE"
	statePrecommitted = "PRECOMMITTED"
	stateCommitted    = "COMMITTED"
	stateVisible      = "VISIBLE"
	stateAborted      = "ABORTED"
)

// loadState asks where the load of a label is.
func (c *client) loadState(ctx context.Context, label string) (string, error) {
	ctx, cancel := withTimeout(ctx, requestTimeout)
	defer cancel()
	endpoint := c.base + "/api/" + url.PathEscape(c.db) + "/get_load_state?label=" + url.QueryEscape(label)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.do(ctx, req)
	if err != nil {
		return "", err
	}
	var ans struct {
		Msg  string `json:"msg"`
		Code int    `json:"code"`
		Data string `json:"data"`
	}
	if err := readJSON(req, resp, &ans); err != nil {
		return "", err
	}
	if ans.Code != 0 {
		return "", fmt.Errorf("doris: load state of label %s: %s", label, ans.Msg)
	}
	return strings.ToUpper(ans.Data), nil
}

// Query runs one statement over the FE's SQL-over-HTTP API as user, in
// database db: the columns and the rows, every value as text (nil:
// NULL). Tests and tools read Doris with it.
func Query(ctx context.Context, feURL, user, password, db, stmt string) (cols []string, rows [][]*string, err error) {
	c, err := newClient(feURL, user, password, db)
	if err != nil {
		return nil, nil, err
	}
	defer c.http.CloseIdleConnections()
	res, err := c.query(ctx, stmt)
	if err != nil {
		return nil, nil, err
	}
	return res.cols, res.rows, nil
}
