package testenv

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluicedb/sluice/internal/pki"
)

// Roles of a cluster node, as `sluice node` spells them.
const (
	RoleCoordinator = "coordinator"
	RoleBroker      = "broker"
	RoleWorker      = "worker"
)

// Bounds of the cluster harness's waits.
const (
	clusterHealthyTimeout = 60 * time.Second
	clusterLeaderTimeout  = 30 * time.Second
	clusterPollEvery      = 100 * time.Millisecond
	clusterLogTail        = 8 << 10
)

// ClusterOptions describe a cluster of `sluice node` processes.
type ClusterOptions struct {
	// Binary is the sluice binary (required), e.g. sluicetest.SluiceBinary.
	Binary string
	// Nodes is the number of initial nodes (default 3). Every initial node
	// is a coordinator, broker and worker, so they form the Raft and the
	// NATS cluster together.
	Nodes int
	// Pools optionally gives each initial node's pool (len Nodes);
	// default "default".
	Pools []string
	// FailoverTimeout (e.g. "3s") is how long a node may be silent before
	// its units move; empty leaves the node's default.
	FailoverTimeout string
	// Env is extra environment for the node processes ("KEY=value").
	Env []string
	// CopyUnits and ChunkPages set the nodes' copy_units and chunk_pages
	// (0: the node's default).
	CopyUnits  int
	ChunkPages int64
}

// NodeOptions describe a node added to a running cluster.
type NodeOptions struct {
	// Roles default to coordinator, broker and worker, as the initial
	// nodes have.
	Roles []string
	// Pool defaults to "default"; Capacity 0 means no limit.
	Pool     string
	Capacity int
}

// Cluster is a cluster of `sluice node` processes on loopback ports, with
// a TCP proxy on every directed link between two nodes so a test can
// partition a node (nomad's and cockroach's test clusters, with processes
// so that a kill is a real crash).
//
// Links: node i's configuration lists peer j's Raft and NATS route
// addresses as the listen addresses of the proxies i->j, which forward to
// j's real ports. Nodes dial peers only at those addresses (Raft resolves
// peer ids through its peers list; NATS routes are not gossiped), so
// cutting the proxies of i's links partitions i for Raft and NATS. Peers'
// api addresses go through the links' proxies too, so a partitioned node
// cannot heartbeat through a peer; but nodes forward to the leader at the
// API address it registered (its real one), which is not cut. NATS client
// connections (a worker-only node's nats_url) are not proxied either.
//
// Methods are safe for concurrent use. Node indexes are 0-based: node i
// has the id "n{i+1}".
type Cluster struct {
	opts ClusterOptions
	dir  string

	// ca signs the nodes' certificates, in tlsDir; http trusts it.
	ca     *pki.CA
	tlsDir string
	http   *http.Client
	// apiClient is HTTPClient's, made once.
	apiOnce   sync.Once
	apiClient *http.Client

	mu    sync.Mutex
	token string // the cluster's admin token
	nodes []*clusterNode
	links map[clusterLinkKey]*clusterLink
	// ports are the ports handed to nodes or held by proxies, so a new
	// one never takes a killed node's port that a Restart will want back.
	ports map[int]bool
}

type clusterNode struct {
	id, dataDir, configPath, logPath string
	roles                            []string
	pool                             string
	capacity                         int
	bootstrap                        *bool // set false for coordinators added to a running cluster
	api, raft                        string
	nats, natsCluster                string // "" without the broker role
	natsURL                          string // a node without the broker role connects here
	peers                            []int  // the nodes its configuration lists
	partitioned                      bool
	proc                             *nodeProcess // nil before the first start
}

type clusterLinkKey struct{ from, to int }

// clusterLink is the pair of proxies from one node to another; nats is nil
// when the target runs no broker.
type clusterLink struct{ raft, nats, api *Proxy }

func (l *clusterLink) each(f func(*Proxy)) {
	f(l.raft)
	f(l.api)
	if l.nats != nil {
		f(l.nats)
	}
}

// nodeProcess is one run of a node.
type nodeProcess struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once Wait has returned and the log is closed
	err    error         // Wait's result, set before exited closes
}

func (p *nodeProcess) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill ends the process with SIGKILL, by its PID, and waits for it.
func (p *nodeProcess) kill() {
	if p.alive() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.exited
}

