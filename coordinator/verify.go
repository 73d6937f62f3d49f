package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sluicedb/sluice/proto"
)

// Data verification (sluice verify): POST /api/v1/tasks/{name}/verify
// compares the task's tables at both ends on this node, through the
// Backend, and records each table's result in the task (RecordVerify),
// which GET /api/v1/tasks/{name}/verify returns. Continuous verification
// (the spec's verify block) records its rounds the same way, from the
// task's capture unit, with the unit's epoch.

// CmdRecordVerify is RecordVerify's type byte.
const CmdRecordVerify CommandType = 25

// VerifyRecordV1 is a table's last verification as the log and
// snapshots hold it (records.go explains why coordinator has its own).
type VerifyRecordV1 struct {
	Table       string    `json:"table"`
	Dest        string    `json:"dest"`
	At          time.Time `json:"at"`
	Rows        int64     `json:"rows"`
	Differences int64     `json:"differences"`
	Repaired    int64     `json:"repaired,omitempty"`
	Remaining   int64     `json:"remaining,omitempty"`
	Unsettled   int64     `json:"unsettled,omitempty"`
	Error       string    `json:"error,omitempty"`
	// Sample: a round of continuous verification compared this part of
	// the table (nil: sluice verify, the whole table).
	Sample *VerifySampleV1 `json:"sample,omitempty"`
}

// VerifySampleV1 is the part of a table a round of continuous
// verification compared (proto.VerifySample).
type VerifySampleV1 struct {
	Window  int      `json:"window"`
	Windows int      `json:"windows"`
	From    []string `json:"from,omitempty"`
	To      []string `json:"to,omitempty"`
}

// VerifyRecordOf is the record of a table's verification.
func VerifyRecordOf(r proto.VerifyRecord) VerifyRecordV1 {
	out := VerifyRecordV1{Table: r.Table, Dest: r.Dest, At: r.At, Rows: r.Rows, Differences: r.Differences, Repaired: r.Repaired,
		Remaining: r.Remaining, Unsettled: r.Unsettled, Error: r.Error}
	if s := r.Sample; s != nil {
		out.Sample = &VerifySampleV1{Window: s.Window, Windows: s.Windows, From: slices.Clone(s.From), To: slices.Clone(s.To)}
	}
	return out
}

// Record is the record as the API shows it.
func (r VerifyRecordV1) Record() proto.VerifyRecord {
	out := proto.VerifyRecord{Table: r.Table, Dest: r.Dest, At: r.At, Rows: r.Rows, Differences: r.Differences, Repaired: r.Repaired,
		Remaining: r.Remaining, Unsettled: r.Unsettled, Error: r.Error}
	if s := r.Sample; s != nil {
		out.Sample = &proto.VerifySample{Window: s.Window, Windows: s.Windows, From: slices.Clone(s.From), To: slices.Clone(s.To)}
	}
	return out
}

// RecordVerify records the results of a verification, table by table
// (a table verified again replaces its record).
type RecordVerify struct {
	Name    string           `json:"name"`
	Results []VerifyRecordV1 `json:"results"`
	// Epoch is the capture unit's task epoch, for a round of continuous
	// verification: a deposed owner's late results are refused. 0 (sluice
	// verify, through the API) is not checked.
	Epoch uint64 `json:"epoch,omitempty"`
}

func (RecordVerify) Type() CommandType { return CmdRecordVerify }

func init() { register(applyRecordVerify) }

func applyRecordVerify(d *data, index uint64, cmd *RecordVerify) error {
	t, err := d.task(cmd.Name)
	if err != nil {
		return err
	}
	if err := t.checkEpoch(cmd.Epoch); err != nil {
		return err
	}
	if t.Verified == nil {
		t.Verified = map[string]VerifyRecordV1{}
	}
	for _, r := range cmd.Results {
		t.Verified[r.Table] = r
	}
	t.ModifyIndex = index
	return nil
}

// VerifyRecords are the task's last verification of each table, by name.
func (t *Task) VerifyRecords() []proto.VerifyRecord {
	out := make([]proto.VerifyRecord, 0, len(t.Verified))
	for _, name := range slices.Sorted(maps.Keys(t.Verified)) {
		out = append(out, t.Verified[name].Record())
	}
	return out
}

// ErrVerifyRefused: a task cannot be verified now; the error that wraps
// it says why.
var ErrVerifyRefused = errors.New("cannot verify now")

// maxVerifyTime bounds a verification within the API's five minutes.
const maxVerifyTime = 4*time.Minute + 30*time.Second

func (a *api) verify(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	task, ok := a.taskToAct(w, name)
	if !ok {
		return
	}
	var req proto.VerifyRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes))
	if err != nil {
		a.fail(w, http.StatusBadRequest, "read the request: "+err.Error(), nil)
		return
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			a.fail(w, http.StatusBadRequest, `the request is {"tables": ["schema.table", ...], "repair": false}: `+err.Error(), nil)
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), maxVerifyTime)
	defer cancel()
	report, err := a.b.Verify(ctx, &task, req)
	switch {
	case errors.Is(err, ErrVerifyRefused):
		a.fail(w, http.StatusConflict, redact(err.Error()), nil)
		return
	case err != nil:
		a.fail(w, http.StatusBadGateway, "verify "+name+": "+redact(err.Error()), nil)
		return
	}
	results := make([]VerifyRecordV1, 0, len(report.Tables))
	for _, rec := range report.Records() {
		results = append(results, VerifyRecordOf(rec))
	}
	if err := a.c.Apply(r.Context(), RecordVerify{Name: name, Results: results}); err != nil {
		a.logger.Warn("verification not recorded", "task", name, "err", err)
	}
	a.logger.Info("task verified", "task", name, "tables", len(report.Tables), "outcome", report.Outcome())
	a.reply(w, http.StatusOK, report)
}

func (a *api) lastVerify(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	task, ok := a.task(w, name)
	if !ok {
		return
	}
	a.reply(w, http.StatusOK, task.VerifyRecords())
}
