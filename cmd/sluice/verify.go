package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicedb/sluice/proto"
)

// exitError ends the command with its own exit code (run prints the
// error, if it has a message).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// verifyCmd is `verify TASK`: compare a task's tables at both ends.
func (a *app) verifyCmd(tf *taskFlags) *cobra.Command {
	var (
		output string
		tables []string
		repair bool
		last   bool
	)
	cmd := &cobra.Command{
		Use:   "verify TASK",
		Short: "Compare a task's tables at the source and the destination, and repair what differs",
		Long: `Compare each table of a task at the source and the destination (under the
task's renames, column lists, row filters and name case), by checksums of
key ranges computed inside each database, splitting only the ranges that
differ, down to the rows. Prints, per table, the rows compared and each
difference with its key: missing (not at the destination), extra (only at
the destination), changed (with the columns that differ). A table without
a key is compared as a multiset of rows.

A running task is verified as it runs: each differing row is checked again
once the task has applied the source up to where the row was read, so a
row in flight is not reported. A row that keeps changing while it is
re-checked is counted as unsettled.

--repair writes the source's rows over the differing ones at the
destination (holding the table's apply positions, so the running apply
waits), then checks them again.

--last prints each table's last verification instead of running one.

Exit status: 0 nothing differs (after --repair: nothing is left), 1
something differs, 2 the task or a table could not be verified.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(tf)
			if err != nil {
				return &exitError{2, err.Error()}
			}
			if last {
				ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
				defer cancel()
				records, err := c.LastVerify(ctx, args[0])
				if err != nil {
					return &exitError{2, err.Error()}
				}
				if output == "json" {
					return printJSON(cmd.OutOrStdout(), records)
				}
				return printVerifyRecords(cmd.OutOrStdout(), records)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 6*time.Minute)
			defer cancel()
			report, err := c.Verify(ctx, args[0], proto.VerifyRequest{Tables: tables, Repair: repair})
			if err != nil {
				return &exitError{2, err.Error()}
			}
			if output == "json" {
				err = printJSON(cmd.OutOrStdout(), report)
			} else {
				err = printVerify(cmd.OutOrStdout(), report)
			}
			if err != nil {
				return err
			}
			switch report.Outcome() {
			case 1:
				return &exitError{code: 1}
			case 2:
				return &exitError{code: 2}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&tables, "table", nil, "verify this table only (schema.table, as at the source; repeat for more)")
	cmd.Flags().BoolVar(&repair, "repair", false, "make the destination's differing rows match the source's, then check them again")
	cmd.Flags().BoolVar(&last, "last", false, "print each table's last verification")
	addOutputFlag(cmd, &output)
	return cmd
}

// printVerify prints a verification: one line per table, then its
// differences.
func printVerify(w io.Writer, r *proto.VerifyReport) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tROWS\tDIFFERENCES\tRESULT")
	for _, t := range r.Tables {
		name := t.Table
		if t.Dest != t.Table {
			name += " -> " + t.Dest
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", name, t.Rows, int64(len(t.Differences))+t.More, verifyResult(&t, r.Repair))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, t := range r.Tables {
		if len(t.Differences) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s:\n", t.Table)
		for _, d := range t.Differences {
			line := "  " + d.Kind + " " + keyText(d.Key)
			if len(d.Columns) > 0 {
				line += " (" + strings.Join(d.Columns, ", ") + ")"
			}
			if d.Count > 1 {
				line += fmt.Sprintf(" x%d", d.Count)
			}
			fmt.Fprintln(w, line)
		}
		if t.More > 0 {
			fmt.Fprintf(w, "  ... and %d more\n", t.More)
		}
	}
	return nil
}

func verifyResult(t *proto.VerifyTableResult, repair bool) string {
	var parts []string
	switch {
	case t.Error != "":
		parts = append(parts, "could not verify: "+t.Error)
	case !t.Differs():
		parts = append(parts, "equal")
	case repair:
		parts = append(parts, fmt.Sprintf("repaired %d", t.Repaired))
		if t.Remaining > 0 {
			parts = append(parts, fmt.Sprintf("%d still differ", t.Remaining))
		}
	default:
		parts = append(parts, "differs")
	}
	if t.Unsettled > 0 {
		parts = append(parts, fmt.Sprintf("%d rows kept changing while re-checked", t.Unsettled))
	}
	return strings.Join(parts, "; ")
}

// keyText is a key as col=value pairs, in column order.
func keyText(key map[string]string) string {
	cols := make([]string, 0, len(key))
	for c := range key {
		cols = append(cols, c)
	}
	slices.Sort(cols)
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = c + "=" + key[c]
	}
	return strings.Join(parts, " ")
}

// printVerifyRecords prints each table's last verification.
func printVerifyRecords(w io.Writer, records []proto.VerifyRecord) error {
	if len(records) == 0 {
		fmt.Fprintln(w, "no verification yet")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tVERIFIED\tSCOPE\tROWS\tDIFFERENCES\tREPAIRED\tNOTE")
	for _, r := range records {
		note := r.Error
		if r.Unsettled > 0 {
			note = strings.TrimPrefix(note+fmt.Sprintf("; %d unsettled", r.Unsettled), "; ")
		}
		if r.Remaining > 0 {
			note = strings.TrimPrefix(note+fmt.Sprintf("; %d still differ", r.Remaining), "; ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\n", r.Table, r.At.Format(time.RFC3339), sampleText(r.Sample), r.Rows, r.Differences, r.Repaired, note)
	}
	return tw.Flush()
}

// verifyText is a verify block as task get and task update show it.
func verifyText(v *proto.VerifySpec) string {
	if v == nil {
		return "off"
	}
	sample := v.Sample
	if sample == "" {
		sample = proto.DefaultVerifySample
	}
	return fmt.Sprintf("every %s, %s of each table per round", shortDuration(v.Every()), strings.TrimSpace(sample))
}

// verifiedText sums up the task's last verifications: when, how many
// tables, and those that differ or failed.
func verifiedText(v *proto.VerifySummary, now time.Time) string {
	out := fmt.Sprintf("%s (%s ago), %d tables", v.At.Local().Format(time.RFC3339), shortDuration(now.Sub(v.At).Round(time.Second)), v.Tables)
	if v.Differences == 0 {
		out += ", no differences"
	} else {
		out += fmt.Sprintf(", %d differences in %s", v.Differences, strings.Join(v.Differing, ", "))
	}
	if len(v.Failed) > 0 {
		out += "; could not verify " + strings.Join(v.Failed, ", ")
	}
	return out
}

// shortDuration writes 1h0m0s as 1h and 2m30s as it is.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// sampleText is the part of a table a record compared.
func sampleText(s *proto.VerifySample) string {
	switch {
	case s == nil:
		return "table"
	case s.Windows <= 1:
		return "table (continuous)"
	}
	return fmt.Sprintf("slice %d/%d (continuous)", s.Window+1, s.Windows)
}
