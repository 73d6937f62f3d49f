package apply

import (
	"fmt"
	"math/rand"
	"reflect"
	"testing"

	"github.com/sluicedb/sluice/proto"
)

// The model: a table of 3 columns, column 0 the key. Rows are applied one
// by one (what the source did) and through Coalesce's steps (what a sink
// does); both must end equal.

type model map[string][3]string

func tuple(vals [3]string, kinds string) proto.Tuple {
	t := proto.Tuple{Kinds: []byte(kinds), Values: make([][]byte, 3)}
	for i := range vals {
		if kinds[i] == proto.KindText {
			t.Values[i] = []byte(vals[i])
		}
	}
	return t
}

func rowOf(t proto.Tuple) [3]string {
	var r [3]string
	for i := range r {
		switch t.Kinds[i] {
		case proto.KindText:
			r[i] = string(t.Values[i])
		case proto.KindNull:
			r[i] = "<null>"
		case proto.KindToast:
			r[i] = "<toast>"
		}
	}
	return r
}

func applyStep(m model, s *Step) {
	switch s.Kind {
	case StepTruncate:
		for k := range m {
			delete(m, k)
		}
	case StepMove:
		old, ok := m[string(s.MoveOld.Values[0])]
		if !ok {
			return
		}
		n := rowOf(s.MoveNew)
		for i, k := range s.MoveNew.Kinds {
			if k == proto.KindToast {
				n[i] = old[i]
			}
		}
		delete(m, string(s.MoveOld.Values[0]))
		m[n[0]] = n
	case StepSet:
		for _, d := range s.Deletes {
			delete(m, string(d.Values[0]))
		}
		for _, u := range s.Inserts {
			r := rowOf(u)
			if _, exists := m[r[0]]; exists {
				panic("insert of a key that exists: " + r[0])
			}
			checkComplete(r)
			m[r[0]] = r
		}
		for _, u := range s.Updates {
			r := rowOf(u)
			if _, exists := m[r[0]]; !exists {
				panic("update of a key that does not exist: " + r[0])
			}
			checkComplete(r)
			m[r[0]] = r
		}
		for _, p := range s.Partials {
			k := string(p.Values[0])
			cur, ok := m[k]
			if !ok {
				panic("partial update of a key that does not exist: " + k)
			}
			r := rowOf(p)
			for i, kind := range p.Kinds {
				if kind != proto.KindToast {
					cur[i] = r[i]
				}
			}
			m[k] = cur
		}
	}
}

func checkComplete(r [3]string) {
	for _, v := range r {
		if v == "<toast>" {
			panic("complete row with unchanged toast")
		}
	}
}

func TestCoalesceMatchesRowByRow(t *testing.T) {
	for seed := int64(0); seed < 400; seed++ {
		rng := rand.New(rand.NewSource(seed))
		oldFull := seed%2 == 1
		want, start := model{}, model{}
		// Some rows exist before the batch.
		for k := 0; k < 4; k++ {
			r := [3]string{fmt.Sprint(k), fmt.Sprintf("a%d", k), fmt.Sprintf("big%d", k)}
			want[r[0]], start[r[0]] = r, r
		}
		var rows []proto.Row
		for n := 0; n < 30; n++ {
			keys := make([]string, 0, len(want))
			for k := range want {
				keys = append(keys, k)
			}
			// Deterministic order for the seed.
			sortStrings(keys)
			free := fmt.Sprint(rng.Intn(12))
			switch op := rng.Intn(10); {
			case op < 3 || len(keys) == 0:
				if _, exists := want[free]; exists {
					continue
				}
				r := [3]string{free, fmt.Sprintf("v%d", n), fmt.Sprintf("big-%d", n)}
				want[free] = r
				rows = append(rows, proto.Row{Op: proto.OpInsert, New: tuple(r, "ttt")})
			case op < 8:
				k := keys[rng.Intn(len(keys))]
				cur := want[k]
				nk := k
				if rng.Intn(3) == 0 {
					if _, exists := want[free]; !exists {
						nk = free
					}
				}
				toast := rng.Intn(2) == 0
				n2 := [3]string{nk, fmt.Sprintf("u%d", n), fmt.Sprintf("big+%d", n)}
				kinds := "ttt"
				if toast {
					kinds = "ttu"
					n2[2] = cur[2]
				}
				var old proto.Tuple
				if oldFull {
					old = tuple(cur, "ttt")
				} else if nk != k {
					old = tuple([3]string{k}, "tnn")
				}
				delete(want, k)
				want[nk] = n2
				rows = append(rows, proto.Row{Op: proto.OpUpdate, New: tuple(n2, kinds), Old: old})
			case op < 9:
				k := keys[rng.Intn(len(keys))]
				old := tuple([3]string{k}, "tnn")
				if oldFull {
					old = tuple(want[k], "ttt")
				}
				delete(want, k)
				rows = append(rows, proto.Row{Op: proto.OpDelete, Old: old})
			default:
				for k := range want {
					delete(want, k)
				}
				rows = append(rows, proto.Row{Op: proto.OpTruncate})
			}
		}
		got := model{}
		for k, v := range start {
			got[k] = v
		}
		err := Coalesce(rows, []int{0}, oldFull, func(s *Step) error { applyStep(got, s); return nil })
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("seed %d (oldFull=%v):\n got  %v\n want %v", seed, oldFull, got, want)
		}
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestCoalesceFolds(t *testing.T) {
	rows := []proto.Row{
		{Op: proto.OpInsert, New: tuple([3]string{"1", "a", "x"}, "ttt")},
		{Op: proto.OpUpdate, New: tuple([3]string{"1", "b", ""}, "ttu")},
		{Op: proto.OpUpdate, New: tuple([3]string{"1", "c", ""}, "ttu")},
		{Op: proto.OpInsert, New: tuple([3]string{"2", "a", "y"}, "ttt")},
		{Op: proto.OpDelete, Old: tuple([3]string{"2"}, "tnn")},
	}
	var steps []*Step
	if err := Coalesce(rows, []int{0}, false, func(s *Step) error { steps = append(steps, s); return nil }); err != nil {
		t.Fatal(err)
	}
	// Row 1 was inserted in the run (an insert), row 2 came and went
	// (nothing to write).
	if len(steps) != 1 || len(steps[0].Inserts) != 1 || len(steps[0].Deletes) != 0 || len(steps[0].Updates) != 0 || len(steps[0].Partials) != 0 {
		t.Fatalf("want one set with 1 insert, got %+v", steps)
	}
	if got := rowOf(steps[0].Inserts[0]); got != [3]string{"1", "c", "x"} {
		t.Fatalf("folded row %v", got)
	}
}
