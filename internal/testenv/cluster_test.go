package testenv

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluicedb/sluice/internal/pki"
)

// echoServer answers every TCP connection with what it receives.
type echoServer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startEcho(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{ln: ln, conns: map[net.Conn]struct{}{}}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.conns[c] = struct{}{}
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				_, _ = io.Copy(c, c)
				_ = c.Close()
				e.mu.Lock()
				delete(e.conns, c)
				e.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(e.close)
	return e
}

func (e *echoServer) addr() string { return e.ln.Addr().String() }

// active is the number of connections the server holds open.
func (e *echoServer) active() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.conns)
}

func (e *echoServer) close() {
	_ = e.ln.Close()
	e.mu.Lock()
	for c := range e.conns {
		_ = c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
}

func dialProxy(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip sends msg and expects it back.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(buf) != msg {
		t.Fatalf("echoed %q, want %q", buf, msg)
	}
}

// readFails expects the connection to be broken: a read ends in EOF or an
// error other than our deadline, without any data.
func readFails(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, "ping") // may fail already; the read decides
	n, err := c.Read(make([]byte, 16))
	var ne net.Error
	switch {
	case err == nil:
		t.Fatalf("read %d bytes through a cut proxy", n)
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatalf("read timed out: the proxy left the connection hanging instead of closing it")
	}
}

func TestProxyForwards(t *testing.T) {
	e := startEcho(t)
	p, err := NewProxy(e.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Target() != e.addr() {
		t.Fatalf("target %s, want %s", p.Target(), e.addr())
	}
	a, b := dialProxy(t, p), dialProxy(t, p)
	roundTrip(t, a, "hello")
	roundTrip(t, b, "world")
	roundTrip(t, a, strings.Repeat("x", 1<<20)) // larger than any socket buffer
	if n := p.Conns(); n != 2 {
		t.Fatalf("%d connections through the proxy, want 2", n)
	}
}

func TestProxyCutAndRestore(t *testing.T) {
	e := startEcho(t)
	p, err := NewProxy(e.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	before := dialProxy(t, p)
	roundTrip(t, before, "hello")

	p.Cut()
	if !p.Cutting() {
		t.Fatal("Cutting is false after Cut")
	}
	readFails(t, before)
	// Both sides are closed: the target sees its connection end too.
	CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := e.active(); n != 0 {
			return fmt.Errorf("the echo server still holds %d connections", n)
		}
		return nil
	})
	// New connections are accepted and closed at once.
	for range 3 {
		c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
		if err != nil {
			continue // refused is as good as closed
		}
		readFails(t, c)
		_ = c.Close()
	}
	CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := p.Conns(); n != 0 {
			return fmt.Errorf("%d connections through a cut proxy", n)
		}
		return nil
	})
	if n := e.active(); n != 0 {
		t.Fatalf("a cut proxy opened %d connections to its target", n)
	}

	p.Restore()
	if p.Cutting() {
		t.Fatal("Cutting is true after Restore")
	}
	readFails(t, before) // what the cut broke stays broken
	roundTrip(t, dialProxy(t, p), "again")
}

func TestProxyTargetDown(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewProxy("127.0.0.1:" + strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	readFails(t, dialProxy(t, p))
}

func TestProxyCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		e := startEcho(t)
		defer e.close()
		p, err := NewProxy(e.addr())
		if err != nil {
			t.Fatal(err)
		}
		var conns []net.Conn
		for i := range 3 {
			c := dialProxy(t, p)
			roundTrip(t, c, "a"+strconv.Itoa(i))
			conns = append(conns, c)
		}
		p.Cut()
		c := dialProxy(t, p)
		readFails(t, c)
		p.Restore()
		for i := range 2 {
			c := dialProxy(t, p)
			roundTrip(t, c, "b"+strconv.Itoa(i))
			conns = append(conns, c)
		}
		// One connection idle in a read, one closed by its client.
		_ = conns[len(conns)-1].Close()

		// A dial that hangs (a non-routable address) must not hold Close
		// up: Close cancels it.
		stuck, err := NewProxy("10.255.255.1:9")
		if err != nil {
			t.Fatal(err)
		}
		_ = dialProxy(t, stuck)

		start := time.Now()
		if err := p.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		if err := p.Close(); err != nil {
			t.Fatalf("second close: %v", err)
		}
		if err := stuck.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("Close took %v", d)
		}
		for _, c := range conns[:len(conns)-1] {
			readFails(t, c)
		}
		if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
			_ = c.Close()
			t.Fatal("a closed proxy still accepts connections")
		}
	}()
	CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			return fmt.Errorf("%d goroutines, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
		}
		return nil
	})
}

