package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/coordinator/scheduler"
	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/internal/safe"
	"github.com/sluicedb/sluice/internal/secret"
	"github.com/sluicedb/sluice/proto"
)

// Alerts: the Raft leader evaluates every task's alert rules (task spec
// "alerts"), since it alone sees the whole cluster: task states and the
// tables' last verifications from the replicated state, apply groups'
// latencies from the nodes' heartbeats, and each slot's retained WAL,
// which it measures at the source (a paused or failed task's slot
// retains WAL too). A rule that starts or stops holding is POSTed to the
// task's webhook as JSON. A new leader starts from nothing, so an alert
// still holding is sent again after a leader change: at least once,
// never silently lost.

// Alert is the JSON body POSTed to a webhook.
type Alert struct {
	Task      string    `json:"task"`
	Alert     string    `json:"alert"`    // failed, latency, retained_wal, differences
	Severity  string    `json:"severity"` // critical, warning
	State     string    `json:"state"`    // firing, resolved
	Message   string    `json:"message"`
	Value     float64   `json:"value,omitempty"`
	Threshold float64   `json:"threshold,omitempty"`
	At        time.Time `json:"at"`
	Node      string    `json:"node"` // the leader that sent it
}

// alerter is the leader's alert loop.
type alerter struct {
	coord  *coordinator.Coordinator
	logger *slog.Logger
	http   *http.Client
	// walEvery is how often retained WAL is measured.
	walEvery time.Duration

	mu     sync.Mutex
	tasks  map[string]*taskAlerts
	sends  sync.WaitGroup
	leader bool
}

// taskAlerts is what the leader remembers of one task's rules.
type taskAlerts struct {
	createIndex  uint64
	failed       bool
	latencySince time.Time // when the latency went above the threshold
	latencyFired bool
	walBytes     *int64 // last measurement
	slotActive   bool   // by the same measurement
	walAt        time.Time
	walFired     bool
	diffFired    bool // differences left by verification
}

func newAlerter(coord *coordinator.Coordinator, logger *slog.Logger) *alerter {
	return &alerter{coord: coord, logger: logger, walEvery: 15 * time.Second,
		http: &http.Client{Timeout: 5 * time.Second}, tasks: map[string]*taskAlerts{}}
}

