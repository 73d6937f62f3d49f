// Package testenv starts the real components Sluice is tested against:
// PostgreSQL 15 clusters (initdb in a temporary directory, a free loopback
// port, wal_level=logical) and an embedded JetStream server. The same code
// backs `make demo` and the benchmarks, so it works without a testing.T too.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresOptions tune a throwaway cluster.
type PostgresOptions struct {
	// Durable keeps fsync and full_page_writes on. Tests leave it off for
	// speed (nothing in a test survives a machine crash anyway); benchmarks
	// turn it on so the yardstick is an honest production setting.
	Durable bool
	// WALLevel defaults to "logical"; tests of bad input set "replica".
	WALLevel string
	// MaxReplicationSlots defaults to 16.
	MaxReplicationSlots int
	// Settings are extra postgresql.conf lines ("name = value").
	Settings []string
}

// Postgres is a running PostgreSQL cluster owned by this process.
type Postgres struct {
	Dir  string
	Port int
	Bin  string

	opts    PostgresOptions
	cred    *syscall.Credential
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
}

// PasswordRole is a group role created in every cluster: members must log in
// with a password over TCP (scram-sha-256), everyone else is trusted. Tests
// of wrong passwords create a member of it.
const PasswordRole = "password_users"

// EnsurePostgres makes sure the PostgreSQL server binaries are installed,
// installing them with apt when initdb is missing, and returns their folder.
func EnsurePostgres() (string, error) {
	if dir := findPostgresBin(); dir != "" {
		return dir, nil
	}
	if os.Geteuid() != 0 {
		return "", errors.New("initdb not found: install the PostgreSQL 15 server (apt-get install postgresql-15)")
	}
	for _, args := range [][]string{{"update"}, {"install", "-y", "--no-install-recommends", "postgresql-15"}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if dir := findPostgresBin(); dir != "" {
		return dir, nil
	}
	return "", errors.New("initdb still not found after installing postgresql-15")
}

func findPostgresBin() string {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(real)
		}
		return filepath.Dir(p)
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) > 0 {
		return filepath.Dir(matches[len(matches)-1])
	}
	return ""
}

// StartPostgres creates and starts a cluster in a new temporary directory.
// initdb refuses to run as root, so under root the cluster runs as the
// "postgres" OS user.
func StartPostgres(opts PostgresOptions) (*Postgres, error) {
	bin, err := EnsurePostgres()
	if err != nil {
		return nil, err
	}
	if opts.WALLevel == "" {
		opts.WALLevel = "logical"
	}
	if opts.MaxReplicationSlots == 0 {
		opts.MaxReplicationSlots = 16
	}
	p := &Postgres{Bin: bin, opts: opts}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the postgres OS user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	dir, err := os.MkdirTemp("", "sluice-pg-")
	if err != nil {
		return nil, err
	}
	p.Dir = dir
	if p.cred != nil {
		if err := os.Chown(dir, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			return nil, err
		}
	}
	if err := p.initdb(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// A free port can be taken between our probe and the server's bind;
	// retry a few times with a new one.
	for attempt := 0; ; attempt++ {
		p.Port, err = FreePort()
		if err == nil {
			if err = p.writeConf(); err == nil {
				err = p.Start()
			}
		}
		if err == nil || attempt == 4 {
			break
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := p.bootstrap(); err != nil {
		p.Destroy()
		return nil, err
	}
	return p, nil
}

func (p *Postgres) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(p.Bin, name), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred, Setpgid: true}
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "LANG=C.UTF-8")
	return cmd
}

func (p *Postgres) dataDir() string { return filepath.Join(p.Dir, "data") }

