package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicedb/sluice/internal/testenv"
)

// writeOne writes one insert through a new sink with spec's security
// settings and reads it back: the whole path (Open, the offsets topic,
// the transactional producer, the data topic, verify's reader) ran
// authenticated.
func writeOne(t *testing.T, k *testenv.Kafka, mod func(*Config)) {
	t.Helper()
	ctx := context.Background()
	s := openSink(t, k, "t.apply.0", func(o *Options) { mod(&o.Config) })
	if _, err := s.Offsets(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, changes(1, insert(pos(10, 0), "1", "one"))); err != nil {
		t.Fatal(err)
	}
	if got := afters(t, k.ReadTopic(t, "cdc")); strings.Join(got, " ") != "c:1:one" {
		t.Fatalf("read back %v", got)
	}
	if got := heldRows(t, s.VerifyReader(), verifyTableA); strings.Join(got, " ") != "1=one" {
		t.Fatalf("verify read back %v", got)
	}
}

// openFails opens a sink with spec's security settings and asks it for
// the task's offsets (the first use of the transactional producer),
// expecting one of them to fail; it returns the error.
func openFails(t *testing.T, k *testenv.Kafka, mod func(*Config)) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := Options{Task: "t", Config: Config{Brokers: k.Brokers, Topic: "cdc"}, Database: "db", TransactionalID: "t.apply.1"}
	mod(&opts.Config)
	s, err := Open(ctx, opts)
	if err != nil {
		return err
	}
	defer s.Close(context.Background())
	_, err = s.Offsets(ctx, "t")
	if err == nil {
		t.Fatal("the sink worked with settings the brokers should refuse")
	}
	return err
}

// Each SASL mechanism Sluice offers authenticates against a broker that
// requires it; a wrong password or none at all is refused.
func TestSinkSASL(t *testing.T) {
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			k := testenv.NewKafkaSASL(t, mech, "sluice", "s3cret")
			writeOne(t, k, func(s *Config) {
				s.SASL = &SASLConfig{Mechanism: mech, User: "sluice", Password: "s3cret"}
			})
			err := openFails(t, k, func(s *Config) {
				s.SASL = &SASLConfig{Mechanism: mech, User: "sluice", Password: "wrong"}
			})
			t.Logf("wrong password: %v", err)
			checkConnectError(t, err, k)
			if !strings.Contains(err.Error(), "check destination.sasl") {
				t.Errorf("a refused login does not point at destination.sasl: %v", err)
			}
			if strings.Contains(err.Error(), "wrong") {
				t.Errorf("the error shows the password: %v", err)
			}
			// Without credentials the broker answers nothing but the
			// handshake: the success above was SASL's doing.
			err = openFails(t, k, func(*Config) {})
			t.Logf("no credentials: %v", err)
			checkConnectError(t, err, k)
		})
	}
}

// checkConnectError checks that a refused connection's error says what
// was being done and where.
func checkConnectError(t *testing.T, err error, k *testenv.Kafka) {
	t.Helper()
	if !strings.Contains(err.Error(), "connect to kafka brokers "+k.Brokers[0]) {
		t.Errorf("error %q does not name the connection to %s", err, k.Brokers[0])
	}
}

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, made for one test.
type testPKI struct {
	caFile                string
	caPool                *x509.CertPool
	server                tls.Certificate
	clientCert, clientKey string // PEM files of the client's certificate and key
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{caFile: filepath.Join(dir, "ca.pem"), caPool: x509.NewCertPool()}
	p.caPool.AddCert(ca)
	writePEM(t, p.caFile, "CERTIFICATE", caDER)

	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) ([]byte, *ecdsa.PrivateKey) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	srvDER, srvKey := issue(2, "kfake", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	p.server = tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
	cliDER, cliKey := issue(3, "sluice", x509.ExtKeyUsageClientAuth, nil)
	p.clientCert, p.clientKey = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	writePEM(t, p.clientCert, "CERTIFICATE", cliDER)
	keyDER, err := x509.MarshalPKCS8PrivateKey(cliKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, p.clientKey, "PRIVATE KEY", keyDER)
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// serverTLS is the brokers' TLS: p's server certificate; with
// clientCerts, clients must show a certificate of p's CA.
func (p *testPKI) serverTLS(clientCerts bool) *tls.Config {
	c := &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
	if clientCerts {
		c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, p.caPool
	}
	return c
}

// readerTLS lets ReadTopic's clients in to a cluster started with
// serverTLS.
func (p *testPKI) readerTLS(t *testing.T, k *testenv.Kafka) {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(p.clientCert, p.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	k.ClientOpts = append(k.ClientOpts, kgo.DialTLSConfig(&tls.Config{RootCAs: p.caPool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
}

// The sink talks TLS to brokers whose certificate a private CA signed,
// given that CA in tls.ca_file; without it, the certificate is refused.
// With client certificates required, cert_file and key_file get it in;
// SASL works over TLS too (SASL_SSL).
func TestSinkTLS(t *testing.T) {
	p := newTestPKI(t)
	t.Run("ca_file", func(t *testing.T) {
		t.Parallel()
		k := testenv.NewKafka(t, kfake.TLS(p.serverTLS(false)))
		p.readerTLS(t, k)
		writeOne(t, k, func(s *Config) { s.TLS = &TLSConfig{CAFile: p.caFile} })
		// The system's roots do not know the test CA.
		err := openFails(t, k, func(s *Config) { s.TLS = &TLSConfig{} })
		t.Logf("no CA: %v", err)
		checkConnectError(t, err, k)
		if !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Errorf("error %q, want a certificate error", err)
		}
		// Plaintext to a TLS listener gets no answer it can read.
		err = openFails(t, k, func(*Config) {})
		t.Logf("no TLS: %v", err)
		checkConnectError(t, err, k)
	})
	t.Run("client_cert", func(t *testing.T) {
		t.Parallel()
		k := testenv.NewKafka(t, kfake.TLS(p.serverTLS(true)))
		p.readerTLS(t, k)
		writeOne(t, k, func(s *Config) {
			s.TLS = &TLSConfig{CAFile: p.caFile, CertFile: p.clientCert, KeyFile: p.clientKey}
		})
		err := openFails(t, k, func(s *Config) { s.TLS = &TLSConfig{CAFile: p.caFile} })
		t.Logf("no client certificate: %v", err)
		checkConnectError(t, err, k)
		if !strings.Contains(err.Error(), "certificate") {
			t.Errorf("error %q, want a certificate error", err)
		}
	})
	t.Run("sasl_ssl", func(t *testing.T) {
		t.Parallel()
		k := testenv.NewKafkaSASL(t, "SCRAM-SHA-512", "sluice", "s3cret", kfake.TLS(p.serverTLS(false)))
		p.readerTLS(t, k)
		writeOne(t, k, func(s *Config) {
			s.TLS = &TLSConfig{CAFile: p.caFile}
			s.SASL = &SASLConfig{Mechanism: "SCRAM-SHA-512", User: "sluice", Password: "s3cret"}
		})
	})
}
