package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sluicedb/sluice/internal/secret"
	"github.com/sluicedb/sluice/proto"
)

// Backend is what the API needs from the node it runs in.
type Backend interface {
	// Precheck checks a new task against its source and destination. A
	// Precheck runs every check of a task against its source and
	// destination, creating nothing; an error means the checks could not
	// run. opts.Fix runs the fixes the precheck may run itself
	// (replica identity) and checks again.
	Precheck(ctx context.Context, spec *proto.TaskSpec, opts PrecheckOptions) (*proto.PrecheckReport, error)
	// Cleanup drops what the task created: its slot, publication,
	// heartbeat objects and stream. The task is marked Deleting before.
	Cleanup(ctx context.Context, spec *proto.TaskSpec) error
	// Live returns a task's volatile metrics (zero when it does not run).
	Live(name string) Live
	// TableChanges lists, at the source, the tables a running task's new
	// objects add and remove (keys), and checks the added ones; an error
	// says what is wrong with them.
	TableChanges(ctx context.Context, task *Task, objects []proto.ObjectSpec) (add, remove []string, err error)
	// Conflicts counts a two-way task's conflicts, as logged at both of
	// its databases (spec is the forward direction's).
	Conflicts(ctx context.Context, spec *proto.TaskSpec) ([]proto.ConflictCount, error)
	// Plan works out what a task would create, creating nothing; an
	// error means it could not (the source could not be read).
	Plan(ctx context.Context, spec *proto.TaskSpec) (*proto.TaskPlan, error)
	// Cutover waits up to wait until the task has applied everything its
	// source has written, then runs the cutover's steps (the task is one
	// way, incremental and running). An error wrapping ErrCutoverTimeout
	// says what was behind.
	Cutover(ctx context.Context, task *Task, wait time.Duration) (*proto.CutoverReport, error)
	// Verify compares the task's tables at the source and the destination
	// (and repairs them when asked). An error wrapping ErrVerifyRefused
	// says why the task cannot be verified now.
	Verify(ctx context.Context, task *Task, req proto.VerifyRequest) (*proto.VerifyReport, error)
}

// Live is a running task's volatile metrics: not replicated, measured on
// the node that runs the task (the API shows the cluster's: live.go).
type Live struct {
	LatencyMS     *int64 // nil while unknown
	RowsApplied   int64
	ThroughputRPS float64
	ThroughputBPS float64
	// FullRowsPerSecond and FullBytesPerSecond: the local copy units' rate.
	FullRowsPerSecond  float64
	FullBytesPerSecond float64
	ConfirmedLSN       string
	// PeerTxDropped: transactions the capture left out because the
	// other direction of its two-way task wrote them.
	PeerTxDropped int64
}

// maxBodyBytes bounds a request body: a task spec is a few kilobytes.
const maxBodyBytes = 1 << 20

// errorBody is every error response.
type errorBody struct {
	Error    string          `json:"error"`
	Problems []proto.Problem `json:"problems,omitempty"`
	// Code marks the answers a client may send again as they are: the
	// node did nothing with the request (see codeNoLeader, codeNotReady).
	Code string `json:"code,omitempty"`
}

type api struct {
	c      *Coordinator
	b      Backend
	opts   APIOptions
	logger *slog.Logger
	now    func() time.Time
}

// APIOptions configure the HTTP API.
type APIOptions struct {
	Logger *slog.Logger
	// PeerNode names the node a TLS client certificate belongs to; nil
	// (a node without tls) closes the internal endpoints to everyone.
	PeerNode PeerNodeFunc
	// TokenHint, appended to a 401's message, says where a token is
	// (such as the admin token file of `sluice up`).
	TokenHint string
	// Seal replaces a spec's inline secrets by sealed references before
	// it enters Raft; Unseal gives them back (to compare a spec sent
	// again, or to show a redacted one). Nil: specs go as they are.
	Seal, Unseal func(*proto.TaskSpec) error
	// Keyring encodes the node's keys for another node (GET
	// /internal/v1/keyring); NewKey adds a key to them (a rotation) and
	// returns its id.
	Keyring func() []byte
	NewKey  func() (string, error)
	// LeaderWait bounds how long a write waits for a coordinator leader
	// (none elected yet, its API address not known yet, or leadership
	// moving) before it is answered 503; default DefaultLeaderWait. The
	// request's own context bounds it too.
	LeaderWait time.Duration
	// Ready says whether the node's roles are started (a nil error), for
	// /readyz; nil: the coordinator's own state decides.
	Ready func() error
}

