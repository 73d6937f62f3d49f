package pgconfig

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicedb/sluice/internal/secret"
	"github.com/sluicedb/sluice/proto"
)

// Classify sorts a PostgreSQL session's error into a retry window
// (invariant 7), for the source and a PostgreSQL-family destination
// alike: lost or refused connections, server shutdowns, too many
// connections and timeouts are connection failures; the server's other
// refusals (constraint violations, missing objects, permissions) are
// "other". It returns "" for an error that is not pgx's.
func Classify(err error) proto.ErrorKind {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:min(2, len(pgErr.Code))] {
		case "08", // connection exception
			"57": // operator intervention: admin/crash shutdown, cannot connect now
			return proto.ErrorConnection
		}
		if pgErr.Code == "53300" { // too many connections
			return proto.ErrorConnection
		}
		return proto.ErrorOther
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) {
		return proto.ErrorConnection
	}
	return ""
}

// Endpoint names the server of a DSN as host:port ("" if it does not
// parse): tasks whose source or destination is one server share the
// shortest retry window.
func Endpoint(dsn string) string {
	cfg, err := pgconn.ParseConfig(secret.Placeholder(dsn))
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
}

// ConnectProblem explains a failed connection in terms of what to change
// in side's DSN (side: "source", "destination").
func ConnectProblem(side string, err error) (msg, fix string) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01":
			return pgErr.Message, fmt.Sprintf("check the user and password in %s.dsn", side)
		case "28000":
			return pgErr.Message, "allow this client in the server's pg_hba.conf (host/database/user), then reload PostgreSQL"
		case "3D000":
			return pgErr.Message, fmt.Sprintf("check the database name in %s.dsn", side)
		case "53300":
			return pgErr.Message, "the server has no free connections: raise max_connections or close idle sessions"
		}
		return pgErr.Message, ""
	}
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return err.Error(), fmt.Sprintf("check host and port in %s.dsn; is PostgreSQL running and listening there (listen_addresses, port)?", side)
	case errors.As(err, &netErr) && netErr.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return err.Error(), "the server did not answer in time: check the address and any firewall in between"
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return err.Error(), fmt.Sprintf("check the host name in %s.dsn", side)
	}
	return err.Error(), ""
}
