package kafka

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/IBM/sarama"

	"github.com/sluicedb/sluice/internal/secret"
	"github.com/sluicedb/sluice/proto"
)

// Options configure a sink.
type Options struct {
	Task   string
	Config Config
	// Database is the source database's name, which messages carry.
	Database string
	// Routes gives destination tables (TableID.Key) their topic,
	// partitions and partition key; a table without one goes to
	// DefaultTopic, partitioned by its key.
	Routes       map[string]Route
	DefaultTopic string
	// TransactionalID names the unit writing through this sink (its apply
	// group, a copy unit's share, the capture's bookkeeping): Open starts
	// its producer, which fences the unit's earlier owner at the brokers.
	// Empty: the sink only reads.
	TransactionalID string
	// Heartbeats: this sink's unit is the one of its task that writes
	// heartbeat messages (when destination.heartbeat is on). Every apply
	// group sees every source heartbeat; one writer keeps them from
	// being written once per group.
	Heartbeats bool
	Logger     *slog.Logger
}

// Route is where a table's messages go.
type Route struct {
	Topic      string
	Partitions int
	// PartitionKey names the (destination) columns hashed under
	// partitioning primary-key; empty: the table's key.
	PartitionKey []string
}

func (o *Options) route(t proto.TableID) Route {
	r, ok := o.Routes[t.Key()]
	if !ok || r.Topic == "" {
		r.Topic = o.DefaultTopic
	}
	if r.Partitions <= 0 {
		r.Partitions = max(1, o.Config.TopicPartitions)
	}
	return r
}

// defaultVersion is the oldest Kafka with everything the sink uses
// (transactions, idempotence, zstd, KIP-464 default replication).
const defaultVersion = "2.8.0"

// saramaConfig builds the client configuration. txnID empty: no
// transactions (a reader, or exactly_once: false).
func (o *Options) saramaConfig(txnID string) (*sarama.Config, error) {
	cfg := sarama.NewConfig()
	v := o.Config.Version
	if v == "" {
		v = defaultVersion
	}
	version, err := sarama.ParseKafkaVersion(v)
	if err != nil {
		return nil, fmt.Errorf("destination.version: %w", err)
	}
	cfg.Version = version
	cfg.ClientID = o.Config.ClientID
	if cfg.ClientID == "" {
		cfg.ClientID = "sluice"
	}
	cfg.Net.DialTimeout = 10 * time.Second
	cfg.Net.ReadTimeout = 30 * time.Second
	cfg.Net.WriteTimeout = 30 * time.Second
	cfg.Metadata.Retry.Max = 5
	cfg.Metadata.Retry.Backoff = 200 * time.Millisecond

	// Idempotence keeps every message once and in order per partition
	// across the producer's own retries; it needs acks=all and one
	// request in flight (sarama's rule). acks 0 and 1 (allowed only with
	// exactly_once: false) give it up for speed: a retry may then write
	// a message twice, and with acks 0 a lost write goes unnoticed. One
	// request in flight stays, so a retry never reorders a key's changes.
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Net.MaxOpenRequests = 1
	switch choice(o.Config.Acks, AcksChoices) {
	case "1":
		cfg.Producer.Idempotent = false
		cfg.Producer.RequiredAcks = sarama.WaitForLocal
	case "0":
		cfg.Producer.Idempotent = false
		cfg.Producer.RequiredAcks = sarama.NoResponse
	}
	if !cfg.Producer.Idempotent && txnID != "" {
		// proto refuses this spec; a sink opened without it must not
		// start a transaction that cannot keep its promise.
		return nil, errors.New("destination.acks: 0 and 1 need exactly_once: false (transactions need acks: all)")
	}
	cfg.Producer.Return.Successes = true
	cfg.Producer.Retry.Max = 10
	cfg.Producer.Retry.Backoff = 100 * time.Millisecond
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.MaxMessageBytes = 64 << 20 // the brokers' message.max.bytes decides
	cfg.Producer.Flush.Bytes = 1 << 20
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	switch choice(o.Config.Compression, Compressions) {
	case "none":
		cfg.Producer.Compression = sarama.CompressionNone
	case "gzip":
		cfg.Producer.Compression = sarama.CompressionGZIP
	case "snappy":
		cfg.Producer.Compression = sarama.CompressionSnappy
	case "lz4":
		cfg.Producer.Compression = sarama.CompressionLZ4
	case "zstd":
		cfg.Producer.Compression = sarama.CompressionZSTD
	}
	if txnID != "" {
		cfg.Producer.Transaction.ID = txnID
		cfg.Producer.Transaction.Timeout = 10 * time.Minute // a chunk is one transaction
		cfg.Producer.Transaction.Retry.Max = 10
		cfg.Producer.Transaction.Retry.Backoff = 200 * time.Millisecond
	}
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Return.Errors = true

	if t := o.Config.TLS; t != nil {
		tc, err := tlsConfig(t)
		if err != nil {
			return nil, err
		}
		cfg.Net.TLS.Enable, cfg.Net.TLS.Config = true, tc
	}
	if s := o.Config.SASL; s != nil {
		cfg.Net.SASL.Enable = true
		pw, err := secret.ResolveField(s.PasswordRef())
		if err != nil {
			return nil, fmt.Errorf("destination.sasl.password: %w", err)
		}
		secret.Register(pw)
		cfg.Net.SASL.User, cfg.Net.SASL.Password = s.User, pw
		cfg.Net.SASL.Handshake = true
		switch s.Mechanism {
		case "PLAIN":
			cfg.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		case "SCRAM-SHA-256":
			cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return newSCRAM(sha256.New) }
		case "SCRAM-SHA-512":
			cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return newSCRAM(sha512.New) }
		default:
			return nil, fmt.Errorf("destination.sasl.mechanism: unknown %q", s.Mechanism)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kafka client settings: %w", err)
	}
	return cfg, nil
}

func tlsConfig(t *TLSConfig) (*tls.Config, error) {
	tc := &tls.Config{InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // the user's explicit choice
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("destination.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("destination.tls.ca_file: no PEM certificate in it")
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("destination.tls: client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
