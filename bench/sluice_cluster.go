package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gopkg.in/yaml.v3"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/pki"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/node"
	"github.com/sluicedb/sluice/proto"
)

// A cluster of `sluice node` processes on this machine, as README.md's
// "Running a cluster" sets one up: every node a coordinator (a Raft
// voter), a broker (embedded NATS, JetStream clustered over routes) and a
// worker, mutual TLS between them from a CA of the run's own, every
// address on 127.0.0.1. Unlike internal/testenv's cluster harness (which
// puts a TCP proxy on every link between two nodes, so a test can
// partition one) the nodes dial each other directly: a proxy would add a
// hop to every Raft and JetStream replication message, and a process of
// its own, to the figure measured here.

// clusterNodes is the size of the cluster scenarios' cluster: three
// voters, and task streams with three replicas (a node's default once it
// knows three brokers).
const clusterNodes = 3

// sluiceCluster is what the bench keeps of a cluster besides its
// processes: how to reach its brokers.
type sluiceCluster struct {
	natsURL string      // the first node's client port
	tls     *tls.Config // a node certificate, which the brokers accept
}

// startSluiceCluster writes the configuration and certificates of n
// nodes into a new directory under workDir, starts them together (a Raft
// quorum needs them all), waits until each answers /readyz (it knows a
// leader), and reads the admin token the first leader writes to its data
// directory. The returned sluiceProc's Client talks to the first node;
// followers forward writes to the leader.
func startSluiceCluster(ctx context.Context, cfg *config, workDir string, n int) (_ *sluiceProc, err error) {
	dir, err := os.MkdirTemp(workDir, "cluster-")
	if err != nil {
		return nil, err
	}
	tlsDir := filepath.Join(dir, "tls")
	ca, err := pki.NewCA("sluice bench cluster", 48*time.Hour) // outlives the nodes' 24 hours
	if err != nil {
		return nil, err
	}
	if err := ca.WriteFiles(tlsDir, false); err != nil {
		return nil, err
	}
	configs, err := clusterConfigs(ca, dir, tlsDir, n)
	if err != nil {
		return nil, err
	}
	if cfg.Pprof != "" {
		// The first node at the address given, the others on the ports
		// after it (6060, 6061, 6062), so that any node can be profiled.
		host, port, err := net.SplitHostPort(cfg.Pprof)
		if err != nil {
			return nil, fmt.Errorf("--pprof %q: %w", cfg.Pprof, err)
		}
		first, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("--pprof %q: the port must be a number", cfg.Pprof)
		}
		for i := range configs {
			configs[i].Pprof = net.JoinHostPort(host, strconv.Itoa(first+i))
		}
	}
	p := &sluiceProc{URL: "https://" + configs[0].API, dir: dir}
	defer func() {
		if err != nil {
			p.Stop()
		}
	}()
	for _, nc := range configs {
		b, err := yaml.Marshal(nc)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, nc.ID+".yaml")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, err
		}
		c, err := startChild(cfg.Sluice, []string{"node", "--config", path}, nc.ID, nc.DataDir, filepath.Join(dir, nc.ID+".log"))
		if err != nil {
			return nil, err
		}
		c.URL = "https://" + nc.API
		p.procs = append(p.procs, c)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: transport}
	for i, c := range p.procs {
		if err := waitHealthy(ctx, hc, "https://"+configs[i].API, c); err != nil {
			return nil, err
		}
	}
	p.Client = &coordinator.Client{BaseURL: p.URL, HTTP: &http.Client{Timeout: 5 * time.Minute, Transport: transport}}
	if p.Client.Token, err = adminToken(ctx, p.procs); err != nil {
		return nil, err
	}
	if err := p.useLeader(ctx, configs); err != nil {
		return nil, err
	}
	cert, key := pki.NodeFiles(tlsDir, configs[0].ID)
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, err
	}
	p.cluster = &sluiceCluster{natsURL: "nats://" + configs[0].NATS,
		tls: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}}
	return p, nil
}

