// Package emu is the Apache Doris emulator (internal/testenv/dorisemu runs it) for tests: an FE and a BE
// HTTP listener speaking Doris's stream load, 2PC, load state and SQL
// APIs, over a private MariaDB that holds the data. Sinks talk to it only
// over HTTP, as they would to a real cluster; see README.md for what is
// emulated and what is not.
package emu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure an emulator; the zero value is a usable default.
type Options struct {
	// Dir holds MariaDB's data; default a new temporary directory, which
	// Close removes (a Dir given here is left in place).
	Dir string
	// FEAddr and BEAddr are the listen addresses, default 127.0.0.1:0.
	FEAddr, BEAddr string
	// Users are the accounts besides root (empty password, every
	// privilege) unless Users redefines "root".
	Users map[string]User
	// PrecommitTimeout aborts a 2PC transaction left precommitted this
	// long; default 1h.
	PrecommitTimeout time.Duration
	// LabelKeep is how long a finished or aborted load's label is
	// remembered (label_keep_max_second); default 3 days.
	LabelKeep time.Duration
	// PublishDelay is how late a load answered "Publish Timeout" becomes
	// visible; default 2s.
	PublishDelay time.Duration
	// LabelExistsNewForm answers label conflicts as newer Doris does:
	// Status "Fail" and a "[LABEL_ALREADY_EXISTS]..." message.
	LabelExistsNewForm bool
}

// Stats count what the BE did, for benchmarks.
type Stats struct {
	Loads, Commits, Aborts, Rows, Bytes int64
}

// Emulator is a running Doris emulator.
type Emulator struct {
	opts    Options
	dir     string
	ownDir  bool
	users   map[string]User
	maria   *mariadb
	cat     *catalog
	txns    *txnManager
	errLogs *errorLogs

	feMu     sync.Mutex
	feAddr   string
	feServer *http.Server
	feDown   bool
	beLn     net.Listener
	beServer *http.Server

	// pub serializes publishing, commits and aborts, so loads become
	// visible in commit order.
	pub    sync.Mutex
	faults faults
	stats  struct{ loads, commits, aborts, rows, bytes atomic.Int64 }

	stop   chan struct{}
	wg     sync.WaitGroup
	closed atomic.Bool
}

// Start starts MariaDB and both listeners.
func Start(opts Options) (*Emulator, error) {
	if opts.PrecommitTimeout <= 0 {
		opts.PrecommitTimeout = time.Hour
	}
	if opts.LabelKeep <= 0 {
		opts.LabelKeep = 72 * time.Hour
	}
	if opts.PublishDelay <= 0 {
		opts.PublishDelay = 2 * time.Second
	}
	if opts.FEAddr == "" {
		opts.FEAddr = "127.0.0.1:0"
	}
	if opts.BEAddr == "" {
		opts.BEAddr = "127.0.0.1:0"
	}
	e := &Emulator{opts: opts, dir: opts.Dir, cat: newCatalog(), errLogs: newErrorLogs(), stop: make(chan struct{})}
	e.users = map[string]User{"root": {Privs: []string{PrivAdmin}}}
	for name, u := range opts.Users {
		e.users[name] = u
	}
	e.txns = newTxnManager()
	if _, _, err := FindMariaDB(); err != nil {
		return nil, err
	}
	if e.dir == "" {
		d, err := os.MkdirTemp("", "dorisemu-")
		if err != nil {
			return nil, err
		}
		e.dir, e.ownDir = d, true
	}
	m, err := startMariaDB(e.dir)
	if err != nil {
		e.removeDir()
		return nil, err
	}
	e.maria = m

	feLn, err := net.Listen("tcp", opts.FEAddr)
	if err != nil {
		e.Close()
		return nil, fmt.Errorf("listen FE: %w", err)
	}
	e.feAddr = feLn.Addr().String()
	e.beLn, err = net.Listen("tcp", opts.BEAddr)
	if err != nil {
		_ = feLn.Close()
		e.Close()
		return nil, fmt.Errorf("listen BE: %w", err)
	}
	e.beServer = &http.Server{Handler: e.beHandler(), ReadHeaderTimeout: 10 * time.Second}
	e.serve(e.beServer, e.beLn)
	e.feMu.Lock()
	e.serveFELocked(feLn)
	e.feMu.Unlock()

	e.wg.Add(1)
	go e.housekeeping()
	return e, nil
}

func (e *Emulator) serve(s *http.Server, ln net.Listener) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		_ = s.Serve(ln)
	}()
}

// serveFELocked serves the FE on ln; the caller holds feMu.
func (e *Emulator) serveFELocked(ln net.Listener) {
	e.feServer = &http.Server{Handler: e.feHandler(), ReadHeaderTimeout: 10 * time.Second}
	e.feDown = false
	e.serve(e.feServer, ln)
}

// housekeeping aborts 2PC transactions past PrecommitTimeout, publishes
// delayed loads and forgets expired labels, also done lazily per request.
func (e *Emulator) housekeeping() {
	defer e.wg.Done()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-tick.C:
			e.sweep()
		}
	}
}

// Close stops the listeners and MariaDB and removes the temporary data.
func (e *Emulator) Close() {
	if !e.closed.CompareAndSwap(false, true) {
		return
	}
	close(e.stop)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.feMu.Lock()
	if e.feServer != nil {
		_ = e.feServer.Shutdown(ctx)
		_ = e.feServer.Close()
	}
	e.feMu.Unlock()
	if e.beServer != nil {
		_ = e.beServer.Shutdown(ctx)
		_ = e.beServer.Close()
	}
	e.wg.Wait()
	if e.maria != nil {
		e.maria.stop()
	}
	e.removeDir()
}

func (e *Emulator) removeDir() {
	if e.ownDir && e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
}

// FEURL is the FE's base URL, e.g. http://127.0.0.1:41234.
func (e *Emulator) FEURL() string { return "http://" + e.feAddr }

// FEAddr is the FE's host:port.
func (e *Emulator) FEAddr() string { return e.feAddr }

// BEAddr is the BE's host:port, where the FE redirects stream loads.
func (e *Emulator) BEAddr() string { return e.beLn.Addr().String() }

// MySQLDSN is a go-sql-driver DSN for the private MariaDB (as root), for
// tests that want to look under the emulation.
func (e *Emulator) MySQLDSN() string { return "root@unix(" + e.maria.socket + ")/" }

// Stats returns the BE's counters.
func (e *Emulator) Stats() Stats {
	return Stats{Loads: e.stats.loads.Load(), Commits: e.stats.commits.Load(), Aborts: e.stats.aborts.Load(),
		Rows: e.stats.rows.Load(), Bytes: e.stats.bytes.Load()}
}

// RestartFE closes the FE listener now (connections are refused) and opens
// it again on the same address after down, in the background; the BE and
// all data stay. It returns once the FE is down.
func (e *Emulator) RestartFE(down time.Duration) error {
	e.feMu.Lock()
	defer e.feMu.Unlock()
	if e.feDown {
		return errors.New("dorisemu: FE already down")
	}
	if e.closed.Load() {
		return errors.New("dorisemu: closed")
	}
	e.feDown = true
	_ = e.feServer.Close()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		timer := time.NewTimer(down)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-e.stop:
			return
		}
		// The old socket may linger briefly; retry the bind, bounded.
		for i := 0; i < 100; i++ {
			ln, err := net.Listen("tcp", e.feAddr)
			if err == nil {
				e.feMu.Lock()
				defer e.feMu.Unlock()
				if e.closed.Load() {
					_ = ln.Close()
					return
				}
				e.serveFELocked(ln)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
