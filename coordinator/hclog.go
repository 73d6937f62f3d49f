package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// newHCLogger sends hashicorp/raft's logs (hclog) to slog, so a node has one
// log stream in one format. hclog writes JSON lines into slogWriter, which
// turns each into a slog record with the same level, message and fields.
// Raft's level follows the slog logger's: nothing when the logger discards
// everything (tests), and Raft's chatty info lines only when info is on.
func newHCLogger(logger *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:        "raft",
		Level:       hclogLevel(logger),
		Output:      &slogWriter{logger: logger},
		JSONFormat:  true,
		DisableTime: true, // slog stamps the time
	})
}

func hclogLevel(logger *slog.Logger) hclog.Level {
	ctx := context.Background()
	switch {
	case logger.Enabled(ctx, slog.LevelDebug):
		return hclog.Debug
	case logger.Enabled(ctx, slog.LevelInfo):
		return hclog.Info
	case logger.Enabled(ctx, slog.LevelWarn):
		return hclog.Warn
	case logger.Enabled(ctx, slog.LevelError):
		return hclog.Error
	default:
		return hclog.Off
	}
}

type slogWriter struct {
	logger *slog.Logger
	mu     sync.Mutex
	buf    []byte // a partial line, if hclog ever splits one
}

func (w *slogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *slogWriter) emit(line []byte) {
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	var fields map[string]any
	if err := json.Unmarshal(line, &fields); err != nil {
		w.logger.Warn(string(line), "component", "raft")
		return
	}
	level := slog.LevelInfo
	switch fields["@level"] {
	case "trace", "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	msg, _ := fields["@message"].(string)
	module, _ := fields["@module"].(string)
	if level == slog.LevelWarn && msg == "heartbeat timeout reached, starting election" && fields["last-leader-id"] == "" {
		// No leader was ever known: the first election of a node that
		// starts (every `sluice up`), not a lost leader.
		level = slog.LevelInfo
	}
	attrs := []slog.Attr{slog.String("component", module)}
	for k, v := range fields {
		if strings.HasPrefix(k, "@") {
			continue
		}
		attrs = append(attrs, slog.Any(k, v))
	}
	// hclog's JSON map has no order; sort for stable output.
	slices.SortFunc(attrs[1:], func(a, b slog.Attr) int { return strings.Compare(a.Key, b.Key) })
	w.logger.LogAttrs(context.Background(), level, msg, attrs...)
}
