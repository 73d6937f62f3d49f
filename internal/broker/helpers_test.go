package broker

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/internal/pki"
)

// testCA is a certificate authority made for one test (internal/pki's).
type testCA struct {
	ca   *pki.CA
	pool *x509.CertPool
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	ca, err := pki.NewCA(name, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &testCA{ca: ca, pool: pool}
}

// issue makes a leaf certificate valid for 127.0.0.1: a node's (server
// and client) when org is sluice-node, else a client's of that CA.
func (ca *testCA) issue(t *testing.T, org, cn string) tls.Certificate {
	t.Helper()
	var certPEM, keyPEM []byte
	var err error
	if org == pki.NodeOrganization {
		certPEM, keyPEM, err = ca.ca.IssueNode(cn, []string{"127.0.0.1"}, 24*time.Hour)
	} else {
		certPEM, keyPEM, err = ca.ca.IssueClient(cn, 24*time.Hour)
	}
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func (ca *testCA) node(t *testing.T, id string) tls.Certificate {
	return ca.issue(t, "sluice-node", id)
}

// isNode is what the caller's NodeCert / VerifyConnection check: a
// verified certificate of Organization sluice-node.
func isNode(cs *tls.ConnectionState) bool {
	return len(cs.VerifiedChains) > 0 && len(cs.PeerCertificates) > 0 &&
		slices.Contains(cs.PeerCertificates[0].Subject.Organization, "sluice-node") &&
		cs.PeerCertificates[0].Subject.CommonName != ""
}

// clientPortTLS is the client port's config: verify a client certificate
// if one is given.
func clientPortTLS(ca *testCA, cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    ca.pool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
		MinVersion:   tls.VersionTLS12,
	}
}

// routeTLS is the route port's config, both sides: require and verify a
// node certificate.
func routeTLS(ca *testCA, cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      ca.pool,
		ClientCAs:    ca.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if !isNode(&cs) {
				return errNotNode
			}
			return nil
		},
	}
}

type notNodeError struct{}

func (notNodeError) Error() string { return "peer is not a sluice node" }

var errNotNode error = notNodeError{}

func testCreds(t *testing.T) Credentials {
	t.Helper()
	c, err := NewCredentials()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func startBroker(t *testing.T, opts Options) *Broker {
	t.Helper()
	if opts.StoreDir == "" {
		opts.StoreDir = t.TempDir()
	}
	b, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Shutdown)
	return b
}

// hostPort is the host:port of a nats:// or tls:// URL.
func hostPort(t *testing.T, url string) string {
	t.Helper()
	_, hp, ok := strings.Cut(url, "://")
	if !ok {
		t.Fatalf("bad URL %q", url)
	}
	return hp
}

// rawSession speaks the NATS protocol by hand: it reads INFO, upgrades
// to TLS when tlsCfg is set, sends connect (a CONNECT JSON) and PING,
// and returns the first line the server answers, or the read error.
func rawSession(t *testing.T, addr string, tlsCfg *tls.Config, connect string) (string, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	info, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("read INFO: %v", err)
	}
	if !strings.HasPrefix(info, "INFO ") {
		t.Fatalf("first line %q, want INFO", info)
	}
	var c net.Conn = conn
	if tlsCfg != nil {
		tc := tls.Client(conn, tlsCfg)
		if err := tc.Handshake(); err != nil {
			return "", err
		}
		c = tc
	}
	if _, err := c.Write([]byte("CONNECT " + connect + "\r\nPING\r\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}

// waitFor polls cond every 20ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
