// Package pki makes and checks the certificates Sluice nodes use for
// mutual TLS with each other (Raft transport, NATS routes, internal HTTP
// calls).
//
// A cluster has one CA. Every node gets a leaf certificate from it whose
// subject says it is a node (Organization NodeOrganization) and which
// node (CommonName = the node's id, repeated as the URI SAN
// sluice://node/<id>). A listener that only nodes may use accepts a peer
// when its certificate is signed by the CA AND carries that marker, so a
// certificate the same CA signed for something else (a user, a tool) is
// not enough to join Raft or the NATS routes.
//
// The files `sluice cert` writes, and what an openssl-made equivalent
// must look like, are described in deploy/tls/README.md.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sluicedb/sluice/internal/atomicfile"
)

const (
	// NodeOrganization in a certificate's Subject Organization marks it as
	// a node certificate. Only such certificates may connect to the
	// node-only listeners.
	NodeOrganization = "sluice-node"
	// ClientOrganization marks a certificate IssueClient made: signed by
	// the cluster CA, but not a node.
	ClientOrganization = "sluice-client"

	// CAFile and CAKeyFile are the names WriteFiles gives the CA's
	// certificate and private key in its directory.
	CAFile    = "ca.pem"
	CAKeyFile = "ca-key.pem"

	// MaxIDLength bounds a node id: it becomes a CommonName (at most 64
	// characters in X.509) and a DNS-label-sized name elsewhere.
	MaxIDLength = 63

	// clockSkew backdates NotBefore so a certificate made on one machine
	// is already valid on a peer whose clock is a little behind.
	clockSkew = 5 * time.Minute
)

// CA is a cluster's certificate authority: it signs node certificates.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA makes a self-signed ECDSA P-256 CA valid for validFor. It may sign
// leaf certificates only (MaxPathLen 0): a node certificate can never act
// as a CA for others.
func NewCA(commonName string, validFor time.Duration) (*CA, error) {
	if strings.TrimSpace(commonName) == "" {
		return nil, errors.New("pki: the CA needs a common name")
	}
	if validFor <= 0 {
		return nil, fmt.Errorf("pki: CA validity %v: must be positive", validFor)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generating the CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validFor),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true, // without it MaxPathLen 0 means "no limit"
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: signing the CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parsing the new CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// CertPEM is the CA certificate in PEM, the content of ca.pem.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// WriteFiles writes ca.pem (0644) and ca-key.pem (0600) into dir, making
// dir (0700) if it is missing. Unless force is set it refuses when either
// file exists: replacing a CA key orphans every certificate it signed, so
// that must be asked for explicitly.
func (ca *CA) WriteFiles(dir string, force bool) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return fmt.Errorf("pki: encoding the CA key: %w", err)
	}
	certPath, keyPath := filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile)
	if !force {
		for _, p := range []string{certPath, keyPath} {
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("%s already exists: a new CA would leave the certificates the old one signed untrusted; use another directory, or force to replace it", p)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// The key first: a directory with ca.pem but no key would look like a
	// complete CA to a reader that only checks the certificate.
	if err := atomicfile.Write(keyPath, pemBlock("PRIVATE KEY", keyDER), 0o600); err != nil {
		return err
	}
	return atomicfile.Write(certPath, ca.CertPEM(), 0o644)
}

// LoadCA reads the CA WriteFiles wrote into dir (or an equivalent made
// with openssl: a PEM certificate with CA:TRUE and its PEM private key).
func LoadCA(dir string) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile)
	certPEM, err := os.ReadFile(certPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no CA in %s (%s not found): make one with `sluice cert ca --dir %s`", dir, certPath, dir)
	} else if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s has %s but not the CA's private key %s: certificates can only be issued where the CA key is", dir, CAFile, keyPath)
	} else if err != nil {
		return nil, err
	}
	certs, err := parseCerts(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certPath, err)
	}
	cert := certs[0]
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, fmt.Errorf("%s: %q is not a CA certificate (no basicConstraints CA:TRUE)", certPath, cert.Subject.String())
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	if !keyMatches(key, cert) {
		return nil, fmt.Errorf("%s is not the private key of %s", keyPath, certPath)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// IssueNode makes node id's certificate and key, both PEM. hosts are the
// addresses other nodes and clients dial the node at: each becomes an IP
// SAN if it is an IP, else a DNS SAN, so standard hostname verification
// works for every one of them. The URI SAN sluice://node/<id> repeats the
// id in a form no DNS name can be confused with.
func (ca *CA) IssueNode(id string, hosts []string, validFor time.Duration) (certPEM, keyPEM []byte, err error) {
	if err := ValidateID(id); err != nil {
		return nil, nil, err
	}
	if len(hosts) == 0 {
		return nil, nil, fmt.Errorf("node %s: no hosts: give the addresses other nodes dial it at (IPs or DNS names, e.g. 10.0.0.5,%s.example.com)", id, id)
	}
	var ips []net.IP
	var names []string
	for _, h := range hosts {
		ip, name, err := parseHost(h)
		if err != nil {
			return nil, nil, fmt.Errorf("node %s: %w", id, err)
		}
		if ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
		} else if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: id, Organization: []string{NodeOrganization}},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, // a node both accepts and makes connections
		IPAddresses: ips,
		DNSNames:    names,
		URIs:        []*url.URL{NodeURI(id)},
	}
	return ca.issue(tmpl, validFor)
}

