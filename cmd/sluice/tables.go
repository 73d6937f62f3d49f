package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/proto"
)

// getTables prints `sluice task get NAME --tables`.
func getTables(ctx context.Context, w io.Writer, c *coordinator.Client, name, output string) error {
	ts, err := c.TaskTables(ctx, name)
	if err != nil {
		return err
	}
	if output == "json" {
		return printJSON(w, ts)
	}
	return printTables(w, ts)
}

// printTables shows one line per table; "-" where a figure is unknown.
func printTables(w io.Writer, ts *proto.TablesStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tPHASE\tCOPIED\tETA\tINSERT\tUPDATE\tDELETE\tTRUNCATE\tLAST POSITION\tLAG")
	for _, t := range ts.Tables {
		copied, eta := "-", "-"
		if f := t.Full; f != nil {
			copied = fmt.Sprintf("%d/%d", f.RowsDone, f.RowsEstimated)
			if f.ETASeconds != nil {
				eta = fmt.Sprintf("%ds", *f.ETASeconds)
			}
		}
		ops := []string{"-", "-", "-", "-"}
		if a := t.Applied; a != nil {
			for i, n := range []int64{a.Insert, a.Update, a.Delete, a.Truncate} {
				ops[i] = fmt.Sprint(n)
			}
		}
		pos := t.LastPosition
		if pos == "" {
			pos = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Table, t.Phase, copied, eta, ops[0], ops[1], ops[2], ops[3], pos, latency(t.LagMS, " ms"))
	}
	return tw.Flush()
}