// The cluster harness against stand-in nodes: the test binary itself,
// started with fakeNodeEnv set, plays `sluice node --config FILE`. It
// checks the configuration file against the contract, and it names a
// leader the way a quorum would (the lowest id among the peers it reaches
// through its links, when they are a majority), so partitions through the
// proxies, kills, restarts and added nodes show in what WaitLeader sees.

const fakeNodeEnv = "TESTENV_FAKE_SLUICE_NODE"

func init() {
	if os.Getenv(fakeNodeEnv) == "" {
		return
	}
	if err := fakeNode(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fake node:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// fakeConfig is the configuration file as the contract of `sluice node`
// gives it, decoded strictly: a field the harness misspells fails here.
type fakeConfig struct {
	ID              string   `yaml:"id"`
	DataDir         string   `yaml:"data_dir"`
	Roles           []string `yaml:"roles"`
	API             string   `yaml:"api"`
	Raft            string   `yaml:"raft"`
	NATS            string   `yaml:"nats"`
	NATSCluster     string   `yaml:"nats_cluster"`
	NATSURL         string   `yaml:"nats_url"`
	Bootstrap       *bool    `yaml:"bootstrap"`
	Pool            string   `yaml:"pool"`
	Capacity        int      `yaml:"capacity"`
	FailoverTimeout string   `yaml:"failover_timeout"`
	LogLevel        string   `yaml:"log_level"`
	TLS             struct {
		CA   string `yaml:"ca"`
		Cert string `yaml:"cert"`
		Key  string `yaml:"key"`
	} `yaml:"tls"`
	Peers []struct {
		ID          string `yaml:"id"`
		Raft        string `yaml:"raft"`
		NATSCluster string `yaml:"nats_cluster"`
		API         string `yaml:"api"`
	} `yaml:"peers"`
}

func fakeNode(args []string) error {
	if len(args) != 3 || args[0] != "node" || args[1] != "--config" {
		return fmt.Errorf("want node --config FILE, got %q", args)
	}
	b, err := os.ReadFile(args[2])
	if err != nil {
		return err
	}
	var cfg fakeConfig
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return fmt.Errorf("%s: %w", args[2], err)
	}
	broker := slices.Contains(cfg.Roles, RoleBroker)
	switch {
	case cfg.ID == "" || cfg.DataDir == "" || cfg.API == "" || cfg.Raft == "" || cfg.Pool == "" || len(cfg.Roles) == 0:
		return fmt.Errorf("incomplete configuration:\n%s", b)
	case broker && (cfg.NATS == "" || (len(cfg.Peers) > 0 && cfg.NATSCluster == "")):
		return fmt.Errorf("a broker without nats addresses:\n%s", b)
	case !broker && cfg.NATSURL == "":
		return fmt.Errorf("no broker role and no nats_url:\n%s", b)
	case cfg.FailoverTimeout != "":
		if _, err := time.ParseDuration(cfg.FailoverTimeout); err != nil {
			return err
		}
	}
	for _, p := range cfg.Peers {
		if p.ID == "" || p.Raft == "" || p.API == "" {
			return fmt.Errorf("incomplete peer:\n%s", b)
		}
	}
	// Count the runs in the data directory: a restart must reuse it.
	runs := cfg.DataDir + "/runs"
	f, err := os.OpenFile(runs, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	_, _ = f.WriteString("run\n")
	_ = f.Close()
	rb, err := os.ReadFile(runs)
	if err != nil {
		return err
	}
	bootstrap := "unset"
	if cfg.Bootstrap != nil {
		bootstrap = strconv.FormatBool(*cfg.Bootstrap)
	}
	fmt.Printf("fake node %s run %d roles=%s pool=%s capacity=%d bootstrap=%s nats_url=%s failover=%s peers=%d\n",
		cfg.ID, bytes.Count(rb, []byte("\n")), strings.Join(cfg.Roles, ","), cfg.Pool, cfg.Capacity, bootstrap, cfg.NATSURL, cfg.FailoverTimeout, len(cfg.Peers))

	for _, addr := range []string{cfg.Raft, cfg.NATSCluster, cfg.NATS} {
		if addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		go serveID(ln, cfg.ID)
	}

	leader := func() string {
		reached := make([]bool, len(cfg.Peers))
		var wg sync.WaitGroup
		for i, p := range cfg.Peers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				reached[i] = reaches(p.Raft, p.ID) && (p.NATSCluster == "" || reaches(p.NATSCluster, p.ID))
			}()
		}
		wg.Wait()
		ids := []string{cfg.ID}
		for i, p := range cfg.Peers {
			if reached[i] {
				ids = append(ids, p.ID)
			}
		}
		if 2*len(ids) <= 1+len(cfg.Peers) {
			return ""
		}
		return slices.MinFunc(ids, func(a, b string) int {
			x, _ := strconv.Atoi(a[1:])
			y, _ := strconv.Atoi(b[1:])
			return x - y
		})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if leader() == "" {
			http.Error(w, "no Raft leader", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /api/v1/cluster", func(w http.ResponseWriter, _ *http.Request) {
		type node struct {
			ID string `json:"id"`
		}
		st := struct {
			Leader   string `json:"leader"`
			ServedBy string `json:"served_by"`
			Nodes    []node `json:"nodes"`
		}{Leader: leader(), ServedBy: cfg.ID, Nodes: []node{{cfg.ID}}}
		for _, p := range cfg.Peers {
			st.Nodes = append(st.Nodes, node{p.ID})
		}
		_ = json.NewEncoder(w).Encode(st)
	})
	pk, err := pki.Load(cfg.TLS.CA, cfg.TLS.Cert, cfg.TLS.Key)
	if err != nil {
		return err
	}
	if pk.ID != cfg.ID {
		return fmt.Errorf("certificate of %s for node %s", pk.ID, cfg.ID)
	}
	// The first node writes the client config, as the real node that
	// starts a cluster does.
	if cfg.ID == "n1" {
		path := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "sluice", "config.yaml")
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte("servers:\n  - urls: [https://"+cfg.API+"]\n    token: fake-token\n"), 0o600); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", cfg.API)
	if err != nil {
		return err
	}
	return http.Serve(tls.NewListener(ln, pk.OptionalClientTLS()), mux)
}

