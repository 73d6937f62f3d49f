package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicedb/sluice/coordinator"
)

// tokenCmd manages API tokens: create (shown once), list, revoke.
func (a *app) tokenCmd(tf *taskFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke API tokens (scopes read and admin)",
		Long: `Every API request needs a token. sluice up (and the node that starts a
cluster) makes an admin token at its first start, in the data directory
(admin.token) and in your client config. Make others for people and
programs: read (list, get, status, metrics) or admin (everything).`,
	}
	var scope, name string
	create := &cobra.Command{
		Use:   "create --scope read|admin",
		Short: "Make a token; its text is printed once and stored nowhere in clear",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := coordinator.ParseScope(scope)
			if err != nil {
				return fmt.Errorf("--scope: %w", err)
			}
			return a.withClient(cmd, tf, func(ctx context.Context, c *coordinator.Client) error {
				tok, err := c.CreateToken(ctx, s, name)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), tok.Token)
				fmt.Fprintf(cmd.ErrOrStderr(), "token %s (scope %s) created; it is shown only now: keep it safe, revoke it with sluice token revoke %s\n", tok.ID, tok.Scope, tok.ID)
				return nil
			})
		},
	}
	create.Flags().StringVar(&scope, "scope", "", "read or admin")
	create.Flags().StringVar(&name, "name", "", "what the token is for (shown by list)")
	_ = create.MarkFlagRequired("scope")
	var output string
	list := &cobra.Command{
		Use:   "list",
		Short: "List the tokens (ids, scopes, names; never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var toks []coordinator.TokenInfo
			err := a.withClient(cmd, tf, func(ctx context.Context, c *coordinator.Client) (err error) {
				toks, err = c.ListTokens(ctx)
				return err
			})
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), toks)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSCOPE\tNAME\tCREATED")
			for _, t := range toks {
				n := t.Name
				if t.Bootstrap {
					n = strings.TrimSpace(n + " (made at the cluster's start)")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, t.Scope, orDefault(n, "-"), t.CreatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	addOutputFlag(list, &output)
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token: requests carrying it are refused at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := a.withClient(cmd, tf, func(ctx context.Context, c *coordinator.Client) error { return c.RevokeToken(ctx, args[0]) })
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token %s revoked\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}
