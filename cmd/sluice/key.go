package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluicedb/sluice/coordinator"
)

// keyCmd manages the cluster's secret key (inline secrets of task specs
// are sealed with it before they enter Raft).
func (a *app) keyCmd(tf *taskFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage the key that seals the secrets of task specs",
	}
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Make a new key the cluster's, and seal every task's secrets again with it",
		Long: `Make a new AES-256 key, make it the one new secrets are sealed with, and
seal the secrets of every task again with it. The nodes fetch the new key
from the leader within a second (over mutual TLS). Old keys stay in each
node's keyring file (secrets.keyring in the data directory), so what they
sealed still opens; see the README's Security section to retire one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rot *coordinator.KeyRotation
			err := a.withClient(cmd, tf, func(ctx context.Context, c *coordinator.Client) (err error) {
				rot, err = c.RotateKey(ctx)
				return err
			})
			if err != nil {
				return err
			}
			tasks := "no task"
			if len(rot.Resealed) > 0 {
				tasks = strings.Join(rot.Resealed, ", ")
			}
			fmt.Fprintf(cmd.OutOrStdout(), "the cluster's secret key is now %s; sealed again: %s\n", rot.Key, tasks)
			return nil
		},
	}
	cmd.AddCommand(rotate)
	return cmd
}
