package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"
)

// Config is a node's TLS material, checked: the cluster CA, the node's
// certificate and key, and the node id its certificate names.
type Config struct {
	// CAs holds the cluster CA: peers' certificates must chain to it.
	CAs *x509.CertPool
	// Cert is the node's certificate chain and key, Leaf set.
	Cert tls.Certificate
	// ID is the node id from the certificate's subject. The caller checks
	// it is the id in the node's configuration.
	ID string
}

// Load reads and checks a node's TLS files: caFile (the cluster's ca.pem;
// several CA certificates may be concatenated while the CA is being
// rotated), certFile (the node's certificate, optionally followed by
// intermediates) and keyFile (its private key). Every problem a node would
// otherwise only meet as a failed handshake with a peer is reported here,
// naming the file and the fix: a key that is not the certificate's, a
// certificate that is not a node certificate, not signed by the CA,
// expired or not yet valid, or not usable for both server and client
// authentication.
func Load(caFile, certFile, keyFile string) (*Config, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("tls ca: %w", err)
	}
	cas, err := parseCerts(caPEM)
	if err != nil {
		return nil, fmt.Errorf("tls ca %s: %w: give the cluster CA's ca.pem (made by `sluice cert ca`)", caFile, err)
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		if !c.IsCA || !c.BasicConstraintsValid {
			return nil, fmt.Errorf("tls ca %s: %q is not a CA certificate (no basicConstraints CA:TRUE): give the cluster CA's ca.pem, not a node certificate", caFile, c.Subject.String())
		}
		pool.AddCert(c)
	}

	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("tls cert: %w", err)
	}
	chain, err := parseCerts(certPEM)
	if err != nil {
		return nil, fmt.Errorf("tls cert %s: %w", certFile, err)
	}
	leaf := chain[0]
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls key: %w", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls key %s: %w", keyFile, err)
	}
	if !keyMatches(key, leaf) {
		return nil, fmt.Errorf("tls key %s is not the private key of the certificate %s (%s): give the key issued with it, or issue both again with `sluice cert node`",
			keyFile, certFile, describe(leaf))
	}

	id, err := nodeID(leaf)
	if err != nil {
		return nil, fmt.Errorf("tls cert %s is not a Sluice node certificate (%v; a node certificate has O=%s, CN = the node's id and, if any, the URI SAN sluice://node/<id>): issue one with `sluice cert node --id ID --host ADDRESS`",
			certFile, err, NodeOrganization)
	}
	now := time.Now()
	if now.Before(leaf.NotBefore) {
		return nil, fmt.Errorf("tls cert %s (node %s) is not valid before %s: check this machine's clock", certFile, id, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("tls cert %s (node %s) expired on %s: issue a new one with `sluice cert node --id %s --host ADDRESS`", certFile, id, leaf.NotAfter.UTC().Format(time.RFC3339), id)
	}

	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	if _, err := leaf.Verify(opts); err != nil {
		var unknown x509.UnknownAuthorityError
		var invalid x509.CertificateInvalidError
		switch {
		case errors.As(err, &unknown):
			return nil, fmt.Errorf("tls cert %s (node %s, issued by %q) is not signed by the CA in %s: issue it with this cluster's CA (`sluice cert node --dir CA-DIR`), or give the ca.pem of the CA that issued it",
				certFile, id, leaf.Issuer.String(), caFile)
		case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
			return nil, fmt.Errorf("tls: the CA in %s, or an intermediate in %s, has expired or is not yet valid: %v", caFile, certFile, err)
		default:
			return nil, fmt.Errorf("tls cert %s (node %s) does not verify against the CA in %s: %w", certFile, id, caFile, err)
		}
	}
	// A node accepts connections (serverAuth) and makes them
	// (clientAuth); a certificate lacking either verifies here but fails
	// every handshake in one direction.
	for _, u := range []struct {
		usage x509.ExtKeyUsage
		name  string
	}{{x509.ExtKeyUsageServerAuth, "serverAuth"}, {x509.ExtKeyUsageClientAuth, "clientAuth"}} {
		opts.KeyUsages = []x509.ExtKeyUsage{u.usage}
		if _, err := leaf.Verify(opts); err != nil {
			return nil, fmt.Errorf("tls cert %s (node %s) is not valid for %s: a node certificate needs extendedKeyUsage serverAuth and clientAuth (`sluice cert node` sets both)", certFile, id, u.name)
		}
	}

	return &Config{
		CAs:  pool,
		Cert: tls.Certificate{Certificate: rawChain(chain), PrivateKey: key, Leaf: leaf},
		ID:   id,
	}, nil
}

func rawChain(chain []*x509.Certificate) [][]byte {
	raw := make([][]byte, len(chain))
	for i, c := range chain {
		raw[i] = c.Raw
	}
	return raw
}

// describe names a certificate's subject for an error message.
func describe(c *x509.Certificate) string {
	return fmt.Sprintf("subject %q", c.Subject.String())
}

// ServerTLS is for listeners only nodes may use (Raft, NATS routes): the
// peer must present a certificate the CA signed (RequireAndVerifyClientCert)
// that is a node certificate. The marker check runs in VerifyConnection,
// which unlike VerifyPeerCertificate also runs on resumed sessions.
func (c *Config) ServerTLS() *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS12, // TLS 1.3 is negotiated whenever the peer has it
		Certificates:     []tls.Certificate{c.Cert},
		ClientCAs:        c.CAs,
		ClientAuth:       tls.RequireAndVerifyClientCert,
		VerifyConnection: requireNodePeer("client"),
	}
}

// OptionalClientTLS is for the HTTP API listener, which users (without a
// client certificate) and nodes (with theirs) share. A certificate, when
// given, must be signed by the CA; whether it is a node's is for each
// handler to ask, with PeerNodeID, on the endpoints only nodes may call.
func (c *Config) OptionalClientTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{c.Cert},
		ClientCAs:    c.CAs,
		ClientAuth:   tls.VerifyClientCertIfGiven,
	}
}

// ClientTLS is for dialing another node: it presents this node's
// certificate and accepts the server only if its certificate is signed by
// the CA, covers serverName (standard hostname verification: give the host
// of the address being dialed, an IP or a DNS name in the peer's SANs),
// and is a node certificate.
func (c *Config) ClientTLS(serverName string) *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS12,
		Certificates:     []tls.Certificate{c.Cert},
		RootCAs:          c.CAs,
		ServerName:       serverName,
		VerifyConnection: requireNodePeer("server"),
	}
}

// PeerNodeID is the node id of a connection's peer, from its verified
// certificate chain; false when the peer gave no certificate, or one that
// is not a node certificate. Only verified chains count: the raw
// PeerCertificates of a VerifyClientCertIfGiven listener are whatever the
// client sent.
func (c *Config) PeerNodeID(cs *tls.ConnectionState) (string, bool) {
	return peerNodeID(cs)
}

func peerNodeID(cs *tls.ConnectionState) (string, bool) {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", false
	}
	return NodeID(cs.VerifiedChains[0][0])
}

// requireNodePeer refuses a connection whose peer (the "client" or the
// "server") is not a node. The standard verification, run before it,
// already checked the chain, so the verified leaf is the one to judge.
func requireNodePeer(role string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
			return fmt.Errorf("sluice: the %s gave no verified certificate: only Sluice nodes may connect here", role)
		}
		leaf := cs.VerifiedChains[0][0]
		if _, err := nodeID(leaf); err != nil {
			return fmt.Errorf("sluice: the %s's certificate (issued by %q) is not a Sluice node certificate (%v): only nodes may connect here",
				role, leaf.Issuer.String(), err)
		}
		return nil
	}
}
