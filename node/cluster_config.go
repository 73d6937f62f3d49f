package node

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluicedb/sluice/coordinator"
)

// ClusterConfig is a node's configuration file (`sluice node --config`).
type ClusterConfig struct {
	ID      string   `yaml:"id"`
	DataDir string   `yaml:"data_dir"`
	Roles   []string `yaml:"roles"`
	// API is the HTTP API address; Raft the Raft transport's. Every node
	// keeps a copy of the state: coordinators vote, other nodes follow.
	API  string `yaml:"api"`
	Raft string `yaml:"raft"`
	// NATS and NATSCluster are the embedded broker's client and route
	// addresses (broker role); NATSURL an external NATS cluster instead.
	NATS        string `yaml:"nats"`
	NATSCluster string `yaml:"nats_cluster"`
	NATSURL     string `yaml:"nats_url"`
	// NATSCredentials (a .creds file) or NATSUser and NATSPassword
	// (${env:...} and ${file:...} work) authenticate to nats_url; the
	// node's tls certificate is presented too, when it has one.
	NATSCredentials string `yaml:"nats_credentials"`
	NATSUser        string `yaml:"nats_user"`
	NATSPassword    string `yaml:"nats_password"`
	// Peers are the other nodes, as this node reaches them. Those with a
	// raft address and listed by every initial coordinator form the first
	// Raft configuration; a node they do not list joins through them.
	Peers []PeerConfig `yaml:"peers"`
	// Bootstrap (default true for coordinators): form the first Raft
	// configuration with the peers. A coordinator added to a running
	// cluster sets it to false and joins through a peer instead.
	Bootstrap *bool  `yaml:"bootstrap"`
	Pool      string `yaml:"pool"`
	Capacity  int    `yaml:"capacity"`
	// FailoverTimeout: a node silent this long is down and its units move.
	FailoverTimeout Duration `yaml:"failover_timeout"`
	// StreamReplicas overrides the replicas of task streams (default: 3
	// when the cluster has at least 3 brokers, else 1).
	StreamReplicas int `yaml:"stream_replicas"`
	// CopyUnits is how many copy units a task's full sync is shared
	// among (default 4); ChunkPages the size of a chunk in 8 KiB pages
	// (default 4096, 32 MiB). The node that plans a full sync uses its own.
	CopyUnits  int    `yaml:"copy_units"`
	ChunkPages int64  `yaml:"chunk_pages"`
	Pprof      string `yaml:"pprof"`
	LogLevel   string `yaml:"log_level"`
	LogFormat  string `yaml:"log_format"`
	// TLS is the node's certificate (sluice cert node): mutual TLS for
	// Raft, NATS routes and calls between nodes, and https for the API.
	// Without it a node listens on loopback only and has no peers.
	TLS *TLSFiles `yaml:"tls"`
	// MetricsPublic serves /metrics without a token.
	MetricsPublic bool `yaml:"metrics_public"`
	// ClientConfig is the client configuration the node that starts the
	// cluster writes its first admin token to (default: the user's,
	// $XDG_CONFIG_HOME/sluice/config.yaml; "none" for none).
	ClientConfig string `yaml:"client_config"`
}

