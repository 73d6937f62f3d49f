package node

import (
	"errors"
	"sync/atomic"
)

// readiness is the node's part of /readyz: its roles are started (the
// broker connected, the admin token and client config in place, the
// worker running) and, with the worker role, it is registered with the
// leader. The coordinator adds the leader's part.
type readiness struct {
	started atomic.Bool
	// member is set before started; read only once started is.
	member *member
	worker bool
}

// markStarted records that every role is started; m keeps the node's
// registration.
func (r *readiness) markStarted(m *member, worker bool) {
	r.member, r.worker = m, worker
	r.started.Store(true)
}

// check is coordinator.APIOptions.Ready.
func (r *readiness) check() error {
	if !r.started.Load() {
		return errors.New("the node is starting: its roles are not all started yet")
	}
	if r.worker && !r.member.registered.Load() {
		return errors.New("the worker is not registered with the coordinator leader (lost, or re-registering)")
	}
	return nil
}
