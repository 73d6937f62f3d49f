package coordinator

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// API tokens. Every request to the HTTP API but GET /healthz carries
// "Authorization: Bearer <token>". A token is "sluice_<id>_<secret>": the
// id names it in lists and revocations, the secret is 32 random bytes.
// The replicated state keeps only the SHA-256 of the whole token (the
// secret has 256 bits of entropy, so a fast hash is enough: nothing can
// be guessed from it), so neither the Raft log nor a snapshot holds a
// token anyone could use.

// Scope is what a token may do.
type Scope uint8

const (
	// ScopeRead lists and reads tasks, their status, the cluster status
	// and the metrics.
	ScopeRead Scope = 1
	// ScopeAdmin does everything: creates, changes and deletes tasks,
	// drains and removes nodes, manages tokens.
	ScopeAdmin Scope = 2
)

func (s Scope) String() string {
	switch s {
	case ScopeRead:
		return "read"
	case ScopeAdmin:
		return "admin"
	}
	return fmt.Sprintf("scope(%d)", uint8(s))
}

// ParseScope reads "read" or "admin".
func ParseScope(s string) (Scope, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "read":
		return ScopeRead, nil
	case "admin":
		return ScopeAdmin, nil
	}
	return 0, fmt.Errorf("scope %q: use read or admin", s)
}

// Allows reports whether a token of scope s may do what needs scope need.
func (s Scope) Allows(need Scope) bool { return s >= need }

// MarshalText and UnmarshalText write the scope by name ("" for none,
// which no valid token has: the FSM refuses it).
func (s Scope) MarshalText() ([]byte, error) {
	if s == 0 {
		return nil, nil
	}
	return []byte(s.String()), nil
}

func (s *Scope) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*s = 0
		return nil
	}
	v, err := ParseScope(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Token is an API token as the state keeps it: never the secret.
type Token struct {
	ID        string    `json:"id"`
	Name      string    `json:"name,omitempty"`
	Scope     Scope     `json:"scope"`
	Hash      string    `json:"hash"` // hex SHA-256 of the whole token
	CreatedAt time.Time `json:"created_at"`
	// Bootstrap marks the admin token a new cluster made for itself.
	Bootstrap bool `json:"bootstrap,omitempty"`
}

// TokenInfo is what the API shows of a token.
type TokenInfo struct {
	ID        string    `json:"id"`
	Name      string    `json:"name,omitempty"`
	Scope     Scope     `json:"scope"`
	CreatedAt time.Time `json:"created_at"`
	Bootstrap bool      `json:"bootstrap,omitempty"`
}

func (t *Token) info() TokenInfo {
	return TokenInfo{ID: t.ID, Name: t.Name, Scope: t.Scope, CreatedAt: t.CreatedAt, Bootstrap: t.Bootstrap}
}

const tokenPrefix = "sluice_"

var (
	tokenIDRe   = regexp.MustCompile(`^[0-9a-f]{12}$`)
	tokenNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$`)
)

// NewToken makes a token: its text (shown once, to whoever asked for it)
// and its record for the state.
func NewToken(name string, scope Scope, at time.Time) (string, Token, error) {
	if scope != ScopeRead && scope != ScopeAdmin {
		return "", Token{}, fmt.Errorf("token scope %d: use read or admin", scope)
	}
	if name != "" && !tokenNameRe.MatchString(name) {
		return "", Token{}, fmt.Errorf("token name %q: 1 to 64 letters, digits, spaces and . _ @ -", name)
	}
	var id [6]byte
	var secret [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", Token{}, err
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return "", Token{}, err
	}
	t := Token{ID: hex.EncodeToString(id[:]), Name: name, Scope: scope, CreatedAt: at.UTC()}
	text := tokenPrefix + t.ID + "_" + base64.RawURLEncoding.EncodeToString(secret[:])
	t.Hash = hashToken(text)
	return text, t, nil
}

func hashToken(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])
}

// tokenID reads the id out of a token's text ("" when it is not one).
func tokenID(text string) string {
	rest, ok := strings.CutPrefix(text, tokenPrefix)
	if !ok {
		return ""
	}
	id, _, ok := strings.Cut(rest, "_")
	if !ok || !tokenIDRe.MatchString(id) {
		return ""
	}
	return id
}

// Token commands.
const (
	CmdCreateToken CommandType = 21
	CmdRevokeToken CommandType = 22
)

// CreateToken records a new token. With Token.Bootstrap it is the first
// admin token of a new cluster, refused (ErrBootstrapped) once one was
// made, so two leaders racing at a cluster's start make one between them.
type CreateToken struct {
	Token Token `json:"token"`
}

// RevokeToken forgets a token: requests carrying it are refused at once.
type RevokeToken struct {
	ID string `json:"id"`
}

func (CreateToken) Type() CommandType { return CmdCreateToken }
func (RevokeToken) Type() CommandType { return CmdRevokeToken }

var (
	// ErrTokenNotFound: no token of that id.
	ErrTokenNotFound = errors.New("token not found")
	// ErrBootstrapped: the cluster made its first admin token already.
	ErrBootstrapped = errors.New("the cluster's first admin token exists already")
)

func init() {
	register(applyCreateToken)
	register(applyRevokeToken)
}

func applyCreateToken(d *data, _ uint64, cmd *CreateToken) error {
	t := cmd.Token
	if !tokenIDRe.MatchString(t.ID) || len(t.Hash) != 64 {
		return errors.New("create token: bad id or hash")
	}
	if t.Scope != ScopeRead && t.Scope != ScopeAdmin {
		return fmt.Errorf("create token: bad scope %d", t.Scope)
	}
	if t.Bootstrap && d.Bootstrapped {
		return ErrBootstrapped
	}
	if _, ok := d.Tokens[t.ID]; ok {
		return fmt.Errorf("create token: id %s exists", t.ID)
	}
	if d.Tokens == nil {
		d.Tokens = map[string]*Token{}
	}
	d.Tokens[t.ID] = &t
	if t.Bootstrap {
		d.Bootstrapped = true
	}
	return nil
}

func applyRevokeToken(d *data, _ uint64, cmd *RevokeToken) error {
	if _, ok := d.Tokens[cmd.ID]; !ok {
		return fmt.Errorf("%w: %s", ErrTokenNotFound, cmd.ID)
	}
	delete(d.Tokens, cmd.ID)
	return nil
}

// Authenticate returns the token a request's bearer text is, if the
// state knows it. The comparison of hashes takes constant time.
func (s *Store) Authenticate(text string) (TokenInfo, bool) {
	id := tokenID(text)
	if id == "" {
		return TokenInfo{}, false
	}
	s.mu.RLock()
	t, ok := s.data.Tokens[id]
	s.mu.RUnlock()
	if !ok || subtle.ConstantTimeCompare([]byte(t.Hash), []byte(hashToken(text))) != 1 {
		return TokenInfo{}, false
	}
	return t.info(), true
}

// TokenList lists the tokens, oldest first.
func (s *Store) TokenList() []TokenInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]TokenInfo, 0, len(s.data.Tokens))
	for _, t := range s.data.Tokens {
		out = append(out, t.info())
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Bootstrapped reports whether the cluster made its first admin token.
func (s *Store) Bootstrapped() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.data.Bootstrapped
}

// Authenticate, TokenList and Bootstrapped read the local state.
func (c *Coordinator) Authenticate(text string) (TokenInfo, bool) { return c.store.Authenticate(text) }
func (c *Coordinator) TokenList() []TokenInfo                     { return c.store.TokenList() }
func (c *Coordinator) Bootstrapped() bool                         { return c.store.Bootstrapped() }
