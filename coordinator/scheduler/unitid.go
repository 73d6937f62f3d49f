package scheduler

import (
	"cmp"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Kind is the kind of a unit of work (DESIGN "Units of work").
type Kind string

const (
	// KindCapture is the capture of a task, one per task. It also drives the
	// task's schema and full-sync phases, so moving it is the expensive move:
	// the new owner reconnects the task's replication slot.
	KindCapture Kind = "capture"
	// KindApply is the apply of one table group of a task.
	KindApply Kind = "apply"
	// KindCopy copies a share of a task's full-sync chunks, while its full
	// sync runs. Group numbers the share.
	KindCopy Kind = "copy"
)

// ErrBadUnitID is wrapped by the error ParseUnitID returns for malformed
// input.
var ErrBadUnitID = errors.New("scheduler: malformed unit id")

// UnitID names a unit of work. Group numbers the apply and copy units of
// a task and is 0 for a capture.
type UnitID struct {
	Task  string
	Kind  Kind
	Group int
}

// String returns "task/capture", "task/apply/3" or "task/copy/1": the key
// under which the replicated state stores assignments, so it must
// round-trip through ParseUnitID.
func (u UnitID) String() string {
	if u.Kind == KindApply || u.Kind == KindCopy {
		return u.Task + "/" + string(u.Kind) + "/" + strconv.Itoa(u.Group)
	}
	return u.Task + "/" + string(u.Kind)
}

// ParseUnitID is the inverse of UnitID.String. It parses from the right, so
// a task name may itself contain a slash, and it accepts only the canonical
// group number ("3", not "03" or "+3") so that String(ParseUnitID(s)) == s.
func ParseUnitID(s string) (UnitID, error) {
	if task, ok := strings.CutSuffix(s, "/"+string(KindCapture)); ok && task != "" {
		return UnitID{Task: task, Kind: KindCapture}, nil
	}
	if i := strings.LastIndexByte(s, '/'); i > 0 {
		rest, group := s[:i], s[i+1:]
		n, err := strconv.Atoi(group)
		for _, kind := range []Kind{KindApply, KindCopy} {
			task, ok := strings.CutSuffix(rest, "/"+string(kind))
			if ok && task != "" && err == nil && n >= 0 && strconv.Itoa(n) == group {
				return UnitID{Task: task, Kind: kind, Group: n}, nil
			}
		}
	}
	return UnitID{}, fmt.Errorf("%w: %q (want task/capture, task/apply/N or task/copy/N)", ErrBadUnitID, s)
}

// kindRank orders a task's capture before its copies and applies: the
// capture is placed first, so it gets the emptiest node and the other
// units spread around it.
func kindRank(k Kind) int {
	switch k {
	case KindCapture:
		return 0
	case KindCopy:
		return 1
	case KindApply:
		return 2
	}
	return 3
}

// compare is the order in which units are placed and listed: by task, then
// capture, copies, applies, then by group.
func (u UnitID) compare(v UnitID) int {
	if c := strings.Compare(u.Task, v.Task); c != 0 {
		return c
	}
	if c := cmp.Compare(kindRank(u.Kind), kindRank(v.Kind)); c != 0 {
		return c
	}
	if c := strings.Compare(string(u.Kind), string(v.Kind)); c != 0 {
		return c
	}
	return cmp.Compare(u.Group, v.Group)
}
