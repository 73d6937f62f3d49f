package emu

import (
	"sort"
	"sync"
	"time"
)

// TxnStatus is a load transaction's state, named as Doris's
// TransactionStatus prints it in get_load_state.
type TxnStatus uint8

const (
	TxnUnknown      TxnStatus = iota
	TxnPrepare                // loading
	TxnPrecommitted           // 2PC load done, waiting for commit or abort
	TxnCommitted              // committed, publish pending
	TxnVisible
	TxnAborted
)

func (s TxnStatus) String() string {
	return [...]string{"UNKNOWN", "PREPARE", "PRECOMMITTED", "COMMITTED", "VISIBLE", "ABORTED"}[s]
}

// jobStatus is the ExistingJobStatus a label conflict reports.
func (s TxnStatus) jobStatus() string {
	switch s {
	case TxnPrepare:
		return "RUNNING"
	case TxnPrecommitted:
		return "PRECOMMITTED"
	}
	return "FINISHED"
}

// txn is one load transaction.
type txn struct {
	id       int64
	db       string
	label    string
	table    *Table
	status   TxnStatus
	reason   string
	created  time.Time
	finished time.Time
	// stage is the staging table holding the load's rows until publish;
	// batch describes its columns.
	stage     string
	batch     *batch
	publishAt time.Time // a delayed publish (Publish Timeout fault)
}

// txnManager keeps transactions by id and labels per database. Labels are
// unique per database while their transaction is not aborted.
type txnManager struct {
	mu      sync.Mutex
	nextID  int64
	byID    map[int64]*txn
	byLabel map[string]map[string]*txn
}

func newTxnManager() *txnManager {
	// Real transaction ids are large; starting high catches code that
	// assumes small ones fit an int32.
	return &txnManager{nextID: 3_000_000_000, byID: map[int64]*txn{}, byLabel: map[string]map[string]*txn{}}
}

// begin opens a transaction for label, or returns the live transaction
// that already holds it.
func (m *txnManager) begin(db, label string, t *Table) (tx *txn, existing *txn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	labels := m.byLabel[db]
	if labels == nil {
		labels = map[string]*txn{}
		m.byLabel[db] = labels
	}
	if old := labels[label]; old != nil && old.status != TxnAborted {
		return nil, old
	}
	m.nextID++
	tx = &txn{id: m.nextID, db: db, label: label, table: t, status: TxnPrepare, created: time.Now()}
	m.byID[tx.id] = tx
	labels[label] = tx
	return tx, nil
}

func (m *txnManager) get(db string, id int64, label string) *txn {
	m.mu.Lock()
	defer m.mu.Unlock()
	if label != "" {
		return m.byLabel[db][label]
	}
	if tx := m.byID[id]; tx != nil && tx.db == db {
		return tx
	}
	return nil
}

// snapshot reads a transaction's status and reason consistently.
func (m *txnManager) snapshot(tx *txn) (TxnStatus, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return tx.status, tx.reason
}

func (m *txnManager) set(tx *txn, s TxnStatus, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	tx.status = s
	if reason != "" {
		tx.reason = reason
	}
	if s == TxnVisible || s == TxnAborted {
		tx.finished = time.Now()
	}
}

// setCommitted marks a load committed with its publish due at at.
func (m *txnManager) setCommitted(tx *txn, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	tx.status = TxnCommitted
	tx.publishAt = at
}

// due lists precommitted transactions older than timeout and committed
// ones whose delayed publish is due, in id (commit) order.
func (m *txnManager) due(now time.Time, timeout time.Duration) (expired, publish []*txn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, tx := range m.byID {
		switch {
		case tx.status == TxnPrecommitted && now.Sub(tx.created) > timeout:
			expired = append(expired, tx)
		case tx.status == TxnCommitted && !now.Before(tx.publishAt):
			publish = append(publish, tx)
		}
	}
	sort.Slice(expired, func(i, j int) bool { return expired[i].id < expired[j].id })
	sort.Slice(publish, func(i, j int) bool { return publish[i].id < publish[j].id })
	return expired, publish
}

// pendingFor lists committed but unpublished transactions of a table.
func (m *txnManager) pendingFor(t *Table) []*txn {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*txn
	for _, tx := range m.byID {
		if tx.status == TxnCommitted && tx.table == t {
			out = append(out, tx)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// forget drops finished transactions older than keep, freeing their
// labels (label_keep_max_second).
func (m *txnManager) forget(now time.Time, keep time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, tx := range m.byID {
		if (tx.status == TxnVisible || tx.status == TxnAborted) && now.Sub(tx.finished) > keep {
			delete(m.byID, id)
			if m.byLabel[tx.db][tx.label] == tx {
				delete(m.byLabel[tx.db], tx.label)
			}
		}
	}
}

// dropDB forgets every transaction of a dropped database.
func (m *txnManager) dropDB(db string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.byLabel, db)
	for id, tx := range m.byID {
		if tx.db == db {
			delete(m.byID, id)
		}
	}
}
