package proto

import (
	"net/url"
	"strings"
)

// Redaction of connection strings and URLs. A DSN is read the way its
// consumers read it (a URL's user information, a libpq keyword/value
// list) rather than matched by patterns, and where a string is unclear
// more is masked, never less: a password with an unencoded '@', '/',
// '?' or a quote must not leave a tail behind.

// masked replaces every secret shown.
const masked = "xxxxx"

// secretKeys are the connection parameters that hold secrets.
var secretKeys = map[string]bool{"password": true, "sslpassword": true}

// RedactDSN masks the password of a PostgreSQL DSN, URL
// (postgres://user:pass@host/db?password=...) or keyword/value
// (host=h password='p w') form.
func RedactDSN(dsn string) string {
	return replaceSpans(dsn, SecretSpans(dsn), func(string) string { return masked })
}

// Span is a part of a string: s[Start:End].
type Span struct{ Start, End int }

// SecretSpans are the parts of a DSN that hold secrets, in order: a URL's
// password and secret query values, a keyword/value string's secret
// values (with their quotes). Where a string cannot be read, its rest is
// one span.
func SecretSpans(dsn string) []Span {
	if i := strings.Index(dsn, "://"); i >= 0 {
		return urlSpans(dsn, i+3, true)
	}
	return keywordValueSpans(dsn)
}

// ReplaceSecrets rewrites each secret span of a DSN with f of its text.
func ReplaceSecrets(dsn string, f func(secret string) string) string {
	return replaceSpans(dsn, SecretSpans(dsn), f)
}

func replaceSpans(s string, spans []Span, f func(string) string) string {
	if len(spans) == 0 {
		return s
	}
	var b strings.Builder
	last := 0
	for _, sp := range spans {
		b.WriteString(s[last:sp.Start])
		b.WriteString(f(s[sp.Start:sp.End]))
		last = sp.End
	}
	b.WriteString(s[last:])
	return b.String()
}

// RedactURL masks a URL's password and the values of its query
// parameters (a webhook's ?token=...), keeping their names.
func RedactURL(raw string) string {
	i := strings.Index(raw, "://")
	if i < 0 {
		return masked
	}
	return replaceSpans(raw, urlSpans(raw, i+3, false), func(string) string { return masked })
}

// urlSpans finds, after the scheme (start is the index after "://"), the
// password: everything between the user name and the last '@' (the user
// information may hold any character, as url.Parse reads it: the host
// cannot hold an '@', so the last one ends it); then the query's secret
// parameters' values (all values unless onlySecrets).
func urlSpans(s string, start int, onlySecrets bool) []Span {
	var spans []Span
	pos := start
	rest := s[start:]
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		if colon := strings.IndexByte(rest[:at], ':'); colon >= 0 {
			spans = append(spans, Span{start + colon + 1, start + at})
		}
		pos = start + at + 1
	}
	q := strings.IndexByte(s[pos:], '?')
	if q < 0 {
		return spans
	}
	pos += q + 1
	query := s[pos:]
	if h := strings.IndexByte(query, '#'); h >= 0 {
		query = query[:h]
	}
	for _, kv := range strings.Split(query, "&") {
		k, v, hasValue := strings.Cut(kv, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if hasValue && (!onlySecrets || secretKeys[strings.ToLower(name)]) {
			vs := pos + len(k) + 1
			spans = append(spans, Span{vs, vs + len(v)})
		}
		pos += len(kv) + 1
	}
	return spans
}

// keywordValueSpans finds the secret values of a libpq keyword/value
// string: keyword = value pairs separated by whitespace, a value either
// single-quoted (backslash escapes a quote or a backslash) or running to
// the next whitespace (backslash escapes there too). From text it cannot
// read on, everything is one span.
func keywordValueSpans(s string) []Span {
	var spans []Span
	i := 0
	for i < len(s) {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i >= len(s) {
			break
		}
		j := i
		for j < len(s) && s[j] != '=' && !isSpace(s[j]) {
			j++
		}
		key := s[i:j]
		for j < len(s) && isSpace(s[j]) {
			j++
		}
		if j >= len(s) || s[j] != '=' {
			return append(spans, Span{i, len(s)}) // not keyword=value
		}
		j++
		for j < len(s) && isSpace(s[j]) {
			j++
		}
		v := j
		if v < len(s) && s[v] == '\'' {
			v++
			closed := false
			for v < len(s) {
				if s[v] == '\\' {
					v += 2
					continue
				}
				if s[v] == '\'' {
					v++
					closed = true
					break
				}
				v++
			}
			if !closed {
				return append(spans, Span{j, len(s)})
			}
		} else {
			for v < len(s) && !isSpace(s[v]) {
				if s[v] == '\\' {
					v++
				}
				v++
			}
		}
		v = min(v, len(s))
		if secretKeys[strings.ToLower(key)] {
			spans = append(spans, Span{j, v})
		}
		i = v
	}
	return spans
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// RedactText masks what looks like a secret in free text, such as an
// error message that quotes a DSN: the user information and secret
// parameters of every URL in it, and the value after every "password=".
// It is a second line behind the exact redaction of known secrets
// (internal/secret), for messages that quote a DSN Sluice never saw whole.
func RedactText(msg string) string {
	if !strings.Contains(msg, "://") && !strings.Contains(strings.ToLower(msg), "password") {
		return msg
	}
	var b strings.Builder
	for {
		i := strings.Index(msg, "://")
		if i < 0 {
			break
		}
		// The URL runs from its scheme to the next whitespace or quote.
		s := i
		for s > 0 && isSchemeByte(msg[s-1]) {
			s--
		}
		e := i + 3
		for e < len(msg) && !isSpace(msg[e]) && msg[e] != '"' && msg[e] != '`' && msg[e] != '\'' {
			e++
		}
		b.WriteString(redactPasswords(msg[:s]))
		u := msg[s:e]
		b.WriteString(replaceSpans(u, urlSpans(u, i-s+3, true), func(string) string { return masked }))
		msg = msg[e:]
	}
	b.WriteString(redactPasswords(msg))
	return b.String()
}

// redactPasswords masks the value after each "password=" in text.
func redactPasswords(s string) string {
	lower := strings.ToLower(s)
	var b strings.Builder
	for {
		i := strings.Index(lower, "password")
		if i < 0 {
			break
		}
		j := i + len("password")
		k := j
		for k < len(s) && isSpace(s[k]) {
			k++
		}
		if k >= len(s) || s[k] != '=' {
			b.WriteString(s[:j])
			s, lower = s[j:], lower[j:]
			continue
		}
		k++
		for k < len(s) && isSpace(s[k]) {
			k++
		}
		// The value: quoted, or to the next whitespace.
		v := k
		if v < len(s) && s[v] == '\'' {
			v++
			for v < len(s) && s[v] != '\'' {
				if s[v] == '\\' {
					v++
				}
				v++
			}
			v = min(v+1, len(s))
		} else {
			for v < len(s) && !isSpace(s[v]) {
				v++
			}
		}
		b.WriteString(s[:k] + masked)
		s, lower = s[v:], lower[v:]
	}
	b.WriteString(s)
	return b.String()
}

func isSchemeByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'
}