// serveID answers every connection with the node's id, then closes it.
func serveID(ln net.Listener, id string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = io.WriteString(c, id+"\n")
		_ = c.Close()
	}
}

// reaches reports whether the node id answers at addr.
func reaches(addr, id string) bool {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && line == id+"\n"
}

func TestClusterFakeNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pools := []string{"a", "b", "c"}
	c := StartCluster(t, ClusterOptions{Binary: bin, Pools: pools, FailoverTimeout: "3s", Env: []string{fakeNodeEnv + "=1"}})
	if c.N() != 3 {
		t.Fatalf("%d nodes, want 3", c.N())
	}
	for i := range 3 {
		if id := c.ID(i); id != "n"+strconv.Itoa(i+1) {
			t.Fatalf("node %d is %s", i, id)
		}
		if !c.Alive(i) || c.PID(i) <= 0 {
			t.Fatalf("%s: alive %v, pid %d", c.ID(i), c.Alive(i), c.PID(i))
		}
		if !strings.HasPrefix(c.URL(i), "https://127.0.0.1:") || !strings.HasPrefix(c.NATSURL(i), "nats://127.0.0.1:") {
			t.Fatalf("%s: url %s, nats %s", c.ID(i), c.URL(i), c.NATSURL(i))
		}
		want := fmt.Sprintf("fake node %s run 1 roles=coordinator,broker,worker pool=%s capacity=0 bootstrap=unset nats_url= failover=3s peers=2", c.ID(i), pools[i])
		if log := c.Log(i); !strings.Contains(log, want) {
			t.Fatalf("%s's log lacks %q:\n%s", c.ID(i), want, log)
		}
	}
	wantLeader := func(want int) {
		t.Helper()
		if got := c.WaitLeader(t); got != want {
			t.Fatalf("leader %s, want %s", c.ID(got), c.ID(want))
		}
	}
	wantLeader(0)

	// Partitioned, n1 is alone; n2 and n3 still make a majority.
	c.Partition(0)
	wantLeader(1)
	if v, err := c.view(0); err != nil || v.Leader != "" {
		t.Fatalf("partitioned n1 sees leader %q (%v)", v.Leader, err)
	}
	c.Heal(0)
	wantLeader(0)

	// Two partitioned nodes: healing one leaves their link cut.
	c.Partition(1)
	c.Partition(2)
	c.Heal(1)
	cut := func(from, to int) bool { return c.links[clusterLinkKey{from, to}].raft.Cutting() }
	if cut(0, 1) || cut(1, 0) || !cut(1, 2) || !cut(2, 1) || !cut(0, 2) || !cut(2, 0) {
		t.Fatal("links after Partition(1), Partition(2), Heal(1): want 1<->2 and 0<->2 cut, 0<->1 open")
	}
	wantLeader(0)
	c.Heal(2)
	for k, l := range c.links {
		if l.raft.Cutting() || l.nats.Cutting() {
			t.Fatalf("link %v still cut after healing every node", k)
		}
	}

	pid := c.PID(1)
	c.Kill(1)
	if c.Alive(1) {
		t.Fatal("n2 alive after Kill")
	}
	wantLeader(0)
	c.Restart(t, 1)
	if !c.Alive(1) || c.PID(1) == pid {
		t.Fatalf("n2 after Restart: alive %v, pid %d (was %d)", c.Alive(1), c.PID(1), pid)
	}
	if log := c.Log(1); !strings.Contains(log, "fake node n2 run 2 ") {
		t.Fatalf("the restarted n2 did not reuse its data directory:\n%s", log)
	}
	wantLeader(0)

	w := c.AddNode(t, NodeOptions{Roles: []string{RoleWorker}, Pool: "p", Capacity: 2})
	if w != 3 || c.ID(w) != "n4" || c.NATSURL(w) != "" {
		t.Fatalf("added worker: index %d, id %s, nats %q", w, c.ID(w), c.NATSURL(w))
	}
	if log := c.Log(w); !strings.Contains(log, "roles=worker pool=p capacity=2 bootstrap=unset nats_url=nats://127.0.0.1:") || !strings.Contains(log, "peers=3") {
		t.Fatalf("n4's configuration:\n%s", log)
	}
	full := c.AddNode(t, NodeOptions{})
	if log := c.Log(full); !strings.Contains(log, "roles=coordinator,broker,worker pool=default capacity=0 bootstrap=false nats_url= ") || !strings.Contains(log, "peers=4") {
		t.Fatalf("n5's configuration:\n%s", log)
	}
	wantLeader(0)

	// The added node's own links are cut too.
	c.Partition(full)
	if v, err := c.view(full); err != nil || v.Leader != "" {
		t.Fatalf("partitioned n5 sees leader %q (%v)", v.Leader, err)
	}
	c.Heal(full)
	wantLeader(0)
}

