package emu

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// ErrNoMariaDB means mariadbd or mariadb-install-db is not installed; tests
// skip on it (CI installs the package with `make deps`).
var ErrNoMariaDB = errors.New("dorisemu: mariadbd not installed (apt-get install mariadb-server, or make deps)")

// mariadb is the private server every emulator runs its data on: a
// throwaway datadir, a unix socket only (nothing listens on TCP) and the
// settings that trade durability for speed, as nothing outlives a test.
type mariadb struct {
	dir    string
	socket string
	cmd    *exec.Cmd
	exited chan struct{}
	db     *sql.DB
}

// FindMariaDB returns the paths of mariadbd and mariadb-install-db, or
// ErrNoMariaDB. Debian keeps mariadbd in /usr/sbin, outside a user's PATH.
func FindMariaDB() (server, install string, err error) {
	server = lookup("mariadbd", "/usr/sbin/mariadbd", "/usr/local/sbin/mariadbd")
	install = lookup("mariadb-install-db", "/usr/bin/mariadb-install-db", "/usr/local/bin/mariadb-install-db")
	if server == "" || install == "" {
		return "", "", ErrNoMariaDB
	}
	return server, install, nil
}

func lookup(name string, fallbacks ...string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range fallbacks {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

func startMariaDB(dir string) (*mariadb, error) {
	server, install, err := FindMariaDB()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	// --user=root is required when the tests run as root (containers);
	// mariadbd refuses to run as root otherwise. As another user it is a
	// harmless no-op warning.
	init := exec.Command(install, "--no-defaults", "--datadir="+data,
		"--auth-root-authentication-method=normal", "--skip-test-db", "--user="+currentUser())
	if out, err := init.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mariadb-install-db: %v\n%s", err, tail(out))
	}
	m := &mariadb{dir: dir, socket: filepath.Join(dir, "mysqld.sock"), exited: make(chan struct{})}
	logPath := filepath.Join(dir, "mariadbd.log")
	m.cmd = exec.Command(server, "--no-defaults", "--datadir="+data, "--socket="+m.socket,
		"--skip-networking", "--user="+currentUser(), "--skip-log-bin",
		"--pid-file="+filepath.Join(dir, "mariadbd.pid"), "--log-error="+logPath,
		"--innodb-buffer-pool-size=32M", "--innodb-log-file-size=48M",
		"--innodb-flush-log-at-trx-commit=2", "--innodb-doublewrite=0",
		"--character-set-server=utf8mb4", "--collation-server=utf8mb4_nopad_bin",
		"--max-allowed-packet=64M", "--skip-name-resolve", "--max-connections=500",
		"--sql-mode=STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO")
	// Its own process group, so a Ctrl-C meant for `go test` does not reach
	// it before Close has a chance to stop it in order.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start mariadbd: %w", err)
	}
	go func() { _ = m.cmd.Wait(); close(m.exited) }()

	cfg := mysql.NewConfig()
	cfg.User = "root"
	cfg.Net = "unix"
	cfg.Addr = m.socket
	cfg.InterpolateParams = true
	cfg.MultiStatements = false
	cfg.Collation = "utf8mb4_general_ci"
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		m.stop()
		return nil, err
	}
	m.db = sql.OpenDB(conn)
	m.db.SetMaxIdleConns(16)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = m.db.PingContext(ctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-m.exited:
			log, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("mariadbd exited during start: %s", tail(log))
		default:
		}
		if time.Now().After(deadline) {
			m.stop()
			log, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("mariadbd not ready after 30s: %v\n%s", err, tail(log))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := m.db.Exec("CREATE DATABASE " + sysSchema); err != nil {
		m.stop()
		return nil, fmt.Errorf("create %s: %w", sysSchema, err)
	}
	return m, nil
}

// stop ends the server this emulator started, by its PID only: SIGTERM for
// a clean InnoDB shutdown, SIGKILL if that takes longer than the bound.
func (m *mariadb) stop() {
	if m.db != nil {
		_ = m.db.Close()
	}
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	select {
	case <-m.exited:
		return
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
}

func currentUser() string {
	if os.Geteuid() == 0 {
		return "root"
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}

func tail(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
