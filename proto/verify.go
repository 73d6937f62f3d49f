package proto

import (
	"encoding/json"
	"time"
)

// Data verification (sluice verify): each synced table is compared at
// the source and the destination by checksums of key ranges computed
// inside each database, splitting only the ranges that differ, down to
// the rows. Values are compared in one canonical text form, so the same
// value in either database's own representation matches.

// VerifyTable is one table to compare: its name and columns at each end
// (the task's renames, column list and name case applied), its key (nil:
// keyless, compared as a multiset of rows) and its row filter.
type VerifyTable struct {
	Source TableID `json:"source"`
	Dest   TableID `json:"dest"`
	// Columns are the compared columns, at the source and the
	// destination (the same order).
	Columns     []string `json:"columns"`
	DestColumns []string `json:"dest_columns"`
	// Types are the columns' source types, by their base type's name
	// (pg_type.typname: int4, numeric, timestamptz, ...; an array by its
	// element's base type and [], int4[], text[]; "array" when that is
	// not known): what a destination that reads rows into Go needs to
	// put their values in canonical form (verify/rowside), arrays'
	// elements included.
	Types []string `json:"types,omitempty"`
	// TypeOIDs and TypeMods are the columns' source types as the
	// capture describes them (pg_attribute's atttypid and atttypmod):
	// what a repair that writes rows the way the apply writes captured
	// ones needs (a Kafka destination's message encoders).
	TypeOIDs []uint32 `json:"type_oids,omitempty"`
	TypeMods []int32  `json:"type_mods,omitempty"`
	// Key holds the indexes into Columns of the key, in key order.
	Key []int `json:"key,omitempty"`
	// Filter is the source's row filter (a SQL condition; "" none): the
	// destination holds only the rows it passes.
	Filter string `json:"filter,omitempty"`
	// LegacyHash: rows are hashed with md5, which every server has (one
	// end has no 64-bit text hash); both ends must hash alike.
	LegacyHash bool `json:"legacy_hash,omitempty"`
}

// Keyless reports whether the table is compared as a multiset of rows.
func (t *VerifyTable) Keyless() bool { return len(t.Key) == 0 }

// KeyRange is a range of keys: From (inclusive) to To (exclusive), in
// canonical text; nil: unbounded. The key's order is its type's (text
// keys in byte order, COLLATE "C"), the same at both ends.
type KeyRange struct {
	From []string `json:"from,omitempty"`
	To   []string `json:"to,omitempty"`
}

// RangeSum is a range's row count and the sum of its rows' hashes.
type RangeSum struct {
	Rows int64  `json:"rows"`
	Sum  string `json:"sum"` // a decimal number: the sum of 60-bit hashes
}

// VerifyRow is one row in canonical form: its key's values (for a
// keyless table, nil), its hash, the canonical values of the compared
// columns (nil: NULL) and, for a keyless table, how many such rows.
type VerifyRow struct {
	Key    []string  `json:"key,omitempty"`
	Hash   string    `json:"hash"`
	Values []*string `json:"values,omitempty"`
	Count  int64     `json:"count,omitempty"`
}

// Difference kinds.
const (
	DiffMissing = "missing" // at the source, not at the destination
	DiffExtra   = "extra"   // at the destination only
	DiffChanged = "changed" // at both, with other values
)

// VerifyDifference is one row that differs: by key (for a keyless
// table, the row's values), with the columns that differ when changed
// and, for a keyless table, how many copies more (missing) or fewer
// (extra) the destination should have.
type VerifyDifference struct {
	Kind    string            `json:"kind"`
	Key     map[string]string `json:"key"`
	Columns []string          `json:"columns,omitempty"`
	Count   int64             `json:"count,omitempty"`
}

// VerifyTableResult is one table's verification.
type VerifyTableResult struct {
	Table string `json:"table"` // the source table
	Dest  string `json:"dest"`
	// Rows is how many source rows were compared.
	Rows        int64              `json:"rows"`
	Differences []VerifyDifference `json:"differences,omitempty"`
	// More counts differences beyond the ones listed.
	More int64 `json:"more,omitempty"`
	// Unsettled counts rows that kept changing at the source while they
	// were re-checked: neither equal nor shown to differ.
	Unsettled int64 `json:"unsettled,omitempty"`
	// Repaired counts the differing rows written at the destination
	// (--repair), checked again after.
	Repaired int64 `json:"repaired,omitempty"`
	// Remaining counts the differences still there when the repaired
	// rows were checked again.
	Remaining int64 `json:"remaining,omitempty"`
	// Error says why the table could not be verified.
	Error string `json:"error,omitempty"`
	// Ranges is how many key ranges were checksummed, and BytesRead what
	// came back from both databases for them (checksums and rows).
	Ranges     int64 `json:"ranges"`
	BytesRead  int64 `json:"bytes_read"`
	DurationMS int64 `json:"duration_ms"`
}

