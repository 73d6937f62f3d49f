package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/proto"
)

// taskPlanCmd prints what a task would create, creating nothing.
func (a *app) taskPlanCmd(tf *taskFlags) *cobra.Command {
	var file, output string
	cmd := &cobra.Command{
		Use:   "plan -f TASK.yaml",
		Short: "Show what a task would create at its destination, creating nothing",
		Long: `Read the source's catalog for a task spec and print, without creating
anything: each table's destination name, key, apply group (tables linked
by foreign keys share one) and storage, with its row estimate; then, for
a destination with SQL, every statement schema sync would run, in order
(before the full load, and after it). Check it before task create.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withSpec(cmd, tf, file, func(ctx context.Context, c *coordinator.Client, spec []byte) error {
				plan, err := c.Plan(ctx, spec)
				if err != nil {
					return err
				}
				if output == "json" {
					return printJSON(cmd.OutOrStdout(), plan)
				}
				printPlan(cmd.OutOrStdout(), plan)
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "task spec file, or - for stdin")
	_ = cmd.MarkFlagRequired("file")
	addOutputFlag(cmd, &output)
	return cmd
}

// printPlan prints the tables as a table, then the statements.
func printPlan(w io.Writer, p *proto.TaskPlan) {
	fmt.Fprintf(w, "task %s: %d tables to %s, over %d apply groups\n\n", p.Task, len(p.Tables), p.Destination, p.Groups)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tDESTINATION\tKEY\tGROUP\tSTORAGE\tROWS (EST.)")
	for _, t := range p.Tables {
		key := strings.Join(t.Key, ", ")
		if key == "" {
			key = "(none)"
		}
		group := fmt.Sprint(t.Group)
		if t.Linked != "" {
			group += " (with " + t.Linked + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", t.Source, t.Destination, key, group, t.Storage, t.EstimatedRows)
	}
	tw.Flush()
	if len(p.Objects) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(p.Objects)) {
			parts = append(parts, fmt.Sprintf("%d %s", p.Objects[k], k))
		}
		fmt.Fprintf(w, "\nother objects: %s\n", strings.Join(parts, ", "))
	}
	phase := ""
	for i, st := range p.Statements {
		if st.Phase != phase {
			phase = st.Phase
			fmt.Fprintf(w, "\nschema sync, %s:\n", phase)
		}
		fmt.Fprintf(w, "%4d. %s\n      %s;\n", i+1, st.What, strings.ReplaceAll(st.SQL, "\n", "\n      "))
	}
}
