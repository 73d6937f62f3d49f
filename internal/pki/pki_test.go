package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const day = 24 * time.Hour

func newCA(t *testing.T) *CA {
	t.Helper()
	ca, err := NewCA("test CA", 365*day)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// nodeConfig issues node id's certificate, writes it with the CA into a
// temporary directory and loads it as a node would.
func nodeConfig(t *testing.T, ca *CA, id string, hosts ...string) *Config {
	t.Helper()
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "localhost"}
	}
	certPEM, keyPEM, err := ca.IssueNode(id, hosts, 30*day)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ca.WriteFiles(dir, false); err != nil {
		t.Fatal(err)
	}
	if err := WriteNodeFiles(dir, id, certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := NodeFiles(dir, id)
	cfg, err := Load(filepath.Join(dir, CAFile), certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ID != id {
		t.Fatalf("Load: id %q, want %q", cfg.ID, id)
	}
	return cfg
}

type side struct {
	state tls.ConnectionState
	err   error
}

// handshake connects a client to a server over a real 127.0.0.1 TCP
// connection. The server writes a byte once its handshake is done and the
// client reads it: in TLS 1.3 the client's Handshake returns before the
// server has judged the client's certificate, so a refusal shows up on the
// client's first read.
func handshake(t *testing.T, server, client *tls.Config) (srv, cli side) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan side, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- side{err: err}
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(conn, server)
		if err := tc.Handshake(); err != nil {
			done <- side{err: err}
			return
		}
		_, err = tc.Write([]byte("k"))
		done <- side{state: tc.ConnectionState(), err: err}
	}()
	conn, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
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
	cli = side{state: tc.ConnectionState(), err: err}
	conn.Close()
	return <-done, cli
}