// TestClusterSluice runs the harness against the real `sluice node`, when
// SLUICE_BINARY names a binary that has it (build one with
// `go build -o /tmp/sluice ./cmd/sluice`).
func TestClusterSluice(t *testing.T) {
	bin := os.Getenv("SLUICE_BINARY")
	if bin == "" {
		t.Skip("set SLUICE_BINARY to a sluice binary with `sluice node` to run the harness against real nodes")
	}
	c := StartCluster(t, ClusterOptions{Binary: bin, FailoverTimeout: "3s"})
	old := c.WaitLeader(t)

	c.Partition(old)
	leader := c.WaitLeader(t)
	if leader == old {
		t.Fatalf("%s still leads while partitioned", c.ID(old))
	}
	c.Heal(old)
	leader = c.WaitLeader(t)
	c.Kill(leader)
	next := c.WaitLeader(t)
	if next == leader {
		t.Fatalf("killed %s still leads", c.ID(leader))
	}
	c.Restart(t, leader)
	c.WaitLeader(t)

	w := c.AddNode(t, NodeOptions{Roles: []string{RoleWorker}})
	CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		v, err := c.view(c.WaitLeader(t))
		if err != nil {
			return err
		}
		for _, n := range v.Nodes {
			if n.ID == c.ID(w) {
				return nil
			}
		}
		return fmt.Errorf("the leader does not list %s", c.ID(w))
	})
}