// NewAPI returns the HTTP API: /api/v1/ for users (bearer tokens),
// /internal/v1/ for the other nodes (node certificates), and /healthz
// (liveness) and /readyz (readiness) for anyone. Writes go through Raft:
// a follower forwards them to the leader's API, and a write that finds no
// leader waits for one (see writeViaLeader).
func NewAPI(c *Coordinator, b Backend, opts APIOptions) http.Handler {
	if c == nil || b == nil {
		panic("coordinator.NewAPI: a Coordinator and a Backend are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.LeaderWait <= 0 {
		opts.LeaderWait = DefaultLeaderWait
	}
	a := &api{c: c, b: b, opts: opts, logger: opts.Logger.With("component", "api"), now: time.Now}
	public := http.NewServeMux()
	public.HandleFunc("POST /api/v1/tasks", a.createTask)
	public.HandleFunc("POST /api/v1/precheck", a.precheck)
	public.HandleFunc("POST /api/v1/plan", a.plan)
	public.HandleFunc("GET /api/v1/tasks", a.listTasks)
	public.HandleFunc("GET /api/v1/tasks/{name}", a.getTask)
	public.HandleFunc("DELETE /api/v1/tasks/{name}", a.deleteTask)
	public.HandleFunc("POST /api/v1/tasks/{name}/pause", a.transition(func(n string) Command { return PauseTask{Name: n} }))
	public.HandleFunc("POST /api/v1/tasks/{name}/resume", a.transition(func(n string) Command { return ResumeTask{Name: n} }))
	public.HandleFunc("POST /api/v1/tasks/{name}/cutover", a.cutover)
	public.HandleFunc("POST /api/v1/tasks/{name}/verify", a.verify)
	public.HandleFunc("GET /api/v1/tasks/{name}/verify", a.lastVerify)
	public.HandleFunc("PUT /api/v1/tasks/{name}/throttle", a.setThrottle)
	public.HandleFunc("PUT /api/v1/tasks/{name}", a.updateTask)
	a.clusterRoutes(public)
	a.observeRoutes(public)
	a.tokenRoutes(public)
	public.HandleFunc("POST /api/v1/keys/rotate", a.rotateKey)
	internal := http.NewServeMux()
	a.internalRoutes(internal)

	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", a.healthz)
	root.HandleFunc("GET /readyz", a.readyz)
	root.Handle(internalPrefix, a.requireNode(a.forwardToLeader(internal)))
	root.Handle("/", a.startingWithoutToken(RequireToken(c, nil, opts.TokenHint, a.forwardToLeader(public))))
	return a.logRequests(root)
}

// readBody reads a request body of at most maxBodyBytes, or answers the
// request and returns false.
func (a *api) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err == nil {
		return body, true
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		a.fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request is larger than %d bytes", maxBodyBytes), nil)
	} else {
		a.fail(w, http.StatusBadRequest, "reading the request: "+err.Error(), nil)
	}
	return nil, false
}

// readSpec reads and parses a task spec body, or answers and returns nil.
func (a *api) readSpec(w http.ResponseWriter, r *http.Request) *proto.TaskSpec {
	body, ok := a.readBody(w, r)
	if !ok {
		return nil
	}
	spec, err := proto.ParseTaskSpec(body)
	if err != nil {
		// The parser's messages name fields and lines, never values.
		a.fail(w, http.StatusBadRequest, err.Error(), nil)
		return nil
	}
	secret.RegisterSpec(spec)
	return spec
}

// seal returns a copy of spec with its inline secrets sealed, or answers
// and returns nil.
func (a *api) seal(w http.ResponseWriter, spec *proto.TaskSpec) *proto.TaskSpec {
	sealed := spec.Clone()
	if a.opts.Seal != nil {
		if err := a.opts.Seal(&sealed); err != nil {
			a.fail(w, http.StatusServiceUnavailable, "cannot encrypt the spec's secrets: "+err.Error()+" (or give them by reference: ${env:NAME}, ${file:/path})", nil)
			return nil
		}
	}
	return &sealed
}

