// Package pgconfig parses connection strings for Sluice's PostgreSQL
// sessions and pins the settings that decide how values look in text form.
//
// Values travel from source to destination in PostgreSQL's text form
// (DESIGN.md invariant 6). The text form of dates, intervals, bytea,
// money and time zones depends on session settings, so every session that
// produces text (the walsender decoding pgoutput, COPY TO of full sync) and
// every session that parses it (COPY FROM, apply) uses the same ones.
package pgconfig

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicedb/sluice/internal/secret"
)

// RuntimeParams are set in every Sluice session's startup packet.
var RuntimeParams = map[string]string{
	"DateStyle":       "ISO, MDY",
	"IntervalStyle":   "postgres",
	"TimeZone":        "UTC",
	"bytea_output":    "hex",
	"client_encoding": "UTF8",
	"lc_monetary":     "C",
	// Shortest exact float output (the PostgreSQL 12+ default, pinned).
	"extra_float_digits": "1",
}

// Parse parses a DSN into a pgx config with Sluice's session settings.
// The application name says which part of Sluice holds the session, so an
// operator can tell them apart in pg_stat_activity.
func Parse(dsn, application string) (*pgx.ConnConfig, error) {
	dsn, err := resolve(dsn)
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse DSN: %s", secret.Scrub(err.Error()))
	}
	secret.Register(cfg.Password)
	apply(&cfg.Config, application)
	return cfg, nil
}

// resolve reads the DSN's secret references (${env:...}, ${file:...},
// sealed passwords) here, on the node that connects; what they hold is
// registered for scrubbing, and so is the password the caller parses
// out (the rest of a DSN, host and user, stays readable in messages).
func resolve(dsn string) (string, error) {
	resolved, err := secret.ResolveField(dsn)
	if err != nil {
		return "", fmt.Errorf("DSN: %w", err)
	}
	return resolved, nil
}

// ParseReplication parses a DSN for a logical replication session.
func ParseReplication(dsn, application string) (*pgconn.Config, error) {
	dsn, err := resolve(dsn)
	if err != nil {
		return nil, err
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse DSN: %s", secret.Scrub(err.Error()))
	}
	secret.Register(cfg.Password)
	apply(cfg, application)
	cfg.RuntimeParams["replication"] = "database"
	return cfg, nil
}

func apply(cfg *pgconn.Config, application string) {
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	for k, v := range RuntimeParams {
		cfg.RuntimeParams[k] = v
	}
	if application != "" {
		cfg.RuntimeParams["application_name"] = application
	}
}

// ParsePool parses a DSN into a pgxpool config with Sluice's settings.
func ParsePool(dsn, application string) (*pgxpool.Config, error) {
	dsn, err := resolve(dsn)
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse DSN: %s", secret.Scrub(err.Error()))
	}
	secret.Register(cfg.ConnConfig.Password)
	apply(&cfg.ConnConfig.Config, application)
	return cfg, nil
}

// Connect opens one session with Sluice's settings.
func Connect(ctx context.Context, dsn, application string) (*pgx.Conn, error) {
	cfg, err := Parse(dsn, application)
	if err != nil {
		return nil, err
	}
	return pgx.ConnectConfig(ctx, cfg)
}

// Database is the database a DSN names ("" when it cannot be parsed).
func Database(dsn string) string {
	cfg, err := pgconn.ParseConfig(secret.Placeholder(dsn))
	if err != nil {
		return ""
	}
	return cfg.Database
}