// IssueClient makes a certificate for something that is not a node (a
// user, a tool): signed by the CA, client authentication only, and
// Organization ClientOrganization, so node-only listeners refuse it.
func (ca *CA) IssueClient(name string, validFor time.Duration) (certPEM, keyPEM []byte, err error) {
	if name == "" || len(name) > 64 || strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return nil, nil, fmt.Errorf("client name %q: give 1 to 64 printable characters", name)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name, Organization: []string{ClientOrganization}},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return ca.issue(tmpl, validFor)
}

// issue signs tmpl with a new P-256 key.
func (ca *CA) issue(tmpl *x509.Certificate, validFor time.Duration) (certPEM, keyPEM []byte, err error) {
	if validFor <= 0 {
		return nil, nil, fmt.Errorf("certificate validity %v: must be positive", validFor)
	}
	now := time.Now()
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-clockSkew), now.Add(validFor)
	// A leaf outliving its CA would look valid until the day the CA
	// expires and then fail everywhere at once; say so now instead.
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		return nil, nil, fmt.Errorf("the certificate would be valid until %s but the CA %q expires on %s: issue it for less time, or make a new CA",
			tmpl.NotAfter.UTC().Format(time.DateOnly), ca.Cert.Subject.CommonName, ca.Cert.NotAfter.UTC().Format(time.DateOnly))
	}
	if tmpl.SerialNumber, err = newSerial(); err != nil {
		return nil, nil, err
	}
	tmpl.BasicConstraintsValid = true // CA:FALSE, explicitly
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: generating a key: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: signing the certificate of %q: %w", tmpl.Subject.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: encoding the key: %w", err)
	}
	return pemBlock("CERTIFICATE", der), pemBlock("PRIVATE KEY", keyDER), nil
}

// NodeFiles are the paths WriteNodeFiles writes node id's files to.
func NodeFiles(dir, id string) (certPath, keyPath string) {
	return filepath.Join(dir, id+".pem"), filepath.Join(dir, id+"-key.pem")
}

// WriteNodeFiles writes <id>.pem (0644) and <id>-key.pem (0600) into dir,
// making dir (0700) if it is missing. Existing files are replaced: issuing
// again is how a node's certificate is renewed, and a node key, unlike the
// CA's, protects nothing else.
func WriteNodeFiles(dir, id string, certPEM, keyPEM []byte) error {
	// The id becomes a file name: validating it keeps it inside dir.
	if err := ValidateID(id); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	certPath, keyPath := NodeFiles(dir, id)
	if err := atomicfile.Write(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	return atomicfile.Write(certPath, certPEM, 0o644)
}

// ValidateID checks a node id is usable in a certificate and a file name:
// 1 to MaxIDLength letters, digits, '_', '.' and '-'.
func ValidateID(id string) error {
	switch {
	case id == "":
		return errors.New("node id is empty: give the node's id as in its config file (id: n1)")
	case len(id) > MaxIDLength:
		return fmt.Errorf("node id %q is %d characters: at most %d", id, len(id), MaxIDLength)
	case id == "." || id == "..":
		return fmt.Errorf("node id %q: not a usable name", id)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return fmt.Errorf("node id %q: use only letters, digits, '_', '.' and '-'", id)
		}
	}
	return nil
}

