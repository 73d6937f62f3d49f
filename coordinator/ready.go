package coordinator

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Readiness, and writes that wait for a leader. A node answers HTTP as
// soon as it listens, well before Raft has elected a leader (a second or
// so after `sluice up`, longer when a cluster starts or loses its
// leader). Reads are served from local state at once; a write waits,
// within a bound, until a leader takes it, instead of failing; /readyz
// tells when the node can take writes without waiting.

// DefaultLeaderWait bounds how long a write waits for a coordinator
// leader (APIOptions.LeaderWait).
const DefaultLeaderWait = 30 * time.Second

// Codes of the answers a client may send again unchanged: the node did
// nothing with the request.
const (
	// codeNoLeader: no coordinator leader took the write.
	codeNoLeader = "no_leader"
	// codeNotReady: the node is starting and the request carried no
	// token (its first admin token may not be made yet).
	codeNotReady = "not_ready"
)

// notAppliedHeader marks, between nodes, an answer that applied nothing
// (codeNoLeader): the node that forwarded the write waits for the next
// leader and sends it again.
const notAppliedHeader = "X-Sluice-Not-Applied"

// leaderPoll is how often a waiting write looks for a leader.
const leaderPoll = 20 * time.Millisecond

// failNotApplied answers 503 with a code that says the request did
// nothing and may be sent again.
func (a *api) failNotApplied(w http.ResponseWriter, code, msg string) {
	w.Header().Set(notAppliedHeader, code)
	w.Header().Set("Retry-After", "1")
	a.failCode(w, http.StatusServiceUnavailable, code, msg, nil)
}

// Readiness is /readyz's answer.
type Readiness struct {
	Ready  bool   `json:"ready"`
	Leader string `json:"leader"`
	Reason string `json:"reason,omitempty"`
}

// readyz answers 200 once this node knows a leader it can send writes to
// and its roles are started, 503 with the reason before. It needs no
// token: it tells only the leader's node id and the node's own state.
func (a *api) readyz(w http.ResponseWriter, _ *http.Request) {
	rd := Readiness{Leader: a.c.Leader(), Reason: a.notReady()}
	rd.Ready = rd.Reason == ""
	status := http.StatusOK
	if !rd.Ready {
		status = http.StatusServiceUnavailable
	}
	a.reply(w, status, rd)
}

// notReady says why this node cannot take writes at once ("" when it
// can).
func (a *api) notReady() string {
	if a.c.Leader() == "" {
		return "no coordinator leader elected yet"
	}
	if _, ok := a.c.Node(a.c.NodeID()); !ok {
		return "this node is not registered with the cluster yet"
	}
	if !a.c.IsLeader() && a.leaderAPI() == "" {
		return "the coordinator leader's API address is not known yet"
	}
	if a.opts.Ready != nil {
		if err := a.opts.Ready(); err != nil {
			return err.Error()
		}
	}
	return ""
}

