package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/clientconfig"
	"github.com/sluicedb/sluice/proto"
)

const defaultServer = "http://127.0.0.1:7420"

// taskFlags are the flags every command that talks to the API shares.
type taskFlags struct {
	server    string
	timeout   time.Duration
	token     string
	tokenFile string
	caFile    string
}

// addServerFlags adds --server, --timeout and the credentials, the flags
// of every command that talks to the API.
func addServerFlags(cmd *cobra.Command, tf *taskFlags) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&tf.server, "server", "", "Sluice API URL of any node (default $SLUICE_SERVER, else "+defaultServer+")")
	pf.DurationVar(&tf.timeout, "timeout", 5*time.Minute, "give up on the server after this long (a create runs the precheck)")
	pf.StringVar(&tf.token, "token", "", "API token (default $SLUICE_TOKEN, else the file $SLUICE_TOKEN_FILE, else the client config's entry for the server)")
	pf.StringVar(&tf.tokenFile, "token-file", "", "read the API token from this file")
	pf.StringVar(&tf.caFile, "ca-file", "", "CA certificate (PEM) that signs the server's (default $SLUICE_CA_FILE, else the client config's)")
}

func (a *app) taskCmd(tf *taskFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "task",
		Short: "Create, inspect and delete tasks",
	}
	cmd.AddCommand(a.taskCreateCmd(tf), a.taskGetCmd(tf), a.taskListCmd(tf), a.taskDeleteCmd(tf), a.taskUpdateCmd(tf), a.taskPlanCmd(tf),
		a.taskTransitionCmd(tf, "pause", "Stop a task where it is; its replication slot keeps the changes", (*coordinator.Client).PauseTask),
		a.taskTransitionCmd(tf, "resume", "Run a paused or failed task again", (*coordinator.Client).ResumeTask),
		a.taskCutoverCmd(tf))
	return cmd
}

// client resolves the server (the flag, then SLUICE_SERVER, then the
// default of `sluice up`) and its credentials: the token from --token,
// --token-file, SLUICE_TOKEN, then the client config's entry for the
// server; the CA from --ca-file, SLUICE_CA_FILE, then that entry. The
// client waits, within --timeout, for a node that cannot take requests
// yet (just started, no coordinator leader yet), and looks for the token
// again on each attempt: `sluice up` writes it to the client config once
// it has a leader.
func (a *app) client(tf *taskFlags) (*coordinator.Client, error) {
	server := tf.server
	if server == "" {
		server = a.getenv("SLUICE_SERVER")
	}
	if server == "" {
		server = defaultServer
	}
	if !strings.Contains(server, "://") {
		server = "http://" + server // "127.0.0.1:7420" is what users type
	}
	entry, err := a.clientEntry(server)
	if err != nil {
		return nil, err
	}
	token, err := a.token(tf, entry)
	if err != nil {
		return nil, err
	}
	ca := tf.caFile
	if ca == "" {
		ca = a.getenv("SLUICE_CA_FILE")
	}
	if ca == "" {
		ca = entry.CAFile
	}
	c := &coordinator.Client{BaseURL: server, Token: token, WaitReady: true}
	c.TokenSource = func() string {
		if e, err := a.clientEntry(server); err == nil {
			if t, err := a.token(tf, e); err == nil {
				token = t
			}
		}
		return token
	}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", ca)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		c.HTTP = &http.Client{Transport: tr}
	}
	return c, nil
}

// clientEntry is the client config's entry for server (empty when there
// is none).
func (a *app) clientEntry(server string) (clientconfig.Entry, error) {
	var entry clientconfig.Entry
	if path, err := clientconfig.DefaultPath(a.getenv); err == nil {
		f, err := clientconfig.Load(path)
		if err != nil {
			return entry, err
		}
		entry, _ = f.Lookup(server)
	}
	return entry, nil
}

