// Command sluice is Sluice's one binary: `sluice up` runs a node, the
// other commands talk to a node's HTTP API.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sluicedb/sluice/node"
)

func main() {
	// The first SIGINT/SIGTERM cancels ctx: `up` stops gracefully and
	// client calls are abandoned. After it the default handling comes
	// back, so a second Ctrl-C kills a shutdown that hangs.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() { <-ctx.Done(); stop() }()
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, up: node.Up, runNode: node.Run}
	os.Exit(a.run(ctx, os.Args[1:]))
}

// app is the CLI with its surroundings, so tests run it in-process.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// up is node.Up; tests replace it to check the config it gets.
	up func(ctx context.Context, cfg node.Config) error
	// runNode is node.Run, likewise.
	runNode func(ctx context.Context, cfg node.ClusterConfig, opts node.Options) error
}

// run executes one command line and returns the exit code. Errors go to
// stderr as the API worded them (a precheck's problems one per line with
// their fixes), without the usage text, which hides them.
func (a *app) run(ctx context.Context, args []string) int {
	root := a.rootCmd()
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		var exit *exitError
		if errors.As(err, &exit) {
			if exit.msg != "" {
				fmt.Fprintf(a.stderr, "Error: %s\n", exit.msg)
			}
			return exit.code
		}
		fmt.Fprintf(a.stderr, "Error: %v\n", err)
		return 1
	}
	return 0
}

// refuseUnknownSubcommands makes every command that only groups others
// (sluice, sluice task, ...) fail on an argument that names none of them:
// cobra would print the help and exit 0, and a script calling a command
// this version lacks would believe it ran. Without arguments they print
// their help, as before.
func refuseUnknownSubcommands(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		refuseUnknownSubcommands(sub)
	}
	if !cmd.HasSubCommands() || cmd.Run != nil || cmd.RunE != nil {
		return
	}
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("unknown command %q for %q (run %s --help)", args[0], cmd.CommandPath(), cmd.CommandPath())
		}
		return cmd.Help()
	}
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "sluice",
		Short: "Sluice moves data out of PostgreSQL: schema, full and incremental sync",
		Long: `Sluice syncs PostgreSQL databases into PostgreSQL-family databases
(PostgreSQL, AnalyticDB, PolarDB-O), Apache Doris / SelectDB and Kafka:
schema, full sync, then incremental changes from the WAL.

  sluice up                      run a single-node Sluice (API on 127.0.0.1:7420, web console at /ui/)
  sluice node --config n1.yaml   run one node of a cluster
  sluice precheck -f t.yaml      check a task's source and destination, create nothing
  sluice task create -f t.yaml   create a task from its spec
  sluice task list               see every task's phase, state and progress
  sluice verify NAME             compare a task's tables at both ends (--repair)
  sluice cluster status          see the nodes, the leader and where units run`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	var tf taskFlags
	addServerFlags(root, &tf)
	defer refuseUnknownSubcommands(root)
	root.AddCommand(a.upCmd(), a.nodeCmd(&tf), a.taskCmd(&tf), a.precheckCmd(&tf), a.clusterCmd(&tf), a.tokenCmd(&tf), a.keyCmd(&tf), a.certCmd(), a.versionCmd(), a.verifyCmd(&tf))
	return root
}
