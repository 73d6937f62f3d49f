package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Writes from followers. A unit running on a follower records its
// progress (status, copied tables, epochs) through Raft like everyone
// else: the follower sends the encoded command to the leader's internal
// endpoint, and the leader answers with the entry's index or the
// handler's error, named so that errors.Is works on the follower too.

// sentinels are the errors a forwarded command's caller may test for.
var sentinels = map[string]error{
	"task_exists":    ErrTaskExists,
	"task_not_found": ErrTaskNotFound,
	"stale_epoch":    ErrStaleEpoch,
	"bad_transition": ErrBadTransition,
	"node_not_found": ErrNodeNotFound,
	"not_leader":     ErrNotLeader,
}

type applyReply struct {
	Index uint64 `json:"index"`
	Error string `json:"error,omitempty"`
	Code  string `json:"code,omitempty"`
	// NotApplied: the command certainly did not enter the log (see
	// errNotApplied); sending it again is safe.
	NotApplied bool `json:"not_applied,omitempty"`
}

// dialFailed reports whether a call failed before reaching its server
// (so the server did nothing).
func dialFailed(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// forward sends cmd to the leader and waits until this node has applied
// the entry.
func (c *Coordinator) forward(ctx context.Context, cmd Command) error {
	entry, err := Encode(cmd)
	if err != nil {
		return err
	}
	id := c.Leader()
	n, ok := c.Node(id)
	if !ok || n.API == "" {
		return fmt.Errorf("%w: %w: the leader %q has not registered its API address yet", ErrNotLeader, errNotApplied, id)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.nodeScheme()+"://"+n.API+applyPath, bytes.NewReader(entry))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set(forwardedHeader, c.NodeID())
	resp, err := c.nodeHTTP.Do(req)
	if err != nil {
		if dialFailed(err) {
			return fmt.Errorf("%w: %w: cannot reach the leader %s: %w", ErrNotLeader, errNotApplied, id, err)
		}
		return fmt.Errorf("%w: cannot reach the leader %s: %w", ErrNotLeader, id, err)
	}
	defer resp.Body.Close()
	var reply applyReply
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&reply); err != nil {
		return fmt.Errorf("coordinator: leader %s answered %s: %w", id, resp.Status, err)
	}
	if reply.Code != "" || reply.Error != "" {
		if s, ok := sentinels[reply.Code]; ok {
			if s == ErrNotLeader && reply.NotApplied {
				return fmt.Errorf("%w: %w (asked %s)", ErrNotLeader, errNotApplied, id)
			}
			if s == ErrNotLeader {
				return fmt.Errorf("%w (asked %s)", ErrNotLeader, id)
			}
			err = fmt.Errorf("%w: %s", s, reply.Error)
		} else {
			err = errors.New(reply.Error)
		}
	}
	if reply.Index > 0 {
		if werr := c.waitIndex(ctx, reply.Index); werr != nil {
			return werr
		}
	}
	return err
}

// waitIndex waits until the local state has applied index.
func (c *Coordinator) waitIndex(ctx context.Context, index uint64) error {
	for c.store.Index() < index {
		changed := c.store.Changed()
		if c.store.Index() >= index {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("coordinator: waiting for the local state to reach index %d: %w", index, ctx.Err())
		case <-changed:
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// applyForwarded is the leader's side of forward.
func (a *api) applyForwarded(w http.ResponseWriter, r *http.Request) {
	entry, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		a.reply(w, http.StatusBadRequest, applyReply{Error: err.Error()})
		return
	}
	// Decode is strict: what another node sends must be exactly a
	// command this version knows.
	cmd, err := Decode(entry)
	if err != nil {
		a.reply(w, http.StatusBadRequest, applyReply{Error: err.Error()})
		return
	}
	if !a.c.IsLeader() {
		a.reply(w, http.StatusServiceUnavailable, applyReply{Error: "not the leader", Code: "not_leader", NotApplied: true})
		return
	}
	var index uint64
	if err = a.c.checkForwarded(peerNode(r), cmd); err != nil {
		a.logger.Warn("refused a command from another node", "node", peerNode(r), "command", commandName(cmd.Type()), "error", err)
	} else {
		index, err = a.c.applyLocal(r.Context(), cmd)
	}
	rep := applyReply{Index: index}
	if err != nil {
		rep.Error, rep.NotApplied = err.Error(), errors.Is(err, errNotApplied)
		for code, s := range sentinels {
			if errors.Is(err, s) {
				rep.Code = code
				break
			}
		}
	}
	a.reply(w, http.StatusOK, rep)
}
