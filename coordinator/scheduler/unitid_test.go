package scheduler

import (
	"errors"
	"testing"
)

func TestUnitIDRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		s  string
		id UnitID
	}{
		{"t1/capture", UnitID{Task: "t1", Kind: KindCapture}},
		{"t1/apply/0", UnitID{Task: "t1", Kind: KindApply, Group: 0}},
		{"orders-to-warehouse/apply/12", UnitID{Task: "orders-to-warehouse", Kind: KindApply, Group: 12}},
		// Parsing from the right keeps a slash in a task name harmless.
		{"a/capture/apply/3", UnitID{Task: "a/capture", Kind: KindApply, Group: 3}},
		{"a/apply/1/capture", UnitID{Task: "a/apply/1", Kind: KindCapture}},
		{"t1/copy/0", UnitID{Task: "t1", Kind: KindCopy, Group: 0}},
		{"a/apply/copy/7", UnitID{Task: "a/apply", Kind: KindCopy, Group: 7}},
	} {
		if got := tc.id.String(); got != tc.s {
			t.Errorf("%+v.String() = %q, want %q", tc.id, got, tc.s)
		}
		got, err := ParseUnitID(tc.s)
		if err != nil || got != tc.id {
			t.Errorf("ParseUnitID(%q) = %+v, %v; want %+v", tc.s, got, err, tc.id)
		}
	}
}

func TestParseUnitIDErrors(t *testing.T) {
	for _, s := range []string{
		"", "t1", "capture", "/capture", "t1/", "t1/apply", "t1/apply/", "/apply/1",
		"t1/apply/x", "t1/apply/-1", "t1/apply/01", "t1/apply/+1", "t1/snapshot/1",
		"t1/capture/", "t1/Capture", "t1/apply/1 ", "t1/copy", "t1/copy/-2", "/copy/1",
	} {
		if id, err := ParseUnitID(s); !errors.Is(err, ErrBadUnitID) {
			t.Errorf("ParseUnitID(%q) = %+v, %v; want ErrBadUnitID", s, id, err)
		}
	}
}

func TestUnitOrder(t *testing.T) {
	ordered := []UnitID{
		{Task: "a", Kind: KindCapture},
		{Task: "a", Kind: KindCopy, Group: 0},
		{Task: "a", Kind: KindCopy, Group: 3},
		{Task: "a", Kind: KindApply, Group: 0},
		{Task: "a", Kind: KindApply, Group: 2},
		{Task: "a", Kind: KindApply, Group: 10},
		{Task: "b", Kind: KindCapture},
	}
	for i := range ordered {
		for j := range ordered {
			got, want := ordered[i].compare(ordered[j]), 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			if got != want {
				t.Errorf("compare(%s, %s) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
}
