package coordinator

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTokens(t *testing.T) {
	s := NewStore()
	text, tok, err := NewToken("ci", ScopeRead, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(text, "sluice_"+tok.ID+"_") || strings.Contains(tok.Hash, text) || len(tok.Hash) != 64 {
		t.Fatalf("token %q, record %+v", text, tok)
	}
	if err := s.Apply(1, CreateToken{Token: tok}); err != nil {
		t.Fatal(err)
	}
	if got, ok := s.Authenticate(text); !ok || got.Scope != ScopeRead || got.ID != tok.ID {
		t.Fatalf("Authenticate: %+v %v", got, ok)
	}
	flipped := text[:len(text)-1] + "A"
	if flipped == text {
		flipped = text[:len(text)-1] + "B"
	}
	for _, bad := range []string{"", text + "x", flipped, "sluice_" + tok.ID, "Bearer " + text, strings.Replace(text, tok.ID, "000000000000", 1)} {
		if _, ok := s.Authenticate(bad); ok {
			t.Errorf("Authenticate(%q) accepted", bad)
		}
	}
	// The state never holds the token's text.
	snap := s.snapshot()
	for _, rec := range snap.Data.Tokens {
		if strings.Contains(rec.Hash, text) || strings.Contains(rec.Name, text) {
			t.Fatal("the state holds a token's text")
		}
	}
	if !ScopeAdmin.Allows(ScopeRead) || ScopeRead.Allows(ScopeAdmin) {
		t.Fatal("scope order")
	}

	// The first admin token is made once, whichever leader tries.
	_, boot1, _ := NewToken("bootstrap", ScopeAdmin, time.Now())
	boot1.Bootstrap = true
	_, boot2, _ := NewToken("bootstrap", ScopeAdmin, time.Now())
	boot2.Bootstrap = true
	if err := s.Apply(2, CreateToken{Token: boot1}); err != nil || !s.Bootstrapped() {
		t.Fatalf("bootstrap: %v", err)
	}
	if err := s.Apply(3, CreateToken{Token: boot2}); !errors.Is(err, ErrBootstrapped) {
		t.Fatalf("second bootstrap: %v", err)
	}
	if err := s.Apply(4, RevokeToken{ID: tok.ID}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Authenticate(text); ok {
		t.Fatal("a revoked token still works")
	}
	if err := s.Apply(5, RevokeToken{ID: tok.ID}); !errors.Is(err, ErrTokenNotFound) {
		t.Fatalf("revoke twice: %v", err)
	}
	if _, err := ParseScope("root"); err == nil {
		t.Fatal("ParseScope(root)")
	}
	if _, _, err := NewToken("bad\nname", ScopeRead, time.Now()); err == nil {
		t.Fatal("a name with a newline")
	}
}
