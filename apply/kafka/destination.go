package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"syscall"

	"github.com/IBM/sarama"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/proto"
)

// Destination is the Kafka destination (destination.type: kafka), for
// the registry (apply/destinations).
var Destination apply.Destination = destination{}

type destination struct{}

func (destination) Kind() proto.DestinationKind {
	return proto.DestinationKind{
		Type:             "kafka",
		NewConfig:        func() proto.DestinationConfig { return &Config{} },
		NewObjectOptions: func() proto.ObjectOptions { return &ObjectOptions{} },
	}
}

func (destination) Capabilities() apply.Capabilities {
	return apply.Capabilities{SchemaSync: true, DDL: true, Heartbeats: true}
}

// configOf is the spec's Kafka block (empty if the spec has none).
func configOf(spec *proto.TaskSpec) *Config {
	if cfg, ok := spec.Destination.Config.(*Config); ok {
		return cfg
	}
	return &Config{}
}

// Open opens a sink for use: a unit writes under a transactional id of
// its own (sluice.<task>.apply.<group>, sluice.<task>.copy.<share>,
// sluice.<task>.task), so that its next owner fences it at the brokers.
func (destination) Open(ctx context.Context, spec *proto.TaskSpec, use apply.Use) (apply.TaskSink, error) {
	cfg := configOf(spec)
	opts := Options{
		Task: spec.Name, Config: *cfg, Database: pgconfig.Database(spec.Source.DSN),
		Routes: routesOf(spec, cfg), TransactionalID: "sluice." + spec.Name + "." + use.Kind.String(), Logger: use.Logger,
	}
	switch use.Kind {
	case apply.UseApply, apply.UseCopy:
		opts.TransactionalID = fmt.Sprintf("sluice.%s.%s.%d", spec.Name, use.Kind, use.Unit)
	case apply.UseVerify:
		opts.TransactionalID = "" // a verification only reads (verify.go)
	}
	opts.Heartbeats = use.HeartbeatWriter
	return Open(ctx, opts)
}

// Endpoints are the brokers.
func (destination) Endpoints(spec *proto.TaskSpec) []string {
	return slices.Clone(configOf(spec).Brokers)
}

// Classify sorts the client's errors: brokers that cannot be reached, that
// are not (yet) the leader or coordinator, or that time out are a
// connection failure (the 720-minute window); the brokers' refusals of a
// request (authorization, invalid settings, too large a message) are not.
func (destination) Classify(err error) proto.ErrorKind {
	var perrs sarama.ProducerErrors
	if errors.As(err, &perrs) && len(perrs) > 0 {
		err = perrs[0].Err
	}
	for _, sentinel := range connectionErrors {
		if errors.Is(err, sentinel) {
			return proto.ErrorConnection
		}
	}
	var kerr sarama.KError
	if errors.As(err, &kerr) {
		if slices.Contains(retriableKErrors, kerr) {
			return proto.ErrorConnection
		}
		return proto.ErrorOther
	}
	for _, sentinel := range otherErrors {
		if errors.Is(err, sentinel) {
			return proto.ErrorOther
		}
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		// A broker closed or refused the connection (sarama reports a
		// dropped connection as a bare EOF).
		return proto.ErrorConnection
	}
	return ""
}

// connectionErrors are the client's errors for brokers out of reach.
var connectionErrors = []error{
	sarama.ErrOutOfBrokers, sarama.ErrNotConnected, sarama.ErrBrokerNotFound,
	sarama.ErrControllerNotAvailable, sarama.ErrClosedClient, sarama.ErrShuttingDown,
	sarama.ErrIncompleteResponse,
}

// otherErrors are the client's errors that no wait mends.
var otherErrors = []error{
	sarama.ErrMessageTooLarge, sarama.ErrInvalidPartition, sarama.ErrUnknownScramMechanism,
	sarama.ErrNonTransactedProducer,
}

// retriableKErrors are the brokers' answers that a later try may not
// get: leaders moving, coordinators loading, replicas catching up,
// brokers going away.
var retriableKErrors = []sarama.KError{
	sarama.ErrRequestTimedOut, sarama.ErrBrokerNotAvailable, sarama.ErrLeaderNotAvailable,
	sarama.ErrNotLeaderForPartition, sarama.ErrReplicaNotAvailable, sarama.ErrNetworkException,
	sarama.ErrOffsetsLoadInProgress, sarama.ErrConsumerCoordinatorNotAvailable, sarama.ErrNotCoordinatorForConsumer,
	sarama.ErrNotEnoughReplicas, sarama.ErrNotEnoughReplicasAfterAppend, sarama.ErrNotController,
	sarama.ErrKafkaStorageError, sarama.ErrUnknownLeaderEpoch, sarama.ErrFencedLeaderEpoch,
	sarama.ErrConcurrentTransactions,
	sarama.ErrPreferredLeaderNotAvailable, sarama.ErrEligibleLeadersNotAvailable,
	sarama.ErrThrottlingQuotaExceeded,
}