// token is the API token: --token, --token-file, SLUICE_TOKEN,
// SLUICE_TOKEN_FILE, then the client config's entry ("" when none).
func (a *app) token(tf *taskFlags, entry clientconfig.Entry) (string, error) {
	token := tf.token
	if token == "" && tf.tokenFile != "" {
		b, err := os.ReadFile(tf.tokenFile)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		token = a.getenv("SLUICE_TOKEN")
	}
	if f := a.getenv("SLUICE_TOKEN_FILE"); token == "" && f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("SLUICE_TOKEN_FILE: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		token = entry.Token
	}
	return token, nil
}

// withClient runs f with the API client and the command's timeout.
func (a *app) withClient(cmd *cobra.Command, tf *taskFlags, f func(context.Context, *coordinator.Client) error) error {
	ctx, cancel := withTimeout(cmd, tf)
	defer cancel()
	c, err := a.client(tf)
	if err != nil {
		return err
	}
	return f(ctx, c)
}

func withTimeout(cmd *cobra.Command, tf *taskFlags) (context.Context, context.CancelFunc) {
	if tf.timeout <= 0 {
		return context.WithCancel(cmd.Context())
	}
	return context.WithTimeout(cmd.Context(), tf.timeout)
}

// withSpec reads the task spec file and connects to the API, then runs
// fn: what the commands that send a spec share.
func (a *app) withSpec(cmd *cobra.Command, tf *taskFlags, file string, fn func(ctx context.Context, c *coordinator.Client, spec []byte) error) error {
	spec, err := a.readSpec(file)
	if err != nil {
		return err
	}
	return a.withClient(cmd, tf, func(ctx context.Context, c *coordinator.Client) error {
		return fn(ctx, c, spec)
	})
}

// addOutputFlag adds -o and returns a checker for its value.
func addOutputFlag(cmd *cobra.Command, out *string) {
	cmd.Flags().StringVarP(out, "output", "o", "", "output format: json (default: human-readable)")
	cmd.PreRunE = func(*cobra.Command, []string) error {
		switch *out {
		case "", "text", "json":
			return nil
		}
		return fmt.Errorf("-o %q: use json, or leave it out for text", *out)
	}
}

// readSpec reads a task spec from a file, or stdin for "-".
func (a *app) readSpec(file string) ([]byte, error) {
	var spec []byte
	var err error
	if file == "-" {
		spec, err = io.ReadAll(a.stdin)
	} else {
		spec, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the task spec: %w", err)
	}
	return spec, nil
}

