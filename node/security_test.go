package node_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/pki"
	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// secPassword is a password with every character that has broken DSN
// redaction somewhere: '@', '/', ':', '?', a quote, '%', non-ASCII.
const secPassword = "S3cr3t@p/ss:w?rd'ü%x"

// webhookSecret rides in an alert webhook's query string.
const webhookSecret = "whk-tok3n-9f8e7d"

// The attacks of the security issue, each against a real `sluice up`
// process with a live task: every one fails for the attacker, the node
// stays up (same PID), and the task and the source are as they were.
func TestSecurityAttacksOnNode(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the API's 30 s read timeout")
	}
	p := newPair(t)
	ctx := context.Background()
	for _, pg := range []*testenv.Postgres{p.src, p.dst} {
		if err := pg.Exec(ctx, testenv.DefaultDB, fmt.Sprintf(`CREATE ROLE secuser LOGIN SUPERUSER PASSWORD '%s' IN ROLE %s`,
			strings.ReplaceAll(secPassword, "'", "''"), testenv.PasswordRole)); err != nil {
			t.Fatal(err)
		}
	}
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, src, `CREATE TABLE t (id int PRIMARY KEY, note text);
		INSERT INTO t SELECT g, CASE WHEN g % 10 = 0 THEN ';' ELSE 'n' || g END FROM generate_series(1, 500) g`)

	// The source's password inline (it is sealed before Raft), the
	// destination's by reference to a file on the node.
	pwFile := filepath.Join(t.TempDir(), "dst.password")
	if err := os.WriteFile(pwFile, []byte(secPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srcDSN := p.src.UserDSN("secuser", url.UserPassword("secuser", secPassword).String()[len("secuser:"):], testenv.DefaultDB)
	dstDSN := fmt.Sprintf("host=127.0.0.1 port=%d dbname=postgres user=secuser sslmode=disable", p.dst.Port)
	hook := newRecordingServer(t)
	spec := fmt.Sprintf(`name: sec
source: { dsn: %q }
destination: { type: postgres, dsn: %q, password_file: %q }
objects:
  - schema: public
    tables: [t]
    filter: { t: "id <> 7 AND 'a;b' <> ''" }
alerts: { webhook: %q }
`, srcDSN, dstDSN, pwFile, hook+"/hook?token="+webhookSecret)

	natsPort, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	proc := sluicetest.StartProcessEnv(t, dataDir, []string{"SLUICE_SEC_PW=" + secPassword}, "--broker-listen", fmt.Sprintf("127.0.0.1:%d", natsPort))
	pid := proc.PID()
	c := proc.Client()
	if rep, err := c.Precheck(ctx, []byte(spec)); err != nil || !rep.Passed {
		t.Fatalf("precheck: %v %+v", err, rep)
	}
	// A password by ${env:...} reference, read by the node that connects.
	byEnv := strings.Replace(spec, srcDSN, p.src.UserDSN("secuser", "${env:SLUICE_SEC_PW}", testenv.DefaultDB), 1)
	if rep, err := c.Precheck(ctx, []byte(byEnv)); err != nil || !rep.Passed {
		t.Fatalf("precheck with ${env:...}: %v %+v", err, rep)
	}
	wrong := strings.Replace(spec, srcDSN, p.src.UserDSN("secuser", "${env:SLUICE_NO_SUCH_VAR}", testenv.DefaultDB), 1)
	if rep, err := c.Precheck(ctx, []byte(wrong)); err != nil || rep.Passed || !strings.Contains(fmt.Sprint(rep.Checks), "SLUICE_NO_SUCH_VAR") {
		t.Fatalf("precheck with an unset variable: %v %+v", err, rep)
	}
	createTask(t, c, []byte(spec))
	waitPhase(t, c, "sec", proto.PhaseIncremental, 2*time.Minute)
	testenv.MustExec(t, src, `INSERT INTO t VALUES (1001, 'after'), (1002, ';'); UPDATE t SET note = 'u' WHERE id = 3`)
	waitSame(t, p, "(SELECT * FROM public.t WHERE id <> 7)", "public.t", time.Minute)
	before, err := c.GetTask(ctx, "sec")
	if err != nil {
		t.Fatal(err)
	}

	// A client that trickles its body is cut off (ReadTimeout 30 s);
	// the other attacks run meanwhile.
	slow := make(chan time.Duration, 1)
	go func() { slow <- trickleBody(t, proc.URL, proc.Token) }()

	// 1. No token, a forged one, a read token writing: refused.
	read, err := c.CreateToken(ctx, coordinator.ScopeRead, "viewer")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/api/v1/tasks", "", 401},
		{"GET", "/api/v1/tasks/sec", "sluice_0123456789ab_forged", 401},
		{"GET", "/metrics", "", 401},
		{"DELETE", "/api/v1/tasks/sec", "", 401},
		{"DELETE", "/api/v1/tasks/sec", read.Token, 403},
		{"POST", "/api/v1/tokens", read.Token, 403},
		{"GET", "/metrics", read.Token, 200},
		{"GET", "/healthz", "", 200},
		{"GET", "/readyz", "", 200}, // no token, like /healthz; it tells no secret
	} {
		code, body := httpCall(t, nil, r.method, proc.URL+r.path, r.token, nil)
		if code != r.want {
			t.Errorf("%s %s (token %q): %d %s, want %d", r.method, r.path, r.token, code, body, r.want)
		}
	}

	// 2. Forged Raft commands on the internal endpoint, with and without
	// the admin token: a ChangeTables whose filter breaks out into SQL,
	// and a RemoveTask.
	pwned := "true); CREATE TABLE public.pwned_raw(x int); --"
	forged := []coordinator.Command{
		coordinator.ChangeTables{Name: "sec", Objects: coordinator.ObjectRecords([]proto.ObjectSpec{{Schema: "public", Tables: []string{"t"}, Filter: map[string]string{"t": pwned}}})},
		coordinator.RemoveTask{Name: "sec"},
	}
	for _, cmd := range forged {
		entry, err := coordinator.Encode(cmd)
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"/internal/v1/apply", "/api/v1/cluster/apply"} {
			for _, tok := range []string{"", proc.Token} {
				code, body := httpCall(t, nil, "POST", proc.URL+path, tok, entry)
				if code < 400 || code == 500 {
					t.Errorf("forged %T at %s (token %v): %d %s", cmd, path, tok != "", code, body)
				}
			}
		}
	}
	// The same filter through the public API, as an admin: refused.
	code, body := httpCall(t, nil, "PUT", proc.URL+"/api/v1/tasks/sec", proc.Token, []byte(strings.Replace(spec, `"id <> 7 AND 'a;b' <> ''"`, fmt.Sprintf("%q", pwned), 1)))
	if code != http.StatusBadRequest || !strings.Contains(body, "one SQL condition") {
		t.Errorf("update with a breaking filter: %d %s", code, body)
	}

	// 3. An anonymous NATS client: refused by the broker.
	if line := natsConnect(t, fmt.Sprintf("127.0.0.1:%d", natsPort), nil, "{}"); !strings.Contains(line, "Authorization Violation") {
		t.Errorf("anonymous CONNECT answered %q", line)
	}
	if line := natsConnect(t, fmt.Sprintf("127.0.0.1:%d", natsPort), nil, `{"user":"sluice","pass":"guess"}`); !strings.Contains(line, "Authorization Violation") {
		t.Errorf("a wrong password answered %q", line)
	}
	// With the node's credentials (the data directory's, 0600) it works.
	var creds struct{ User, Password string }
	credsFile := filepath.Join(dataDir, "nats-credentials.json")
	b, err := os.ReadFile(credsFile)
	if err != nil || json.Unmarshal(b, &creds) != nil || creds.Password == "" {
		t.Fatalf("broker credentials: %v %s", err, b)
	}
	nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", natsPort), nats.UserInfo(creds.User, creds.Password))
	if err != nil {
		t.Fatalf("connect with the node's credentials: %v", err)
	}
	nc.Close()

	if d := <-slow; d > 40*time.Second {
		t.Errorf("a trickled body held its connection %v", d)
	}

	// Nothing the attacker sent took effect, and the node is the same.
	if proc.PID() != pid || !proc.Alive() {
		t.Fatal("the node did not stay up")
	}
	after, err := c.GetTask(ctx, "sec")
	if err != nil {
		t.Fatal(err)
	}
	if !equalJSON(before.Spec, after.Spec) {
		t.Errorf("the task's spec changed:\n%+v\n%+v", before.Spec, after.Spec)
	}
	var pwnedExists bool
	if err := src.QueryRow(ctx, `SELECT to_regclass('public.pwned_raw') IS NOT NULL`).Scan(&pwnedExists); err != nil || pwnedExists {
		t.Errorf("the source has public.pwned_raw (%v)", err)
	}
	testenv.MustExec(t, src, `INSERT INTO t VALUES (1003, 'still syncing')`)
	waitSame(t, p, "(SELECT * FROM public.t WHERE id <> 7)", "public.t", time.Minute)

	// 4. What users see: no password, no webhook token.
	st, err := c.GetTask(ctx, "sec")
	if err != nil {
		t.Fatal(err)
	}
	shown, _ := json.Marshal(st)
	if strings.Contains(string(shown), "S3cr3t") || strings.Contains(string(shown), webhookSecret) || !strings.Contains(string(shown), "token=xxxxx") {
		t.Errorf("task get shows a secret: %s", shown)
	}
	// What is not secret stays readable: the user and host of the DSN.
	if !strings.Contains(st.Spec.Source.DSN, "secuser:xxxxx@127.0.0.1:") || !strings.Contains(st.Spec.Destination.String(), "host=127.0.0.1") {
		t.Errorf("task get hides more than the secrets: %q, %q", st.Spec.Source.DSN, st.Spec.Destination.String())
	}
	// The CLI on this machine needs no token: sluice up wrote the client
	// config (0600), and the admin token file is 0600 too.
	out, err := runCLIBinary(t, proc.ConfigHome, "task", "list", "--server", proc.URL)
	if err != nil || !strings.Contains(out, "sec") {
		t.Errorf("sluice task list with the client config: %v\n%s", err, out)
	}
	for _, f := range []string{filepath.Join(proc.ConfigHome, "sluice", "config.yaml"), filepath.Join(dataDir, "admin.token"), credsFile} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", f, fi, err)
		}
	}

	// A key rotation seals every secret again; after a pause and a resume
	// the units connect with the secrets the new key sealed.
	if out, err := runCLIBinary(t, proc.ConfigHome, "key", "rotate", "--server", proc.URL); err != nil || !strings.Contains(out, "sealed again: sec") {
		t.Fatalf("sluice key rotate: %v\n%s", err, out)
	}
	if _, err := c.PauseTask(ctx, "sec"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ResumeTask(ctx, "sec"); err != nil {
		t.Fatal(err)
	}
	testenv.MustExec(t, src, `INSERT INTO t VALUES (1004, 'after the rotation')`)
	waitSame(t, p, "(SELECT * FROM public.t WHERE id <> 7)", "public.t", time.Minute)

	// 5. The password and the webhook token are nowhere at rest or in
	// the log: Raft's log, JetStream's files, the data directory, the log.
	proc.Terminate(t)
	secrets := []string{secPassword, url.QueryEscape(secPassword), url.PathEscape(secPassword), url.UserPassword("u", secPassword).String()[2:], webhookSecret}
	if err := filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds the secret %q", path, s)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	log := proc.Log()
	for _, s := range secrets {
		if strings.Contains(log, s) {
			t.Errorf("the log holds the secret %q", s)
		}
	}
}