// startingWithoutToken answers a request without a token, or with one
// this node does not know yet, 503 (send it again) rather than 401 while
// the node starts: the cluster's first admin token is made only once a
// leader is elected, and after a restart the tokens made since the last
// Raft snapshot are known only once a leader commits the log again. A
// request with a known token goes on as always.
func (a *api) startingWithoutToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.starting() && !a.knownToken(r) {
			if reason := a.notReady(); reason != "" {
				a.failNotApplied(w, codeNotReady, "Sluice is starting ("+reason+") and does not know the request's API token yet: send it again once the node is ready (GET /readyz)")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// knownToken reports whether the request carries a token of the state.
func (a *api) knownToken(r *http.Request) bool {
	text, ok := bearer(r)
	if !ok {
		return false
	}
	_, ok = a.c.Authenticate(text)
	return ok
}

// starting reports whether the node has not finished starting: no leader
// yet, or its roles not all started (registered in the state or not: a
// bare coordinator, as in tests, has no roles to wait for).
func (a *api) starting() bool {
	return a.c.Leader() == "" || (a.opts.Ready != nil && a.opts.Ready() != nil)
}

// writeViaLeader serves a write on the leader: here when this node leads,
// else through the leader's API. Without a leader (none elected yet, its
// address not known yet, or a leader that answers it lost leadership
// before applying anything) it waits and tries again, until
// opts.LeaderWait or the request ends; then it answers 503 saying that
// no leader was elected and how many voters it reaches.
func (a *api) writeViaLeader(w http.ResponseWriter, r *http.Request, next http.Handler) {
	body, ok := a.readBody(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.opts.LeaderWait)
	defer cancel()
	header := w.Header().Clone()
	pause := 50 * time.Millisecond
	for {
		target, err := a.awaitLeader(ctx)
		resetHeader(w.Header(), header)
		if err != nil {
			a.failNoLeader(w, r.Context())
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &notAppliedCatcher{ResponseWriter: w}
		if target == "" {
			next.ServeHTTP(rec, r)
		} else {
			a.proxyTo(rec, r, target)
		}
		if !rec.caught {
			return
		}
		a.logger.Debug("the write found no leader to apply it; waiting for one", "path", r.URL.Path)
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Second)
	}
}

// awaitLeader waits until a leader can take a write: "" when it is this
// node, else the leader's API address.
func (a *api) awaitLeader(ctx context.Context) (string, error) {
	tick := time.NewTicker(leaderPoll)
	defer tick.Stop()
	for {
		if a.c.IsLeader() {
			return "", nil
		}
		if target := a.leaderAPI(); target != "" {
			return target, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-tick.C:
		}
	}
}

// failNoLeader answers a write that found no leader in time.
func (a *api) failNoLeader(w http.ResponseWriter, ctx context.Context) {
	msg := fmt.Sprintf("no coordinator leader was elected within %s, so the change was not applied", a.opts.LeaderWait)
	if id := a.c.Leader(); id != "" {
		msg = fmt.Sprintf("the coordinator leader %s did not take the change within %s (its API address is not known here, or it lost leadership), so the change was not applied", id, a.opts.LeaderWait)
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if up, total, down := a.c.votersReachable(pctx); total > 0 {
		msg += fmt.Sprintf("; %d of %d voters reachable", up, total)
		if len(down) > 0 {
			msg += " (not reachable: " + strings.Join(down, ", ") + ")"
		}
		msg += fmt.Sprintf(", a leader needs %d", total/2+1)
	}
	a.failNotApplied(w, codeNoLeader, msg)
}

// votersReachable counts the Raft voters this node reaches at their Raft
// address (itself included), and names the others.
func (c *Coordinator) votersReachable(ctx context.Context) (up, total int, down []string) {
	var d net.Dialer
	for _, m := range c.Members() {
		if !m.Voter {
			continue
		}
		total++
		if m.ID == c.NodeID() {
			up++
			continue
		}
		addr := m.Addr
		if c.cfg.Resolve != nil {
			if r := c.cfg.Resolve(m.ID); r != "" {
				addr = r
			}
		}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			down = append(down, m.ID)
			continue
		}
		conn.Close()
		up++
	}
	return up, total, down
}

// resetHeader makes h a copy of orig again (a caught answer's headers
// must not leak into the next attempt's).
func resetHeader(h, orig http.Header) {
	for k := range h {
		delete(h, k)
	}
	for k, v := range orig {
		h[k] = v
	}
}

// notAppliedCatcher holds back an answer marked notAppliedHeader (a 503
// of a write that applied nothing), so that the write can be sent again;
// every other answer passes through.
type notAppliedCatcher struct {
	http.ResponseWriter
	caught, wrote bool
}

func (c *notAppliedCatcher) WriteHeader(code int) {
	if !c.wrote && code == http.StatusServiceUnavailable && c.Header().Get(notAppliedHeader) == codeNoLeader {
		c.caught = true
	}
	c.wrote = true
	if !c.caught {
		c.ResponseWriter.WriteHeader(code)
	}
}

func (c *notAppliedCatcher) Write(b []byte) (int, error) {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	if c.caught {
		return len(b), nil
	}
	return c.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (a proxy
// flushes through it).
func (c *notAppliedCatcher) Unwrap() http.ResponseWriter { return c.ResponseWriter }