func (a *app) taskCreateCmd(tf *taskFlags) *cobra.Command {
	var file, output string
	var opts coordinator.CheckOptions
	cmd := &cobra.Command{
		Use:   "create -f TASK.yaml",
		Short: "Create a task from its YAML spec (-f - reads stdin)",
		Long: `Create a task from its YAML spec. The server checks the spec, then the
source and destination (precheck), and creates nothing if a check fails
or warns without being acknowledged (--ignore CHECK): each problem is
printed with its fix. See every check with: sluice precheck -f TASK.yaml
With --fix the precheck first sets REPLICA IDENTITY FULL on the keyless
tables it lists (waiting at most 2s at a time for each table's lock).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withSpec(cmd, tf, file, func(ctx context.Context, c *coordinator.Client, spec []byte) error {
				st, err := c.CreateTaskWith(ctx, spec, opts)
				if err != nil {
					return err
				}
				if output == "json" {
					return printJSON(cmd.OutOrStdout(), st)
				}
				printFixed(cmd.OutOrStdout(), st.Fixed)
				fmt.Fprintf(cmd.OutOrStdout(), "task %s created (phase %s, state %s); follow it with: sluice task get %s\n", st.Name, st.Phase, st.State, st.Name)
				return nil
			})
		},
	}
	addSpecFlags(cmd, &file, &opts.Ignore, &output)
	addFixFlag(cmd, &opts.Fix)
	return cmd
}

// addSpecFlags adds -f (required), --ignore and -o, the flags of the
// commands that send a task spec.
func addSpecFlags(cmd *cobra.Command, file *string, ignore *[]string, output *string) {
	cmd.Flags().StringVarP(file, "file", "f", "", "task spec file, or - for stdin")
	cmd.Flags().StringSliceVar(ignore, "ignore", nil, "acknowledge a precheck warning by its check id (repeat, or comma-separate)")
	_ = cmd.MarkFlagRequired("file")
	addOutputFlag(cmd, output)
}

// addFixFlag adds --fix, which lets the precheck run the fixes it may
// run itself.
func addFixFlag(cmd *cobra.Command, fix *bool) {
	cmd.Flags().BoolVar(fix, "fix", false, "run ALTER TABLE ... REPLICA IDENTITY FULL at the source for the keyless tables the precheck lists (lock wait bounded to 2s a try), then check again")
}

// printFixed prints the statements --fix ran at the source.
func printFixed(w io.Writer, fixed []string) {
	for _, stmt := range fixed {
		fmt.Fprintf(w, "fixed: %s\n", stmt)
	}
}

// precheckCmd runs a task's checks without creating anything.
func (a *app) precheckCmd(tf *taskFlags) *cobra.Command {
	var file, output string
	var opts coordinator.CheckOptions
	cmd := &cobra.Command{
		Use:   "precheck -f TASK.yaml",
		Short: "Check a task's source and destination without creating anything",
		Long: `Run every check task create runs, and print each with its result:
pass, warning (acknowledge it with --ignore CHECK) or failure (fix it),
what was found and how to fix it. Exits 1 unless the task could be
created as it stands. With --fix it creates nothing either, but sets
REPLICA IDENTITY FULL on the keyless tables the replica identity check
lists (waiting at most 2s at a time for each table's lock), then checks
again and says what it ran or could not run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withSpec(cmd, tf, file, func(ctx context.Context, c *coordinator.Client, spec []byte) error {
				report, err := c.PrecheckWith(ctx, spec, opts)
				if err != nil {
					return err
				}
				if output == "json" {
					if err := printJSON(cmd.OutOrStdout(), report); err != nil {
						return err
					}
				} else {
					printReport(cmd.OutOrStdout(), report)
				}
				if !report.Passed {
					return errors.New("precheck failed: fix the failures, acknowledge the warnings with --ignore CHECK")
				}
				return nil
			})
		},
	}
	addSpecFlags(cmd, &file, &opts.Ignore, &output)
	addFixFlag(cmd, &opts.Fix)
	return cmd
}

// printReport prints one line per check, and the fix under each problem.
func printReport(w io.Writer, r *proto.PrecheckReport) {
	ignored := map[string]bool{}
	for _, id := range r.Ignored {
		ignored[id] = true
	}
	for _, c := range r.Checks {
		result := strings.ToUpper(string(c.Result))
		if c.Result == proto.ResultWarning && ignored[c.Check] {
			result = "IGNORED"
		}
		fmt.Fprintf(w, "%-8s %s: %s\n", result, c.Check, c.Message)
		if c.Fix != "" && c.Result != proto.ResultPass {
			fmt.Fprintf(w, "         fix: %s\n", c.Fix)
		}
	}
	if r.Passed {
		fmt.Fprintln(w, "precheck passed")
	}
}

func (a *app) taskGetCmd(tf *taskFlags) *cobra.Command {
	var output string
	var tables bool
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a task's phase, state, progress and last error",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd, tf, func(ctx context.Context, c *coordinator.Client) error {
				if tables {
					return getTables(ctx, cmd.OutOrStdout(), c, args[0], output)
				}
				st, err := c.GetTask(ctx, args[0])
				if err != nil {
					return err
				}
				if output == "json" {
					return printJSON(cmd.OutOrStdout(), st)
				}
				return printStatus(cmd.OutOrStdout(), st, time.Now())
			})
		},
	}
	addOutputFlag(cmd, &output)
	cmd.Flags().BoolVar(&tables, "tables", false, "show the task's tables: phase, copy progress, changes applied, last position and lag")
	return cmd
}