// unsealed is a task's spec with its secrets as the user wrote them (as
// stored when they cannot be opened here).
func (a *api) unsealed(spec proto.TaskSpec) (proto.TaskSpec, error) {
	c := spec.Clone()
	if a.opts.Unseal == nil {
		return c, nil
	}
	return c, a.opts.Unseal(&c)
}

// PrecheckOptions are what a precheck may do beyond checking.
type PrecheckOptions struct {
	// Fix sets REPLICA IDENTITY FULL at the source on the selected
	// tables that have neither it nor a primary key, lock-timeout
	// bounded, then checks again (?fix=true; no other DDL).
	Fix bool
}

// precheckOptions reads ?fix=true. A request that may fix is a POST,
// which needs the admin scope (requiredScope) like every write.
func precheckOptions(r *http.Request) PrecheckOptions {
	return PrecheckOptions{Fix: r.URL.Query().Get("fix") == "true"}
}

// runPrecheck runs a spec's checks, or answers and returns nil.
func (a *api) runPrecheck(w http.ResponseWriter, r *http.Request, spec *proto.TaskSpec) *proto.PrecheckReport {
	report, err := a.b.Precheck(r.Context(), spec, precheckOptions(r))
	if err != nil {
		a.fail(w, http.StatusBadGateway, "could not run the precheck: "+redact(err.Error()), nil)
		return nil
	}
	return report
}

func (a *api) createTask(w http.ResponseWriter, r *http.Request) {
	spec := a.readSpec(w, r)
	if spec == nil {
		return
	}
	// Before the precheck, which connects to both databases: a taken name
	// is the cheaper answer. Apply checks again, atomically.
	if _, exists := a.c.Task(spec.Name); exists {
		a.fail(w, http.StatusConflict, fmt.Sprintf("task %q already exists; delete it first or choose another name", spec.Name), nil)
		return
	}
	if !a.c.IsLeader() {
		a.failNotLeader(w)
		return
	}
	report := a.runPrecheck(w, r, spec)
	if report == nil {
		return
	}
	if blocking := report.Judge(ignoreList(r)); len(blocking) > 0 {
		a.fail(w, http.StatusUnprocessableEntity, "precheck failed: nothing was created", blocking)
		return
	}
	sealed := a.seal(w, spec)
	if sealed == nil {
		return
	}
	if err := a.c.Apply(r.Context(), NewCreateTask(*sealed, a.now().UTC())); err != nil {
		a.applyFailed(w, err)
		return
	}
	a.logger.Info("task created", "task", spec.Name)
	task, ok := a.c.Task(spec.Name)
	if !ok { // deleted in between: unlikely, and not an error of this request
		a.fail(w, http.StatusNotFound, fmt.Sprintf("task %q was deleted right after its creation", spec.Name), nil)
		return
	}
	st := a.status(task)
	st.Fixed = report.Fixed
	a.reply(w, http.StatusCreated, st)
}

// precheck runs a task's checks without creating it, and answers with
// every check's result (200 whether or not it passed). Any node runs it:
// it reads the two databases and writes nothing.
func (a *api) precheck(w http.ResponseWriter, r *http.Request) {
	spec := a.readSpec(w, r)
	if spec == nil {
		return
	}
	report := a.runPrecheck(w, r, spec)
	if report == nil {
		return
	}
	report.Judge(ignoreList(r))
	a.reply(w, http.StatusOK, report)
}

// plan answers what a task would create, creating nothing.
func (a *api) plan(w http.ResponseWriter, r *http.Request) {
	spec := a.readSpec(w, r)
	if spec == nil {
		return
	}
	plan, err := a.b.Plan(r.Context(), spec)
	if err != nil {
		a.fail(w, http.StatusBadGateway, "could not plan the task: "+redact(err.Error()), nil)
		return
	}
	a.reply(w, http.StatusOK, plan)
}

// ignoreList reads the warnings acknowledged: ?ignore=a,b&ignore=c.
func ignoreList(r *http.Request) []string {
	var out []string
	for _, v := range r.URL.Query()["ignore"] {
		for _, id := range strings.Split(v, ",") {
			if id = strings.TrimSpace(id); id != "" {
				out = append(out, id)
			}
		}
	}
	return out
}

