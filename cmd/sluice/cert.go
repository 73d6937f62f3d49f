package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicedb/sluice/internal/pki"
)

const day = 24 * time.Hour

// certCmd makes the cluster CA and the node certificates for mutual TLS
// between nodes (see deploy/tls/README.md, also for doing it with openssl).
func (a *app) certCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cert",
		Short: "Make the cluster CA and node certificates for TLS between nodes",
		Long: `Make the certificates nodes use for mutual TLS with each other (Raft, NATS
routes, internal HTTP calls): once a CA per cluster, then one certificate per node.

  sluice cert ca   --dir ./sluice-ca
  sluice cert node --dir ./sluice-ca --id n1 --host 10.0.0.5,n1.example.com

See deploy/tls/README.md for what Sluice checks and the openssl equivalent.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(a.certCACmd(), a.certNodeCmd())
	return cmd
}

func (a *app) certCACmd() *cobra.Command {
	var (
		dir   string
		force bool
		days  int
	)
	cmd := &cobra.Command{
		Use:   "ca --dir DIR",
		Short: "Make the cluster's CA: DIR/ca.pem and DIR/ca-key.pem",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return errors.New("--dir is required: the directory for the CA's files, e.g. --dir ./sluice-ca")
			}
			if err := checkDays(days); err != nil {
				return err
			}
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			ca, err := pki.NewCA("sluice cluster CA", time.Duration(days)*day)
			if err != nil {
				return err
			}
			if !force && (fileExists(filepath.Join(abs, pki.CAFile)) || fileExists(filepath.Join(abs, pki.CAKeyFile))) {
				return fmt.Errorf("%s already holds a CA: a new one would leave the certificates it signed untrusted; use it (sluice cert node --dir %s ...), or replace it with --force", abs, dir)
			}
			if err := ca.WriteFiles(abs, force); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "wrote %s      (the CA certificate: every node needs it)\n", filepath.Join(abs, pki.CAFile))
			fmt.Fprintf(out, "wrote %s  (the CA's private key: keep it secret, it stays here)\n", filepath.Join(abs, pki.CAKeyFile))
			fmt.Fprintf(out, "CA %q valid until %s\n", ca.Cert.Subject.CommonName, ca.Cert.NotAfter.UTC().Format(time.DateOnly))
			fmt.Fprintf(out, "next, for each node: sluice cert node --dir %s --id ID --host ADDRESS[,NAME...]\n", dir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "directory for ca.pem and ca-key.pem (created 0700 if missing)")
	f.BoolVar(&force, "force", false, "replace an existing CA in DIR (certificates it signed stop being trusted)")
	f.IntVar(&days, "days", 3650, "days the CA is valid")
	return cmd
}

func (a *app) certNodeCmd() *cobra.Command {
	var (
		dir, id, outDir string
		hosts           []string
		days            int
	)
	cmd := &cobra.Command{
		Use:   "node --dir DIR --id ID --host ADDRESS[,NAME...]",
		Short: "Issue a node's certificate with the CA in DIR: ID.pem and ID-key.pem",
		Long: `Issue node ID's certificate with the CA in DIR. --host lists every address other
nodes dial this node at (the hosts of its raft, nats_cluster and api addresses, without
ports): IPs and DNS names, comma-separated or repeated. Issuing again replaces the
node's files, which is how a certificate is renewed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case dir == "":
				return errors.New("--dir is required: the CA's directory (made by sluice cert ca --dir DIR)")
			case id == "":
				return errors.New("--id is required: the node's id, as in its config file (id: n1)")
			case len(hosts) == 0:
				return errors.New("--host is required: the addresses other nodes dial this node at, IPs or DNS names, e.g. --host 10.0.0.5,n1.example.com")
			}
			if err := checkDays(days); err != nil {
				return err
			}
			if err := pki.ValidateID(id); err != nil {
				return fmt.Errorf("--id: %w", err)
			}
			caDir, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			if outDir == "" {
				outDir = caDir
			}
			if outDir, err = filepath.Abs(outDir); err != nil {
				return err
			}
			ca, err := pki.LoadCA(caDir)
			if err != nil {
				return err
			}
			if left := time.Until(ca.Cert.NotAfter); time.Duration(days)*day > left {
				return fmt.Errorf("--days %d: the CA in %s expires on %s: give --days %d or less, or make a new CA", days, dir,
					ca.Cert.NotAfter.UTC().Format(time.DateOnly), int(left/day))
			}
			certPEM, keyPEM, err := ca.IssueNode(id, hosts, time.Duration(days)*day)
			if err != nil {
				return err
			}
			certPath, keyPath := pki.NodeFiles(outDir, id)
			verb := "wrote"
			if fileExists(certPath) || fileExists(keyPath) {
				verb = "replaced"
			}
			if err := pki.WriteNodeFiles(outDir, id, certPEM, keyPEM); err != nil {
				return err
			}
			// Load what was written, as the node will: a problem shows
			// here rather than at the node's start.
			cfg, err := pki.Load(filepath.Join(caDir, pki.CAFile), certPath, keyPath)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s %s      (node %s's certificate, valid until %s)\n", verb, certPath, cfg.ID, cfg.Cert.Leaf.NotAfter.UTC().Format(time.DateOnly))
			fmt.Fprintf(out, "%s %s  (its private key: copy it to node %s only)\n", verb, keyPath, cfg.ID)
			fmt.Fprintf(out, "\nCopy %s, %s and %s to node %s and add to its config (adjusting the paths if they move):\n\n",
				pki.CAFile, filepath.Base(certPath), filepath.Base(keyPath), id)
			fmt.Fprintf(out, "tls:\n  ca: %s\n  cert: %s\n  key: %s\n", filepath.Join(caDir, pki.CAFile), certPath, keyPath)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "the CA's directory (ca.pem, ca-key.pem)")
	f.StringVar(&id, "id", "", "the node's id, as in its config file")
	f.StringSliceVar(&hosts, "host", nil, "an address other nodes dial this node at: IP or DNS name, no port (repeatable, or comma-separated)")
	f.StringVar(&outDir, "out", "", "directory for ID.pem and ID-key.pem (default: DIR)")
	f.IntVar(&days, "days", 825, "days the certificate is valid")
	return cmd
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// checkDays bounds --days: positive, and at most 100 years, which keeps
// the duration far from overflowing.
func checkDays(days int) error {
	if days <= 0 || days > 36500 {
		return fmt.Errorf("--days %d: give a number of days from 1 to 36500", days)
	}
	return nil
}