// NodeURI is the URI SAN of node id's certificate: sluice://node/<id>.
func NodeURI(id string) *url.URL {
	return &url.URL{Scheme: "sluice", Host: "node", Path: "/" + id}
}

// NodeID returns the node id a certificate was issued to, or false when it
// is not a node certificate: its Subject Organization must include
// NodeOrganization and its CommonName must be a valid id, and a
// sluice://node/ URI SAN, when present, must name the same id (so an
// edited subject alone cannot turn one node's identity into another's).
// It does not check the signature: use it on verified certificates only.
func NodeID(cert *x509.Certificate) (string, bool) {
	id, err := nodeID(cert)
	return id, err == nil
}

// nodeID is NodeID with the reason a certificate is not a node's.
func nodeID(cert *x509.Certificate) (string, error) {
	if cert == nil {
		return "", errors.New("no certificate")
	}
	if !slices.Contains(cert.Subject.Organization, NodeOrganization) {
		return "", fmt.Errorf("subject %q has no O=%s", cert.Subject.String(), NodeOrganization)
	}
	id := cert.Subject.CommonName
	if err := ValidateID(id); err != nil {
		return "", fmt.Errorf("subject %q: CN is not a node id: %v", cert.Subject.String(), err)
	}
	for _, u := range cert.URIs {
		if u.Scheme == "sluice" && strings.EqualFold(u.Host, "node") && u.Path != "/"+id {
			return "", fmt.Errorf("subject %q: the URI SAN %s names another node than CN=%s", cert.Subject.String(), u, id)
		}
	}
	return id, nil
}

// parseHost turns one --host value into an IP or a DNS name.
func parseHost(h string) (net.IP, string, error) {
	h = strings.TrimSpace(h)
	if h == "" {
		return nil, "", errors.New("empty host")
	}
	if ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); ip != nil {
		return ip, "", nil
	}
	if _, port, err := net.SplitHostPort(h); err == nil && port != "" && !strings.ContainsFunc(port, func(r rune) bool { return r < '0' || r > '9' }) {
		return nil, "", fmt.Errorf("host %q: give the host without a port (a certificate covers every port of a host)", h)
	}
	if strings.Contains(h, "*") {
		return nil, "", fmt.Errorf("host %q: wildcards are not supported: list each name the node is dialed at", h)
	}
	name := strings.ToLower(strings.TrimSuffix(h, "."))
	if len(name) > 253 {
		return nil, "", fmt.Errorf("host %q: a DNS name has at most 253 characters", h)
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' ||
			strings.ContainsFunc(label, func(r rune) bool {
				return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
			}) {
			return nil, "", fmt.Errorf("host %q: neither an IP address nor a DNS name", h)
		}
	}
	return nil, name, nil
}

func newSerial() (*big.Int, error) {
	// 128 random bits: unique without a serial file, as RFC 5280 and the
	// CA/Browser baseline ask (at least 64 bits of entropy).
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("pki: serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil // positive, never 0
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// parseCerts returns every CERTIFICATE block of a PEM file, in order.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate (-----BEGIN CERTIFICATE-----) in the file")
	}
	return certs, nil
}

// parseKey reads the first private key of a PEM file, in the encodings
// Go and openssl write: PKCS#8, SEC1 (EC PRIVATE KEY) and PKCS#1.
func parseKey(data []byte) (crypto.Signer, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM private key (-----BEGIN PRIVATE KEY-----) in the file")
		}
		var key any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("the private key is encrypted: Sluice needs it unencrypted (openssl pkey -in KEY -out KEY.plain), protected by the file's mode")
		default:
			continue // e.g. the EC PARAMETERS block openssl ecparam writes first
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Type, err)
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T", key)
		}
		return s, nil
	}
}

func keyMatches(key crypto.Signer, cert *x509.Certificate) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}