func (a *api) listTasks(w http.ResponseWriter, r *http.Request) {
	tasks := a.c.Tasks()
	out := make([]proto.TaskStatus, 0, len(tasks))
	for _, t := range tasks {
		if t.ReverseOf != "" {
			continue // shown in its two-way task's status
		}
		out = append(out, a.status(t))
	}
	a.reply(w, http.StatusOK, out)
}

// task looks up the task a request names, answering 404 when there is
// none.
func (a *api) task(w http.ResponseWriter, name string) (Task, bool) {
	task, ok := a.c.Task(name)
	if !ok {
		a.fail(w, http.StatusNotFound, fmt.Sprintf("task %q not found", name), nil)
	}
	return task, ok
}

// taskToAct is task, for a request that acts on it: the reverse
// direction of a two-way task is refused (409).
func (a *api) taskToAct(w http.ResponseWriter, name string) (Task, bool) {
	task, ok := a.task(w, name)
	if !ok || a.refuseReverse(w, name) {
		return Task{}, false
	}
	return task, true
}

func (a *api) getTask(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	task, ok := a.task(w, name)
	if !ok {
		return
	}
	st := a.status(task)
	if st.TwoWay != nil && task.ReverseOf == "" {
		counts, err := a.b.Conflicts(r.Context(), &task.Spec)
		st.TwoWay.Conflicts = counts
		if err != nil {
			st.TwoWay.ConflictsError = redact(err.Error())
		}
	}
	a.reply(w, http.StatusOK, st)
}

// deleteTask marks the task Deleting (nodes stop its units), cleans up its
// objects, then removes it. If the cleanup fails the task stays Deleting,
// stopped, so the user can fix the cause and delete again.
func (a *api) deleteTask(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, ok := a.taskToAct(w, name); !ok {
		return
	}
	if err := a.c.Apply(r.Context(), MarkDeleting{Name: name}); err != nil {
		a.applyFailed(w, err)
		return
	}
	task, ok := a.c.Task(name)
	if !ok {
		// A concurrent delete finished first: the outcome is the same.
		a.reply(w, http.StatusOK, map[string]string{"deleted": name})
		return
	}
	specs := []*proto.TaskSpec{&task.Spec}
	if rev, ok := a.c.Task(proto.ReverseTaskName(name)); ok && rev.ReverseOf == name {
		// The reverse direction first: its capture reads what the
		// forward direction's apply writes.
		specs = []*proto.TaskSpec{&rev.Spec, &task.Spec}
	}
	if err := a.cleanup(r.Context(), specs); err != nil {
		msg := redact(err.Error())
		a.logger.Warn("task cleanup failed; it stays marked for deletion", "task", name, "error", msg)
		a.fail(w, http.StatusBadGateway, fmt.Sprintf("cleanup of task %q failed (it is stopped and marked for deletion; delete again to retry): %s", name, msg), nil)
		return
	}
	if err := a.c.Apply(r.Context(), RemoveTask{Name: name}); err != nil && !errors.Is(err, ErrTaskNotFound) {
		a.applyFailed(w, err)
		return
	}
	a.logger.Info("task deleted", "task", name)
	a.reply(w, http.StatusOK, map[string]string{"deleted": name})
}

// cleanup removes what each of a task's directions created.
func (a *api) cleanup(ctx context.Context, specs []*proto.TaskSpec) error {
	for _, spec := range specs {
		if err := a.b.Cleanup(ctx, spec); err != nil {
			return err
		}
	}
	return nil
}

// refuseReverse answers for a request that names the reverse direction of
// a two-way task, which only moves with its task; it reports whether it
// answered.
func (a *api) refuseReverse(w http.ResponseWriter, name string) bool {
	t, ok := a.c.Task(name)
	if !ok || t.ReverseOf == "" {
		return false
	}
	a.fail(w, http.StatusConflict, fmt.Sprintf("%q is the reverse direction of two-way task %q: pause, resume, update or delete %q, which acts on both directions", name, t.ReverseOf, t.ReverseOf), nil)
	return true
}

// transition applies a state change (pause, resume) and returns the status.
func (a *api) transition(cmd func(name string) Command) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		a.changeTask(w, r, name, cmd(name))
	}
}

