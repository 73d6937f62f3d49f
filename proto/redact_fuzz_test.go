package proto

import (
	"net/url"
	"strings"
	"testing"
)

// RedactDSN stands between a task's DSNs and every log line, `task get`
// and error message. Whatever the password, the redacted DSN must not
// show it: not whole, not escaped the way the DSN carries it, and not in
// part (a piece of it cut at one of its punctuation characters, which is
// where a parser that misreads the DSN stops).
//
// The DSNs are built from a user, a password and a host in the forms users
// write (the fixed parts are in dsnForms). Inputs that would make the DSN
// ambiguous or the check meaningless are skipped, not failed: a user or
// host that is not a plain word, a password shorter than 4 bytes, and any
// piece of the password that the redacted DSN shows anyway (because it is
// part of the user, the host, the fixed text or the mask: what RedactDSN
// prints for the same DSN with another password).
func FuzzRedactDSN(f *testing.F) {
	for _, s := range [][3]string{
		{"repl", "p@ss:w/rd", "10.0.0.5"},
		{"app", "sec ret'x", "db.internal"},
		{"u", "a@b@c@d", "h"},
		{"admin", "ümlaut%20x", "localhost"},
		{"repl", "secret", "10.0.0.5"},
		{"app", "it's-a-secret", "db-1.example.com"},
		{"x_y", `back\slash'quote`, "h1"},
		{"u", "pass word=x&y z", "h"},
		{"u", "p?a#s/s:w", "h"},
		{"u", "@@@@", "h"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, user, password, host string) {
		if len(password) < 4 || !plainDSNWord(user) || !plainDSNWord(host) {
			return
		}
		const other = "Zq7Zq7Zq7Zq7" // a password that shares nothing with the DSN's text
		if strings.Contains(user+host, password) {
			return
		}
		for _, form := range dsnForms {
			dsn := form.build(user, password, host)
			got := RedactDSN(dsn)
			shown := RedactDSN(form.build(user, other, host))
			leaks := func(s string) bool {
				return len(s) >= 4 && strings.Contains(got, s) && !strings.Contains(shown, s)
			}
			whole := []string{password, url.QueryEscape(password), url.PathEscape(password), userinfoEscape(password), libpqQuote(password)}
			for _, s := range whole {
				if leaks(s) {
					t.Fatalf("%s: RedactDSN(%q) = %q shows the password (as %q)", form.name, dsn, got, s)
				}
			}
			if !form.unambiguous(dsn, user, password, host) {
				continue // the password is not what pgx would read: only whole forms are checked
			}
			for _, piece := range passwordPieces(password) {
				if leaks(piece) || leaks(form.escape(piece)) {
					t.Fatalf("%s: RedactDSN(%q) = %q shows part of the password (%q)", form.name, dsn, got, piece)
				}
			}
		}
	})
}

// dsnForm builds one way of writing a DSN with a password.
type dsnForm struct {
	name  string
	build func(user, password, host string) string
	// escape is how the form writes the password (and its pieces).
	escape func(string) string
	// unambiguous reports whether the DSN carries exactly the password,
	// as the drivers read it.
	unambiguous func(dsn, user, password, host string) bool
}

var dsnForms = []dsnForm{
	{
		name: "URL, password raw",
		build: func(user, password, host string) string {
			return "postgres://" + user + ":" + password + "@" + host + ":5432/db"
		},
		escape: func(s string) string { return s },
		// pgx parses URLs with net/url: with a '/', '?', '#' or '%' in the
		// password it reads another password (or none).
		unambiguous: func(dsn, user, password, host string) bool {
			u, err := url.Parse(dsn)
			if err != nil || u.User == nil {
				return false
			}
			p, ok := u.User.Password()
			return ok && p == password && u.User.Username() == user && u.Hostname() == host
		},
	},
	{
		name: "URL, userinfo escaped",
		build: func(user, password, host string) string {
			return (&url.URL{Scheme: "postgresql", User: url.UserPassword(user, password), Host: host + ":5432", Path: "/db"}).String()
		},
		escape:      userinfoEscape,
		unambiguous: func(string, string, string, string) bool { return true },
	},
	{
		name: "URL, password parameter",
		build: func(user, password, host string) string {
			return "postgres://" + user + "@" + host + ":5432/db?sslmode=require&password=" + url.QueryEscape(password) + "&application_name=x"
		},
		escape:      url.QueryEscape,
		unambiguous: func(string, string, string, string) bool { return true },
	},
	{
		name: "keyword/value",
		build: func(user, password, host string) string {
			return "host=" + host + " port=5432 user=" + user + " password='" + libpqQuote(password) + "' dbname=db sslmode=disable"
		},
		escape:      libpqQuote,
		unambiguous: func(string, string, string, string) bool { return true },
	},
}

// plainDSNWord: a user or host name that needs no quoting or escaping in
// any form, so it cannot change how the DSN parses.
func plainDSNWord(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// libpqQuote escapes a value for a single-quoted keyword/value DSN value.
func libpqQuote(s string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s)
}

// userinfoEscape is the password as url.UserPassword writes it.
func userinfoEscape(s string) string {
	return strings.TrimPrefix(url.UserPassword("", s).String(), ":")
}

// passwordPieces are the password's heads and tails cut at each byte that
// is not a letter or digit: what is left when a parser stops there.
func passwordPieces(p string) []string {
	var out []string
	for i := 0; i < len(p); i++ {
		c := p[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			continue
		}
		if i > 0 {
			out = append(out, p[:i])
		}
		if i+1 < len(p) {
			out = append(out, p[i+1:])
		}
	}
	return out
}
