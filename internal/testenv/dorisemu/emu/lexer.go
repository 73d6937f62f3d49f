package emu

import (
	"fmt"
	"strings"
)

// tokKind classifies SQL tokens.
type tokKind uint8

const (
	tokEOF    tokKind = iota
	tokIdent          // bare word: keyword or name
	tokQuoted         // `backquoted` name
	tokString         // 'text' or "text", unescaped
	tokNumber         // 12, -3, 1.5
	tokVar            // @@name or @name
	tokPunct          // ( ) , . = ; and other single characters
)

type token struct {
	kind tokKind
	text string // unescaped value for strings and quoted names
	pos  int    // byte offset in the statement
	end  int
}

// is reports whether t is the bare keyword kw (case-insensitive).
func (t token) is(kw string) bool {
	return t.kind == tokIdent && strings.EqualFold(t.text, kw)
}

// isName reports whether t can name a database, table or column.
func (t token) isName() bool { return t.kind == tokIdent || t.kind == tokQuoted }

// lex splits a statement into tokens. Strings take MySQL's backslash
// escapes and doubled quotes; comments (--, #, /* */) are dropped.
func lex(s string) ([]token, error) {
	var out []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#' || (c == '-' && i+1 < len(s) && s[i+1] == '-'):
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			j := strings.Index(s[i+2:], "*/")
			if j < 0 {
				return nil, fmt.Errorf("unterminated comment at %d", i)
			}
			i += j + 4
		case c == '\'' || c == '"' || c == '`':
			text, n, err := lexQuoted(s[i:], c)
			if err != nil {
				return nil, fmt.Errorf("%v at position %d", err, i)
			}
			k := tokString
			if c == '`' {
				k = tokQuoted
			}
			out = append(out, token{kind: k, text: text, pos: i, end: i + n})
			i += n
		case c == '@':
			j := i + 1
			for j < len(s) && (isWordByte(s[j]) || s[j] == '@' || s[j] == '.') {
				j++
			}
			out = append(out, token{kind: tokVar, text: s[i:j], pos: i, end: j})
			i = j
		case c >= '0' && c <= '9' || (c == '.' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9'):
			j := i
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.' ||
				((s[j] == 'e' || s[j] == 'E') && j+1 < len(s)) ||
				((s[j] == '+' || s[j] == '-') && (s[j-1] == 'e' || s[j-1] == 'E'))) {
				j++
			}
			out = append(out, token{kind: tokNumber, text: s[i:j], pos: i, end: j})
			i = j
		case isWordByte(c):
			j := i
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			out = append(out, token{kind: tokIdent, text: s[i:j], pos: i, end: j})
			i = j
		default:
			// Two-character operators stay whole so WHERE clauses
			// survive a round trip through the tokens.
			n := 1
			if i+1 < len(s) {
				switch s[i : i+2] {
				case "<=", ">=", "<>", "!=", "||", "&&", ":=":
					n = 2
				}
			}
			out = append(out, token{kind: tokPunct, text: s[i : i+n], pos: i, end: i + n})
			i += n
		}
	}
	return out, nil
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// lexQuoted reads a quoted run starting at s[0] == q and returns its
// unescaped text and length. Backquoted names only double their quote.
func lexQuoted(s string, q byte) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		if c == q {
			if i+1 < len(s) && s[i+1] == q {
				b.WriteByte(q)
				i++
				continue
			}
			return b.String(), i + 1, nil
		}
		if c == '\\' && q != '`' && i+1 < len(s) {
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '0':
				b.WriteByte(0)
			case 'b':
				b.WriteByte('\b')
			case 'Z':
				b.WriteByte(26)
			default:
				b.WriteByte(s[i])
			}
			continue
		}
		b.WriteByte(c)
	}
	return "", 0, fmt.Errorf("unterminated quoted text")
}

// parser walks a token list.
type parser struct {
	src  string
	toks []token
	i    int
}

func newParser(src string) (*parser, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, syntaxError(err.Error())
	}
	// A trailing semicolon is allowed; anything after it is a second
	// statement, which the HTTP API refuses.
	if n := len(toks); n > 0 && toks[n-1].kind == tokPunct && toks[n-1].text == ";" {
		toks = toks[:n-1]
	}
	return &parser{src: src, toks: toks}, nil
}

func (p *parser) peek() token {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return token{kind: tokEOF, pos: len(p.src), end: len(p.src)}
}

func (p *parser) peekAt(k int) token {
	if p.i+k < len(p.toks) {
		return p.toks[p.i+k]
	}
	return token{kind: tokEOF, pos: len(p.src), end: len(p.src)}
}

func (p *parser) next() token {
	t := p.peek()
	if p.i < len(p.toks) {
		p.i++
	}
	return t
}

func (p *parser) eof() bool { return p.i >= len(p.toks) }

// accept consumes the keyword (or punctuation) when it comes next.
func (p *parser) accept(words ...string) bool {
	for k, w := range words {
		t := p.peekAt(k)
		if !(t.is(w) || (t.kind == tokPunct && t.text == w)) {
			return false
		}
	}
	p.i += len(words)
	return true
}

func (p *parser) expect(words ...string) error {
	if !p.accept(words...) {
		return p.errorf("expected %s", strings.Join(words, " "))
	}
	return nil
}

func (p *parser) name() (string, error) {
	t := p.peek()
	if !t.isName() {
		return "", p.errorf("expected a name")
	}
	p.i++
	return t.text, nil
}

// qualifiedName reads name or db.name.
func (p *parser) qualifiedName() (db, name string, err error) {
	name, err = p.name()
	if err != nil {
		return "", "", err
	}
	if p.accept(".") {
		db = name
		if name, err = p.name(); err != nil {
			return "", "", err
		}
	}
	return db, name, nil
}

func (p *parser) int() (int, error) {
	t := p.peek()
	if t.kind != tokNumber {
		return 0, p.errorf("expected a number")
	}
	var n int
	if _, err := fmt.Sscanf(t.text, "%d", &n); err != nil {
		return 0, p.errorf("expected an integer")
	}
	p.i++
	return n, nil
}

func (p *parser) str() (string, error) {
	t := p.peek()
	if t.kind != tokString {
		return "", p.errorf("expected a quoted string")
	}
	p.i++
	return t.text, nil
}

// nameList reads ( a, b, ... ).
func (p *parser) nameList() ([]string, error) {
	if err := p.expect("("); err != nil {
		return nil, err
	}
	var names []string
	for {
		n, err := p.name()
		if err != nil {
			return nil, err
		}
		names = append(names, n)
		if p.accept(")") {
			return names, nil
		}
		if err := p.expect(","); err != nil {
			return nil, err
		}
	}
}

// skipBalanced skips one token, or a whole parenthesised group.
func (p *parser) skipBalanced() {
	depth := 0
	for !p.eof() {
		t := p.next()
		if t.kind == tokPunct && t.text == "(" {
			depth++
		} else if t.kind == tokPunct && t.text == ")" {
			depth--
		}
		if depth <= 0 {
			return
		}
	}
}

// rest returns the source text from the current token to the end.
func (p *parser) rest() string {
	return strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(p.src[p.peek().pos:]), ";"))
}

func (p *parser) errorf(format string, args ...any) error {
	t := p.peek()
	near := "end of input"
	if t.kind != tokEOF {
		near = fmt.Sprintf("'%s'", p.src[t.pos:t.end])
	}
	return syntaxError(fmt.Sprintf(format, args...) + ", near " + near)
}