func (p *Postgres) initdb() error {
	cmd := p.command("initdb", "-D", p.dataDir(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v\n%s", err, out)
	}
	return nil
}

func (p *Postgres) writeConf() error {
	conf := []string{
		"listen_addresses = '127.0.0.1'",
		fmt.Sprintf("port = %d", p.Port),
		fmt.Sprintf("unix_socket_directories = '%s'", p.Dir),
		"wal_level = " + p.opts.WALLevel,
		fmt.Sprintf("max_replication_slots = %d", p.opts.MaxReplicationSlots),
		fmt.Sprintf("max_wal_senders = %d", p.opts.MaxReplicationSlots+4),
		"max_connections = 100",
		"shared_buffers = 128MB",
		"logging_collector = off",
		"log_min_messages = warning",
		"timezone = 'UTC'",
	}
	if !p.opts.Durable {
		conf = append(conf, "fsync = off", "full_page_writes = off", "synchronous_commit = off")
	}
	conf = append(conf, p.opts.Settings...)
	hba := strings.Join([]string{
		"local all all trust",
		"host all +" + PasswordRole + " 127.0.0.1/32 scram-sha-256",
		"host replication +" + PasswordRole + " 127.0.0.1/32 scram-sha-256",
		"host all all 127.0.0.1/32 trust",
		"host replication all 127.0.0.1/32 trust",
	}, "\n") + "\n"
	if err := p.writeOwned(filepath.Join(p.dataDir(), "postgresql.auto.conf"), strings.Join(conf, "\n")+"\n"); err != nil {
		return err
	}
	return p.writeOwned(filepath.Join(p.dataDir(), "pg_hba.conf"), hba)
}

func (p *Postgres) writeOwned(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return err
	}
	if p.cred != nil {
		return os.Chown(path, int(p.cred.Uid), int(p.cred.Gid))
	}
	return nil
}

// Start runs the server (again, after Stop) and waits until it accepts
// connections.
func (p *Postgres) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return errors.New("postgres already running")
	}
	p.logPath = filepath.Join(p.Dir, "postgres.log")
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := p.command("postgres", "-D", p.dataDir())
	cmd.Stdout, cmd.Stderr = logf, logf
	// The server dies with the process that started it (a killed test run
	// leaves no stray clusters behind).
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	p.cmd, p.exited = cmd, exited
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			p.cmd = nil
			return fmt.Errorf("postgres exited at start: %s", p.logTail())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, p.DSN("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.stopLocked(syscall.SIGQUIT)
	return fmt.Errorf("postgres did not accept connections within 60s: %s", p.logTail())
}

func (p *Postgres) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}

// Stop shuts the server down ("fast" mode: sessions are disconnected).
func (p *Postgres) Stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopLocked(syscall.SIGINT)
}

// Kill ends the server without a clean shutdown (crash recovery at the
// next start).
func (p *Postgres) Kill() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopLocked(syscall.SIGQUIT)
}

func (p *Postgres) stopLocked(sig syscall.Signal) error {
	if p.cmd == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
	return nil
}

// Restart stops and starts the server on the same port and data.
func (p *Postgres) Restart() error {
	if err := p.Stop(); err != nil {
		return err
	}
	return p.Start()
}

// Destroy stops the server and removes its files.
func (p *Postgres) Destroy() {
	p.Kill()
	os.RemoveAll(p.Dir)
}

// DefaultDB is the database every cluster starts with (initdb makes it).
const DefaultDB = "postgres"

// DSN returns a connection string for the superuser "postgres".
func (p *Postgres) DSN(db string) string {
	return p.UserDSN("postgres", "", db)
}

// UserDSN returns a connection string for a given role and password.
func (p *Postgres) UserDSN(user, password, db string) string {
	auth := user
	if password != "" {
		auth += ":" + password
	}
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", auth, p.Port, db)
}

// Exec runs SQL statements (simple protocol, several allowed) as superuser.
func (p *Postgres) Exec(ctx context.Context, db, sql string) error {
	conn, err := pgx.Connect(ctx, p.DSN(db))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

func (p *Postgres) bootstrap() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return p.Exec(ctx, "postgres", "CREATE ROLE "+PasswordRole+" NOLOGIN")
}

// FreePort asks the kernel for a free TCP port on 127.0.0.1.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