// changeTask applies a command to an existing task and answers with its
// status (409 when the task's state does not allow it).
func (a *api) changeTask(w http.ResponseWriter, r *http.Request, name string, cmd Command) bool {
	if _, ok := a.taskToAct(w, name); !ok {
		return false
	}
	if err := a.c.Apply(r.Context(), cmd); err != nil {
		if errors.Is(err, ErrBadTransition) {
			a.fail(w, http.StatusConflict, err.Error(), nil)
			return false
		}
		a.applyFailed(w, err)
		return false
	}
	task, _ := a.c.Task(name)
	a.reply(w, http.StatusOK, a.status(task))
	return true
}

// setThrottle replaces a task's throttle: the body is the spec's throttle
// section in YAML or JSON ({} lifts every limit).
func (a *api) setThrottle(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	body, ok := a.readBody(w, r)
	if !ok {
		return
	}
	th, err := proto.ParseThrottle(body)
	if err != nil {
		a.fail(w, http.StatusBadRequest, err.Error(), nil)
		return
	}
	if a.changeTask(w, r, name, SetThrottle{Name: name, Throttle: ThrottleRecord(th)}) {
		a.logger.Info("task throttle changed", "task", name)
	}
}

// updateTask takes a task's spec again and applies the settings a
// running task can change (retry windows, alerts, throttle, continuous
// verification); any other difference is refused, naming it.
func (a *api) updateTask(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	spec := a.readSpec(w, r)
	if spec == nil {
		return
	}
	if spec.Name != name {
		a.fail(w, http.StatusBadRequest, fmt.Sprintf("the spec is for task %q, not %q", spec.Name, name), nil)
		return
	}
	task, ok := a.task(w, name)
	if !ok {
		return
	}
	stored, err := a.unsealed(task.Spec)
	if err != nil {
		a.fail(w, http.StatusServiceUnavailable, "cannot compare the spec with the task's: "+err.Error(), nil)
		return
	}
	sealed := a.seal(w, spec)
	if sealed == nil {
		return
	}
	changed := fixedFieldsChanged(&stored, spec)
	objects := slices.Contains(changed, "objects")
	changed = slices.DeleteFunc(changed, func(f string) bool { return f == "objects" })
	if len(changed) > 0 {
		a.fail(w, http.StatusConflict, fmt.Sprintf("%s cannot change on a running task: delete and recreate the task to change them; objects (tables added and removed), retry, alerts, throttle and verify can change", strings.Join(changed, ", ")), nil)
		return
	}
	if objects && spec.TwoWay != nil {
		a.fail(w, http.StatusConflict, "objects cannot change on a two-way task yet: delete and recreate it to sync other tables", nil)
		return
	}
	if objects {
		if changed := syncedTableSettingsChanged(task.Spec.Objects, spec.Objects); len(changed) > 0 {
			a.fail(w, http.StatusConflict, fmt.Sprintf("%s cannot change for tables the task syncs already: delete and recreate the task to change them; tables can be added and removed", strings.Join(changed, ", ")), nil)
			return
		}
		add, remove, err := a.b.TableChanges(r.Context(), &task, spec.Objects)
		if err != nil {
			a.fail(w, http.StatusConflict, err.Error(), nil)
			return
		}
		if a.changeTask(w, r, name, ChangeTables{Name: name, Objects: ObjectRecords(spec.Objects), Add: add, Remove: remove, SettingsV1: SettingsRecord(spec, sealed.Alerts)}) {
			a.logger.Info("task tables changed", "task", name, "added", len(add), "removed", len(remove))
		}
		return
	}
	if a.changeTask(w, r, name, UpdateSettings{Name: name, SettingsV1: SettingsRecord(spec, sealed.Alerts)}) {
		a.logger.Info("task settings changed", "task", name)
	}
}

