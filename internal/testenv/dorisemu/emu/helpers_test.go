package emu

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// start runs an emulator for one test, skipping when MariaDB is missing.
func start(t *testing.T, tune ...func(*Options)) *Emulator {
	t.Helper()
	if _, _, err := FindMariaDB(); err != nil {
		t.Skip(err)
	}
	var o Options
	o.Dir = t.TempDir()
	for _, f := range tune {
		f(&o)
	}
	e, err := Start(o)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(e.Close)
	return e
}

var httpc = &http.Client{Timeout: 30 * time.Second}

// client talks to one emulator as one user.
type client struct {
	t          *testing.T
	e          *Emulator
	user, pass string
}

func newClient(t *testing.T, e *Emulator) *client { return &client{t: t, e: e, user: "root"} }

func (c *client) do(method, url string, hdr map[string]string, body []byte) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.SetBasicAuth(c.user, c.pass)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := httpc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// load sends a stream load to the FE (following the redirect).
func (c *client) load(db, table string, hdr map[string]string, body string) loadResult {
	c.t.Helper()
	if hdr == nil {
		hdr = map[string]string{}
	}
	hdr["Expect"] = "100-continue"
	code, out := c.do("PUT", c.e.FEURL()+"/api/"+db+"/"+table+"/_stream_load", hdr, []byte(body))
	if code != 200 {
		c.t.Fatalf("load: HTTP %d: %s", code, out)
	}
	var res loadResult
	if err := json.Unmarshal(out, &res); err != nil {
		c.t.Fatalf("load answer %s: %v", out, err)
	}
	return res
}

func (c *client) mustLoad(db, table string, hdr map[string]string, body string) loadResult {
	c.t.Helper()
	res := c.load(db, table, hdr, body)
	if res.Status != "Success" {
		c.t.Fatalf("load %s.%s: %+v", db, table, res)
	}
	return res
}

func (c *client) txn2PC(db string, hdr map[string]string) (status, msg string) {
	c.t.Helper()
	code, out := c.do("PUT", c.e.FEURL()+"/api/"+db+"/_stream_load_2pc", hdr, nil)
	if code != 200 {
		c.t.Fatalf("2pc: HTTP %d: %s", code, out)
	}
	var r struct{ Status, Msg string }
	if err := json.Unmarshal(out, &r); err != nil {
		c.t.Fatal(err)
	}
	return r.Status, r.Msg
}

func (c *client) loadState(db, label string) string {
	c.t.Helper()
	code, out := c.do("GET", c.e.FEURL()+"/api/"+db+"/get_load_state?label="+label, nil, nil)
	if code != 200 {
		c.t.Fatalf("get_load_state: HTTP %d: %s", code, out)
	}
	var r struct {
		Data string
		Code int
	}
	if err := json.Unmarshal(out, &r); err != nil {
		c.t.Fatal(err)
	}
	return r.Data
}

// query runs SQL over HTTP and returns rows, or the error message.
func (c *client) query(db, stmt string) ([][]*string, error) {
	c.t.Helper()
	body, _ := json.Marshal(map[string]string{"stmt": stmt})
	code, out := c.do("POST", c.e.FEURL()+"/api/query/default_cluster/"+db, nil, body)
	if code != 200 {
		c.t.Fatalf("query: HTTP %d: %s", code, out)
	}
	var r struct {
		Msg  string
		Code int
		Data json.RawMessage
	}
	if err := json.Unmarshal(out, &r); err != nil {
		c.t.Fatalf("query answer %s: %v", out, err)
	}
	if r.Code != 0 {
		return nil, errors.New(r.Msg)
	}
	var d struct {
		Type string
		Data [][]*string
	}
	if err := json.Unmarshal(r.Data, &d); err != nil {
		c.t.Fatalf("query data %s: %v", r.Data, err)
	}
	return d.Data, nil
}

func (c *client) exec(db, stmt string) {
	c.t.Helper()
	if _, err := c.query(db, stmt); err != nil {
		c.t.Fatalf("%s: %v", stmt, err)
	}
}

// rows renders a result as lines of "a|b|NULL" for compact comparison.
func (c *client) rows(db, stmt string) string {
	c.t.Helper()
	rows, err := c.query(db, stmt)
	if err != nil {
		c.t.Fatalf("%s: %v", stmt, err)
	}
	return render(rows)
}

func render(rows [][]*string) string {
	var lines []string
	for _, r := range rows {
		var cells []string
		for _, v := range r {
			if v == nil {
				cells = append(cells, "NULL")
			} else {
				cells = append(cells, *v)
			}
		}
		lines = append(lines, strings.Join(cells, "|"))
	}
	return strings.Join(lines, "\n")
}

func expectRows(t *testing.T, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("rows:\n%s\nwant:\n%s", got, want)
	}
}
