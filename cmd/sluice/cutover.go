package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/proto"
)

// taskCutoverCmd is `task cutover NAME`: the last step before the
// applications move to the destination.
func (a *app) taskCutoverCmd(tf *taskFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "cutover NAME",
		Short: "Wait until a task has applied everything, then set the destination's sequences exactly and release its held objects",
		Long: `Prepare the destination to take over from the source: stop the writes at
the source first. The server waits until the task has applied every
change the source had written when asked (--timeout, default 1m, at most
4m), then sets each of the task's sequences at the destination to the
source's value exactly (setval(seq, last_value, is_called)) and prints
each: its value at the source, and at the destination before and after.
A value marked * has not been handed out yet: the next nextval returns it.
Then it gives the destination's held objects the source's definitions
back (triggers and rules created disabled, foreign keys made deferrable,
for a destination user that may not take replica mode) and lists each
statement.

Exits 1 if the task is not found, not incremental and running, does not
catch up in time (saying what is behind), or a sequence could not be set.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			wait := coordinator.DefaultCutoverWait
			if f := cmd.Flag("timeout"); f != nil && f.Changed {
				wait = tf.timeout
			}
			if wait < time.Second || wait > coordinator.MaxCutoverWait {
				return fmt.Errorf("--timeout %s: a cutover waits between 1s and %s", wait, coordinator.MaxCutoverWait)
			}
			// The wait is the server's; the answer may take the steps'
			// time on top of it.
			ctx, cancel := context.WithTimeout(cmd.Context(), wait+time.Minute)
			defer cancel()
			c, err := a.client(tf)
			if err != nil {
				return err
			}
			report, err := c.Cutover(ctx, args[0], wait)
			if err != nil {
				return err
			}
			if output == "json" {
				if err := printJSON(cmd.OutOrStdout(), report); err != nil {
					return err
				}
			} else if err := printCutover(cmd.OutOrStdout(), report); err != nil {
				return err
			}
			if failed := report.Failed(); len(failed) > 0 {
				names := make([]string, len(failed))
				for i, s := range failed {
					names[i] = s.Source
				}
				return fmt.Errorf("%d of the task's sequences could not be set: %s", len(failed), strings.Join(names, ", "))
			}
			return nil
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

// printCutover prints a cutover's report: how long the catch-up took,
// then one line per sequence.
func printCutover(w io.Writer, r *proto.CutoverReport) error {
	fmt.Fprintf(w, "task %s caught up with the source's WAL position %s in %s\n", r.Task, r.SourceLSN,
		(time.Duration(r.WaitedMS) * time.Millisecond).Round(100*time.Millisecond))
	if r.Note != "" {
		fmt.Fprintln(w, r.Note)
	}
	if len(r.Released) > 0 {
		fmt.Fprintf(w, "gave %d held triggers, rules and foreign keys the source's definitions back:\n", len(r.Released))
		for _, stmt := range r.Released {
			fmt.Fprintln(w, "  "+stmt)
		}
	}
	if len(r.Sequences) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQUENCE\tSOURCE\tBEFORE\tAFTER")
	unused := false
	value := func(s *proto.SequenceState) string {
		if s == nil {
			return "-"
		}
		unused = unused || !s.IsCalled
		return s.String()
	}
	for _, s := range r.Sequences {
		name := s.Source
		if s.Destination != s.Source {
			name += " -> " + s.Destination
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s", name, value(s.SourceValue), value(s.Before), value(s.After))
		if s.Error != "" {
			line += "\terror: " + s.Error
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if unused {
		fmt.Fprintln(w, "* not handed out yet: the next nextval returns this value")
	}
	return nil
}