// run evaluates every second until ctx ends, then waits for webhooks in
// flight.
func (a *alerter) run(ctx context.Context) {
	defer a.sends.Wait()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		// A panic in one evaluation is recovered (logged with its stack
		// by the process's hook, counted) and the loop goes on: the next
		// round starts afresh from the replicated state a second later.
		// Every section holding a.mu unlocks it in a defer (locked), so
		// a panic never leaves the metrics' readers blocked.
		if err := safe.Run("alerts", func() error { a.round(ctx, time.Now()); return nil }); err != nil {
			a.logger.Error("alert round failed; going on", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// locked runs f with a.mu held, released even if f panics.
func (a *alerter) locked(f func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f()
}

func (a *alerter) round(ctx context.Context, now time.Time) {
	leader := a.coord.IsLeader()
	a.locked(func() {
		if leader != a.leader {
			a.tasks = map[string]*taskAlerts{} // start from nothing, as a new leader
			a.leader = leader
		}
	})
	if !leader {
		return
	}
	latency := a.latencies()
	seen := map[string]bool{}
	for _, t := range a.coord.Tasks() {
		name := t.Spec.Name
		seen[name] = true
		var st *taskAlerts
		var measure bool
		a.locked(func() {
			st = a.tasks[name]
			if st == nil || st.createIndex != t.CreateIndex {
				st = &taskAlerts{createIndex: t.CreateIndex}
				a.tasks[name] = st
			}
			measure = t.SlotCreated && !t.Deleting && now.Sub(st.walAt) >= a.walEvery
		})
		// Every slot's retained WAL is measured (a metric), outside the
		// lock: it takes a connection to the source.
		var retained *int64
		var active bool
		if measure {
			if n, act, err := retainedWAL(ctx, &t); err == nil {
				retained, active = &n, act
			} else {
				a.logger.Debug("cannot measure retained WAL", "task", name, "err", err)
			}
		}
		a.locked(func() {
			if measure {
				st.walAt = now
				if retained != nil {
					st.walBytes, st.slotActive = retained, active
				}
			}
			if t.Spec.Alerts != nil && !t.Deleting {
				a.evaluate(&t, st, latency[name], retained, now)
			}
		})
	}
	a.locked(func() {
		for name := range a.tasks {
			if !seen[name] {
				delete(a.tasks, name)
			}
		}
	})
}

// latencies is every task's latency from the apply groups' heartbeats:
// its slowest group's, known once every running group reported one.
func (a *alerter) latencies() map[string]*int64 {
	out := map[string]*int64{}
	unknown := map[string]bool{}
	for _, units := range a.coord.UnitHealth() {
		for _, u := range units {
			id, err := scheduler.ParseUnitID(u.Unit)
			if err != nil || id.Kind != scheduler.KindApply || !u.Running {
				continue
			}
			if u.LatencyMS == nil {
				unknown[id.Task] = true
				continue
			}
			if cur := out[id.Task]; cur == nil || *u.LatencyMS > *cur {
				v := *u.LatencyMS
				out[id.Task] = &v
			}
		}
	}
	for task := range unknown {
		delete(out, task)
	}
	return out
}

// evaluate applies a task's rules (a.mu held); retained is a new
// measurement of its slot's WAL, or nil.
func (a *alerter) evaluate(t *coordinator.Task, st *taskAlerts, latencyMS, retained *int64, now time.Time) {
	spec := t.Spec.Alerts
	name := t.Spec.Name
	// Failure.
	failed := t.State == proto.StateFailed
	if spec.FailureAlerts() && failed != st.failed {
		msg := "the task is running again"
		state := "resolved"
		if failed {
			state, msg = "firing", "the task failed"
			if t.LastError != nil {
				msg += ": " + t.LastError.Message
			}
		}
		a.send(spec.Webhook, Alert{Task: name, Alert: "failed", Severity: "critical", State: state, Message: msg, At: now})
	}
	st.failed = failed

	a.evaluateDifferences(t, st, now)

	// Latency held above the threshold for a while.
	if l := spec.Latency; l != nil {
		above := time.Duration(l.Above)
		if latencyMS != nil && time.Duration(*latencyMS)*time.Millisecond > above && t.State != proto.StatePaused {
			if st.latencySince.IsZero() {
				st.latencySince = now
			}
			if !st.latencyFired && now.Sub(st.latencySince) >= time.Duration(l.For) {
				st.latencyFired = true
				a.send(spec.Webhook, Alert{Task: name, Alert: "latency", Severity: "critical", State: "firing",
					Message: fmt.Sprintf("latency %s, above %s for %s", time.Duration(*latencyMS)*time.Millisecond, above, now.Sub(st.latencySince).Round(time.Second)),
					Value:   float64(*latencyMS) / 1000, Threshold: above.Seconds(), At: now})
			}
		} else if latencyMS != nil {
			if st.latencyFired {
				a.send(spec.Webhook, Alert{Task: name, Alert: "latency", Severity: "critical", State: "resolved",
					Message: fmt.Sprintf("latency %s, below %s again", time.Duration(*latencyMS)*time.Millisecond, above),
					Value:   float64(*latencyMS) / 1000, Threshold: above.Seconds(), At: now})
			}
			st.latencySince, st.latencyFired = time.Time{}, false
		}
	}

	// Retained WAL, at each new measurement.
	limit := spec.RetainedWALBytes()
	if limit <= 0 || retained == nil {
		return
	}
	over := *retained > limit
	if over != st.walFired {
		state, msg := "resolved", "the replication slot's retained WAL is back under the limit"
		if over {
			state, msg = "firing", "the replication slot retains more WAL than the limit: the source keeps it until the task catches up; resume or fix the task, or delete it to release the WAL"
		}
		a.send(spec.Webhook, Alert{Task: name, Alert: "retained_wal", Severity: "warning", State: state, Message: msg,
			Value: float64(*retained), Threshold: float64(limit), At: now})
		st.walFired = over
	}
}

// retainedWAL is how much WAL the task's slot keeps at the source, and
// whether a capture reads the slot.
func retainedWAL(ctx context.Context, t *coordinator.Task) (int64, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgconfig.Connect(ctx, t.Spec.Source.ConnDSN(), "sluice alerts")
	if err != nil {
		return 0, false, err
	}
	defer conn.Close(context.Background())
	n, err := capture.RetainedWAL(ctx, conn, t.Spec.Name)
	if err != nil {
		return 0, false, err
	}
	info, err := capture.LookupSlot(ctx, conn, t.Spec.Name)
	return n, info.Active, err
}

// send POSTs an alert in the background: three attempts, a few seconds
// apart, each bounded by the client's timeout.
func (a *alerter) send(webhook string, al Alert) {
	al.Node = a.coord.NodeID()
	body, err := json.Marshal(al)
	if err != nil {
		return
	}
	a.logger.Warn("alert", "task", al.Task, "alert", al.Alert, "state", al.State, "message", al.Message)
	target, err := secret.ResolveField(webhook)
	if err != nil {
		a.logger.Error("alert not delivered", "task", al.Task, "alert", al.Alert, "err", err)
		return
	}
	secret.Register(target)
	a.sends.Add(1)
	go func() {
		defer a.sends.Done()
		// Nothing waits for a delivery's outcome: a panic in one is
		// recovered (logged with its stack by the process's hook,
		// counted) and reported like a delivery that failed.
		err := safe.Run("alerts/webhook", func() error {
			var last error
			for attempt := 0; attempt < 3; attempt++ {
				if attempt > 0 {
					time.Sleep(time.Duration(attempt) * 2 * time.Second)
				}
				resp, err := a.http.Post(target, "application/json", bytes.NewReader(body))
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode < 300 {
						return nil
					}
					err = fmt.Errorf("HTTP %s", resp.Status)
				}
				last = err
			}
			return last
		})
		if err != nil {
			a.logger.Error("alert not delivered", "task", al.Task, "alert", al.Alert, "webhook", proto.RedactURL(target), "err", err)
		}
	}()
}

// firing lists, for metrics, the alerts holding now on this leader.
func (a *alerter) firing() map[string][]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string][]string{}
	for name, st := range a.tasks {
		if st.failed {
			out[name] = append(out[name], "failed")
		}
		if st.latencyFired {
			out[name] = append(out[name], "latency")
		}
		if st.walFired {
			out[name] = append(out[name], "retained_wal")
		}
		if st.diffFired {
			out[name] = append(out[name], "differences")
		}
	}
	return out
}