// clientOnly is a dialing tls.Config with an arbitrary certificate (or
// none) that trusts ca's servers.
func clientOnly(t *testing.T, ca *CA, certPEM, keyPEM []byte) *tls.Config {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
	if certPEM != nil {
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg
}

func TestNodeToNodeHandshake(t *testing.T) {
	ca := newCA(t)
	n1, n2 := nodeConfig(t, ca, "n1"), nodeConfig(t, ca, "n2")
	for _, serverName := range []string{"127.0.0.1", "localhost"} {
		srv, cli := handshake(t, n1.ServerTLS(), n2.ClientTLS(serverName))
		if srv.err != nil || cli.err != nil {
			t.Fatalf("%s: server %v, client %v", serverName, srv.err, cli.err)
		}
		if id, ok := n1.PeerNodeID(&srv.state); !ok || id != "n2" {
			t.Errorf("%s: server sees peer %q %v, want n2", serverName, id, ok)
		}
		if id, ok := n2.PeerNodeID(&cli.state); !ok || id != "n1" {
			t.Errorf("%s: client sees peer %q %v, want n1", serverName, id, ok)
		}
		if srv.state.Version != tls.VersionTLS13 {
			t.Errorf("%s: TLS version %x, want 1.3", serverName, srv.state.Version)
		}
	}
	// The HTTP API listener: a node dialing it is known as that node.
	srv, cli := handshake(t, n1.OptionalClientTLS(), n2.ClientTLS("127.0.0.1"))
	if srv.err != nil || cli.err != nil {
		t.Fatalf("optional: server %v, client %v", srv.err, cli.err)
	}
	if id, ok := n1.PeerNodeID(&srv.state); !ok || id != "n2" {
		t.Errorf("optional: server sees peer %q %v, want n2", id, ok)
	}
}

func TestNonNodeClientRefused(t *testing.T) {
	ca := newCA(t)
	n1 := nodeConfig(t, ca, "n1")
	certPEM, keyPEM, err := ca.IssueClient("alice", 30*day)
	if err != nil {
		t.Fatal(err)
	}
	// Signed by the cluster CA, but not a node: no Raft, no NATS routes.
	srv, cli := handshake(t, n1.ServerTLS(), clientOnly(t, ca, certPEM, keyPEM))
	if srv.err == nil || !strings.Contains(srv.err.Error(), "not a Sluice node certificate") {
		t.Errorf("ServerTLS with a client certificate: server error %v", srv.err)
	}
	if cli.err == nil {
		t.Error("ServerTLS with a client certificate: the client connected")
	}
	// No certificate at all: refused too.
	srv, cli = handshake(t, n1.ServerTLS(), clientOnly(t, ca, nil, nil))
	if srv.err == nil || cli.err == nil {
		t.Errorf("ServerTLS without a certificate: server %v, client %v", srv.err, cli.err)
	}

	// The API port lets both in, as nobody in particular.
	for name, cfg := range map[string]*tls.Config{"client cert": clientOnly(t, ca, certPEM, keyPEM), "no cert": clientOnly(t, ca, nil, nil)} {
		srv, cli = handshake(t, n1.OptionalClientTLS(), cfg)
		if srv.err != nil || cli.err != nil {
			t.Fatalf("OptionalClientTLS, %s: server %v, client %v", name, srv.err, cli.err)
		}
		if id, ok := n1.PeerNodeID(&srv.state); ok {
			t.Errorf("OptionalClientTLS, %s: peer node id %q", name, id)
		}
	}
	if id, ok := n1.PeerNodeID(nil); ok {
		t.Errorf("PeerNodeID(nil) = %q", id)
	}
}

func TestOtherCARefused(t *testing.T) {
	ca, other := newCA(t), newCA(t)
	n1 := nodeConfig(t, ca, "n1")
	stranger := nodeConfig(t, other, "n2") // a node certificate, of another cluster

	// The stranger dials us, trusting our CA for the server side.
	dial := stranger.ClientTLS("127.0.0.1")
	dial.RootCAs = n1.CAs
	for name, server := range map[string]*tls.Config{"ServerTLS": n1.ServerTLS(), "OptionalClientTLS": n1.OptionalClientTLS()} {
		srv, cli := handshake(t, server, dial)
		var unknown x509.UnknownAuthorityError
		if !errors.As(srv.err, &unknown) || cli.err == nil {
			t.Errorf("%s, client of another CA: server %v, client %v", name, srv.err, cli.err)
		}
	}
	// We dial the stranger.
	srv, cli := handshake(t, stranger.ServerTLS(), n1.ClientTLS("127.0.0.1"))
	var unknown x509.UnknownAuthorityError
	if !errors.As(cli.err, &unknown) || srv.err == nil {
		t.Errorf("server of another CA: server %v, client %v", srv.err, cli.err)
	}
}

func TestHostnameMismatch(t *testing.T) {
	ca := newCA(t)
	n1, n2 := nodeConfig(t, ca, "n1", "127.0.0.1", "n1.example.com"), nodeConfig(t, ca, "n2")
	for _, name := range []string{"n2.example.com", "10.0.0.1"} {
		srv, cli := handshake(t, n1.ServerTLS(), n2.ClientTLS(name))
		var hostErr x509.HostnameError
		if !errors.As(cli.err, &hostErr) || srv.err == nil {
			t.Errorf("dialing n1 as %s: server %v, client %v", name, srv.err, cli.err)
		}
	}
	if srv, cli := handshake(t, n1.ServerTLS(), n2.ClientTLS("n1.example.com")); srv.err != nil || cli.err != nil {
		t.Errorf("dialing n1 as n1.example.com: server %v, client %v", srv.err, cli.err)
	}
}

func TestClientTLSRefusesNonNodeServer(t *testing.T) {
	ca := newCA(t)
	n1 := nodeConfig(t, ca, "n1")
	// A server certificate from the cluster CA that is not a node's.
	certPEM, keyPEM, err := ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "web", Organization: []string{"sluice-web"}},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}, day)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv, cli := handshake(t, &tls.Config{Certificates: []tls.Certificate{pair}}, n1.ClientTLS("127.0.0.1"))
	if cli.err == nil || !strings.Contains(cli.err.Error(), "server's certificate") || !strings.Contains(cli.err.Error(), "not a Sluice node certificate") {
		t.Errorf("client error %v", cli.err)
	}
	if srv.err == nil {
		t.Error("the server completed the handshake")
	}
}