// Protected mode: without TLS a node listens on loopback only, and a
// cluster without certificates is refused, saying what is missing.
func TestSecurityProtectedMode(t *testing.T) {
	bin := sluicetest.SluiceBinary(t)
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"up", "--data-dir", filepath.Join(dir, "a"), "--listen", "0.0.0.0:0", "--client-config", "none"}, "protected mode"},
		{[]string{"up", "--data-dir", filepath.Join(dir, "b"), "--listen", "127.0.0.1:0", "--broker-listen", "10.1.2.3:4222", "--client-config", "none"}, "nats"},
	} {
		out, err := exec.Command(bin, c.args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) || !strings.Contains(string(out), "tls") {
			t.Errorf("sluice %s: %v\n%s", strings.Join(c.args, " "), err, out)
		}
	}
	cfg := filepath.Join(dir, "n1.yaml")
	if err := os.WriteFile(cfg, []byte(`id: n1
data_dir: `+filepath.Join(dir, "n1")+`
api: 127.0.0.1:17421
raft: 127.0.0.1:17431
nats: 127.0.0.1:14221
nats_cluster: 127.0.0.1:16221
peers:
  - { id: n2, raft: 127.0.0.1:17432, nats_cluster: 127.0.0.1:16222, api: 127.0.0.1:17422 }
`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "node", "--config", cfg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "set tls: {ca, cert, key}") {
		t.Errorf("a cluster node without tls: %v\n%s", err, out)
	}
}

