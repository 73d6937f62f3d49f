package testenv

import (
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/sluicedb/sluice/internal/broker"
)

// NewJetStream starts an embedded JetStream server listening on a free
// loopback port, and returns it with a connection; both end at cleanup.
func NewJetStream(t testing.TB) (*broker.Broker, *nats.Conn) {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	creds, err := broker.NewCredentials()
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.Start(broker.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:" + strconv.Itoa(port), Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Shutdown)
	nc, err := b.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return b, nc
}
