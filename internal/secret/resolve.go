package secret

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// References. A secret in a task spec can be given by reference, so that
// it never enters the Raft log: ${env:NAME} (an environment variable) or
// ${file:/path} (a file's content, without its trailing newline), inside
// a DSN or as a whole value (a SASL password, a webhook URL). Inline
// secrets are sealed before they enter Raft: ${sealed:v1:<key>:<data>}
// holds the secret's text encrypted with the cluster's key (see
// keyring.go). References are resolved on the node that opens the
// connection, at the moment it opens it.

// Context says how a resolved value is written where the reference was.
type Context uint8

const (
	// Raw: the value as it is (a whole field).
	Raw Context = iota
	// InURL: percent-encoded (a DSN or URL: user information, query).
	InURL
	// InKeywordValue: single-quoted, backslash-escaped (a libpq
	// keyword=value string).
	InKeywordValue
)

// ContextOf is the context of a DSN's references: a URL or keyword/value.
func ContextOf(dsn string) Context {
	if strings.Contains(dsn, "://") {
		return InURL
	}
	return InKeywordValue
}

const refOpen = "${"

// ErrReference: a reference could not be resolved here.
var ErrReference = errors.New("secret reference")

// Resolve replaces every reference in s by its value, written for ctx.
// Sealed values go back exactly as they were written. Every value read is
// registered for scrubbing.
func Resolve(s string, ctx Context) (string, error) {
	if !strings.Contains(s, refOpen) {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, refOpen)
		if i < 0 {
			break
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("%w: %q is not closed with '}'", ErrReference, s[i:min(len(s), i+12)])
		}
		ref := s[i+len(refOpen) : i+end]
		kind, arg, _ := strings.Cut(ref, ":")
		before := s[:i]
		s = s[i+end+1:]
		var v string
		switch kind {
		case "env":
			val, ok := os.LookupEnv(arg)
			if !ok || arg == "" {
				return "", fmt.Errorf("%w ${env:%s}: the environment variable is not set on this node", ErrReference, arg)
			}
			v = quoteFor(val, ctx, &before, &s)
			Register(val)
		case "file":
			b, err := os.ReadFile(arg)
			if err != nil {
				return "", fmt.Errorf("%w ${file:%s}: %w", ErrReference, arg, err)
			}
			val := strings.TrimRight(string(b), "\r\n")
			v = quoteFor(val, ctx, &before, &s)
			Register(val)
		case "sealed":
			val, err := Unseal(arg)
			if err != nil {
				return "", err
			}
			v = val // sealed as written: it goes back as written
			Register(val)
		default:
			return "", fmt.Errorf("%w ${%s}: use ${env:NAME} or ${file:/path}", ErrReference, kind)
		}
		b.WriteString(before)
		b.WriteString(v)
	}
	b.WriteString(s)
	return b.String(), nil
}

// quoteFor writes a value for its context. In a keyword/value string the
// value is single-quoted; a reference the user quoted already ('${...}')
// loses those quotes, which the value's own take over.
func quoteFor(v string, ctx Context, before, after *string) string {
	switch ctx {
	case InURL:
		return percentEncode(v)
	case InKeywordValue:
		if strings.HasSuffix(*before, "'") && strings.HasPrefix(*after, "'") {
			*before, *after = (*before)[:len(*before)-1], (*after)[1:]
		}
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
	}
	return v
}

// percentEncode escapes every byte but the unreserved ones (RFC 3986), so
// the value is safe in any part of a URL.
func percentEncode(v string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// Placeholder replaces every reference by "x", for reading what is not
// secret in a DSN (its host and port) without resolving anything.
func Placeholder(s string) string {
	for {
		i := strings.Index(s, refOpen)
		if i < 0 {
			return s
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return s
		}
		s = s[:i] + "x" + s[i+end+1:]
	}
}

// IsReference reports whether s is one reference and nothing else.
func IsReference(s string) bool {
	return strings.HasPrefix(s, refOpen) && strings.IndexByte(s, '}') == len(s)-1
}
