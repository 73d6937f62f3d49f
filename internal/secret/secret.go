// Package secret keeps the secrets this process has seen (passwords of
// the DSNs it connected with, SASL and registry passwords, webhook URLs,
// tokens) so that no log line, error message or API answer repeats one,
// whatever characters it holds: Scrub replaces every occurrence, also in
// the escaped forms a URL gives it. Structural redaction (proto.RedactDSN,
// proto.RedactText) masks what has the shape of a secret; this masks what
// is known to be one, wherever it appears.
package secret

import (
	"context"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// Mask replaces a secret.
const Mask = "xxxxx"

// minLen: shorter values are not scrubbed from text (a two-letter
// password would mask every occurrence of those letters); they are still
// masked wherever they are shown structurally.
const minLen = 4

var reg struct {
	mu       sync.RWMutex
	values   map[string]bool
	replacer *strings.Replacer
}

// Register records secrets to scrub from now on, with their URL-escaped
// forms.
func Register(values ...string) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if reg.values == nil {
		reg.values = map[string]bool{}
	}
	added := false
	for _, v := range values {
		for _, form := range []string{v, url.QueryEscape(v), url.PathEscape(v), url.UserPassword("u", v).String()[2:]} {
			if len(form) >= minLen && !reg.values[form] {
				reg.values[form] = true
				added = true
			}
		}
	}
	if !added {
		return
	}
	// Longest first, so a secret that contains another is masked whole.
	forms := make([]string, 0, len(reg.values))
	for v := range reg.values {
		forms = append(forms, v)
	}
	slices.SortFunc(forms, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(forms))
	for _, v := range forms {
		pairs = append(pairs, v, Mask)
	}
	reg.replacer = strings.NewReplacer(pairs...)
}

// Scrub masks every registered secret in s.
func Scrub(s string) string {
	reg.mu.RLock()
	r := reg.replacer
	reg.mu.RUnlock()
	if r == nil {
		return s
	}
	return r.Replace(s)
}

// Handler wraps a slog handler so that the message and every string
// attribute (errors included) are scrubbed before they are written.
func Handler(h slog.Handler) slog.Handler { return &handler{h} }

type handler struct{ next slog.Handler }

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, Scrub(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(scrubAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	scrubbed := make([]slog.Attr, len(as))
	for i, a := range as {
		scrubbed[i] = scrubAttr(a)
	}
	return &handler{h.next.WithAttrs(scrubbed)}
}

func (h *handler) WithGroup(name string) slog.Handler { return &handler{h.next.WithGroup(name)} }

func scrubAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, Scrub(v.String()))
	case slog.KindGroup:
		g := v.Group()
		out := make([]any, len(g))
		for i, ga := range g {
			out[i] = scrubAttr(ga)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, Scrub(err.Error()))
		}
		if s, ok := v.Any().(interface{ String() string }); ok {
			return slog.String(a.Key, Scrub(s.String()))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