// useLeader points the client at the Raft leader once it counts every
// node as a voter. A follower forwards writes to the leader but answers
// reads from its own copy of the state, which may not have applied the
// write yet: a task just created is "not found" there for a moment.
func (p *sluiceProc) useLeader(ctx context.Context, configs []node.ClusterConfig) error {
	last := "no answer yet"
	err := poll(ctx, 30*time.Second, 100*time.Millisecond, "a leader with every node a Raft voter", func() (bool, error) {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := p.Client.ClusterStatus(sctx)
		cancel()
		if err != nil {
			last = err.Error() // an election, or the leader's first moments
			return false, nil
		}
		voters := 0
		for _, m := range st.Members {
			if m.Voter {
				voters++
			}
		}
		last = fmt.Sprintf("leader %q, %d voters", st.Leader, voters)
		for _, c := range configs {
			if c.ID == st.Leader && voters == len(configs) {
				p.URL = "https://" + c.API
				p.Client.BaseURL = p.URL
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("%w (last: %s)", err, last)
	}
	return nil
}

// clusterConfigs are the configurations of n nodes n1...: four free
// loopback ports each (API, Raft, NATS clients, NATS routes), every other
// node as a peer, a certificate each from ca in tlsDir.
func clusterConfigs(ca *pki.CA, dir, tlsDir string, n int) ([]node.ClusterConfig, error) {
	taken := map[int]bool{}
	addr := func() (string, error) {
		for range 50 {
			port, err := testenv.FreePort()
			if err != nil {
				return "", err
			}
			if !taken[port] {
				taken[port] = true
				return fmt.Sprintf("127.0.0.1:%d", port), nil
			}
		}
		return "", fmt.Errorf("no free port unused by the cluster after 50 tries")
	}
	configs := make([]node.ClusterConfig, n)
	for i := range configs {
		c := &configs[i]
		c.ID = fmt.Sprintf("n%d", i+1)
		c.DataDir = filepath.Join(dir, c.ID)
		c.Roles = []string{coordinator.RoleCoordinator, coordinator.RoleBroker, coordinator.RoleWorker}
		for _, a := range []*string{&c.API, &c.Raft, &c.NATS, &c.NATSCluster} {
			var err error
			if *a, err = addr(); err != nil {
				return nil, err
			}
		}
		certPEM, keyPEM, err := ca.IssueNode(c.ID, []string{"127.0.0.1", "localhost"}, 24*time.Hour)
		if err != nil {
			return nil, err
		}
		if err := pki.WriteNodeFiles(tlsDir, c.ID, certPEM, keyPEM); err != nil {
			return nil, err
		}
		cert, key := pki.NodeFiles(tlsDir, c.ID)
		c.TLS = &node.TLSFiles{CA: filepath.Join(tlsDir, pki.CAFile), Cert: cert, Key: key}
		c.Pool = coordinator.DefaultPool
		// The token is read from the first leader's data directory.
		c.ClientConfig = "none"
	}
	for i := range configs {
		for j, peer := range configs {
			if j != i {
				configs[i].Peers = append(configs[i].Peers, node.PeerConfig{ID: peer.ID, Raft: peer.Raft, NATSCluster: peer.NATSCluster, API: peer.API})
			}
		}
	}
	return configs, nil
}

// clusterLayout checks that a task's stream is replicated on every node
// of the cluster, current on each, and returns its replica count and
// where things run: the Raft leader, the stream's leader, the units on
// each node (for the progress line; the figures depend on it).
func (p *sluiceProc) clusterLayout(ctx context.Context, task string) (int, string, error) {
	if p.cluster == nil {
		return 0, "", fmt.Errorf("not a cluster")
	}
	nc, err := nats.Connect(p.cluster.natsURL, nats.Name("bench"), nats.Secure(p.cluster.tls), nats.MaxReconnects(0))
	if err != nil {
		return 0, "", fmt.Errorf("connect to the cluster's NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, "", err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stream, err := js.Stream(cctx, proto.StreamName(task))
	if err != nil {
		return 0, "", fmt.Errorf("stream %s: %w", proto.StreamName(task), err)
	}
	// A replica that has just received the warm-up can be behind for a
	// moment (not "current"): ask again until every one is, within the
	// 30 s above.
	var info *jetstream.StreamInfo
	leader := "none"
	for {
		if info, err = stream.Info(cctx); err != nil {
			return 0, "", fmt.Errorf("stream %s: %w", proto.StreamName(task), err)
		}
		current := 0
		if info.Cluster != nil && info.Cluster.Leader != "" {
			current, leader = 1, info.Cluster.Leader
			for _, r := range info.Cluster.Replicas {
				if r.Current {
					current++
				}
			}
		}
		if info.Config.Replicas == len(p.procs) && current == len(p.procs) {
			break
		}
		err = fmt.Errorf("stream %s has %d replicas, %d of them current with a leader; want %d", info.Config.Name, info.Config.Replicas, current, len(p.procs))
		select {
		case <-cctx.Done():
			return info.Config.Replicas, "", err
		case <-time.After(250 * time.Millisecond):
		}
	}
	st, err := p.Client.ClusterStatus(cctx)
	if err != nil {
		return 0, "", fmt.Errorf("cluster status: %w", err)
	}
	layout := fmt.Sprintf("Raft leader %s, stream leader %s (%d replicas); units:", st.Leader, leader, info.Config.Replicas)
	for _, n := range st.Nodes {
		var units []string
		for _, u := range n.Units {
			units = append(units, strings.TrimPrefix(u.Unit, task+"/"))
		}
		layout += fmt.Sprintf(" %s [%s]", n.ID, strings.Join(units, " "))
	}
	return info.Config.Replicas, layout, nil
}
