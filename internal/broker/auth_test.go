package broker

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const authViolation = "-ERR 'Authorization Violation'"

func connectJSON(t *testing.T, user, pass string) string {
	t.Helper()
	m := map[string]any{"verbose": false}
	if user != "" {
		m["user"], m["pass"] = user, pass
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// roundTrip checks nc can publish and subscribe and use JetStream in
// the global account.
func roundTrip(t *testing.T, nc *nats.Conn) {
	t.Helper()
	sub, err := nc.SubscribeSync("rt.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("rt.x", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("subscribe round trip: %v", err)
	}
	if string(m.Data) != "hello" {
		t.Fatalf("got %q", m.Data)
	}
	_ = sub.Unsubscribe()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	name := "RT" + strings.ReplaceAll(nc.Opts.Name, " ", "")
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{"js." + name + ".>"}})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	ack, err := js.Publish(ctx, "js."+name+".a", []byte("row"))
	if err != nil {
		t.Fatalf("JetStream publish: %v", err)
	}
	got, err := s.GetMsg(ctx, ack.Sequence)
	if err != nil {
		t.Fatalf("get message: %v", err)
	}
	if string(got.Data) != "row" {
		t.Fatalf("stream message %q", got.Data)
	}
}

func TestStartRequiresCredentials(t *testing.T) {
	for _, c := range []Credentials{{}, {User: "sluice"}, {Password: "x"}} {
		if b, err := Start(Options{StoreDir: t.TempDir(), Credentials: c}); err == nil {
			b.Shutdown()
			t.Fatalf("Start with %v: no error", c)
		}
	}
}

func TestAuthPlain(t *testing.T) {
	creds := testCreds(t)
	b := startBroker(t, Options{Listen: "127.0.0.1:0", Credentials: creds})
	url := b.ClientURL()
	if !strings.HasPrefix(url, "nats://127.0.0.1:") || strings.HasSuffix(url, ":0") || strings.HasSuffix(url, ":4222") {
		t.Fatalf("ClientURL %q: want a free port on 127.0.0.1", url)
	}
	addr := hostPort(t, url)

	for _, tc := range []struct{ name, connect string }{
		{"anonymous", `{"verbose":false}`},
		{"wrong password", connectJSON(t, creds.User, creds.Password+"x")},
		{"wrong user", connectJSON(t, "other", creds.Password)},
		{"empty password", connectJSON(t, creds.User, "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			line, err := rawSession(t, addr, nil, tc.connect)
			if line != authViolation {
				t.Fatalf("got %q (%v), want %q", line, err, authViolation)
			}
		})
	}
	// The protocol check itself: the right credentials get PONG.
	if line, err := rawSession(t, addr, nil, connectJSON(t, creds.User, creds.Password)); line != "PONG" {
		t.Fatalf("right credentials: got %q (%v), want PONG", line, err)
	}

	if nc, err := nats.Connect(url, nats.UserInfo(creds.User, "wrong"), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("nats.go with a wrong password connected")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("wrong password: %v, want %v", err, nats.ErrAuthorization)
	}

	nc, err := nats.Connect(url, nats.Name("net"), nats.UserInfo(creds.User, creds.Password))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	roundTrip(t, nc)

	// Connect goes in-process even with a listener.
	ip, err := b.Connect("inproc")
	if err != nil {
		t.Fatal(err)
	}
	defer ip.Close()
	if got := ip.ConnectedAddr(); got != "pipe" {
		t.Fatalf("Connect is connected to %s, want the in-process pipe", got)
	}
	roundTrip(t, ip)
}

// In-process connections are authenticated like network ones.
func TestAuthInProcess(t *testing.T) {
	creds := testCreds(t)
	b := startBroker(t, Options{Credentials: creds})
	if u := b.ClientURL(); u != "" {
		t.Fatalf("ClientURL %q without a listener", u)
	}
	for _, tc := range []struct{ name, connect string }{
		{"anonymous", `{"verbose":false}`},
		{"wrong password", connectJSON(t, creds.User, "wrong")},
		{"wrong user", connectJSON(t, "x", creds.Password)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if line, err := rawInProcess(t, b, tc.connect); line != authViolation {
				t.Fatalf("got %q (%v), want %q", line, err, authViolation)
			}
		})
	}
	// nats.InProcessServer uses the same InProcessConn. Over its pipe
	// nats.go sees the close rather than the -ERR, after the server's
	// 10s write deadline: check one case only.
	if nc, err := nats.Connect("", nats.InProcessServer(b.srv), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("nats.go in-process connection without credentials was accepted")
	}
	if line, err := rawInProcess(t, b, connectJSON(t, creds.User, creds.Password)); line != "PONG" {
		t.Fatalf("right credentials: got %q (%v), want PONG", line, err)
	}
	nc, err := b.Connect("inproc")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	roundTrip(t, nc)
}