// syncedTableSettingsChanged names the settings of tables selected before
// that the new objects change (rename, filter, operations, columns,
// transform, add_columns): they would need the table copied again.
func syncedTableSettingsChanged(old, new []proto.ObjectSpec) []string {
	var out []string
	for i, n := range new {
		idx := slices.IndexFunc(old, func(o proto.ObjectSpec) bool { return o.Schema == n.Schema })
		if idx < 0 {
			continue
		}
		o := old[idx]
		field := fmt.Sprintf("objects[%d]", i)
		if o.RenameSchema != n.RenameSchema {
			out = append(out, field+".rename_schema")
		}
		synced := func(key string) bool {
			table, _, _ := strings.Cut(key, ".")
			return len(o.Tables) == 0 || slices.Contains(o.Tables, table)
		}
		check := func(name string, differs func(key string) bool, keys []string) {
			for _, k := range keys {
				if synced(k) && differs(k) {
					out = append(out, field+"."+name+"."+k)
					return
				}
			}
		}
		check("rename", func(k string) bool { return o.Rename[k] != n.Rename[k] }, keysOf(o.Rename, n.Rename))
		check("filter", func(k string) bool { return o.Filter[k] != n.Filter[k] }, keysOf(o.Filter, n.Filter))
		check("operations", func(k string) bool { return !slices.Equal(o.Operations[k], n.Operations[k]) }, keysOf(o.Operations, n.Operations))
		check("columns", func(k string) bool { return !slices.Equal(o.Columns[k], n.Columns[k]) }, keysOf(o.Columns, n.Columns))
		check("transform", func(k string) bool { return !maps.Equal(o.Transform[k], n.Transform[k]) }, keysOf(o.Transform, n.Transform))
		check("add_columns", func(k string) bool { return !maps.Equal(o.AddColumns[k], n.AddColumns[k]) }, keysOf(o.AddColumns, n.AddColumns))
	}
	return out
}

// keysOf is the keys of two maps, sorted, each once.
func keysOf[V any](a, b map[string]V) []string {
	keys := slices.AppendSeq(slices.Collect(maps.Keys(a)), maps.Keys(b))
	slices.Sort(keys)
	return slices.Compact(keys)
}

// fixedFieldsChanged names the top-level spec fields that differ, other
// than the settings a running task takes (retry, alerts, throttle).
func fixedFieldsChanged(old, new *proto.TaskSpec) []string {
	fields := func(s *proto.TaskSpec) map[string]json.RawMessage {
		c := *s
		c.Retry, c.Alerts, c.Throttle, c.Verify = proto.RetrySpec{}, nil, nil, nil
		b, _ := json.Marshal(c)
		var m map[string]json.RawMessage
		_ = json.Unmarshal(b, &m)
		return m
	}
	a, b := fields(old), fields(new)
	var out []string
	for k := range a {
		if !bytes.Equal(a[k], b[k]) {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// healthz is liveness: the process is up and serves HTTP. Whether it
// can take writes is /readyz's question.
func (a *api) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
}

// status is what users see of a task: the replicated state, the node's
// live metrics, and the spec without passwords.
func (a *api) status(t Task) proto.TaskStatus {
	cluster := a.taskLive(context.Background(), t.Spec.Name)
	live := cluster.Live()
	// Full-sync progress is in the replicated state, chunk by chunk, so
	// every node shows it and it survives restarts.
	full := t.FullProgress()
	if t.Phase == proto.PhaseFull {
		full.RowsPerSecond, full.BytesPerSecond = live.FullRowsPerSecond, live.FullBytesPerSecond
	}
	st := proto.TaskStatus{
		Name:          t.Spec.Name,
		Phase:         t.Phase,
		State:         t.State,
		Full:          full,
		LatencyMS:     live.LatencyMS,
		RowsApplied:   t.RowsApplied(),
		ThroughputRPS: live.ThroughputRPS,
		ThroughputBPS: live.ThroughputBPS,
		ConfirmedLSN:  live.ConfirmedLSN,
		Slot:          slotStatus(&t, cluster),
		Adding:        t.AddingNotCopied(),
		LastError:     t.CurrentError(),
		CreatedAt:     t.CreatedAt,
		Spec:          a.shown(t.Spec),
		Verify:        proto.SummarizeVerify(t.VerifyRecords()),
	}
	if e, at := t.ResolvedError(); e != nil {
		st.ResolvedError, st.ResolvedAt = e, &at
	}
	if t.Spec.TwoWay != nil && t.ReverseOf == "" {
		a.twoWayStatus(t, &st)
	}
	return st
}

// twoWayStatus adds both directions to a two-way task's status. The
// task's state is the worse of the two: a direction stopped by a conflict
// (task_failed) shows as the task failed, with that direction's error.
func (a *api) twoWayStatus(t Task, st *proto.TaskStatus) {
	direction := func(t Task) proto.DirectionStatus {
		live := a.taskLive(context.Background(), t.Spec.Name).Live()
		return proto.DirectionStatus{Task: t.Spec.Name, Phase: t.Phase, State: t.State, LatencyMS: live.LatencyMS,
			RowsApplied: t.RowsApplied(), ThroughputRPS: live.ThroughputRPS, LastError: t.CurrentError()}
	}
	tw := &proto.TwoWayStatus{Policy: t.Spec.TwoWay.Policy(), Forward: direction(t)}
	rev, ok := a.c.Task(proto.ReverseTaskName(t.Spec.Name))
	if ok {
		tw.Reverse = direction(rev)
		if worse(rev.State, t.State) {
			st.State = rev.State
			if e := rev.CurrentError(); e != nil {
				e.Message = "reverse direction: " + e.Message
				st.LastError = e
			}
		}
	}
	st.TwoWay = tw
}

// worse reports whether state a is worse news than b.
func worse(a, b proto.State) bool {
	rank := map[proto.State]int{proto.StateFailed: 3, proto.StateRetrying: 2}
	return rank[a] > rank[b]
}

// shown is a spec as the API shows it: secrets masked, references (which
// hold no secret) as written.
func (a *api) shown(spec proto.TaskSpec) proto.TaskSpec {
	open, err := a.unsealed(spec)
	if err != nil {
		open = spec // sealed values are masked as they are
	}
	return open.Redacted()
}

// applyFailed maps a Raft write's error to a response.
func (a *api) applyFailed(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrTaskExists):
		a.fail(w, http.StatusConflict, err.Error(), nil)
	case errors.Is(err, ErrTaskNotFound):
		a.fail(w, http.StatusNotFound, err.Error(), nil)
	case errors.Is(err, ErrNotLeader) && errors.Is(err, errNotApplied):
		a.failNotLeader(w)
	case errors.Is(err, ErrNotLeader):
		// Raft may still commit it under the next leader: sending it
		// again could apply it twice, so the client is not told to.
		a.fail(w, http.StatusServiceUnavailable, "the coordinator leader changed while the change was being committed: it may or may not have been applied; check (sluice task get / list) before sending it again", nil)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The client went away or timed out; the write may still apply.
		a.fail(w, http.StatusServiceUnavailable, "the request ended before the change was committed; check the task's state", nil)
	default:
		a.logger.Error("state write failed", "error", err)
		a.fail(w, http.StatusInternalServerError, err.Error(), nil)
	}
}

