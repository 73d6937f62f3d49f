package broker

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"

	"github.com/nats-io/nats-server/v2/server"
)

// authenticator is the server's CustomClientAuthentication: it decides
// for every client connection (network or in-process) at its CONNECT.
// A refused client gets "-ERR 'Authorization Violation'" and is closed.
type authenticator struct {
	user     [sha256.Size]byte
	password [sha256.Size]byte
	nodeCert func(*tls.ConnectionState) bool
}

var _ server.Authentication = (*authenticator)(nil)

func newAuthenticator(c Credentials, nodeCert func(*tls.ConnectionState) bool) *authenticator {
	return &authenticator{
		user:     sha256.Sum256([]byte(c.User)),
		password: sha256.Sum256([]byte(c.Password)),
		nodeCert: nodeCert,
	}
}

// Check authorizes a client that presents the broker's user and password,
// or that connected over TLS with a verified certificate nodeCert
// accepts. An authorized client is registered with no account and no
// permissions: the server then puts it in the global account ($G, where
// JetStream is enabled when no other account is configured) with full
// publish and subscribe permissions, JetStream API included.
func (a *authenticator) Check(c server.ClientAuthentication) bool {
	if c.Kind() != server.CLIENT {
		return false
	}
	if a.nodeCert != nil {
		// VerifiedChains is empty unless the TLS stack verified the
		// certificate the client sent against the configured CAs.
		if cs := c.GetTLSConnectionState(); cs != nil && len(cs.VerifiedChains) > 0 && len(cs.PeerCertificates) > 0 && a.nodeCert(cs) {
			c.RegisterUser(&server.User{Username: "node " + cs.PeerCertificates[0].Subject.CommonName})
			return true
		}
	}
	o := c.GetOpts()
	if o == nil {
		return false
	}
	// Hashing makes both comparisons constant time whatever the lengths.
	u := sha256.Sum256([]byte(o.Username))
	p := sha256.Sum256([]byte(o.Password))
	if subtle.ConstantTimeCompare(u[:], a.user[:])&subtle.ConstantTimeCompare(p[:], a.password[:]) != 1 {
		return false
	}
	c.RegisterUser(&server.User{Username: o.Username})
	return true
}