func (a *app) taskListCmd(tf *taskFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tasks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withClient(cmd, tf, func(ctx context.Context, c *coordinator.Client) error {
				list, err := c.ListTasks(ctx)
				if err != nil {
					return err
				}
				if output == "json" {
					return printJSON(cmd.OutOrStdout(), list)
				}
				return printList(cmd.OutOrStdout(), list)
			})
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func (a *app) taskDeleteCmd(tf *taskFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Stop a task and drop its replication slot, publication and stream",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd, tf, func(ctx context.Context, c *coordinator.Client) error {
				if err := c.DeleteTask(ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "task %s deleted\n", args[0])
				return nil
			})
		},
	}
}

// taskTransitionCmd is `task pause NAME` and `task resume NAME`.
func (a *app) taskTransitionCmd(tf *taskFlags, verb, short string, do func(*coordinator.Client, context.Context, string) (*proto.TaskStatus, error)) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd, tf, func(ctx context.Context, c *coordinator.Client) error {
				st, err := do(c, ctx, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "task %s: phase %s, state %s\n", st.Name, st.Phase, st.State)
				return nil
			})
		},
	}
}

// taskUpdateCmd changes a running task; today its throttle.
func (a *app) taskUpdateCmd(tf *taskFlags) *cobra.Command {
	var sets []string
	var file string
	cmd := &cobra.Command{
		Use:   "update NAME (-f TASK.yaml | --throttle KEY=VALUE ...)",
		Short: "Change a running task's retry windows, alerts, throttle or continuous verification",
		Long: `Change a running task; its units follow within a second.

-f TASK.yaml sends the task's spec again: its retry, alerts, throttle and
verify sections take effect; any other difference is refused, naming it
(delete and recreate the task to change those).

--throttle KEY=VALUE changes one limit: KEY is full.rps, full.mbps,
full.qps, incremental.rps or incremental.mbps (rows, MiB and queries to
the source per second); 0 lifts a limit, and --throttle none lifts them
all. Limits not named keep their value.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (file == "") == (len(sets) == 0) {
				return errors.New("give either -f TASK.yaml or --throttle KEY=VALUE")
			}
			return a.withClient(cmd, tf, func(ctx context.Context, c *coordinator.Client) error {
				if file != "" {
					spec, err := a.readSpec(file)
					if err != nil {
						return err
					}
					st, err := c.UpdateTask(ctx, args[0], spec)
					if err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "task %s updated: retry connection %s, other %s; throttle %s; alerts %s; verify %s\n", st.Name,
						st.Spec.Retry.ConnectionRetry(), st.Spec.Retry.OtherRetry(), throttleText(st.Spec.Throttle), alertsText(st.Spec.Alerts), verifyText(st.Spec.Verify))
					return nil
				}
				st, err := c.GetTask(ctx, args[0])
				if err != nil {
					return err
				}
				th, err := applyThrottleFlags(st.Spec.Throttle, sets)
				if err != nil {
					return err
				}
				if st, err = c.SetThrottle(ctx, args[0], th); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "task %s: throttle %s\n", st.Name, throttleText(st.Spec.Throttle))
				return nil
			})
		},
	}
	cmd.Flags().StringSliceVar(&sets, "throttle", nil, "KEY=VALUE: full.rps, full.mbps, full.qps, incremental.rps, incremental.mbps (0 lifts it), or none")
	cmd.Flags().StringVarP(&file, "file", "f", "", "the task's spec, or - for stdin: its retry, alerts, throttle and verify take effect")
	return cmd
}

// alertsText says where alerts go ("none" without).
func alertsText(al *proto.AlertSpec) string {
	if al == nil {
		return "none"
	}
	return "to " + strings.SplitN(al.Webhook, "?", 2)[0]
}

// applyThrottleFlags applies KEY=VALUE settings to a copy of th.
func applyThrottleFlags(th *proto.ThrottleSpec, sets []string) (*proto.ThrottleSpec, error) {
	out := th.Clone()
	if out == nil {
		out = &proto.ThrottleSpec{}
	}
	for _, kv := range sets {
		if kv == "none" {
			out = &proto.ThrottleSpec{}
			continue
		}
		key, val, ok := strings.Cut(kv, "=")
		n, err := strconv.Atoi(val)
		if !ok || err != nil || n < 0 {
			return nil, fmt.Errorf("--throttle %q: want KEY=NUMBER, such as full.rps=5000", kv)
		}
		phase, unit, _ := strings.Cut(key, ".")
		var r **proto.RateSpec
		switch phase {
		case "full":
			r = &out.Full
		case "incremental":
			r = &out.Incremental
		default:
			return nil, fmt.Errorf("--throttle %q: KEY starts with full. or incremental.", kv)
		}
		if *r == nil {
			*r = &proto.RateSpec{}
		}
		switch {
		case unit == "rps":
			(*r).RPS = n
		case unit == "mbps":
			(*r).MBPS = n
		case unit == "qps" && phase == "full":
			(*r).QPS = n
		default:
			return nil, fmt.Errorf("--throttle %q: unknown limit (full.rps, full.mbps, full.qps, incremental.rps, incremental.mbps)", kv)
		}
		if **r == (proto.RateSpec{}) {
			*r = nil
		}
	}
	if out.Full == nil && out.Incremental == nil {
		return nil, nil
	}
	return out, nil
}

// throttleText writes a throttle as "full 5000 rows/s, 10 MiB/s; incremental none".
func throttleText(th *proto.ThrottleSpec) string {
	if th == nil {
		return "none"
	}
	rate := func(r *proto.RateSpec) string {
		if r == nil {
			return "none"
		}
		var parts []string
		if r.RPS > 0 {
			parts = append(parts, fmt.Sprintf("%d rows/s", r.RPS))
		}
		if r.MBPS > 0 {
			parts = append(parts, fmt.Sprintf("%d MiB/s", r.MBPS))
		}
		if r.QPS > 0 {
			parts = append(parts, fmt.Sprintf("%d queries/s", r.QPS))
		}
		return strings.Join(parts, ", ")
	}
	return "full " + rate(th.Full) + "; incremental " + rate(th.Incremental)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printStatus prints one task as aligned "key: value" lines.
func printStatus(w io.Writer, st *proto.TaskStatus, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	line := func(k, format string, args ...any) {
		fmt.Fprintf(tw, "%s:\t%s\n", k, fmt.Sprintf(format, args...))
	}
	line("name", "%s", st.Name)
	line("phase", "%s", st.Phase)
	line("state", "%s", st.State)
	line("source", "%s", st.Spec.Source.DSN)
	line("destination", "%s", st.Spec.Destination.String())
	line("full", "%s", fullLong(st.Full))
	if st.Full.TablesTotal > 0 {
		line("tables", "%d/%d", st.Full.TablesDone, st.Full.TablesTotal)
	} else {
		line("tables", "-")
	}
	if len(st.Adding) > 0 {
		line("adding", "%s (copying; their changes wait)", strings.Join(st.Adding, ", "))
	}
	line("latency", "%s", latency(st.LatencyMS, " ms"))
	line("rows applied", "%d", st.RowsApplied)
	line("throughput", "%.1f rows/s, %s/s", st.ThroughputRPS, mib(st.ThroughputBPS))
	if st.Spec.Throttle != nil {
		line("throttle", "%s", throttleText(st.Spec.Throttle))
	}
	if st.ConfirmedLSN != "" {
		line("confirmed lsn", "%s", st.ConfirmedLSN)
	}
	if sl := st.Slot; sl != nil && sl.RetainedWALBytes != nil {
		line("slot", "%s retains %s of WAL (active: %t)", sl.Name, mib(float64(*sl.RetainedWALBytes)), sl.Active != nil && *sl.Active)
	}
	if !st.CreatedAt.IsZero() {
		line("created", "%s", st.CreatedAt.Local().Format(time.RFC3339))
	}
	if st.Spec.Verify != nil {
		line("verify", "%s", verifyText(st.Spec.Verify))
	}
	if v := st.Verify; v != nil {
		line("verified", "%s", verifiedText(v, now))
	}
	if tw := st.TwoWay; tw != nil {
		line("two-way", "conflicts: %s", tw.Policy)
		for _, d := range []struct {
			name string
			st   proto.DirectionStatus
		}{{"forward", tw.Forward}, {"reverse", tw.Reverse}} {
			errText := ""
			if e := d.st.LastError; e != nil {
				errText = ", last error " + truncate(oneLine(e.Message), 80)
			}
			line("  "+d.name, "%s %s, latency %s, %d rows applied%s", d.st.Phase, d.st.State, latency(d.st.LatencyMS, " ms"), d.st.RowsApplied, errText)
		}
		if len(tw.Conflicts) == 0 && tw.ConflictsError == "" {
			line("  conflicts", "none")
		}
		for _, c := range tw.Conflicts {
			line("  conflicts", "%s %s -> %s: %d", c.Direction, c.Kind, c.Resolution, c.Count)
		}
		if tw.ConflictsError != "" {
			line("  conflicts", "cannot read: %s", oneLine(tw.ConflictsError))
		}
	}
	if e := st.LastError; e != nil {
		line("last error", "%s: %s", e.Kind, oneLine(e.Message))
		if !e.At.IsZero() {
			line("error at", "%s", e.At.Local().Format(time.RFC3339))
		}
		if !e.RetryUntil.IsZero() {
			line("retry until", "%s (%s)", e.RetryUntil.Local().Format(time.RFC3339), untilText(e.RetryUntil, now))
		}
	} else {
		line("last error", "-")
	}
	if e := st.ResolvedError; e != nil && st.LastError == nil {
		// History: the task ran well again after it.
		line("resolved error", "%s: %s", e.Kind, oneLine(e.Message))
		if st.ResolvedAt != nil {
			line("resolved", "%s (%s ago; the error was at %s)", st.ResolvedAt.Local().Format(time.RFC3339), agoText(*st.ResolvedAt, now), e.At.Local().Format(time.RFC3339))
		}
	}
	return tw.Flush()
}

// printList prints tasks as an aligned table.
func printList(w io.Writer, list []proto.TaskStatus) error {
	if len(list) == 0 {
		_, err := fmt.Fprintln(w, "no tasks; create one with: sluice task create -f task.yaml")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPHASE\tSTATE\tFULL\tLATENCY\tERROR")
	for _, st := range list {
		errText := "-"
		if e := st.LastError; e != nil {
			errText = truncate(fmt.Sprintf("%s: %s", e.Kind, oneLine(e.Message)), 60)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", st.Name, st.Phase, st.State, fullShort(st.Full), latency(st.LatencyMS, "ms"), errText)
	}
	return tw.Flush()
}

// percent of the estimate, capped at 100: estimates come from PostgreSQL's
// statistics and can be below the rows actually copied.
func percent(f proto.FullProgress) float64 {
	return min(100, 100*float64(f.RowsDone)/float64(f.RowsEstimated))
}

func fullLong(f proto.FullProgress) string {
	var s string
	switch {
	case f.RowsEstimated > 0:
		s = fmt.Sprintf("%d/%d rows (%.1f%%)", f.RowsDone, f.RowsEstimated, percent(f))
	case f.RowsDone > 0:
		s = fmt.Sprintf("%d rows", f.RowsDone)
	default:
		return "-"
	}
	if f.RowsPerSecond > 0 {
		s += fmt.Sprintf(", copying %.0f rows/s, %s/s", f.RowsPerSecond, mib(f.BytesPerSecond))
	}
	return s
}

// mib writes bytes as MiB with one decimal.
func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

func fullShort(f proto.FullProgress) string {
	switch {
	case f.RowsEstimated > 0:
		return fmt.Sprintf("%.0f%%", percent(f))
	case f.RowsDone > 0:
		return fmt.Sprintf("%d rows", f.RowsDone)
	default:
		return "-"
	}
}

func latency(ms *int64, unit string) string {
	if ms == nil {
		return "-"
	}
	return fmt.Sprintf("%d%s", *ms, unit)
}

func untilText(t, now time.Time) string {
	d := t.Sub(now).Round(time.Second)
	if d <= 0 {
		return "passed"
	}
	return "in " + d.String()
}

// agoText is how long before now t was, to the second.
func agoText(t, now time.Time) string {
	return max(now.Sub(t).Round(time.Second), 0).String()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