// failNotLeader answers a write this node cannot take as it is not the
// leader, and did not apply: marked so that the node that forwarded it
// (and a client) may send it again.
func (a *api) failNotLeader(w http.ResponseWriter) {
	msg := "this node is not the coordinator leader"
	if l := a.c.Leader(); l != "" {
		msg += "; the leader is " + l
	}
	a.failNotApplied(w, codeNoLeader, msg)
}

// fail answers an error; no secret this process knows leaves in it.
func (a *api) fail(w http.ResponseWriter, status int, msg string, problems []proto.Problem) {
	a.failCode(w, status, "", msg, problems)
}

func (a *api) failCode(w http.ResponseWriter, status int, code, msg string, problems []proto.Problem) {
	for i := range problems {
		problems[i].Message, problems[i].Fix = secret.Scrub(problems[i].Message), secret.Scrub(problems[i].Fix)
	}
	a.reply(w, status, errorBody{Error: secret.Scrub(redact(msg)), Problems: problems, Code: code})
}

// reply answers v as JSON. The answer is scrubbed of every secret this
// process knows (a precheck's message may quote a driver's error, which
// may quote a DSN), as a last line behind the redaction of each field.
func (a *api) reply(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		a.logger.Error("encoding a response failed", "error", err)
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error": "encoding the response failed"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if _, err := io.WriteString(w, secret.Scrub(buf.String())); err != nil {
		a.logger.Debug("writing a response failed", "error", err)
	}
}

// statusRecorder keeps the status code for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// logRequests logs each request at debug: method, path (task names only,
// never bodies, which hold DSNs), status and duration.
func (a *api) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		a.logger.Debug("http request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"duration_ms", time.Since(start).Milliseconds(), "remote", r.RemoteAddr)
	})
}

// redact masks DSN passwords in a message from a backend or a driver
// before it is logged or returned: such messages may quote a DSN.
func redact(msg string) string { return proto.RedactText(msg) }
