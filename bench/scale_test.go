package main

import "testing"

// TestScaleCasesBounded: every scale/ case keeps its name at any scale
// (--only and the README table rely on it) and moves a bounded volume.
func TestScaleCasesBounded(t *testing.T) {
	names := map[string]bool{}
	for _, c := range scaleCases(1) {
		names[c.Name] = true
	}
	if len(names) != 12 {
		t.Fatalf("%d scale cases, want 12 (4 table counts, 4 widths, 4 transaction sizes)", len(names))
	}
	for _, scale := range []float64{0.02, 0.5, 1} {
		for _, c := range scaleCases(scale) {
			if !names[c.Name] {
				t.Errorf("scale %g: case %s has no counterpart at scale 1", scale, c.Name)
			}
			w := c.W
			if w.TxRows < 1 || w.TxRows > w.Rows {
				t.Errorf("scale %g: %s: %d rows a transaction of %d rows", scale, c.Name, w.TxRows, w.Rows)
			}
			width := max(w.Width, 125)
			if w.Rows > 1_000_000 || w.Rows*width > scaleBytes {
				t.Errorf("scale %g: %s: %d rows of %d bytes, more than 1M rows or 200 MB", scale, c.Name, w.Rows, width)
			}
			if w.Width > 0 && w.TxRows*w.Width > 10_000_000 {
				t.Errorf("scale %g: %s: transactions of %d bytes, more than 10 MB", scale, c.Name, w.TxRows*w.Width)
			}
			if got := len(c.tables()); got != max(w.Tables, 1) {
				t.Errorf("scale %g: %s: %d tables, want %d", scale, c.Name, got, w.Tables)
			}
		}
	}
}
