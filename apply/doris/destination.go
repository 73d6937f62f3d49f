package doris

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"syscall"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/proto"
)

// Destination is the Doris / SelectDB destination (destination.type:
// doris), for the registry (apply/destinations).
var Destination apply.Destination = destination{}

type destination struct{}

func (destination) Kind() proto.DestinationKind {
	return proto.DestinationKind{
		Type:             "doris",
		NewConfig:        func() proto.DestinationConfig { return &Config{} },
		NewObjectOptions: func() proto.ObjectOptions { return &ObjectOptions{} },
	}
}

func (destination) Capabilities() apply.Capabilities {
	return apply.Capabilities{SchemaSync: true, DDL: true}
}

func configOf(spec *proto.TaskSpec) *Config {
	if cfg, ok := spec.Destination.Config.(*Config); ok {
		return cfg
	}
	return &Config{}
}

// Open opens a sink; every unit talks to the FE over HTTP, so a use needs
// nothing of its own.
func (destination) Open(ctx context.Context, spec *proto.TaskSpec, use apply.Use) (apply.TaskSink, error) {
	return Open(ctx, Options{Task: spec.Name, Config: *configOf(spec), Spec: spec, Logger: use.Logger})
}

// Endpoints is the FE, host:port.
func (destination) Endpoints(spec *proto.TaskSpec) []string {
	u, err := url.Parse(configOf(spec).URL)
	if err != nil || u.Host == "" {
		return nil
	}
	if u.Port() != "" {
		return []string{u.Host}
	}
	port := "8030" // the FE's HTTP port
	if u.Scheme == "https" {
		port = "443"
	}
	return []string{net.JoinHostPort(u.Hostname(), port)}
}

// Classify sorts the sink's errors: an FE or BE out of reach, a dropped
// connection or a server error (5xx) is a connection failure; Doris's
// refusals (a statement, a load's data, credentials) are not.
func (destination) Classify(err error) proto.ErrorKind {
	var he *HTTPError
	if errors.As(err, &he) {
		if he.StatusCode >= 500 || he.StatusCode == 429 {
			return proto.ErrorConnection
		}
		return proto.ErrorOther
	}
	var le *LoadError
	if errors.As(err, &le) {
		if le.TooManyVersions() {
			return proto.ErrorConnection
		}
		return proto.ErrorOther
	}
	var se *SQLError
	var te *txnError
	if errors.As(err, &se) || errors.As(err, &te) {
		return proto.ErrorOther
	}
	if errors.Is(err, errMoved) {
		return proto.ErrorConnection
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return proto.ErrorConnection
	}
	return ""
}
