package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/node"
)

// nodeCmd runs a node (`sluice node --config`) and holds the operator's
// node commands (drain, remove).
func (a *app) nodeCmd(tf *taskFlags) *cobra.Command {
	var (
		configPath  string
		memoryLimit string
	)
	cmd := &cobra.Command{
		Use:   "node --config FILE",
		Short: "Run one node of a Sluice cluster, or drain or remove a node",
		Long: `Run one node of a Sluice cluster until SIGTERM or Ctrl-C, with the roles its
configuration file gives it (coordinator, broker, worker). See deploy/3-node/
for a three-node example.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				return errors.New("--config is required (see deploy/3-node/n1.yaml for an example)")
			}
			cfg, err := node.LoadClusterConfig(configPath)
			if err != nil {
				return err
			}
			logger, err := newLogger(a.stderr, orDefault(cfg.LogLevel, "info"), orDefault(cfg.LogFormat, "text"))
			if err != nil {
				return fmt.Errorf("%s: %w", configPath, err)
			}
			if cfg.ClientConfig, err = a.clientConfigPath(cfg.ClientConfig); err != nil {
				return err
			}
			if err := setMemoryLimit(memoryLimit, a.getenv("GOMEMLIMIT"), a.getenv("GOGC")); err != nil {
				return err
			}
			err = a.runNode(cmd.Context(), cfg, node.Options{Logger: logger})
			if err != nil && errors.Is(err, context.Canceled) && cmd.Context().Err() != nil {
				return nil
			}
			return err
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "the node's configuration file (YAML)")
	cmd.Flags().StringVar(&memoryLimit, "memory-limit", "256MiB", "soft limit of the Go heap (as GOMEMLIMIT); GOMEMLIMIT wins when set")
	cmd.AddCommand(a.nodeDrainCmd(tf), a.nodeRemoveCmd(tf))
	return cmd
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

func (a *app) nodeDrainCmd(tf *taskFlags) *cobra.Command {
	var undo bool
	cmd := &cobra.Command{
		Use:   "drain ID",
		Short: "Move a node's units to other nodes; it takes no new ones (--undo to take units again)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd, tf, func(ctx context.Context, c *coordinator.Client) error {
				if err := c.DrainNode(ctx, args[0], undo); err != nil {
					return err
				}
				if undo {
					fmt.Fprintf(cmd.OutOrStdout(), "node %s takes units again\n", args[0])
					return nil
				}
				// Wait until the node holds no units, so that a script can stop
				// the machine right after.
				for {
					st, err := c.ClusterStatus(ctx)
					if err != nil {
						return err
					}
					left := -1
					for _, n := range st.Nodes {
						if n.ID == args[0] {
							left = len(n.Units)
						}
					}
					if left <= 0 {
						fmt.Fprintf(cmd.OutOrStdout(), "node %s is drained: it runs no units and takes none\n", args[0])
						return nil
					}
					select {
					case <-ctx.Done():
						return fmt.Errorf("node %s still has %d units: %w", args[0], left, ctx.Err())
					case <-time.After(200 * time.Millisecond):
					}
				}
			})
		},
	}
	cmd.Flags().BoolVar(&undo, "undo", false, "let the node take units again")
	return cmd
}

func (a *app) nodeRemoveCmd(tf *taskFlags) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "remove ID",
		Short: "Forget a node (drained or stopped): its units move and it leaves Raft",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd, tf, func(ctx context.Context, c *coordinator.Client) error {
				if err := c.RemoveNode(ctx, args[0], force); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "node %s removed\n", args[0])
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "remove a live node that was not drained")
	return cmd
}

func (a *app) clusterCmd(tf *taskFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Inspect the cluster, let a drained node take units again"}
	var output string
	status := &cobra.Command{
		Use:   "status",
		Short: "Nodes, roles, leader, pools, units per node and what is unhealthy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withClient(cmd, tf, func(ctx context.Context, c *coordinator.Client) error {
				st, err := c.ClusterStatus(ctx)
				if err != nil {
					return err
				}
				if output == "json" {
					return printJSON(cmd.OutOrStdout(), st)
				}
				return printCluster(cmd.OutOrStdout(), st, time.Now())
			})
		},
	}
	addOutputFlag(status, &output)
	undrain := &cobra.Command{
		Use:   "undrain ID",
		Short: "Let a drained node take units again (as node drain ID --undo)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd, tf, func(ctx context.Context, c *coordinator.Client) error {
				if err := c.DrainNode(ctx, args[0], true); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "node %s takes units again\n", args[0])
				return nil
			})
		},
	}
	cmd.AddCommand(status, undrain)
	return cmd
}

// printCluster shows the cluster at a glance: health first, then nodes.
func printCluster(w io.Writer, st *coordinator.ClusterStatus, now time.Time) error {
	leader := st.Leader
	if leader == "" {
		leader = "none"
	}
	fmt.Fprintf(w, "leader: %s   (answered by %s at Raft index %d)\n", leader, st.ServedBy, st.Index)
	if len(st.Unhealthy) == 0 {
		fmt.Fprintln(w, "health: ok")
	} else {
		fmt.Fprintln(w, "health: UNHEALTHY")
		for _, u := range st.Unhealthy {
			fmt.Fprintf(w, "  - %s\n", u)
		}
	}
	if !st.HealthKnown {
		fmt.Fprintln(w, "  (the leader could not be asked: units' running state unknown)")
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tROLES\tPOOL\tRAFT\tAPI\tUNITS")
	for _, n := range st.Nodes {
		state := "up"
		switch {
		case !n.Live:
			state = "DOWN " + now.Sub(n.Since).Round(time.Second).String()
		case n.Draining:
			state = "draining"
		}
		raft := "-"
		if n.Leader {
			raft = "leader"
		} else if n.Voter {
			raft = "voter"
		} else if n.Raft != "" {
			raft = "follower"
		}
		var units []string
		for _, u := range n.Units {
			s := u.Unit
			if u.Running != nil && !*u.Running {
				s += "(!)"
			}
			units = append(units, s)
		}
		us := strings.Join(units, " ")
		if us == "" {
			us = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d: %s\n", n.ID, state, strings.Join(n.Roles, ","), n.Pool, raft, n.API, len(n.Units), us)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, p := range st.Pools {
		fmt.Fprintf(w, "pool %s: %d of %d nodes up, %d units\n", p.Name, p.LiveNodes, p.Nodes, p.Units)
	}
	for _, wt := range st.Waiting {
		fmt.Fprintf(w, "task %s waits: %s\n", wt.Task, wt.Reason)
	}
	return nil
}
