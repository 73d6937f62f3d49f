package proto

import (
	"fmt"
	"regexp"
	"strings"
)

// Names of the objects a task owns, derived from the task name so that a
// restart, a delete or another node finds them without a lookup.

var taskNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,47}$`)

// ValidateTaskName checks that a task name can name every object a task
// owns (replication slots allow only lower-case letters, digits and _).
func ValidateTaskName(name string) error {
	if !taskNameRe.MatchString(name) {
		return fmt.Errorf("must be 1 to 48 characters of a-z, 0-9, '_' and '-', starting with a letter or digit (got %q)", name)
	}
	return nil
}

// SlotName is the task's replication slot, also the name of its
// publication: sluice_<task> with '-' as '_'.
func SlotName(task string) string { return "sluice_" + strings.ReplaceAll(task, "-", "_") }

// StreamName is the task's JetStream stream.
func StreamName(task string) string { return "SLUICE_" + task }

// SubjectPrefix is the prefix of all the task's subjects, with the dot.
func SubjectPrefix(task string) string { return "sluice." + task + "." }

// Subject is the subject a table's changes are published on:
// sluice.<task>.<schema>.<table>, each name escaped to a subject token.
func Subject(task string, t TableID) string {
	return SubjectPrefix(task) + subjectToken(t.Schema) + "." + subjectToken(t.Name)
}

// HeartbeatTable names a task's heartbeats in its stream: each is a row
// of this table (an older Sluice's table in the source; now a logical
// decoding message, see capture), every second. They give latency and
// keep the slot moving on an idle database. The schema "sluice" is
// reserved.
var HeartbeatTable = TableID{Schema: "sluice", Name: "heartbeat"}

// ReservedSchema holds Sluice's own objects, in the source (heartbeat) and
// the destination (offsets); it is never synced.
const ReservedSchema = "sluice"

// subjectToken escapes a name for a NATS subject token: letters, digits,
// '_' and '-' stay, every other byte becomes %XX.
func subjectToken(s string) string {
	safe := true
	for i := 0; i < len(s); i++ {
		if !tokenByteOK(s[i]) {
			safe = false
			break
		}
	}
	if safe && s != "" {
		return s
	}
	var b strings.Builder
	if s == "" {
		return "%"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if tokenByteOK(c) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func tokenByteOK(c byte) bool {
	return c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