// rawInProcess is rawSession over an in-process connection.
func rawInProcess(t *testing.T, b *Broker, connect string) (string, error) {
	t.Helper()
	conn, err := b.srv.InProcessConn()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	if info, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(info, "INFO ") {
		t.Fatalf("INFO: %q %v", info, err)
	}
	// A pipe is synchronous: the server may answer and close before it
	// reads the PING, so write beside the read and keep only the answer.
	go func() { _, _ = conn.Write([]byte("CONNECT " + connect + "\r\nPING\r\n")) }()
	line, err := r.ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}

func TestAuthTLS(t *testing.T) {
	ca := newTestCA(t, "test CA")
	foreign := newTestCA(t, "foreign CA")
	creds := testCreds(t)
	b := startBroker(t, Options{
		Listen: "127.0.0.1:0", Name: "n1", Credentials: creds,
		TLS: clientPortTLS(ca, ca.node(t, "n1")), NodeCert: isNode,
	})
	url := b.ClientURL()
	if !strings.HasPrefix(url, "tls://127.0.0.1:") {
		t.Fatalf("ClientURL %q", url)
	}
	addr := hostPort(t, url)
	clientTLS := func(certs ...tls.Certificate) *tls.Config {
		return &tls.Config{RootCAs: ca.pool, ServerName: "127.0.0.1", Certificates: certs, MinVersion: tls.VersionTLS12}
	}

	t.Run("plain TCP refused", func(t *testing.T) {
		// Even with the right credentials, in clear text.
		line, err := rawSession(t, addr, nil, connectJSON(t, creds.User, creds.Password))
		if line == "PONG" || err == nil && !strings.HasPrefix(line, "-ERR") {
			t.Fatalf("plain TCP client: got %q (%v)", line, err)
		}
		if nc, err := nats.Connect("nats://"+addr, nats.UserInfo(creds.User, creds.Password), nats.MaxReconnects(0)); err == nil {
			nc.Close()
			t.Fatal("nats.go without TLS config connected")
		}
	})
	t.Run("TLS without credentials or cert", func(t *testing.T) {
		line, err := rawSession(t, addr, clientTLS(), `{"verbose":false}`)
		if line != authViolation {
			t.Fatalf("got %q (%v), want %q", line, err, authViolation)
		}
	})
	t.Run("TLS wrong password", func(t *testing.T) {
		line, err := rawSession(t, addr, clientTLS(), connectJSON(t, creds.User, "nope"))
		if line != authViolation {
			t.Fatalf("got %q (%v), want %q", line, err, authViolation)
		}
	})
	t.Run("TLS with credentials", func(t *testing.T) {
		nc, err := nats.Connect(url, nats.Name("tlspass"), nats.Secure(clientTLS()), nats.UserInfo(creds.User, creds.Password))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		roundTrip(t, nc)
	})
	t.Run("node cert without password", func(t *testing.T) {
		nc, err := nats.Connect(url, nats.Name("tlsnode"), nats.Secure(clientTLS(ca.node(t, "worker1"))))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		roundTrip(t, nc)
	})
	t.Run("non-node cert of the CA", func(t *testing.T) {
		line, err := rawSession(t, addr, clientTLS(ca.issue(t, "sluice-client", "cli")), `{"verbose":false}`)
		if line != authViolation {
			t.Fatalf("got %q (%v), want %q", line, err, authViolation)
		}
	})
	t.Run("foreign CA cert", func(t *testing.T) {
		// A node certificate by its subject, from another CA: the TLS
		// handshake fails (with TLS 1.3 the client learns it at its
		// first read).
		// Go's client sends no certificate the server's CA list does not
		// name; force it to send the foreign one.
		cert := foreign.node(t, "worker1")
		cfg := clientTLS()
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
		line, err := rawSession(t, addr, cfg, `{"verbose":false}`)
		if err == nil || line == "PONG" {
			t.Fatalf("foreign-CA cert: got %q (%v), want a TLS failure", line, err)
		}
		if !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("foreign-CA cert: %v, want a certificate error", err)
		}
		if nc, err := nats.Connect(url, nats.Secure(cfg), nats.MaxReconnects(0)); err == nil {
			nc.Close()
			t.Fatal("nats.go with a foreign-CA cert connected")
		}
	})
	t.Run("in-process Connect", func(t *testing.T) {
		nc, err := b.Connect("tls inproc")
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		roundTrip(t, nc)
	})
}
