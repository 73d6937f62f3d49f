package main

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/internal/pki"
)

func TestCertCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	r := runCLI(t, nil, "", "cert", "ca", "--dir", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "wrote "+filepath.Join(dir, "ca.pem")) ||
		!strings.Contains(r.stdout, "wrote "+filepath.Join(dir, "ca-key.pem")) || !strings.Contains(r.stdout, "sluice cert node --dir "+dir) {
		t.Fatalf("cert ca: %+v", r)
	}
	// A second CA over the first needs --force.
	if r := runCLI(t, nil, "", "cert", "ca", "--dir", dir); r.code != 1 || !strings.Contains(r.stderr, "already holds a CA") || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("cert ca again: %+v", r)
	}

	r = runCLI(t, nil, "", "cert", "node", "--dir", dir, "--id", "n1", "--host", "127.0.0.1,n1.example.com", "--host", "localhost")
	wantBlock := "tls:\n  ca: " + filepath.Join(dir, "ca.pem") + "\n  cert: " + filepath.Join(dir, "n1.pem") + "\n  key: " + filepath.Join(dir, "n1-key.pem") + "\n"
	if r.code != 0 || !strings.Contains(r.stdout, wantBlock) || !strings.Contains(r.stdout, "wrote "+filepath.Join(dir, "n1.pem")) {
		t.Fatalf("cert node n1: %+v\nwant the block:\n%s", r, wantBlock)
	}
	out := filepath.Join(t.TempDir(), "n2-files")
	r = runCLI(t, nil, "", "cert", "node", "--dir", dir, "--id", "n2", "--host", "127.0.0.1", "--out", out, "--days", "30")
	if r.code != 0 || !strings.Contains(r.stdout, "cert: "+filepath.Join(out, "n2.pem")) || !strings.Contains(r.stdout, "ca: "+filepath.Join(dir, "ca.pem")) {
		t.Fatalf("cert node n2 --out: %+v", r)
	}
	if r := runCLI(t, nil, "", "cert", "node", "--dir", dir, "--id", "n2", "--host", "127.0.0.1", "--out", out, "--days", "30"); r.code != 0 || !strings.Contains(r.stdout, "replaced ") {
		t.Fatalf("cert node n2 again: %+v", r)
	}
	for path, want := range map[string]os.FileMode{
		filepath.Join(dir, "ca.pem"): 0o644, filepath.Join(dir, "ca-key.pem"): 0o600,
		filepath.Join(dir, "n1.pem"): 0o644, filepath.Join(dir, "n1-key.pem"): 0o600,
		filepath.Join(out, "n2.pem"): 0o644, filepath.Join(out, "n2-key.pem"): 0o600, out: 0o700,
	} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want mode %v", path, fi.Mode(), err, want)
		}
	}

	n1, err := pki.Load(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "n1.pem"), filepath.Join(dir, "n1-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	n2, err := pki.Load(filepath.Join(dir, "ca.pem"), filepath.Join(out, "n2.pem"), filepath.Join(out, "n2-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(n2.Cert.Leaf.NotAfter); d < 29*day || d > 31*day {
		t.Errorf("n2 valid for %v, want 30 days", d)
	}
	for _, name := range []string{"127.0.0.1", "n1.example.com", "localhost"} {
		srvState, cliState := certHandshake(t, n1.ServerTLS(), n2.ClientTLS(name))
		if id, ok := n1.PeerNodeID(srvState); !ok || id != "n2" {
			t.Errorf("%s: n1 sees %q %v", name, id, ok)
		}
		if id, ok := n2.PeerNodeID(cliState); !ok || id != "n1" {
			t.Errorf("%s: n2 sees %q %v", name, id, ok)
		}
	}
}

// certHandshake runs mutual TLS over 127.0.0.1 and fails the test unless
// both sides succeed (the client reads a byte: in TLS 1.3 that is when a
// refusal of its certificate would show).
func certHandshake(t *testing.T, server, client *tls.Config) (srv, cli *tls.ConnectionState) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		state tls.ConnectionState
		err   error
	}
	done := make(chan res, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- res{err: err}
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(conn, server)
		if err := tc.Handshake(); err != nil {
			done <- res{err: err}
			return
		}
		_, err = tc.Write([]byte("k"))
		done <- res{tc.ConnectionState(), err}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(conn, client)
	err = tc.Handshake()
	if err == nil {
		_, err = io.ReadFull(tc, make([]byte, 1))
	}
	s := <-done
	if s.err != nil || err != nil {
		t.Fatalf("handshake: server %v, client %v", s.err, err)
	}
	cs := tc.ConnectionState()
	return &s.state, &cs
}

func TestCertBadInput(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	if r := runCLI(t, nil, "", "cert", "ca", "--dir", dir); r.code != 0 {
		t.Fatalf("cert ca: %+v", r)
	}
	empty := t.TempDir()
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"ca without --dir", []string{"cert", "ca"}, "--dir is required"},
		{"ca with --days 0", []string{"cert", "ca", "--dir", empty, "--days", "0"}, "--days 0"},
		{"node without --dir", []string{"cert", "node", "--id", "n1", "--host", "127.0.0.1"}, "--dir is required"},
		{"node without --id", []string{"cert", "node", "--dir", dir, "--host", "127.0.0.1"}, "--id is required"},
		{"node without --host", []string{"cert", "node", "--dir", dir, "--id", "n1"}, "--host is required"},
		{"no CA in dir", []string{"cert", "node", "--dir", empty, "--id", "n1", "--host", "127.0.0.1"}, "no CA in " + empty},
		{"bad id", []string{"cert", "node", "--dir", dir, "--id", "n/1", "--host", "127.0.0.1"}, `--id: node id "n/1": use only letters, digits`},
		{"host with port", []string{"cert", "node", "--dir", dir, "--id", "n1", "--host", "127.0.0.1:7431"}, "without a port"},
		{"outliving the CA", []string{"cert", "node", "--dir", dir, "--id", "n1", "--host", "127.0.0.1", "--days", "4000"}, "--days 4000: the CA in " + dir + " expires on"},
		{"stray argument", []string{"cert", "node", "n1"}, "unknown command"},
	} {
		r := runCLI(t, nil, "", c.args...)
		if r.code != 1 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: %+v, want exit 1 and %q", c.name, r, c.want)
		}
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("a failed command left files: %v", entries)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("failed node commands left files in the CA dir: %v", entries)
	}
}