// slots returns the last measurements of the slots (leader only), for
// the tasks' status: the leader sends them with its heartbeat's figures.
func (a *alerter) slots() map[string]coordinator.SlotLive {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]coordinator.SlotLive{}
	for name, st := range a.tasks {
		if st.walBytes != nil {
			out[name] = coordinator.SlotLive{RetainedWALBytes: *st.walBytes, Active: st.slotActive}
		}
	}
	return out
}

// evaluateDifferences alerts while some table's last verification (sluice
// verify, or a round of continuous verification) left rows that differ,
// and once none does (a.mu held). Continuous verification compares a
// range that left differences again at each round, so the alert holds
// until they are gone.
func (a *alerter) evaluateDifferences(t *coordinator.Task, st *taskAlerts, now time.Time) {
	spec := t.Spec.Alerts
	if !spec.DifferenceAlerts() {
		st.diffFired = false
		return
	}
	sum := proto.SummarizeVerify(t.VerifyRecords())
	differs := sum != nil && sum.Differences > 0
	if differs == st.diffFired {
		return
	}
	name := t.Spec.Name
	al := Alert{Task: name, Alert: "differences", Severity: "critical", State: "resolved", At: now,
		Message: "no table's last verification left rows that differ"}
	if differs {
		al.State, al.Value = "firing", float64(sum.Differences)
		rows := fmt.Sprintf("%d rows differ", sum.Differences)
		if sum.Differences == 1 {
			rows = "1 row differs"
		}
		al.Message = fmt.Sprintf("%s between the source and the destination, by the last verification of %s: see sluice verify %s --last, and repair with sluice verify %s --repair",
			rows, strings.Join(sum.Differing, ", "), name, name)
	}
	a.send(spec.Webhook, al)
	st.diffFired = differs
}