// TLSFiles are PEM files: the cluster's CA, this node's certificate and
// its key.
type TLSFiles struct {
	CA   string `yaml:"ca"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// PeerConfig is another node.
type PeerConfig struct {
	ID          string `yaml:"id"`
	Raft        string `yaml:"raft"`
	NATSCluster string `yaml:"nats_cluster"`
	API         string `yaml:"api"`
}

// Duration reads "10s" style durations from YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(v *yaml.Node) error {
	var s string
	if err := v.Decode(&s); err != nil {
		return err
	}
	p, err := time.ParseDuration(s)
	if err != nil || p < 0 {
		return fmt.Errorf("line %d: %q is not a duration such as 10s", v.Line, s)
	}
	*d = Duration(p)
	return nil
}

// LoadClusterConfig reads and checks a node's configuration file.
func LoadClusterConfig(path string) (ClusterConfig, error) {
	var cfg ClusterConfig
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

var allRoles = []string{coordinator.RoleCoordinator, coordinator.RoleBroker, coordinator.RoleWorker}

// Validate checks the configuration and fills defaults; the error names
// every problem.
func (c *ClusterConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.ID == "" {
		bad("id is required")
	}
	if c.DataDir == "" {
		bad("data_dir is required")
	}
	if len(c.Roles) == 0 {
		c.Roles = slices.Clone(allRoles)
	}
	for _, r := range c.Roles {
		if !slices.Contains(allRoles, r) {
			bad("roles: %q is not a role (use coordinator, broker, worker)", r)
		}
	}
	addr := func(key, v string, required bool) {
		if v == "" {
			if required {
				bad("%s is required", key)
			}
			return
		}
		host, _, err := net.SplitHostPort(v)
		if err != nil {
			bad("%s %q: want host:port", key, v)
			return
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			bad("%s %q: give an address other nodes can reach, not a wildcard", key, v)
		}
	}
	addr("api", c.API, true)
	addr("raft", c.Raft, true)
	if c.has(coordinator.RoleBroker) {
		if c.NATSURL != "" {
			bad("nats_url and the broker role exclude each other: the broker role runs an embedded NATS server")
		}
		addr("nats", c.NATS, c.NATSCluster != "")
		addr("nats_cluster", c.NATSCluster, len(c.Peers) > 0 && c.peerRoutes() > 0)
	} else if c.NATSURL == "" {
		bad("without the broker role, nats_url must point at a NATS cluster with JetStream")
	}
	ids := map[string]bool{c.ID: true}
	for i, p := range c.Peers {
		if p.ID == "" {
			bad("peers[%d]: id is required", i)
		} else if ids[p.ID] {
			bad("peers[%d]: id %q appears twice (or is this node's)", i, p.ID)
		}
		ids[p.ID] = true
		addr(fmt.Sprintf("peers[%d].raft", i), p.Raft, false)
		addr(fmt.Sprintf("peers[%d].nats_cluster", i), p.NATSCluster, false)
		addr(fmt.Sprintf("peers[%d].api", i), p.API, false)
	}
	if c.joins() && !slices.ContainsFunc(c.Peers, func(p PeerConfig) bool { return p.API != "" }) {
		bad("a node that is not an initial coordinator joins through a peer's api: give at least one peer an api address")
	}
	if c.Pool == "" {
		c.Pool = coordinator.DefaultPool
	}
	if c.Capacity < 0 {
		bad("capacity must be 0 (no limit) or more")
	}
	if c.StreamReplicas < 0 || c.StreamReplicas > 5 {
		bad("stream_replicas must be between 1 and 5")
	}
	if c.CopyUnits < 0 || c.CopyUnits > 64 {
		bad("copy_units must be between 1 and 64")
	}
	if c.ChunkPages < 0 {
		bad("chunk_pages must be 1 or more")
	}
	if c.TLS != nil {
		if c.TLS.CA == "" || c.TLS.Cert == "" || c.TLS.Key == "" {
			bad("tls needs ca, cert and key (sluice cert ca, then sluice cert node)")
		}
	} else {
		errs = append(errs, c.protectedMode()...)
	}
	return errors.Join(errs...)
}

// protectedMode: without tls a node has no way to tell its peers from
// anyone else on the network, so it listens on loopback addresses only
// and runs alone (as `sluice up` does).
func (c *ClusterConfig) protectedMode() []error {
	var errs []error
	for _, a := range []struct{ key, addr string }{{"api", c.API}, {"raft", c.Raft}, {"nats", c.NATS}, {"nats_cluster", c.NATSCluster}, {"pprof", c.Pprof}} {
		if a.addr != "" && !IsLoopback(a.addr) {
			errs = append(errs, fmt.Errorf("%s %q is not a loopback address: without tls a node listens on loopback only (protected mode); set tls: {ca, cert, key} (sluice cert) to listen on the network", a.key, a.addr))
		}
	}
	if len(c.Peers) > 0 || c.NATSURL != "" {
		errs = append(errs, errors.New("peers: the nodes of a cluster prove who they are to each other with certificates; set tls: {ca, cert, key} on every node (sluice cert ca, then sluice cert node for each)"))
	}
	return errs
}

// IsLoopback reports whether host:port names a loopback address
// (127.0.0.0/8, ::1 or localhost); an empty host (every interface) or
// any other name is not.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *ClusterConfig) has(role string) bool { return slices.Contains(c.Roles, role) }

func (c *ClusterConfig) peerRoutes() int {
	n := 0
	for _, p := range c.Peers {
		if p.NATSCluster != "" {
			n++
		}
	}
	return n
}

// joins: this node is not one of the initial coordinators, so it asks a
// peer to add it instead of bootstrapping Raft.
func (c *ClusterConfig) joins() bool {
	return !c.has(coordinator.RoleCoordinator) || (c.Bootstrap != nil && !*c.Bootstrap)
}

// voters are the initial coordinators other than this node: peers with a
// Raft address. A joining node's peers are not its voters.
func (c *ClusterConfig) voters() []coordinator.Peer {
	if c.joins() {
		return nil
	}
	var out []coordinator.Peer
	for _, p := range c.Peers {
		if p.Raft != "" {
			out = append(out, coordinator.Peer{ID: p.ID, Addr: p.Raft})
		}
	}
	return out
}

// brokers counts the brokers this node knows of (itself included).
func (c *ClusterConfig) brokers() int {
	n := c.peerRoutes()
	if c.has(coordinator.RoleBroker) {
		n++
	}
	return n
}

// streamReplicas: R3 when three brokers exist (one lost keeps a quorum).
func (c *ClusterConfig) streamReplicas() int {
	if c.StreamReplicas > 0 {
		return c.StreamReplicas
	}
	if c.NATSURL != "" || c.brokers() >= 3 {
		return 3
	}
	return 1
}

func (c *ClusterConfig) resolvePeer(id string) string {
	for _, p := range c.Peers {
		if p.ID == id {
			return p.Raft
		}
	}
	return ""
}

func (c *ClusterConfig) String() string {
	return fmt.Sprintf("node %s (roles %s, pool %s)", c.ID, strings.Join(c.Roles, ","), c.Pool)
}
