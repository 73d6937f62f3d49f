package secret

import (
	"net/url"
	"strings"

	"github.com/sluicedb/sluice/proto"
)

// destinationSecrets are the fields of the spec's destination that may
// hold secrets (the destination's config says which).
func destinationSecrets(s *proto.TaskSpec) []proto.SecretField {
	if s.Destination.Config == nil {
		return nil
	}
	return s.Destination.Config.Secrets()
}

// eachDestinationSecret replaces each secret the destination's fields
// hold by f's result: a field that is a secret whole, and the passwords
// inside a field that is a DSN or URL.
func eachDestinationSecret(s *proto.TaskSpec, f func(string) string) {
	for _, field := range destinationSecrets(s) {
		switch {
		case field.Kind == proto.SecretValue:
			*field.Value = f(*field.Value)
		case strings.Contains(*field.Value, "://") || strings.Contains(*field.Value, "="):
			*field.Value = proto.ReplaceSecrets(*field.Value, f)
		}
	}
}

// SealSpec replaces the inline secrets of a spec by sealed references
// (seal encrypts one secret's text), before the spec enters Raft: the
// source DSN's passwords, the destination's secrets (a DSN's passwords,
// the Kafka SASL password, the schema registry's password) and the alert
// webhook (its URL may hold a token anywhere). References (${env:...},
// ${file:...}) and values sealed already stay as they are. The spec must
// be the caller's own copy (TaskSpec.Clone): its fields change in place.
func SealSpec(s *proto.TaskSpec, seal func(string) (string, error)) error {
	var err error
	one := func(v string) string {
		if err != nil || v == "" || IsReference(v) || IsSealed(v) {
			return v
		}
		out, e := seal(v)
		if e != nil {
			err = e
			return v
		}
		return out
	}
	s.Source.DSN = proto.ReplaceSecrets(s.Source.DSN, one)
	eachDestinationSecret(s, one)
	if s.Alerts != nil {
		a := *s.Alerts
		a.Webhook = one(a.Webhook)
		s.Alerts = &a
	}
	return err
}

// UnsealSpec gives a spec its sealed secrets back, as they were written
// (the spec as its user wrote it: to compare with a new one, or to use).
// The spec must be the caller's own copy (TaskSpec.Clone).
func UnsealSpec(s *proto.TaskSpec) error {
	var err error
	one := func(v string) string {
		if err != nil || !IsSealed(v) {
			return v
		}
		out, e := unsealRefs(v)
		if e != nil {
			err = e
			return v
		}
		return out
	}
	s.Source.DSN = one(s.Source.DSN)
	for _, f := range destinationSecrets(s) {
		*f.Value = one(*f.Value)
	}
	if s.Alerts != nil {
		a := *s.Alerts
		a.Webhook = one(a.Webhook)
		s.Alerts = &a
	}
	return err
}

// unsealRefs replaces the sealed references in s, and only those.
func unsealRefs(s string) (string, error) {
	const open = refOpen + "sealed:"
	var b strings.Builder
	for {
		i := strings.Index(s, open)
		if i < 0 {
			break
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			break
		}
		v, err := Unseal(s[i+len(open) : i+end])
		if err != nil {
			return "", err
		}
		Register(v)
		b.WriteString(s[:i])
		b.WriteString(v)
		s = s[i+end+1:]
	}
	b.WriteString(s)
	return b.String(), nil
}

// ResolveField resolves a field's references: a field that is one
// reference takes the value as it is; inside a DSN or URL the value is
// written for it (percent-encoded, or quoted).
func ResolveField(s string) (string, error) {
	if IsReference(s) {
		return Resolve(s, Raw)
	}
	return Resolve(s, ContextOf(s))
}

// RegisterSpec records a spec's inline secrets for scrubbing (a spec
// just read from a request, before anything quotes it).
func RegisterSpec(s *proto.TaskSpec) {
	note := func(v string) string {
		if !IsReference(v) && !IsSealed(v) {
			Register(v, strings.Trim(v, "'"))
			if u, err := url.PathUnescape(v); err == nil {
				Register(u)
			}
		}
		return v
	}
	proto.ReplaceSecrets(s.Source.DSN, note)
	eachDestinationSecret(s, note)
	if s.Alerts != nil && s.Alerts.Webhook != "" {
		note(s.Alerts.Webhook)
		if u, err := url.Parse(s.Alerts.Webhook); err == nil {
			for _, vs := range u.Query() {
				for _, v := range vs {
					note(v)
				}
			}
		}
	}
}