// nodeConfig is the YAML of `sluice node --config`.
type nodeConfig struct {
	ID              string       `yaml:"id"`
	DataDir         string       `yaml:"data_dir"`
	Roles           []string     `yaml:"roles,flow"`
	API             string       `yaml:"api"`
	Raft            string       `yaml:"raft"`
	NATS            string       `yaml:"nats,omitempty"`
	NATSCluster     string       `yaml:"nats_cluster,omitempty"`
	NATSURL         string       `yaml:"nats_url,omitempty"`
	Bootstrap       *bool        `yaml:"bootstrap,omitempty"`
	Peers           []peerConfig `yaml:"peers,omitempty"`
	Pool            string       `yaml:"pool"`
	Capacity        int          `yaml:"capacity"`
	FailoverTimeout string       `yaml:"failover_timeout,omitempty"`
	CopyUnits       int          `yaml:"copy_units,omitempty"`
	ChunkPages      int64        `yaml:"chunk_pages,omitempty"`
	TLS             tlsConfig    `yaml:"tls"`
}

// tlsConfig is the node's tls block.
type tlsConfig struct {
	CA   string `yaml:"ca"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

type peerConfig struct {
	ID          string `yaml:"id"`
	Raft        string `yaml:"raft"`
	NATSCluster string `yaml:"nats_cluster,omitempty"`
	API         string `yaml:"api"`
}

// newClusterHTTP polls the nodes over TLS, trusting the cluster's CA. No
// keep-alives: idle connections would leave goroutines behind in tests
// that check for leaks, and a poll every 100 ms does not need them. The
// timeout bounds a hung node.
func newClusterHTTP(ca *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: ca, MinVersion: tls.VersionTLS12}}}
}

// StartCluster starts opts.Nodes nodes at once (they need each other for a
// Raft quorum, so one at a time would never become healthy) and waits
// until every node's /readyz answers 200. At cleanup it kills every node
// the cluster started and closes the proxies; when the test failed, it logs
// the tail of every node's log first.
func StartCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	if opts.Binary == "" {
		t.Fatal("testenv.StartCluster: ClusterOptions.Binary is required")
	}
	if _, err := os.Stat(opts.Binary); err != nil {
		t.Fatalf("testenv.StartCluster: %v", err)
	}
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.Nodes < 0 {
		t.Fatalf("testenv.StartCluster: %d nodes", opts.Nodes)
	}
	if len(opts.Pools) != 0 && len(opts.Pools) != opts.Nodes {
		t.Fatalf("testenv.StartCluster: %d pools for %d nodes", len(opts.Pools), opts.Nodes)
	}
	if opts.FailoverTimeout != "" {
		if _, err := time.ParseDuration(opts.FailoverTimeout); err != nil {
			t.Fatalf("testenv.StartCluster: FailoverTimeout: %v", err)
		}
	}
	// The temporary directory first: cleanups run last in first out, so
	// the nodes are dead before their directory is removed.
	c := &Cluster{opts: opts, dir: t.TempDir(), links: map[clusterLinkKey]*clusterLink{}, ports: map[int]bool{}}
	t.Cleanup(func() { c.shutdown(t) })
	c.makeCA(t)

	for i := range opts.Nodes {
		pool := ""
		if len(opts.Pools) > 0 {
			pool = opts.Pools[i]
		}
		peers := make([]int, 0, opts.Nodes-1)
		for j := range opts.Nodes {
			if j != i {
				peers = append(peers, j)
			}
		}
		c.addNode(t, []string{RoleCoordinator, RoleBroker, RoleWorker}, pool, 0, nil, peers)
	}
	// Links once every node has its ports: they are the proxies' targets.
	for i := range opts.Nodes {
		c.connect(t, i)
		c.writeConfig(t, i)
	}
	for i := range opts.Nodes {
		c.start(t, i)
	}
	deadline := time.Now().Add(clusterHealthyTimeout)
	for i := range opts.Nodes {
		c.waitHealthy(t, i, deadline)
	}
	c.waitToken(t, deadline)
	return c
}

// makeCA makes the cluster's CA; addNode issues each node's certificate.
func (c *Cluster) makeCA(t testing.TB) {
	t.Helper()
	ca, err := pki.NewCA("sluice test cluster", 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c.tlsDir = filepath.Join(c.dir, "tls")
	if err := ca.WriteFiles(c.tlsDir, false); err != nil {
		t.Fatal(err)
	}
	c.ca = ca
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	c.http = newClusterHTTP(pool)
}

// waitToken waits for the admin token the node that started the cluster
// writes to the client config (in the harness's XDG_CONFIG_HOME).
func (c *Cluster) waitToken(t testing.TB, deadline time.Time) {
	t.Helper()
	path := filepath.Join(c.configHome(), "sluice", "config.yaml")
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			var f struct {
				Servers []struct {
					Token string `yaml:"token"`
				} `yaml:"servers"`
			}
			if yaml.Unmarshal(b, &f) == nil && len(f.Servers) > 0 && f.Servers[0].Token != "" {
				c.mu.Lock()
				c.token = f.Servers[0].Token
				c.mu.Unlock()
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no admin token in %s within %v: %v", path, clusterHealthyTimeout, err)
		}
		time.Sleep(clusterPollEvery)
	}
}

func (c *Cluster) configHome() string { return filepath.Join(c.dir, "config") }

// Token is the cluster's admin token.
func (c *Cluster) Token() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

// HTTPClient talks to the nodes' APIs (https, trusting the cluster's CA).
// It is one client for the cluster's life: a new transport per call would
// leave an idle keep-alive connection behind each time, holding one of
// the node's capped connection slots until its idle timeout.
func (c *Cluster) HTTPClient() *http.Client {
	c.apiOnce.Do(func() {
		c.apiClient = &http.Client{Transport: &http.Transport{TLSClientConfig: c.http.Transport.(*http.Transport).TLSClientConfig.Clone(),
			IdleConnTimeout: 30 * time.Second}}
	})
	return c.apiClient
}

// TLSDir holds the cluster's CA (ca.pem, ca-key.pem) and the nodes'
// certificates (<id>.pem, <id>-key.pem).
func (c *Cluster) TLSDir() string { return c.tlsDir }

// CA is the cluster's certificate authority.
func (c *Cluster) CA() *pki.CA { return c.ca }

// addNode allocates node len(c.nodes)'s ports and directory, and returns
// its index; connect makes its links.
func (c *Cluster) addNode(t testing.TB, roles []string, pool string, capacity int, bootstrap *bool, peers []int) int {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	i := len(c.nodes)
	n := &clusterNode{id: "n" + strconv.Itoa(i+1), roles: slices.Clone(roles), pool: pool, capacity: capacity, bootstrap: bootstrap, peers: peers}
	if n.pool == "" {
		n.pool = "default"
	}
	n.dataDir = filepath.Join(c.dir, n.id)
	n.configPath = filepath.Join(c.dir, n.id+".yaml")
	n.logPath = filepath.Join(c.dir, n.id+".log")
	if err := os.MkdirAll(n.dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := c.ca.IssueNode(n.id, []string{"127.0.0.1", "localhost"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteNodeFiles(c.tlsDir, n.id, certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	n.api = c.allocAddrLocked(t)
	n.raft = c.allocAddrLocked(t)
	if slices.Contains(roles, RoleBroker) {
		n.nats = c.allocAddrLocked(t)
		n.natsCluster = c.allocAddrLocked(t)
	}
	c.nodes = append(c.nodes, n)
	return i
}

// connect makes the proxies from node i to the peers it lists and, when i
// runs no broker, points it at the peers' brokers.
func (c *Cluster) connect(t testing.TB, i int) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[i]
	var urls []string
	for _, j := range n.peers {
		c.linkLocked(t, i, j)
		if p := c.nodes[j]; p.nats != "" {
			urls = append(urls, "nats://"+p.nats)
		}
	}
	if n.nats == "" {
		if len(urls) == 0 {
			t.Fatalf("testenv: node %s has no broker role and no peer runs a broker", n.id)
		}
		n.natsURL = strings.Join(urls, ",")
	}
}

// allocAddrLocked returns a free loopback address whose port no node or
// proxy of this cluster has.
func (c *Cluster) allocAddrLocked(t testing.TB) string {
	t.Helper()
	for range 50 {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if !c.ports[port] {
			c.ports[port] = true
			return "127.0.0.1:" + strconv.Itoa(port)
		}
	}
	t.Fatal("testenv: no free port unused by the cluster after 50 tries")
	return ""
}

// newProxyLocked starts a proxy to target on a port no node of this
// cluster has: a killed node's port, free for now, must stay free for its
// Restart.
func (c *Cluster) newProxyLocked(t testing.TB, target string) *Proxy {
	t.Helper()
	var rejected []*Proxy
	defer func() {
		for _, p := range rejected {
			_ = p.Close()
		}
	}()
	for range 50 {
		p, err := NewProxy(target)
		if err != nil {
			t.Fatal(err)
		}
		if port := p.ln.Addr().(*net.TCPAddr).Port; !c.ports[port] {
			c.ports[port] = true
			return p
		}
		rejected = append(rejected, p) // held open so the next try gets another port
	}
	t.Fatal("testenv: no proxy port unused by the cluster after 50 tries")
	return nil
}

// linkLocked makes the proxies from node i to node j.
func (c *Cluster) linkLocked(t testing.TB, i, j int) {
	t.Helper()
	to := c.nodes[j]
	l := &clusterLink{}
	// Registered before the proxies exist, so a Fatal in between still
	// leaves the ones made for cleanup to close.
	c.links[clusterLinkKey{i, j}] = l
	l.raft = c.newProxyLocked(t, to.raft)
	l.api = c.newProxyLocked(t, to.api)
	if to.natsCluster != "" {
		l.nats = c.newProxyLocked(t, to.natsCluster)
	}
	if c.nodes[i].partitioned || to.partitioned {
		l.each((*Proxy).Cut)
	}
}

// writeConfig writes node i's configuration file: its peers as it reaches
// them, through the proxies of its links.
func (c *Cluster) writeConfig(t testing.TB, i int) {
	t.Helper()
	c.mu.Lock()
	n := c.nodes[i]
	cfg := nodeConfig{
		ID: n.id, DataDir: n.dataDir, Roles: n.roles,
		API: n.api, Raft: n.raft, NATS: n.nats, NATSCluster: n.natsCluster, NATSURL: n.natsURL,
		Bootstrap: n.bootstrap, Pool: n.pool, Capacity: n.capacity, FailoverTimeout: c.opts.FailoverTimeout,
		CopyUnits: c.opts.CopyUnits, ChunkPages: c.opts.ChunkPages,
	}
	cfg.TLS.CA = filepath.Join(c.tlsDir, pki.CAFile)
	cfg.TLS.Cert, cfg.TLS.Key = pki.NodeFiles(c.tlsDir, n.id)
	for _, j := range n.peers {
		l := c.links[clusterLinkKey{i, j}]
		p := peerConfig{ID: c.nodes[j].id, Raft: l.raft.Addr(), API: l.api.Addr()}
		if l.nats != nil {
			p.NATSCluster = l.nats.Addr()
		}
		cfg.Peers = append(cfg.Peers, p)
	}
	c.mu.Unlock()
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.configPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// start runs node i's process without waiting for it to be healthy.
func (c *Cluster) start(t testing.TB, i int) {
	t.Helper()
	n := c.node(i)
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	// A line between runs, so a log read after a Restart shows where the
	// crash ended and the new run began.
	fmt.Fprintf(logf, "=== testenv: starting %s at %s ===\n", n.id, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(c.opts.Binary, "node", "--config", n.configPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(append(os.Environ(), "XDG_CONFIG_HOME="+c.configHome()), c.opts.Env...)
	// The node dies with the test process: a test binary killed by a
	// timeout leaves no cluster behind holding ports.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", n.id, err)
	}
	p := &nodeProcess{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	c.mu.Lock()
	n.proc = p
	c.mu.Unlock()
}

// waitHealthy polls node i's /readyz until it answers 200, failing the
// test at the deadline or as soon as the process exits.
func (c *Cluster) waitHealthy(t testing.TB, i int, deadline time.Time) {
	t.Helper()
	n := c.node(i)
	c.mu.Lock()
	p := n.proc
	c.mu.Unlock()
	var last error
	for {
		select {
		case <-p.exited:
			t.Fatalf("node %s exited at start (%v); its log:\n%s", n.id, p.err, c.Log(i))
		default:
		}
		last = c.getOK(n.apiURL() + "/readyz")
		if last == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s not healthy within %v: %v; its log:\n%s", n.id, clusterHealthyTimeout, last, c.Log(i))
		}
		time.Sleep(clusterPollEvery)
	}
}

func (c *Cluster) getOK(url string) error {
	resp, err := c.http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// shutdown kills every node and closes every proxy (the cleanup of
// StartCluster).
func (c *Cluster) shutdown(t testing.TB) {
	c.mu.Lock()
	nodes := slices.Clone(c.nodes)
	c.mu.Unlock()
	for _, n := range nodes {
		c.mu.Lock()
		p := n.proc
		c.mu.Unlock()
		if p != nil {
			p.kill()
		}
	}
	c.mu.Lock()
	for _, l := range c.links {
		if l.raft != nil {
			_ = l.raft.Close()
		}
		if l.nats != nil {
			_ = l.nats.Close()
		}
	}
	c.mu.Unlock()
	if t.Failed() {
		for i, n := range nodes {
			t.Logf("node %s's log (last 8 KB):\n%s", n.id, c.Log(i))
		}
	}
}

// node returns node i, panicking with a clear message for a bad index
// (the methods without a testing.TB have no other way to say it).
func (c *Cluster) node(i int) *clusterNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 || i >= len(c.nodes) {
		panic(fmt.Sprintf("testenv: no node %d in a cluster of %d", i, len(c.nodes)))
	}
	return c.nodes[i]
}

func (n *clusterNode) apiURL() string { return "https://" + n.api }

// N is the number of nodes, dead or alive.
func (c *Cluster) N() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.nodes)
}

// ID is node i's id, "n{i+1}".
func (c *Cluster) ID(i int) string { return c.node(i).id }

// URL is node i's API, "https://127.0.0.1:port".
func (c *Cluster) URL(i int) string { return c.node(i).apiURL() }

// NATSURL is node i's embedded NATS server for clients, "nats://...";
// "" for a node without the broker role.
func (c *Cluster) NATSURL(i int) string {
	if n := c.node(i); n.nats != "" {
		return "nats://" + n.nats
	}
	return ""
}

// DataDir is node i's data directory, kept across Restart.
func (c *Cluster) DataDir(i int) string { return c.node(i).dataDir }

// PID is the process id of node i's current (or last) run; 0 before it
// was started.
func (c *Cluster) PID(i int) int {
	n := c.node(i)
	c.mu.Lock()
	defer c.mu.Unlock()
	if n.proc == nil {
		return 0
	}
	return n.proc.cmd.Process.Pid
}

// Alive reports whether node i's process is running.
func (c *Cluster) Alive(i int) bool {
	n := c.node(i)
	c.mu.Lock()
	defer c.mu.Unlock()
	return n.proc != nil && n.proc.alive()
}

// Log is the last 8 KB of node i's log (stdout and stderr of every run),
// for failure messages.
func (c *Cluster) Log(i int) string {
	f, err := os.Open(c.node(i).logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > clusterLogTail {
		_, _ = f.Seek(fi.Size()-clusterLogTail, io.SeekStart)
	}
	b, _ := io.ReadAll(io.LimitReader(f, clusterLogTail))
	return string(b)
}

// Kill ends node i with SIGKILL, a crash without any shutdown, and waits
// for the process to be gone. A dead node stays dead until Restart.
func (c *Cluster) Kill(i int) {
	n := c.node(i)
	c.mu.Lock()
	p := n.proc
	c.mu.Unlock()
	if p != nil {
		p.kill()
	}
}

// Restart starts node i again with the same configuration, ports and data
// directory, and waits until it is healthy. A node still running is killed
// first. A healthy node knows a leader, so a node restarted while
// partitioned does not become healthy: Heal it first.
func (c *Cluster) Restart(t testing.TB, i int) {
	t.Helper()
	c.Kill(i)
	c.start(t, i)
	c.waitHealthy(t, i, time.Now().Add(clusterHealthyTimeout))
}

// Partition cuts node i off from every peer on Raft and NATS routes, both
// ways: the proxies i->j and j->i close their connections and refuse new
// ones (accept, then close at once), API links included. A node added with
// AddNode is cut only partly: the existing nodes reach its Raft port
// directly (they learn its address when it joins, not from a
// configuration the harness wrote), so only the links it dials, Raft
// requests it sends and its NATS routes, are cut.
func (c *Cluster) Partition(i int) {
	n := c.node(i)
	c.mu.Lock()
	defer c.mu.Unlock()
	n.partitioned = true
	for k, l := range c.links {
		if k.from == i || k.to == i {
			l.each((*Proxy).Cut)
		}
	}
}

// Heal undoes Partition(i). A link whose other end is partitioned as well
// stays cut.
func (c *Cluster) Heal(i int) {
	n := c.node(i)
	c.mu.Lock()
	defer c.mu.Unlock()
	n.partitioned = false
	for k, l := range c.links {
		if (k.from == i || k.to == i) && !c.nodes[k.from].partitioned && !c.nodes[k.to].partitioned {
			l.each((*Proxy).Restore)
		}
	}
}

// AddNode starts node n{N+1}, which lists every existing node as a peer
// (through new proxies) and joins the cluster through them; the existing
// nodes' configurations do not list it. A coordinator added this way is
// configured with bootstrap: false, so it joins the running Raft instead
// of forming its own; a node without the broker role gets the existing
// brokers' client URLs as nats_url. AddNode waits until the node is
// healthy and returns its index.
func (c *Cluster) AddNode(t testing.TB, opts NodeOptions) int {
	t.Helper()
	roles := opts.Roles
	if len(roles) == 0 {
		roles = []string{RoleCoordinator, RoleBroker, RoleWorker}
	}
	var bootstrap *bool
	if slices.Contains(roles, RoleCoordinator) {
		bootstrap = new(bool)
	}
	peers := make([]int, c.N())
	for j := range peers {
		peers[j] = j
	}
	i := c.addNode(t, roles, opts.Pool, opts.Capacity, bootstrap, peers)
	c.connect(t, i)
	c.writeConfig(t, i)
	c.start(t, i)
	c.waitHealthy(t, i, time.Now().Add(clusterHealthyTimeout))
	return i
}

// clusterView is the part of GET /api/v1/cluster the harness reads.
type clusterView struct {
	Leader string `json:"leader"`
	Nodes  []struct {
		ID string `json:"id"`
	} `json:"nodes"`
}

// view asks node i for its own view of the cluster. The header is the one
// a follower sets when it forwards a request to the leader; with it the
// node answers from its local state instead of passing the question on,
// and WaitLeader needs each node's own view to know they agree.
func (c *Cluster) view(i int) (clusterView, error) {
	var v clusterView
	req, err := http.NewRequest(http.MethodGet, c.URL(i)+"/api/v1/cluster", nil)
	if err != nil {
		return v, err
	}
	req.Header.Set("X-Sluice-Forwarded-By", "testenv")
	req.Header.Set("Authorization", "Bearer "+c.Token())
	resp, err := c.http.Do(req)
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return v, err
	}
	if resp.StatusCode != http.StatusOK {
		return v, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return v, fmt.Errorf("decode /api/v1/cluster: %w", err)
	}
	return v, nil
}

// WaitLeader waits (30 s at most) until every live, unpartitioned node
// names the same leader, itself live and unpartitioned, and returns its
// index. Requiring every such node to answer, and the leader to be among
// them, keeps a dead leader that followers have not yet given up on from
// counting as agreement.
func (c *Cluster) WaitLeader(t testing.TB) int {
	t.Helper()
	leader := -1
	CheckFor(t, clusterLeaderTimeout, clusterPollEvery, func() error {
		var err error
		leader, err = c.agreedLeader()
		return err
	})
	return leader
}

func (c *Cluster) agreedLeader() (int, error) {
	c.mu.Lock()
	var asked []int
	for i, n := range c.nodes {
		if n.proc != nil && n.proc.alive() && !n.partitioned {
			asked = append(asked, i)
		}
	}
	c.mu.Unlock()
	if len(asked) == 0 {
		return -1, errors.New("no live unpartitioned node")
	}
	leader, first := "", ""
	for _, i := range asked {
		v, err := c.view(i)
		if err != nil {
			return -1, fmt.Errorf("%s: %w", c.ID(i), err)
		}
		if v.Leader == "" {
			return -1, fmt.Errorf("%s knows no leader", c.ID(i))
		}
		if leader == "" {
			leader, first = v.Leader, c.ID(i)
		} else if v.Leader != leader {
			return -1, fmt.Errorf("%s sees leader %s, %s sees %s", first, leader, c.ID(i), v.Leader)
		}
	}
	for _, i := range asked {
		if c.ID(i) == leader {
			return i, nil
		}
	}
	return -1, fmt.Errorf("the nodes agree on leader %s, which is dead, partitioned or not a node of this cluster", leader)
}

// LogPath is the file node i's output goes to (all of it; Log returns
// the tail).
func (c *Cluster) LogPath(i int) string { return c.node(i).logPath }
