package coordinator

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/sluicedb/sluice/proto"
)

// POST /api/v1/tasks/{name}/cutover[?timeout=60s]: the final step before
// applications move to the destination (pipeline.Cutover does the work,
// on this node, through the Backend).

const (
	// DefaultCutoverWait bounds a cutover's wait for the task to catch up.
	DefaultCutoverWait = time.Minute
	// MaxCutoverWait leaves the cutover's steps a minute of the API's
	// five for an answer.
	MaxCutoverWait = 4 * time.Minute
)

// ErrCutoverTimeout: a task did not catch up with its source within a
// cutover's wait. The error that wraps it says what was behind.
var ErrCutoverTimeout = errors.New("the task did not catch up with the source in time")

func (a *api) cutover(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	task, ok := a.taskToAct(w, name)
	if !ok {
		return
	}
	wait := DefaultCutoverWait
	if q := r.URL.Query().Get("timeout"); q != "" {
		d, err := time.ParseDuration(q)
		if err != nil || d < time.Second || d > MaxCutoverWait {
			a.fail(w, http.StatusBadRequest, fmt.Sprintf("timeout %q: a duration between 1s and %s, such as 60s", q, MaxCutoverWait), nil)
			return
		}
		wait = d
	}
	if why := cutoverRefused(&task); why != "" {
		a.fail(w, http.StatusConflict, why, nil)
		return
	}
	report, err := a.b.Cutover(r.Context(), &task, wait)
	switch {
	case errors.Is(err, ErrCutoverTimeout):
		a.fail(w, http.StatusGatewayTimeout, "cutover of "+name+": "+redact(err.Error()), nil)
		return
	case err != nil:
		a.fail(w, http.StatusBadGateway, "cutover of "+name+" failed: "+redact(err.Error()), nil)
		return
	}
	a.logger.Info("task cutover", "task", name, "sequences", len(report.Sequences))
	a.reply(w, http.StatusOK, report)
}

// cutoverRefused says why a task cannot be cut over now ("" if it can):
// only a one-way task that is incremental and running has caught up with
// its source, or can.
func cutoverRefused(t *Task) string {
	name := t.Spec.Name
	switch {
	case t.Spec.IsTwoWay():
		return fmt.Sprintf("task %q is two-way: both sides hand out their own sequence values (see the two_way.sequences check); a cutover is for one-way tasks", name)
	case t.Deleting:
		return fmt.Sprintf("task %q is being deleted", name)
	case t.Phase != proto.PhaseIncremental:
		if !t.Spec.Sync.IncrementalEnabled() {
			return fmt.Sprintf("task %q has no incremental sync (sync.incremental: false): there is nothing to catch up with", name)
		}
		return fmt.Sprintf("task %q is in phase %s, not incremental yet: a cutover waits for the full sync to end (follow it with sluice task get %s)", name, phaseText(t.Phase), name)
	case t.State != proto.StateRunning && t.State != proto.StateRetrying:
		return fmt.Sprintf("task %q is %s: resume it (sluice task resume %s) and cut over once it runs", name, t.State, name)
	case len(t.AddingNotCopied()) > 0:
		return fmt.Sprintf("task %q is still copying tables added to it (%s): cut over once they are in", name, strings.Join(t.AddingNotCopied(), ", "))
	}
	return ""
}

func phaseText(p proto.Phase) string {
	if p == "" {
		return string(proto.PhasePrecheck)
	}
	return string(p)
}
