package proto

import (
	"errors"
	"fmt"
	"strings"
)

// Row filters are SQL conditions a user writes and Sluice places inside a
// WHERE clause: in the publication (CREATE PUBLICATION ... WHERE (f)), in
// the full sync's COPY (SELECT ... WHERE (f)) and in the precheck. What
// the user writes must stay one expression inside those parentheses: a
// ')' that closes them, a ';' that ends the statement or a comment that
// swallows what follows would let a filter run SQL of its own with the
// task's credentials. CheckFilter reads the filter the way PostgreSQL's
// lexer does (string constants in all their forms, quoted identifiers,
// comments) and refuses those; PostgreSQL itself then checks at the
// precheck that it parses as one boolean expression of the table.

// ErrBadFilter is the error of every filter CheckFilter refuses.
var ErrBadFilter = errors.New("not one SQL condition")

// FilterCondition is the filter as a parenthesized condition to place
// after WHERE, or an error if it could break out of it. The closing
// parenthesis is on a line of its own, so nothing can comment it out.
func FilterCondition(f string) (string, error) {
	if err := CheckFilter(f); err != nil {
		return "", err
	}
	return "(" + f + "\n)", nil
}

// CheckFilter refuses a filter that is empty or that, placed inside
// parentheses, would not stay there: unbalanced parentheses, ';' or a
// comment outside string constants and quoted identifiers, or an
// unterminated constant. ';' and parentheses inside constants and quoted
// identifiers are fine ("note <> ';'").
func CheckFilter(f string) error {
	if strings.TrimSpace(f) == "" {
		return fmt.Errorf("%w: the filter is empty", ErrBadFilter)
	}
	if strings.IndexByte(f, 0) >= 0 {
		return fmt.Errorf("%w: the filter holds a NUL byte", ErrBadFilter)
	}
	depth := 0
	for i := 0; i < len(f); {
		c := f[i]
		switch {
		case c == '\'':
			// 'text' with '' for a quote; E'...' also takes backslash
			// escapes. A standard-conforming string has none.
			escapes := i > 0 && (f[i-1] == 'e' || f[i-1] == 'E') && (i == 1 || !isIdentByte(f[i-2]))
			end, ok := skipQuoted(f, i+1, '\'', escapes)
			if !ok {
				return fmt.Errorf("%w: a string constant is not closed", ErrBadFilter)
			}
			i = end
		case c == '"':
			end, ok := skipQuoted(f, i+1, '"', false)
			if !ok {
				return fmt.Errorf("%w: a quoted identifier is not closed", ErrBadFilter)
			}
			i = end
		case c == '$' && (i == 0 || !isIdentByte(f[i-1])):
			// $tag$ ... $tag$ (a dollar-quoted constant), or $1 (a
			// parameter, which a filter cannot use: PostgreSQL says so).
			tag, ok := dollarTag(f[i:])
			if !ok {
				i++
				continue
			}
			end := strings.Index(f[i+len(tag):], tag)
			if end < 0 {
				return fmt.Errorf("%w: a dollar-quoted constant is not closed", ErrBadFilter)
			}
			i += len(tag) + end + len(tag)
		case c == '-' && i+1 < len(f) && f[i+1] == '-', c == '/' && i+1 < len(f) && f[i+1] == '*':
			return fmt.Errorf("%w: comments are not allowed in a filter", ErrBadFilter)
		case c == ';':
			return fmt.Errorf("%w: ';' ends a statement (inside quotes it is fine: note <> ';')", ErrBadFilter)
		case c == '(':
			depth++
			i++
		case c == ')':
			if depth--; depth < 0 {
				return fmt.Errorf("%w: a ')' closes a parenthesis the filter did not open", ErrBadFilter)
			}
			i++
		default:
			i++
		}
	}
	if depth != 0 {
		return fmt.Errorf("%w: %d parenthesis not closed", ErrBadFilter, depth)
	}
	return nil
}

// skipQuoted returns the index after the quote closing a constant that
// starts at i, a doubled quote being one quote inside it.
func skipQuoted(s string, i int, quote byte, backslash bool) (int, bool) {
	for i < len(s) {
		switch {
		case backslash && s[i] == '\\':
			i += 2
		case s[i] == quote:
			if i+1 < len(s) && s[i+1] == quote {
				i += 2
				continue
			}
			return i + 1, true
		default:
			i++
		}
	}
	return 0, false
}

// dollarTag reads "$tag$" (tag: letters, digits, '_', not starting with
// a digit; possibly empty) at the start of s.
func dollarTag(s string) (string, bool) {
	for j := 1; j < len(s); j++ {
		c := s[j]
		switch {
		case c == '$':
			return s[:j+1], true
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80:
		case c >= '0' && c <= '9' && j > 1:
		default:
			return "", false
		}
	}
	return "", false
}

func isIdentByte(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}
