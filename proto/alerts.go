package proto

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// AlertSpec says when a task calls for attention and where to say so:
// a JSON POST to Webhook when the task fails, when its latency stays
// above a threshold for a while, when its replication slot retains
// more WAL than a limit (the source's disk fills while it does), and
// when a verification finds rows that differ.
type AlertSpec struct {
	Webhook string `yaml:"webhook" json:"webhook"`
	// OnFailure: alert when the task becomes failed (default true).
	OnFailure *bool `yaml:"on_failure,omitempty" json:"on_failure,omitempty"`
	// Latency: alert when the latency is above Above for For.
	Latency *LatencyAlert `yaml:"latency,omitempty" json:"latency,omitempty"`
	// RetainedWAL: warn when the slot retains more than this ("10GiB",
	// "500MB", bytes if no unit; "" for no warning).
	RetainedWAL string `yaml:"retained_wal,omitempty" json:"retained_wal,omitempty"`
	// OnDifferences: alert while a table's last verification (sluice
	// verify, or a round of continuous verification) left rows that
	// differ (default true).
	OnDifferences *bool `yaml:"on_differences,omitempty" json:"on_differences,omitempty"`
}

// LatencyAlert is a latency threshold held for a duration.
type LatencyAlert struct {
	Above Duration `yaml:"above" json:"above"`
	For   Duration `yaml:"for,omitempty" json:"for,omitempty"`
}

// FailureAlerts reports whether failures are alerted.
func (a *AlertSpec) FailureAlerts() bool { return a != nil && enabled(a.OnFailure, true) }

// DifferenceAlerts reports whether differences found by verification
// are alerted.
func (a *AlertSpec) DifferenceAlerts() bool { return a != nil && enabled(a.OnDifferences, true) }

// RetainedWALBytes is the retained-WAL limit in bytes (0: none).
func (a *AlertSpec) RetainedWALBytes() int64 {
	if a == nil {
		return 0
	}
	n, _ := ParseBytes(a.RetainedWAL)
	return n
}

// ParseBytes reads "10GiB", "500MB", "1024" (bytes). Units are binary
// (KB = KiB = 1024 bytes), as PostgreSQL's own settings are.
func ParseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = strings.TrimSpace(s[:i]), strings.ToUpper(strings.TrimSpace(s[i:]))
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a size such as 10GiB or 500MB", s)
	}
	mult := map[string]float64{"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10, "M": 1 << 20, "MB": 1 << 20, "MIB": 1 << 20,
		"G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30, "T": 1 << 40, "TB": 1 << 40, "TIB": 1 << 40}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("%q has an unknown unit (B, KB, MB, GB, TB)", s)
	}
	return int64(v * mult), nil
}

func (a *AlertSpec) validate(add func(field, format string, args ...any)) {
	if a == nil {
		return
	}
	u, err := url.Parse(a.Webhook)
	switch {
	case a.Webhook == "":
		add("alerts.webhook", "is required: the URL alerts are POSTed to")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		add("alerts.webhook", "must be an http:// or https:// URL")
	}
	if l := a.Latency; l != nil {
		if time.Duration(l.Above) <= 0 || l.Above == invalidDuration {
			add("alerts.latency.above", "must be a duration such as 30s or 5m")
		}
		if time.Duration(l.For) < 0 || l.For == invalidDuration {
			add("alerts.latency.for", "must be a duration such as 5m (or left out)")
		}
	}
	if _, err := ParseBytes(a.RetainedWAL); err != nil {
		add("alerts.retained_wal", "%v", err)
	}
}

// FormatBytes writes a size in binary units ("1.5 GiB").
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
