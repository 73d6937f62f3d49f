package broker

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// freeAddrs reserves n loopback ports at once and releases them: route
// addresses must be known before the servers that dial them start.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return addrs
}

func routeNames(t *testing.T, b *Broker) map[string]bool {
	t.Helper()
	rz, err := b.srv.Routez(&server.RoutezOptions{})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, r := range rz.Routes {
		names[r.RemoteName] = true
	}
	return names
}

func TestClusterRouteTLS(t *testing.T) {
	ca := newTestCA(t, "test CA")
	foreign := newTestCA(t, "foreign CA")
	ids := []string{"a", "b", "c"}
	addrs := freeAddrs(t, len(ids))
	var brokers []*Broker
	for i, id := range ids {
		var routes []string
		for j, a := range addrs {
			if j != i {
				routes = append(routes, a)
			}
		}
		brokers = append(brokers, startBroker(t, Options{
			Name: id, Credentials: testCreds(t), Listen: "127.0.0.1:0",
			ClusterListen: addrs[i], Routes: routes,
			RouteTLS: routeTLS(ca, ca.node(t, id)),
		}))
	}
	for i, b := range brokers {
		waitFor(t, 30*time.Second, ids[i]+"'s routes to both peers", func() bool {
			n := routeNames(t, b)
			return len(n) == 2 && !n[ids[i]]
		})
	}

	// The route port speaks TLS (first, before INFO) and wants a node
	// certificate.
	routeInfo := func(certs ...tls.Certificate) (string, error) {
		d := &net.Dialer{Timeout: 5 * time.Second}
		conn, err := tls.DialWithDialer(d, "tcp", addrs[0], &tls.Config{RootCAs: ca.pool, Certificates: certs, MinVersion: tls.VersionTLS12})
		if err != nil {
			return "", err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		return bufio.NewReader(conn).ReadString('\n')
	}
	if info, err := routeInfo(ca.node(t, "e")); err != nil || !strings.HasPrefix(info, "INFO ") {
		t.Fatalf("route port with a node cert: %q %v", info, err)
	}
	if info, err := routeInfo(); err == nil {
		t.Fatalf("route port without a client cert: %q", info)
	}

	nc, err := brokers[0].Connect("cluster test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// The meta group needs a leader before a stream can be placed: retry
	// the creation until it succeeds or the deadline passes.
	var s jetstream.Stream
	waitFor(t, 60*time.Second, "an R3 stream", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		s, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3})
		return err == nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ack *jetstream.PubAck
	waitFor(t, 30*time.Second, "a publish to the R3 stream", func() bool {
		pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
		defer pcancel()
		ack, err = js.Publish(pctx, "r3.x", []byte("replicated"))
		return err == nil
	})
	si, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if si.Cluster == nil || len(si.Cluster.Replicas) != 2 {
		t.Fatalf("stream cluster info %+v: want a leader and 2 replicas", si.Cluster)
	}
	m, err := s.GetMsg(ctx, ack.Sequence)
	if err != nil || string(m.Data) != "replicated" {
		t.Fatalf("get: %v %v", m, err)
	}

	t.Run("foreign-CA server does not join", func(t *testing.T) {
		// It trusts our CA, so it accepts a's certificate; a must refuse
		// its foreign one. Count its handshakes to know it tried.
		cert := foreign.node(t, "d")
		var attempts atomic.Int32
		cfg := routeTLS(foreign, cert)
		cfg.RootCAs = ca.pool
		cfg.Certificates = nil
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			attempts.Add(1)
			return &cert, nil
		}
		d := startBroker(t, Options{
			Name: "d", Credentials: testCreds(t), Listen: "127.0.0.1:0",
			ClusterListen: "127.0.0.1:0", Routes: []string{addrs[0]},
			RouteTLS: cfg,
		})
		if d.srv.ClusterAddr() == nil || d.srv.ClusterAddr().Port == 0 {
			t.Fatalf("cluster port 0 not resolved: %v", d.srv.ClusterAddr())
		}
		// Three handshakes: the first ones were refused, d retried.
		waitFor(t, 30*time.Second, "d's third route attempt", func() bool { return attempts.Load() >= 3 })
		if n := d.srv.NumRoutes(); n != 0 {
			t.Fatalf("d has %d routes", n)
		}
		if n := routeNames(t, brokers[0]); n["d"] || len(n) != 2 {
			t.Fatalf("a's routes: %v", n)
		}
	})
}

// A route port without client verification would let any server join.
func TestRouteTLSMustVerifyClients(t *testing.T) {
	ca := newTestCA(t, "test CA")
	cfg := routeTLS(ca, ca.node(t, "a"))
	cfg.ClientAuth = tls.VerifyClientCertIfGiven
	if b, err := Start(Options{StoreDir: t.TempDir(), Credentials: testCreds(t), Listen: "127.0.0.1:0", ClusterListen: "127.0.0.1:0", RouteTLS: cfg}); err == nil {
		b.Shutdown()
		t.Fatal("RouteTLS without RequireAndVerifyClientCert accepted")
	}
	if b, err := Start(Options{StoreDir: t.TempDir(), Credentials: testCreds(t), Listen: "127.0.0.1:0", ClusterListen: "127.0.0.1:0",
		TLS: clientPortTLS(ca, ca.node(t, "a"))}); err == nil {
		b.Shutdown()
		t.Fatal("TLS and ClusterListen without RouteTLS accepted")
	}
	if b, err := Start(Options{StoreDir: t.TempDir(), Credentials: testCreds(t), ClusterListen: "127.0.0.1:0", RouteTLS: routeTLS(ca, ca.node(t, "a"))}); err == nil {
		b.Shutdown()
		t.Fatal("ClusterListen without Listen accepted")
	}
}
