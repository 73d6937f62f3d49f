package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/sluicedb/sluice/proto"
)

// Client calls the HTTP API. The zero HTTP uses http.DefaultClient; bound
// calls with the ctx (a create runs the precheck, which takes a while).
type Client struct {
	BaseURL string // such as http://127.0.0.1:7420
	// Token is the API token sent as "Authorization: Bearer".
	Token string
	HTTP  *http.Client
	// WaitReady sends a request again, with backoff until ctx ends, while
	// the node cannot take it yet and did nothing with it: a 503 that says
	// so (no coordinator leader yet, or the node starting), or, for
	// refusedWait at most, a refused connection (a node just started
	// listens within moments; one that is not running should be said
	// soon). Other answers, and a write whose outcome is unknown, are
	// returned at once.
	WaitReady bool
	// TokenSource, when set, gives the token for each attempt in place of
	// Token: a node writes its first admin token (and the client config
	// holding it) only once it has a leader.
	TokenSource func() string
}

// APIError is an error answered by the API.
type APIError struct {
	Status   int
	Message  string
	Problems []proto.Problem
	// Code is set on answers that applied nothing and may be sent again
	// ("no_leader", "not_ready").
	Code string
}

// NotApplied reports whether the server did nothing with the request and
// said it may be sent again as it is.
func (e *APIError) NotApplied() bool { return e.Code == codeNoLeader || e.Code == codeNotReady }

// Error prints the message, then each problem and its fix on their own
// lines, so a CLI can print it as is.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	proto.WriteProblems(&b, e.Problems)
	return b.String()
}

// CreateTask creates a task from its YAML (or JSON) spec.
func (c *Client) CreateTask(ctx context.Context, spec []byte, ignore ...string) (*proto.TaskStatus, error) {
	return c.CreateTaskWith(ctx, spec, CheckOptions{Ignore: ignore})
}

// CheckOptions are what a create or a precheck asks of its checks: the
// warnings acknowledged by check id, and Fix (--fix: the precheck sets
// REPLICA IDENTITY FULL on keyless tables, then checks again).
type CheckOptions struct {
	Ignore []string
	Fix    bool
}

