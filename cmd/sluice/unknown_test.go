package main

import (
	"strings"
	"testing"
)

// A command this version lacks fails (exit 1, "unknown command") rather
// than printing the help and exiting 0; a group without arguments still
// prints its help.
func TestUnknownCommandFails(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"task", "frobnicate"}, {"cluster", "frobnicate"}, {"token", "frobnicate", "x"}} {
		r := runCLI(t, nil, "", args...)
		if r.code != 1 || !strings.Contains(r.stderr, "unknown command") {
			t.Errorf("sluice %s: %+v", strings.Join(args, " "), r)
		}
	}
	if r := runCLI(t, nil, "", "task"); r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
		t.Errorf("sluice task: %+v", r)
	}
	if r := runCLI(t, nil, "", "--help"); r.code != 0 || !strings.Contains(r.stdout, "Kafka") {
		t.Errorf("the help's description leaves Kafka out: %+v", r)
	}
}
