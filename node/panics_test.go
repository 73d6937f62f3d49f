package node

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/sluicedb/sluice/internal/safe"
)

// The panic hook logs at error level with the stack.
func TestPanicLog(t *testing.T) {
	var buf strings.Builder
	var mu sync.Mutex
	installPanicLog(slogTo(&mu, &buf))
	t.Cleanup(func() { safe.OnPanic(nil) })
	err := safe.Run("test-log", func() error { panic("logged") })
	var pe *safe.PanicError
	if !errors.As(err, &pe) {
		t.Fatal(err)
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	for _, want := range []string{"level=ERROR", "where=test-log", "panic=logged", "panics_test.go"} {
		if !strings.Contains(out, want) {
			t.Fatalf("log lacks %q:\n%s", want, out)
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// slogTo logs text to w, under mu.
func slogTo(mu *sync.Mutex, w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{mu, w}, nil))
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