func (o CheckOptions) query() string {
	q := url.Values{}
	if len(o.Ignore) > 0 {
		q["ignore"] = o.Ignore
	}
	if o.Fix {
		q.Set("fix", "true")
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// CreateTaskWith is CreateTask with the checks' options.
func (c *Client) CreateTaskWith(ctx context.Context, spec []byte, o CheckOptions) (*proto.TaskStatus, error) {
	var st proto.TaskStatus
	if err := c.do(ctx, http.MethodPost, "/api/v1/tasks"+o.query(), "application/yaml", spec, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Plan asks what a task would create, creating nothing.
func (c *Client) Plan(ctx context.Context, spec []byte) (*proto.TaskPlan, error) {
	var p proto.TaskPlan
	if err := c.do(ctx, http.MethodPost, "/api/v1/plan", "application/yaml", spec, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Precheck runs a task's checks without creating it; ignore acknowledges
// warnings by check id. The report says whether it passed.
func (c *Client) Precheck(ctx context.Context, spec []byte, ignore ...string) (*proto.PrecheckReport, error) {
	return c.PrecheckWith(ctx, spec, CheckOptions{Ignore: ignore})
}

// PrecheckWith is Precheck with the checks' options.
func (c *Client) PrecheckWith(ctx context.Context, spec []byte, o CheckOptions) (*proto.PrecheckReport, error) {
	var r proto.PrecheckReport
	if err := c.do(ctx, http.MethodPost, "/api/v1/precheck"+o.query(), "application/yaml", spec, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// GetTask returns a task's status.
func (c *Client) GetTask(ctx context.Context, name string) (*proto.TaskStatus, error) {
	var st proto.TaskStatus
	if err := c.do(ctx, http.MethodGet, "/api/v1/tasks/"+url.PathEscape(name), "", nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// TaskTables returns a task's tables with their figures.
func (c *Client) TaskTables(ctx context.Context, name string) (*proto.TablesStatus, error) {
	var out proto.TablesStatus
	if err := c.do(ctx, http.MethodGet, "/api/v1/tasks/"+url.PathEscape(name)+"/tables", "", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// TaskHistory returns a task's figures over the last hour.
func (c *Client) TaskHistory(ctx context.Context, name string) (*proto.TaskHistory, error) {
	var out proto.TaskHistory
	if err := c.do(ctx, http.MethodGet, "/api/v1/tasks/"+url.PathEscape(name)+"/history", "", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListTasks returns every task's status, sorted by name.
func (c *Client) ListTasks(ctx context.Context) ([]proto.TaskStatus, error) {
	var list []proto.TaskStatus
	if err := c.do(ctx, http.MethodGet, "/api/v1/tasks", "", nil, &list); err != nil {
		return nil, err
	}
	return list, nil
}

// DeleteTask stops a task and removes it with what it created.
func (c *Client) DeleteTask(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/tasks/"+url.PathEscape(name), "", nil, nil)
}

// PauseTask stops a task where it is; its slot keeps the changes.
func (c *Client) PauseTask(ctx context.Context, name string) (*proto.TaskStatus, error) {
	return c.transition(ctx, name, "pause")
}

// UpdateTask sends a running task's spec again: its retry windows,
// alerts, throttle and verify block change; any other difference is
// refused (409).
func (c *Client) UpdateTask(ctx context.Context, name string, spec []byte) (*proto.TaskStatus, error) {
	var st proto.TaskStatus
	if err := c.do(ctx, http.MethodPut, "/api/v1/tasks/"+url.PathEscape(name), "application/yaml", spec, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// SetThrottle replaces a task's throttle (nil lifts every limit).
func (c *Client) SetThrottle(ctx context.Context, name string, th *proto.ThrottleSpec) (*proto.TaskStatus, error) {
	if th == nil {
		th = &proto.ThrottleSpec{}
	}
	body, err := json.Marshal(th)
	if err != nil {
		return nil, err
	}
	var st proto.TaskStatus
	if err := c.do(ctx, http.MethodPut, "/api/v1/tasks/"+url.PathEscape(name)+"/throttle", "application/json", body, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// ResumeTask runs a paused (or failed) task again.
func (c *Client) ResumeTask(ctx context.Context, name string) (*proto.TaskStatus, error) {
	return c.transition(ctx, name, "resume")
}

// Cutover waits up to wait (0: the server's default, a minute) until the
// task has applied everything its source has written, sets the
// destination's sequences to the source's values, and reports each.
func (c *Client) Cutover(ctx context.Context, name string, wait time.Duration) (*proto.CutoverReport, error) {
	path := "/api/v1/tasks/" + url.PathEscape(name) + "/cutover"
	if wait > 0 {
		path += "?" + url.Values{"timeout": {wait.String()}}.Encode()
	}
	var r proto.CutoverReport
	if err := c.do(ctx, http.MethodPost, path, "", nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Verify compares a task's tables at the source and the destination
// (req.Tables: some of them), and repairs them when req.Repair.
func (c *Client) Verify(ctx context.Context, name string, req proto.VerifyRequest) (*proto.VerifyReport, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var r proto.VerifyReport
	if err := c.do(ctx, http.MethodPost, "/api/v1/tasks/"+url.PathEscape(name)+"/verify", "application/json", body, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// LastVerify returns each table's last verification.
func (c *Client) LastVerify(ctx context.Context, name string) ([]proto.VerifyRecord, error) {
	var r []proto.VerifyRecord
	if err := c.do(ctx, http.MethodGet, "/api/v1/tasks/"+url.PathEscape(name)+"/verify", "", nil, &r); err != nil {
		return nil, err
	}
	return r, nil
}

func (c *Client) transition(ctx context.Context, name, verb string) (*proto.TaskStatus, error) {
	var st proto.TaskStatus
	if err := c.do(ctx, http.MethodPost, "/api/v1/tasks/"+url.PathEscape(name)+"/"+verb, "", nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Backoff of WaitReady: from the first pause to the longest.
const (
	readyRetryFirst = 100 * time.Millisecond
	readyRetryMax   = 2 * time.Second
	refusedWait     = 10 * time.Second
)

func (c *Client) do(ctx context.Context, method, path, contentType string, body []byte, out any) error {
	pause, start := readyRetryFirst, time.Now()
	for attempt := 1; ; attempt++ {
		tokenless := c.TokenSource != nil && c.TokenSource() == ""
		err := c.once(ctx, method, path, contentType, body, out)
		if err == nil || !c.WaitReady {
			return err
		}
		// A request sent before a starting server wrote its token, and
		// answered once it was ready: try again with the token, which
		// the source has now (the refusal did nothing).
		retryWithToken := tokenless && isUnauthorized(err) && c.TokenSource() != ""
		if !retryWithToken && !notTaken(err, time.Since(start) < refusedWait) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (still so after %d attempts, when the timeout ended)", err, attempt)
		case <-time.After(pause):
		}
		pause = min(2*pause, readyRetryMax)
	}
}

// isUnauthorized reports whether the API refused a request for its
// missing or wrong token.
func isUnauthorized(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusUnauthorized
}

// notTaken reports whether a request certainly did nothing and may be
// sent again: the API said so, or (when refused counts) the connection
// was refused.
func notTaken(err error, refused bool) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.NotApplied()
	}
	return refused && errors.Is(err, syscall.ECONNREFUSED)
}

func (c *Client) once(ctx context.Context, method, path, contentType string, body []byte, out any) error {
	if c.BaseURL == "" {
		return errors.New("sluice client: no server URL")
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, rd)
	if err != nil {
		return fmt.Errorf("sluice client: %w", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	token := c.Token
	if c.TokenSource != nil {
		token = c.TokenSource()
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return &unreachableError{server: c.BaseURL, err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("sluice client: reading the response: %w", err)
	}
	if resp.StatusCode >= 300 {
		return decodeAPIError(resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("sluice client: unexpected response from %s %s: %w", method, path, err)
	}
	return nil
}

// decodeAPIError reads an error body; one that is not ours (a proxy's
// page, say) becomes the status text with the start of the body.
func decodeAPIError(status int, data []byte) error {
	var eb errorBody
	if err := json.Unmarshal(data, &eb); err == nil && eb.Error != "" {
		return &APIError{Status: status, Message: eb.Error, Problems: eb.Problems, Code: eb.Code}
	}
	msg := fmt.Sprintf("%d %s", status, http.StatusText(status))
	if s := strings.TrimSpace(string(data)); s != "" {
		if len(s) > 200 {
			s = s[:200] + "..."
		}
		msg += ": " + s
	}
	return &APIError{Status: status, Message: msg}
}

// ClusterStatus returns the cluster's nodes, leader, pools and health.
func (c *Client) ClusterStatus(ctx context.Context) (*ClusterStatus, error) {
	var st ClusterStatus
	if err := c.do(ctx, http.MethodGet, "/api/v1/cluster", "", nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// DrainNode moves a node's units away (undo: let it take units again).
func (c *Client) DrainNode(ctx context.Context, id string, undo bool) error {
	path := "/api/v1/cluster/nodes/" + url.PathEscape(id) + "/drain"
	if undo {
		path = "/api/v1/cluster/nodes/" + url.PathEscape(id) + "/undrain"
	}
	return c.do(ctx, http.MethodPost, path, "", nil, nil)
}

// RemoveNode forgets a node; force removes a live, undrained one.
func (c *Client) RemoveNode(ctx context.Context, id string, force bool) error {
	path := "/api/v1/cluster/nodes/" + url.PathEscape(id)
	if force {
		path += "?force=true"
	}
	return c.do(ctx, http.MethodDelete, path, "", nil, nil)
}

// CreateToken makes an API token; the reply holds its text, shown once.
func (c *Client) CreateToken(ctx context.Context, scope Scope, name string) (*NewTokenReply, error) {
	body, err := json.Marshal(TokenRequest{Scope: scope, Name: name})
	if err != nil {
		return nil, err
	}
	var out NewTokenReply
	if err := c.do(ctx, http.MethodPost, "/api/v1/tokens", "application/json", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListTokens lists the API tokens (never their secrets).
func (c *Client) ListTokens(ctx context.Context) ([]TokenInfo, error) {
	var out []TokenInfo
	if err := c.do(ctx, http.MethodGet, "/api/v1/tokens", "", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// RevokeToken revokes a token by its id.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(id), "", nil, nil)
}

// unreachableError is a request that never got an answer. Its message
// names the server once: the transport's own error repeats the method,
// the URL and the dialled address ("Get \"http://h:1/api/v1/tasks\":
// dial tcp h:1: connect: connection refused"), so only its cause is
// kept ("connect: connection refused").
type unreachableError struct {
	server string
	err    error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach the Sluice server at %s (is `sluice up` running? set --server or SLUICE_SERVER): %s", e.server, transportCause(e.err))
}

func (e *unreachableError) Unwrap() error { return e.err }

// transportCause is the innermost useful part of a transport error: a
// network operation's own error without the address it names, else the
// error without the request's URL.
func transportCause(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err.Error()
	}
	return err.Error()
}
