package proto

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Continuous verification (the spec's verify block): while the task is
// incremental, its capture unit compares a rotating sample of each
// table's key space every Interval, as sluice verify does, and records
// the results; task get, /metrics and an alert report them.

// VerifySpec is the verify block: how often a round runs and how much of
// each table it compares.
type VerifySpec struct {
	// Interval between rounds (default 1h, at least 1m).
	Interval Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
	// Sample is the share of each table's keys a round compares, as a
	// percentage ("1%", "0.5%", "100%"; default 1%).
	Sample string `yaml:"sample,omitempty" json:"sample,omitempty"`
}

// Bounds and defaults of the verify block.
const (
	DefaultVerifyInterval = time.Hour
	MinVerifyInterval     = time.Minute
	DefaultVerifySample   = "1%"
	// MinVerifyPercent bounds the slices of a table to 10,000: a round
	// finds its slice among that many cuts of the key space.
	MinVerifyPercent = 0.01
)

// Every is the interval between rounds, default included.
func (v *VerifySpec) Every() time.Duration {
	if v == nil || v.Interval <= 0 {
		return DefaultVerifyInterval
	}
	return time.Duration(v.Interval)
}

// Fraction is the share of keys a round compares, in (0, 1], default
// included.
func (v *VerifySpec) Fraction() float64 {
	s := DefaultVerifySample
	if v != nil && v.Sample != "" {
		s = v.Sample
	}
	f, err := ParsePercent(s)
	if err != nil {
		f, _ = ParsePercent(DefaultVerifySample)
	}
	return f
}

// Windows is how many slices a table's key space is cut into, one
// compared per round: 1/Fraction, rounded up (the last slice is the
// smaller one).
func (v *VerifySpec) Windows() int {
	f := v.Fraction()
	n := int(1 / f)
	if float64(n)*f < 1-1e-9 {
		n++
	}
	return max(n, 1)
}

// ParsePercent reads a percentage such as "1%" or "0.5%" as a fraction in
// (0, 1].
func ParsePercent(s string) (float64, error) {
	num, ok := strings.CutSuffix(strings.TrimSpace(s), "%")
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if !ok || err != nil || v < MinVerifyPercent || v > 100 {
		return 0, fmt.Errorf("must be a percentage from %g%% to 100%%, such as 1%% or 0.5%%; not %q", MinVerifyPercent, s)
	}
	return v / 100, nil
}

func (v *VerifySpec) validate(s *TaskSpec, add func(field, format string, args ...any)) {
	if v == nil {
		return
	}
	switch {
	case v.Interval == invalidDuration:
		add("verify.interval", "must be a duration such as 1h or 30m")
	case v.Interval != 0 && time.Duration(v.Interval) < MinVerifyInterval:
		add("verify.interval", "must be at least %s, not %s", minutes(MinVerifyInterval), time.Duration(v.Interval))
	}
	if v.Sample != "" {
		if _, err := ParsePercent(v.Sample); err != nil {
			add("verify.sample", "%v", err)
		}
	}
	if !s.Sync.IncrementalEnabled() {
		add("verify", "continuous verification runs during incremental sync, and sync.incremental is false; verify a copy with sluice verify")
	}
}

func (v *VerifySpec) clone() *VerifySpec {
	if v == nil {
		return nil
	}
	c := *v
	return &c
}
