package coordinator

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Who may call what. The public API takes bearer tokens; the internal
// endpoints (forwarded Raft commands, joins, heartbeats, the keyring)
// answer only to a peer presenting a node certificate of the cluster's
// CA, so neither a token nor a network position gets a client into them.

// internalPrefix holds the node-to-node endpoints.
const internalPrefix = "/internal/v1/"

// Paths of the internal endpoints: forwarded commands, where nodes join
// and heartbeat.
const (
	applyPath     = internalPrefix + "apply"
	RegisterPath  = internalPrefix + "nodes"
	HeartbeatPath = internalPrefix + "heartbeat"
)

// forwardedForHeader names the node a follower forwards an internal
// request for (a joining node asks any peer, which passes the request on
// to the leader). The leader believes it only from a node certificate.
const forwardedForHeader = "X-Sluice-Forwarded-For-Node"

// requiredScope is the scope a public request needs: reads need read,
// everything else admin. Tokens are managed by admins only, lists too.
func requiredScope(r *http.Request) Scope {
	if strings.HasPrefix(r.URL.Path, "/api/v1/tokens") {
		return ScopeAdmin
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return ScopeRead
	}
	return ScopeAdmin
}

type tokenKey struct{}

// RequireToken lets a request through when it carries a token with the
// scope need (nil need: the scope requiredScope gives), and answers 401
// or 403 otherwise. hint says where a token comes from (shown in the 401).
func RequireToken(c *Coordinator, need func(*http.Request) Scope, hint string, next http.Handler) http.Handler {
	if need == nil {
		need = requiredScope
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		text, ok := bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
			writeError(w, http.StatusUnauthorized, "this request needs an API token: send the header \"Authorization: Bearer <token>\" (the CLI takes --token, --token-file, SLUICE_TOKEN or its client config)"+hint)
			return
		}
		tok, ok := c.Authenticate(text)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "the API token is not valid (revoked, mistyped, or from another cluster)"+hint)
			return
		}
		if s := need(r); !tok.Scope.Allows(s) {
			writeError(w, http.StatusForbidden, fmt.Sprintf("token %s has scope %s; this request needs %s (sluice token create --scope %s)", tok.ID, tok.Scope, s, s))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, tok)))
	})
}

// bearer reads the token of "Authorization: Bearer <token>".
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, text, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	text = strings.TrimSpace(text)
	return text, text != ""
}

type peerNodeKey struct{}

// requireNode lets a request through only from a peer presenting a node
// certificate; the node it is from (the certificate's, or the one a
// forwarding node names) goes into the context.
func (a *api) requireNode(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.opts.PeerNode == nil {
			writeError(w, http.StatusForbidden, "internal endpoints answer only to cluster nodes presenting a node certificate, and this node runs without tls")
			return
		}
		id, ok := "", false
		if r.TLS != nil {
			id, ok = a.opts.PeerNode(r.TLS)
		}
		if !ok {
			writeError(w, http.StatusForbidden, "internal endpoints answer only to cluster nodes presenting a node certificate of the cluster's CA")
			return
		}
		if fwd := r.Header.Get(forwardedForHeader); fwd != "" {
			id = fwd
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), peerNodeKey{}, id)))
	})
}

// peerNode is the node an internal request comes from.
func peerNode(r *http.Request) string {
	id, _ := r.Context().Value(peerNodeKey{}).(string)
	return id
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorBody{Error: msg})
}

// Token endpoints: POST /api/v1/tokens {scope, name} answers the token's
// text, once; GET lists them (no secrets); DELETE /api/v1/tokens/{id}
// revokes one.

// TokenRequest asks for a token.
type TokenRequest struct {
	Scope Scope  `json:"scope"`
	Name  string `json:"name,omitempty"`
}

// NewTokenReply is a new token: Token is its text, shown only now.
type NewTokenReply struct {
	TokenInfo
	Token string `json:"token"`
}

func (a *api) tokenRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/tokens", a.createToken)
	mux.HandleFunc("GET /api/v1/tokens", a.listTokens)
	mux.HandleFunc("DELETE /api/v1/tokens/{id}", a.revokeToken)
}

func (a *api) createToken(w http.ResponseWriter, r *http.Request) {
	body, ok := a.readBody(w, r)
	if !ok {
		return
	}
	var req TokenRequest
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		a.fail(w, http.StatusBadRequest, "a token request is {\"scope\": \"read\" or \"admin\", \"name\": \"...\"}: "+err.Error(), nil)
		return
	}
	text, tok, err := NewToken(req.Name, req.Scope, a.now())
	if err != nil {
		a.fail(w, http.StatusBadRequest, err.Error(), nil)
		return
	}
	if err := a.c.Apply(r.Context(), CreateToken{Token: tok}); err != nil {
		a.applyFailed(w, err)
		return
	}
	a.logger.Info("token created", "id", tok.ID, "scope", tok.Scope.String(), "name", tok.Name)
	a.reply(w, http.StatusCreated, NewTokenReply{TokenInfo: tok.info(), Token: text})
}

func (a *api) listTokens(w http.ResponseWriter, _ *http.Request) {
	a.reply(w, http.StatusOK, a.c.TokenList())
}

func (a *api) revokeToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := a.c.Apply(r.Context(), RevokeToken{ID: id}); err != nil {
		if errors.Is(err, ErrTokenNotFound) {
			a.fail(w, http.StatusNotFound, fmt.Sprintf("token %s not found (sluice token list)", id), nil)
			return
		}
		a.applyFailed(w, err)
		return
	}
	a.logger.Info("token revoked", "id", id)
	a.reply(w, http.StatusOK, map[string]string{"revoked": id})
}

// PeerNodeFunc names the node a TLS connection's verified client
// certificate belongs to (false when it is not a node certificate).
type PeerNodeFunc func(cs *tls.ConnectionState) (string, bool)
