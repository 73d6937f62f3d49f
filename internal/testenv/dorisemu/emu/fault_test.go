package emu

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestAuthAndPrivileges(t *testing.T) {
	e := start(t, func(o *Options) {
		o.Users = map[string]User{"reader": {Password: "pw", Privs: []string{PrivSelect, PrivLoad}}}
	})
	root := newClient(t, e)
	setupKV(t, root)
	bad := &client{t: t, e: e, user: "reader", pass: "wrong"}
	if code, _ := bad.do("GET", e.FEURL()+"/api/health", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", code)
	}
	if code, _ := bad.do("PUT", e.FEURL()+"/api/d/kv/_stream_load", nil, []byte("1\ta\n")); code != http.StatusUnauthorized {
		t.Fatalf("wrong password load: %d", code)
	}
	// The redirect: 307 to the BE, only once the credentials check out.
	req, _ := http.NewRequest("PUT", e.FEURL()+"/api/d/kv/_stream_load?x=1", strings.NewReader("1\ta\n"))
	req.SetBasicAuth("root", "")
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusTemporaryRedirect ||
		!strings.HasSuffix(loc, "@"+e.BEAddr()+"/api/d/kv/_stream_load?x=1") {
		t.Fatalf("redirect %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	reader := &client{t: t, e: e, user: "reader", pass: "pw"}
	reader.mustLoad("d", "kv", nil, "1\ta\n")
	expectRows(t, reader.rows("d", "SELECT * FROM kv"), "1|a")
	expectRows(t, reader.rows("d", "SHOW GRANTS"), "'reader'@'%'||Yes||Select_priv,Load_priv|NULL|NULL|NULL|NULL|normal: Usage_priv")
	expectRows(t, root.rows("d", "SHOW GRANTS"), "'root'@'%'||No|admin|Admin_priv,Select_priv,Load_priv,Alter_priv,Create_priv,Drop_priv|NULL|NULL|NULL|NULL|normal: Usage_priv")
	for stmt, priv := range map[string]string{
		"CREATE TABLE x (k INT) DUPLICATE KEY(k)": "CREATE", "ALTER TABLE kv ADD COLUMN z INT": "ALTER",
		"DROP TABLE kv": "DROP", "TRUNCATE TABLE kv": "DROP",
	} {
		_, err := reader.query("d", stmt)
		want := "errCode = 2, detailMessage = Access denied; you need (at least one of) the (" + priv + ") privilege(s) for this operation"
		if err == nil || err.Error() != want {
			t.Errorf("%s: %v", stmt, err)
		}
	}
	e2 := start(t, func(o *Options) { o.Users = map[string]User{"ro": {Privs: []string{PrivSelect}}} })
	setupKV(t, newClient(t, e2))
	ro := &client{t: t, e: e2, user: "ro"}
	if r := ro.load("d", "kv", nil, "1\ta\n"); r.Status != "Fail" || !strings.Contains(r.Message, "(LOAD) privilege(s)") {
		t.Fatalf("load without Load_priv: %+v", r)
	}
	expectRows(t, root.rows("d", "SHOW FRONTEND CONFIG LIKE 'label_keep_max_second'"), "label_keep_max_second|259200|int|true|true|")
	expectRows(t, root.rows("d", "ADMIN SHOW FRONTEND CONFIG LIKE 'label_keep%'"), "label_keep_max_second|259200|int|true|true|")
}

func TestFaults(t *testing.T) {
	e := start(t, func(o *Options) { o.PublishDelay = 300 * time.Millisecond })
	c := newClient(t, e)
	setupKV(t, c)

	e.InjectTooManyVersions(1)
	r := c.load("d", "kv", map[string]string{"label": "v"}, "1\ta\n")
	if r.Status != "Fail" || !strings.HasPrefix(r.Message, "[E-235]failed to init rowset builder. version count: 2001") {
		t.Fatalf("too many versions: %+v", r)
	}
	if st := c.loadState("d", "v"); st != "UNKNOWN" {
		t.Fatalf("state %s", st)
	}

	e.InjectPublishTimeout(1)
	r = c.load("d", "kv", map[string]string{"label": "pt"}, "1\ta\n")
	if r.Status != "Publish Timeout" || r.Message != "transaction commit successfully, BUT data will be visible later" {
		t.Fatalf("publish timeout: %+v", r)
	}
	if st := c.loadState("d", "pt"); st != "COMMITTED" {
		t.Fatalf("state %s", st)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.loadState("d", "pt") != "VISIBLE" {
		if time.Now().After(deadline) {
			t.Fatal("never visible")
		}
		time.Sleep(50 * time.Millisecond)
	}
	expectRows(t, c.rows("d", "SELECT * FROM kv"), "1|a")

	e.InjectDropConnection(1)
	req, _ := http.NewRequest("PUT", "http://"+e.BEAddr()+"/api/d/kv/_stream_load", bytes.NewReader(bytes.Repeat([]byte("2\tb\n"), 10000)))
	req.SetBasicAuth("root", "")
	req.Header.Set("label", "dropped")
	if resp, err := httpc.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("dropped connection answered %d", resp.StatusCode)
	}
	c.mustLoad("d", "kv", map[string]string{"label": "dropped"}, "2\tb\n") // the label stayed free

	if err := e.RestartFE(300 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(e.FEURL() + "/api/health"); err == nil {
		t.Fatal("FE answered while down")
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		req, _ := http.NewRequest("GET", e.FEURL()+"/api/health", nil)
		req.SetBasicAuth("root", "")
		resp, err := httpc.Do(req)
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("FE never came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	expectRows(t, c.rows("d", "SELECT * FROM kv ORDER BY k"), "1|a\n2|b")
	if s := e.Stats(); s.Commits != 2 || s.Loads < 3 {
		t.Fatalf("stats %+v", s)
	}
}
