package coordinator_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/coordinator/coordtest"
)

// call makes a request with an optional bearer token and returns the
// status and body.
func call(t *testing.T, method, url, token string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAPITokens(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	read := coordtest.Token(t, e.coord, coordinator.ScopeRead)

	// Without a token only /healthz answers; the 401 says how to get one.
	for _, r := range []struct{ method, path string }{
		{"GET", "/api/v1/tasks"}, {"POST", "/api/v1/tasks"}, {"GET", "/api/v1/cluster"}, {"GET", "/api/v1/tokens"},
		{"DELETE", "/api/v1/tasks/x"}, {"POST", "/api/v1/precheck"},
	} {
		code, body := call(t, r.method, e.url+r.path, "", []byte(taskYAML("x")))
		if code != http.StatusUnauthorized || !strings.Contains(body, "Authorization: Bearer") {
			t.Errorf("%s %s without a token: %d %s", r.method, r.path, code, body)
		}
		if code, _ := call(t, r.method, e.url+r.path, "sluice_0123456789ab_forged", nil); code != http.StatusUnauthorized {
			t.Errorf("%s %s with a forged token: %d", r.method, r.path, code)
		}
	}
	if code, _ := call(t, "GET", e.url+"/healthz", "", nil); code == http.StatusUnauthorized { // 503 here: no node registered
		t.Errorf("/healthz: %d", code)
	}
	// A read token reads, and is refused every write (403, naming the scope).
	if code, body := call(t, "GET", e.url+"/api/v1/tasks", read, nil); code != http.StatusOK {
		t.Errorf("list with a read token: %d %s", code, body)
	}
	code, body := call(t, "POST", e.url+"/api/v1/tasks", read, taskYAML("x"))
	if code != http.StatusForbidden || !strings.Contains(body, "needs admin") {
		t.Errorf("create with a read token: %d %s", code, body)
	}
	// A precheck that may change the source (--fix) is a write too.
	code, body = call(t, "POST", e.url+"/api/v1/precheck?fix=true", read, taskYAML("x"))
	if code != http.StatusForbidden || !strings.Contains(body, "needs admin") {
		t.Errorf("precheck --fix with a read token: %d %s", code, body)
	}
	if code, _ := call(t, "GET", e.url+"/api/v1/tokens", read, nil); code != http.StatusForbidden {
		t.Errorf("token list with a read token: %d", code)
	}
	if len(e.backend.Prechecked()) != 0 {
		t.Fatal("a refused request reached the precheck")
	}

	// Internal endpoints answer to node certificates only: a token, even
	// an admin one, does not open them, and no command gets applied.
	before := e.coord.Index()
	for _, path := range []string{"/internal/v1/apply", "/internal/v1/nodes", "/internal/v1/heartbeat", "/api/v1/cluster/apply"} {
		entry, _ := coordinator.Encode(coordinator.RemoveTask{Name: "x"})
		code, body := call(t, "POST", e.url+path, e.token, entry)
		if code != http.StatusForbidden && code != http.StatusNotFound {
			t.Errorf("POST %s with an admin token: %d %s", path, code, body)
		}
	}
	if e.coord.Index() != before {
		t.Fatal("a forged internal request changed the state")
	}

	// Tokens through the client: create, use, list (no secrets), revoke.
	nt, err := e.client.CreateToken(ctx, coordinator.ScopeRead, "dashboard")
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := call(t, "GET", e.url+"/api/v1/tasks", nt.Token, nil); code != http.StatusOK {
		t.Fatalf("new token: %d", code)
	}
	list, err := e.client.ListTokens(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("list: %v %+v", err, list)
	}
	if _, body := call(t, "GET", e.url+"/api/v1/tokens", e.token, nil); strings.Contains(body, nt.Token) || strings.Contains(body, "hash") {
		t.Fatalf("the token list shows secrets: %s", body)
	}
	if err := e.client.RevokeToken(ctx, nt.ID); err != nil {
		t.Fatal(err)
	}
	if code, _ := call(t, "GET", e.url+"/api/v1/tasks", nt.Token, nil); code != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d", code)
	}
	apiError(t, e.client.RevokeToken(ctx, nt.ID), http.StatusNotFound)
	if _, err := e.client.CreateToken(ctx, coordinator.Scope(9), ""); err == nil {
		t.Fatal("a token of scope 9")
	}
}