// Differs reports whether the table differs.
func (r *VerifyTableResult) Differs() bool { return len(r.Differences) > 0 || r.More > 0 }

// VerifyRequest asks for a verification of a task's tables (all of them
// when Tables is empty), with Repair to make the destination match.
type VerifyRequest struct {
	Tables []string `json:"tables,omitempty"`
	Repair bool     `json:"repair,omitempty"`
}

// VerifyReport is a verification of a task.
type VerifyReport struct {
	Task   string              `json:"task"`
	At     time.Time           `json:"at"`
	Repair bool                `json:"repair,omitempty"`
	Tables []VerifyTableResult `json:"tables"`
	// SourceLSN is where the source was read for the last re-check.
	SourceLSN string `json:"source_lsn,omitempty"`
}

// Outcome is the report's exit status: 0 nothing differs, 1 something
// does, 2 a table could not be verified (or kept changing).
func (r *VerifyReport) Outcome() int {
	out := 0
	for i := range r.Tables {
		t := &r.Tables[i]
		switch {
		case t.Error != "" || t.Unsettled > 0:
			return 2
		case r.Repair && t.Remaining > 0, !r.Repair && t.Differs():
			out = 1
		}
	}
	return out
}

// String is the report as JSON (logs).
func (r *VerifyReport) String() string {
	b, _ := json.Marshal(r)
	return string(b)
}

// VerifyRecord is a table's last verification, as the task keeps it
// (sluice verify --last): counts, not the rows.
type VerifyRecord struct {
	Table       string    `json:"table"`
	Dest        string    `json:"dest"`
	At          time.Time `json:"at"`
	Rows        int64     `json:"rows"`
	Differences int64     `json:"differences"`
	Repaired    int64     `json:"repaired,omitempty"`
	Remaining   int64     `json:"remaining,omitempty"`
	Unsettled   int64     `json:"unsettled,omitempty"`
	Error       string    `json:"error,omitempty"`
	// Sample is the part of the table a round of continuous verification
	// compared; nil for sluice verify (the whole table).
	Sample *VerifySample `json:"sample,omitempty"`
}

// Outstanding is how many differences the verification left: those it
// found, or, when it repaired them, those still there after.
func (r *VerifyRecord) Outstanding() int64 {
	if r.Repaired > 0 {
		return r.Remaining
	}
	return r.Differences
}

// VerifySample is the part of a table a round of continuous
// verification compared: slice Window (from 0) of the Windows slices its
// key space is cut into, the keys From (inclusive) to To (exclusive) in
// canonical text (nil: unbounded). One window is the whole table.
type VerifySample struct {
	Window  int      `json:"window"`
	Windows int      `json:"windows"`
	From    []string `json:"from,omitempty"`
	To      []string `json:"to,omitempty"`
}

// Range is the sample's key range.
func (s *VerifySample) Range() KeyRange { return KeyRange{From: s.From, To: s.To} }

// VerifySummary is what task get shows of a task's verifications: the
// last record of each table, summed up.
type VerifySummary struct {
	// At is the latest verification of any table.
	At time.Time `json:"at"`
	// Tables counts the tables verified at least once.
	Tables int `json:"tables"`
	// Differing names the tables whose last verification left
	// differences, and Differences sums them.
	Differing   []string `json:"differing,omitempty"`
	Differences int64    `json:"differences"`
	// Failed names the tables whose last verification failed.
	Failed []string `json:"failed,omitempty"`
}

// SummarizeVerify sums up records (nil when there are none).
func SummarizeVerify(records []VerifyRecord) *VerifySummary {
	if len(records) == 0 {
		return nil
	}
	s := &VerifySummary{Tables: len(records)}
	for _, r := range records {
		if r.At.After(s.At) {
			s.At = r.At
		}
		if n := r.Outstanding(); n > 0 {
			s.Differing = append(s.Differing, r.Table)
			s.Differences += n
		}
		if r.Error != "" {
			s.Failed = append(s.Failed, r.Table)
		}
	}
	return s
}

// Records are the report's tables as records.
func (r *VerifyReport) Records() []VerifyRecord {
	out := make([]VerifyRecord, len(r.Tables))
	for i, t := range r.Tables {
		out[i] = VerifyRecord{Table: t.Table, Dest: t.Dest, At: r.At, Rows: t.Rows, Differences: int64(len(t.Differences)) + t.More,
			Repaired: t.Repaired, Remaining: t.Remaining, Unsettled: t.Unsettled, Error: t.Error}
	}
	return out
}
