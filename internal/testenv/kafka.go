package testenv

import (
	"context"
	"net"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Kafka is a Kafka-protocol broker (franz-go's kfake) serving on a free
// loopback port: clients talk to it over TCP as to a real cluster.
type Kafka struct {
	*kfake.Cluster
	Brokers []string
	// ClientOpts are added to the options of ReadTopic's clients: the
	// credentials or TLS settings of a cluster that requires them.
	ClientOpts []kgo.Opt
}

// NewKafka starts a one-broker Kafka cluster that ends at cleanup. opts
// add to the defaults (a free port on 127.0.0.1, 32 MiB messages).
func NewKafka(t testing.TB, opts ...kfake.Opt) *Kafka {
	t.Helper()
	base := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ListenFn(listenLoopback),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": "33554432"}),
	}
	c, err := kfake.NewCluster(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &Kafka{Cluster: c, Brokers: c.ListenAddrs()}
}

// NewKafkaSASL starts a one-broker cluster that admits only the superuser
// user/pass by SASL mechanism mech (PLAIN, SCRAM-SHA-256 or
// SCRAM-SHA-512); ReadTopic authenticates as that user.
func NewKafkaSASL(t testing.TB, mech, user, pass string, opts ...kfake.Opt) *Kafka {
	t.Helper()
	var m sasl.Mechanism
	switch mech {
	case "PLAIN":
		m = plain.Auth{User: user, Pass: pass}.AsMechanism()
	case "SCRAM-SHA-256":
		m = scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()
	case "SCRAM-SHA-512":
		m = scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()
	default:
		t.Fatalf("unknown SASL mechanism %q", mech)
	}
	k := NewKafka(t, append([]kfake.Opt{kfake.EnableSASL(), kfake.Superuser(mech, user, pass)}, opts...)...)
	k.ClientOpts = append(k.ClientOpts, kgo.SASL(m))
	return k
}

// listenLoopback binds kfake's brokers to 127.0.0.1 only, on a free port.
func listenLoopback(network, _ string) (net.Listener, error) {
	return net.Listen(network, "127.0.0.1:0")
}

// Record is a message read back from a topic.
type Record struct {
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
}

// sentinelKey marks the records ReadTopic writes to know where a
// partition's committed messages end.
const sentinelKey = "\x00sluice-test-end"

// ReadTopic returns every committed message of topic, partition by
// partition in offset order, as a read_committed consumer sees them. It
// first appends a sentinel to each partition and reads until all come
// back, so it never stops early and never waits on a clock (transactions
// still open delay it until they end).
func (k *Kafka) ReadTopic(t testing.TB, topic string) []Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adm, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(k.Brokers...)}, k.ClientOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("read topic %s: %v", topic, err)
	}
	partitions := 0
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			partitions++
		}
	})
	if partitions == 0 {
		t.Fatalf("topic %s has no partitions", topic)
	}
	nonce := strconv.FormatInt(time.Now().UnixNano(), 10)
	for p := 0; p < partitions; p++ {
		r := &kgo.Record{Topic: topic, Partition: int32(p), Key: []byte(sentinelKey), Value: []byte(nonce)}
		if err := adm.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("sentinel to %s/%d: %v", topic, p, err)
		}
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(k.Brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, k.ClientOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []Record
	seen := 0
	for seen < partitions {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read topic %s: %d of %d partitions read to their end: %v", topic, seen, partitions, err)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("read %s/%d: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Key) == sentinelKey {
				if string(r.Value) == nonce {
					seen++
				}
				return
			}
			out = append(out, Record{Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value})
		})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Partition != out[j].Partition {
			return out[i].Partition < out[j].Partition
		}
		return out[i].Offset < out[j].Offset
	})
	return out
}