// The node-to-node surfaces of a TLS cluster: the internal API answers
// only node certificates (not a token, not a client certificate of the
// same CA, not another CA's), Raft and NATS routes take only nodes, and
// the NATS client port wants credentials. Every node stays up.
func TestSecurityClusterEndpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := testenv.StartCluster(t, testenv.ClusterOptions{Binary: sluicetest.SluiceBinary(t), FailoverTimeout: "3s"})
	leader := c.WaitLeader(t)
	pids := make([]int, c.N())
	for i := range pids {
		pids[i] = c.PID(i)
	}
	entry, err := coordinator.Encode(coordinator.RemoveTask{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c.CA().Cert)
	certPEM, keyPEM, err := c.CA().IssueClient("mallory", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sameCA, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA("another", time.Hour*48)
	if err != nil {
		t.Fatal(err)
	}
	oc, ok, err := other.IssueNode("n1", []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := tls.X509KeyPair(oc, ok)
	if err != nil {
		t.Fatal(err)
	}
	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				if len(certs) == 0 {
					return &tls.Certificate{}, nil
				}
				return &certs[0], nil
			}}}}
	}
	apiURL := c.URL(leader)
	for name, hc := range map[string]*http.Client{"no certificate": client(), "a client certificate of the CA": client(sameCA)} {
		for _, tok := range []string{"", c.Token()} {
			code, body := httpCall(t, hc, "POST", apiURL+"/internal/v1/apply", tok, entry)
			if code != http.StatusForbidden {
				t.Errorf("internal apply with %s (token %v): %d %s", name, tok != "", code, body)
			}
		}
		if code, _ := httpCall(t, hc, "GET", apiURL+"/internal/v1/keyring", c.Token(), nil); code != http.StatusForbidden {
			t.Errorf("keyring with %s: %d", name, code)
		}
	}
	if _, err := client(foreign).Post(apiURL+"/internal/v1/apply", "application/octet-stream", bytes.NewReader(entry)); err == nil {
		t.Error("another CA's certificate was accepted")
	}
	// Plain HTTP on the TLS port gets nothing.
	if resp, err := http.Get(strings.Replace(apiURL, "https://", "http://", 1) + "/api/v1/tasks"); err == nil {
		if resp.StatusCode < 400 {
			t.Errorf("plain http answered %s", resp.Status)
		}
		resp.Body.Close()
	}
	// NATS: a TLS client without credentials or a node certificate.
	natsAddr := strings.TrimPrefix(c.NATSURL(leader), "nats://")
	if line := natsConnect(t, natsAddr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}, "{}"); !strings.Contains(line, "Authorization Violation") {
		t.Errorf("anonymous TLS CONNECT answered %q", line)
	}
	if line := natsConnect(t, natsAddr, nil, "{}"); strings.Contains(line, "+OK") || strings.Contains(line, "PONG") {
		t.Errorf("a plain-text client got in: %q", line)
	}
	for i := range pids {
		if !c.Alive(i) || c.PID(i) != pids[i] {
			t.Fatalf("node %s did not stay up", c.ID(i))
		}
	}

	// A task with an inline password: sealed on the leader (once a
	// majority of the voters hold the key), opened by the nodes that run
	// its units, which fetched the key over mutual TLS.
	p := newPair(t)
	ctx := context.Background()
	for _, pg := range []*testenv.Postgres{p.src, p.dst} {
		if err := pg.Exec(ctx, testenv.DefaultDB, fmt.Sprintf(`CREATE ROLE secuser LOGIN SUPERUSER PASSWORD '%s' IN ROLE %s`,
			strings.ReplaceAll(secPassword, "'", "''"), testenv.PasswordRole)); err != nil {
			t.Fatal(err)
		}
	}
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, src, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 300) g`)
	escaped := url.UserPassword("secuser", secPassword).String()[len("secuser:"):]
	cl := clientOf(c, leader)
	createTask(t, cl, []byte(fmt.Sprintf("name: sealed\nsource: { dsn: %q }\ndestination: { type: postgres, dsn: %q }\nobjects: [{ schema: public }]\n",
		p.src.UserDSN("secuser", escaped, testenv.DefaultDB), p.dst.UserDSN("secuser", escaped, testenv.DefaultDB))))
	waitPhase(t, cl, "sealed", proto.PhaseIncremental, 2*time.Minute)
	testenv.MustExec(t, src, `INSERT INTO t VALUES (1001, 'after'); UPDATE t SET v = 'u' WHERE id < 50`)
	waitSame(t, p, "public.t", "public.t", time.Minute)
	st, err := cl.ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	onFollowers := 0
	for _, n := range st.Nodes {
		if !n.Leader {
			onFollowers += len(n.Units)
		}
	}
	if onFollowers == 0 {
		t.Errorf("no unit of the task runs on a follower: %+v", st.Nodes)
	}
	for i := range c.N() {
		b, err := os.ReadFile(filepath.Join(c.DataDir(i), "secrets.keyring"))
		if err != nil || len(b) == 0 {
			t.Errorf("node %s holds no keyring: %v", c.ID(i), err)
		}
	}
	if err := cl.DeleteTask(ctx, "sealed"); err != nil {
		t.Fatal(err)
	}
}

// httpCall makes a request with an optional bearer token.
func httpCall(t *testing.T, hc *http.Client, method, url, token string, body []byte) (int, string) {
	t.Helper()
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b)
}

// trickleBody sends a request whose body comes one byte every 2.5 s and
// returns how long the server kept the connection.
func trickleBody(t *testing.T, base, token string) time.Duration {
	u, err := url.Parse(base)
	if err != nil {
		t.Error(err)
		return 0
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Error(err)
		return 0
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST /api/v1/precheck HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: 1000\r\n\r\n", u.Host, token)
	for i := 0; i < 40; i++ { // 100 s at most
		if _, err := conn.Write([]byte("x")); err != nil {
			return time.Since(start)
		}
		_ = conn.SetReadDeadline(time.Now().Add(2500 * time.Millisecond))
		var b [1]byte
		if _, err := conn.Read(b[:]); err != nil {
			if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				return time.Since(start) // closed, or answered and closed
			}
		}
	}
	return time.Since(start)
}

// natsConnect reads the server's INFO, sends CONNECT connect and a
// PING, and returns the first line of the answer.
func natsConnect(t *testing.T, addr string, tc *tls.Config, connect string) string {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(raw)
	info, err := r.ReadString('\n')
	if err != nil {
		return "no INFO: " + err.Error()
	}
	var conn net.Conn = raw
	if tc != nil {
		if !strings.Contains(info, `"tls_required":true`) {
			return "no TLS offered: " + info
		}
		tconn := tls.Client(raw, tc)
		if err := tconn.Handshake(); err != nil {
			return "handshake: " + err.Error()
		}
		conn, r = tconn, bufio.NewReader(tconn)
	}
	if _, err := fmt.Fprintf(conn, "CONNECT %s\r\nPING\r\n", connect); err != nil {
		return "write: " + err.Error()
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return "read: " + err.Error()
	}
	return strings.TrimSpace(line)
}

// runCLIBinary runs the sluice CLI with only XDG_CONFIG_HOME set for it
// (no token in its environment or flags).
func runCLIBinary(t *testing.T, configHome string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(sluicetest.SluiceBinary(t), args...)
	cmd.Env = []string{"XDG_CONFIG_HOME=" + configHome, "HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// newRecordingServer is a webhook receiver on loopback that takes and
// drops every request.
func newRecordingServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// sluice up with a certificate serves https (and may then listen beyond
// loopback); the CLI finds the token and the CA in the client config.
func TestSecurityUpWithTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA("up", 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteFiles(dir, false); err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.IssueNode("node1", []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteNodeFiles(dir, "node1", certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	cert, key := pki.NodeFiles(dir, "node1")
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	raft, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	data := filepath.Join(t.TempDir(), "data")
	cmd := exec.Command(sluicetest.SluiceBinary(t), "up", "--data-dir", data, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--raft-listen", fmt.Sprintf("127.0.0.1:%d", raft), "--tls-ca", filepath.Join(dir, pki.CAFile), "--tls-cert", cert, "--tls-key", key)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+home)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	testenv.CheckFor(t, time.Minute, 100*time.Millisecond, func() error {
		if code, body := httpCall(t, hc, "GET", base+"/healthz", "", nil); code != http.StatusOK {
			return fmt.Errorf("healthz: %d %s", code, body)
		}
		return nil
	})
	token := sluicetest.AdminToken(t, data)
	if code, body := httpCall(t, hc, "GET", base+"/api/v1/tasks", token, nil); code != http.StatusOK {
		t.Fatalf("list over https: %d %s", code, body)
	}
	if code, _ := httpCall(t, nil, "GET", strings.Replace(base, "https", "http", 1)+"/api/v1/tasks", token, nil); code == http.StatusOK {
		t.Fatal("plain http answered")
	}
	// The web console is on the same TLS listener, with its headers.
	for _, path := range []string{"/ui/", "/ui/assets/app.js"} {
		resp, err := hc.Get(base + path)
		if err != nil {
			t.Fatalf("console over https: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Frame-Options") != "DENY" || resp.TLS == nil {
			t.Fatalf("GET %s over https: %d, headers %v", path, resp.StatusCode, resp.Header)
		}
	}
	if out, err := runCLIBinary(t, home, "cluster", "status", "--server", base); err != nil || !strings.Contains(out, "leader: node1") {
		t.Fatalf("the CLI over https from the client config: %v\n%s", err, out)
	}
}