// signed makes a certificate from tmpl with the CA as is (no defaults),
// for the cases IssueNode refuses to make.
func signed(t *testing.T, ca *CA, tmpl *x509.Certificate) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.SerialNumber, err = newSerial(); err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pemBlock("CERTIFICATE", der), pemBlock("PRIVATE KEY", keyDER)
}

func TestLoadErrors(t *testing.T) {
	ca, other := newCA(t), newCA(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile := write("ca.pem", ca.CertPEM())
	n1Cert, n1Key, err := ca.IssueNode("n1", []string{"127.0.0.1"}, day)
	if err != nil {
		t.Fatal(err)
	}
	_, n2Key, err := ca.IssueNode("n2", []string{"127.0.0.1"}, day)
	if err != nil {
		t.Fatal(err)
	}
	clientCert, clientKey, err := ca.IssueClient("alice", day)
	if err != nil {
		t.Fatal(err)
	}
	otherCert, otherKey, err := other.IssueNode("n1", []string{"127.0.0.1"}, day)
	if err != nil {
		t.Fatal(err)
	}
	node := func(id string) pkix.Name { return pkix.Name{CommonName: id, Organization: []string{NodeOrganization}} }
	expiredCert, expiredKey := signed(t, ca, &x509.Certificate{
		Subject: node("n1"), NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	})
	serverOnlyCert, serverOnlyKey := signed(t, ca, &x509.Certificate{
		Subject: node("n1"), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	wrongURICert, wrongURIKey := signed(t, ca, &x509.Certificate{
		Subject: node("n1"), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{NodeURI("n2")},
	})

	cases := []struct {
		name, ca, cert, key string
		want                []string
	}{
		{"wrong key", caFile, write("n1.pem", n1Cert), write("n2-key.pem", n2Key),
			[]string{"n2-key.pem is not the private key of the certificate", "n1.pem", "sluice cert node"}},
		{"not a node cert", caFile, write("alice.pem", clientCert), write("alice-key.pem", clientKey),
			[]string{"alice.pem is not a Sluice node certificate", "O=sluice-client", "sluice cert node --id"}},
		{"other CA", caFile, write("other.pem", otherCert), write("other-key.pem", otherKey),
			[]string{"other.pem (node n1", "is not signed by the CA in " + caFile, "sluice cert node --dir"}},
		{"expired", caFile, write("expired.pem", expiredCert), write("expired-key.pem", expiredKey),
			[]string{"expired.pem (node n1) expired on", "sluice cert node --id n1"}},
		{"server auth only", caFile, write("serveronly.pem", serverOnlyCert), write("serveronly-key.pem", serverOnlyKey),
			[]string{"serveronly.pem (node n1) is not valid for clientAuth"}},
		{"URI SAN of another node", caFile, write("wronguri.pem", wrongURICert), write("wronguri-key.pem", wrongURIKey),
			[]string{"wronguri.pem is not a Sluice node certificate"}},
		{"node cert as CA", write("n1-as-ca.pem", n1Cert), filepath.Join(dir, "n1.pem"), write("n1-key.pem", n1Key),
			[]string{"n1-as-ca.pem", "is not a CA certificate"}},
		{"key as cert", caFile, filepath.Join(dir, "n1-key.pem"), filepath.Join(dir, "n1-key.pem"),
			[]string{"n1-key.pem: no PEM certificate"}},
		{"cert as key", caFile, filepath.Join(dir, "n1.pem"), filepath.Join(dir, "n1.pem"),
			[]string{"n1.pem: no PEM private key"}},
		{"missing file", caFile, filepath.Join(dir, "n9.pem"), filepath.Join(dir, "n9-key.pem"),
			[]string{"n9.pem", "no such file"}},
	}
	for _, c := range cases {
		_, err := Load(c.ca, c.cert, c.key)
		if err == nil {
			t.Errorf("%s: Load succeeded", c.name)
			continue
		}
		t.Logf("%s: %v", c.name, err)
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", c.name, err, w)
			}
		}
	}
	if cfg, err := Load(caFile, filepath.Join(dir, "n1.pem"), filepath.Join(dir, "n1-key.pem")); err != nil || cfg.ID != "n1" {
		t.Errorf("the good pair: %v", err)
	}
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestFilesAndModes(t *testing.T) {
	ca := newCA(t)
	dir := filepath.Join(t.TempDir(), "cluster", "ca")
	if err := ca.WriteFiles(dir, false); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, CAFile): 0o644, filepath.Join(dir, CAKeyFile): 0o600} {
		if got := mode(t, path); got != want {
			t.Errorf("%s: mode %v, want %v", path, got, want)
		}
	}
	err := ca.WriteFiles(dir, false)
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second WriteFiles: %v", err)
	}
	loaded, err := LoadCA(dir)
	if err != nil || !loaded.Cert.Equal(ca.Cert) {
		t.Fatalf("LoadCA: %v", err)
	}
	ca2 := newCA(t)
	if err := ca2.WriteFiles(dir, true); err != nil {
		t.Fatalf("WriteFiles with force: %v", err)
	}
	if loaded, err = LoadCA(dir); err != nil || !loaded.Cert.Equal(ca2.Cert) {
		t.Fatalf("LoadCA after force: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("temporary files left: %v", entries)
	}

	certPEM, keyPEM, err := ca2.IssueNode("n1", []string{"127.0.0.1"}, day)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "n1")
	certPath, keyPath := NodeFiles(out, "n1")
	// An existing, too open key file is replaced with the right mode.
	if err := os.MkdirAll(out, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteNodeFiles(out, "n1", certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	if filepath.Base(certPath) != "n1.pem" || filepath.Base(keyPath) != "n1-key.pem" {
		t.Errorf("node files %s %s", certPath, keyPath)
	}
	if got := mode(t, certPath); got != 0o644 {
		t.Errorf("%s: mode %v", certPath, got)
	}
	if got := mode(t, keyPath); got != 0o600 {
		t.Errorf("%s: mode %v", keyPath, got)
	}
	if err := WriteNodeFiles(out, "../n1", certPEM, keyPEM); err == nil {
		t.Error("WriteNodeFiles took the id ../n1")
	}

	if _, err := LoadCA(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no CA in") || !strings.Contains(err.Error(), "sluice cert ca") {
		t.Errorf("LoadCA of an empty dir: %v", err)
	}
	if err := os.Remove(filepath.Join(dir, CAKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(dir); err == nil || !strings.Contains(err.Error(), "not the CA's private key") {
		t.Errorf("LoadCA without the key: %v", err)
	}
}

func TestCertificateContents(t *testing.T) {
	ca := newCA(t)
	if !ca.Cert.IsCA || ca.Cert.MaxPathLen != 0 || !ca.Cert.MaxPathLenZero || ca.Cert.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("CA: IsCA %v MaxPathLen %d/%v KeyUsage %v", ca.Cert.IsCA, ca.Cert.MaxPathLen, ca.Cert.MaxPathLenZero, ca.Cert.KeyUsage)
	}
	if _, ok := ca.Cert.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("CA key %T", ca.Cert.PublicKey)
	}
	certPEM, _, err := ca.IssueNode("n1", []string{"10.0.0.5", "N1.example.com", " ::1 ", "10.0.0.5", "[fe80::1]"}, day)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := parseCerts(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	c := certs[0]
	var ips []string
	for _, ip := range c.IPAddresses {
		ips = append(ips, ip.String())
	}
	if strings.Join(ips, ",") != "10.0.0.5,::1,fe80::1" || strings.Join(c.DNSNames, ",") != "n1.example.com" {
		t.Errorf("SANs: IPs %v DNS %v", ips, c.DNSNames)
	}
	if len(c.URIs) != 1 || c.URIs[0].String() != "sluice://node/n1" {
		t.Errorf("URIs %v", c.URIs)
	}
	if c.Subject.CommonName != "n1" || !slices.Equal(c.Subject.Organization, []string{NodeOrganization}) {
		t.Errorf("subject %v", c.Subject)
	}
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) || c.KeyUsage != x509.KeyUsageDigitalSignature || c.IsCA {
		t.Errorf("usage: ext %v key %v IsCA %v", c.ExtKeyUsage, c.KeyUsage, c.IsCA)
	}
	if id, ok := NodeID(c); !ok || id != "n1" {
		t.Errorf("NodeID %q %v", id, ok)
	}

	for _, bad := range []struct {
		id    string
		hosts []string
		want  string
	}{
		{"", []string{"127.0.0.1"}, "node id is empty"},
		{"n 1", []string{"127.0.0.1"}, "use only letters"},
		{"n1/x", []string{"127.0.0.1"}, "use only letters"},
		{strings.Repeat("n", 64), []string{"127.0.0.1"}, "at most 63"},
		{"n1", nil, "no hosts"},
		{"n1", []string{""}, "empty host"},
		{"n1", []string{"10.0.0.5:7431"}, "without a port"},
		{"n1", []string{"*.example.com"}, "wildcards are not supported"},
		{"n1", []string{"n1..example.com"}, "neither an IP address nor a DNS name"},
		{"n1", []string{"http://n1"}, "neither an IP address nor a DNS name"},
	} {
		if _, _, err := ca.IssueNode(bad.id, bad.hosts, day); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("IssueNode(%q, %q): %v, want %q", bad.id, bad.hosts, err, bad.want)
		}
	}
	if _, _, err := ca.IssueNode("n1", []string{"127.0.0.1"}, 400*day); err == nil || !strings.Contains(err.Error(), "expires on") {
		t.Errorf("a certificate outliving the CA: %v", err)
	}
}

