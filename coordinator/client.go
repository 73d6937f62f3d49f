package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
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
}

// APIError is an error answered by the API.
type APIError struct {
	Status   int
	Message  string
	Problems []proto.Problem
}

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

func (c *Client) do(ctx context.Context, method, path, contentType string, body []byte, out any) error {
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
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the Sluice server at %s (is `sluice up` running? set --server or SLUICE_SERVER): %w", c.BaseURL, err)
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
		return &APIError{Status: status, Message: eb.Error, Problems: eb.Problems}
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
		path += "?undo=true"
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
