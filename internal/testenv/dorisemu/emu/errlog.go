package emu

import (
	"fmt"
	"strings"
	"sync"
)

// errorLogs keeps the error logs of filtered rows that ErrorURL names,
// bounded in count so a long run does not grow without end.
type errorLogs struct {
	mu    sync.Mutex
	seq   int
	order []string
	logs  map[string]string
}

const maxErrorLogs = 1000

// maxErrorLogLines matches Doris, which keeps the first rows' reasons only.
const maxErrorLogLines = 50000

func newErrorLogs() *errorLogs { return &errorLogs{logs: map[string]string{}} }

// add stores a log and returns its file name for the URL.
func (l *errorLogs) add(txnID int64, lines []string) string {
	if len(lines) > maxErrorLogLines {
		lines = lines[:maxErrorLogLines]
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	name := fmt.Sprintf("__shard_%d/error_log_insert_stmt_%x_%d", l.seq%10, txnID, l.seq)
	l.logs[name] = strings.Join(lines, "\n") + "\n"
	l.order = append(l.order, name)
	if len(l.order) > maxErrorLogs {
		delete(l.logs, l.order[0])
		l.order = l.order[1:]
	}
	return name
}

func (l *errorLogs) get(name string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.logs[name]
	return s, ok
}