func TestNodeID(t *testing.T) {
	mk := func(org []string, cn string, uris ...string) *x509.Certificate {
		c := &x509.Certificate{Subject: pkix.Name{CommonName: cn, Organization: org}}
		for _, u := range uris {
			parsed, err := url.Parse(u)
			if err != nil {
				t.Fatal(err)
			}
			c.URIs = append(c.URIs, parsed)
		}
		return c
	}
	for _, c := range []struct {
		cert *x509.Certificate
		id   string
		ok   bool
	}{
		{mk([]string{NodeOrganization}, "n1", "sluice://node/n1"), "n1", true},
		{mk([]string{"acme", NodeOrganization}, "n1"), "n1", true}, // openssl recipes without the URI SAN
		{mk([]string{NodeOrganization}, "n1", "SLUICE://NODE/n2"), "", false},
		{mk([]string{NodeOrganization}, "n1", "sluice://node/n1", "sluice://node/n2"), "", false},
		{mk([]string{ClientOrganization}, "n1", "sluice://node/n1"), "", false},
		{mk(nil, "n1"), "", false},
		{mk([]string{NodeOrganization}, ""), "", false},
		{mk([]string{NodeOrganization}, "n 1"), "", false},
		{nil, "", false},
	} {
		if id, ok := NodeID(c.cert); id != c.id || ok != c.ok {
			t.Errorf("NodeID(%v) = %q %v, want %q %v", c.cert, id, ok, c.id, c.ok)
		}
	}
}
