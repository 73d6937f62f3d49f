package emu

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func setupKV(t *testing.T, c *client) {
	t.Helper()
	c.exec("", "CREATE DATABASE d")
	c.exec("d", "CREATE TABLE kv (k INT NOT NULL, v VARCHAR(10)) UNIQUE KEY(k) DISTRIBUTED BY HASH(k) BUCKETS 1")
}

func TestLabels(t *testing.T) {
	e := start(t, func(o *Options) { o.LabelKeep = 300 * time.Millisecond })
	c := newClient(t, e)
	setupKV(t, c)
	first := c.mustLoad("d", "kv", map[string]string{"label": "l1"}, "1\ta\n")
	again := c.load("d", "kv", map[string]string{"label": "l1"}, "1\tb\n")
	if again.Status != "Label Already Exists" || again.ExistingJobStatus != "FINISHED" ||
		again.Message != fmt.Sprintf("errCode = 2, detailMessage = Label [l1] has already been used, relate to txn [%d]", first.TxnID) {
		t.Fatalf("reused label: %+v", again)
	}
	pre := c.mustLoad("d", "kv", map[string]string{"label": "l2", "two_phase_commit": "true"}, "2\tx\n")
	if pre.TwoPhaseCommit != "true" {
		t.Fatalf("2pc answer %+v", pre)
	}
	if r := c.load("d", "kv", map[string]string{"label": "l2"}, "2\ty\n"); r.ExistingJobStatus != "PRECOMMITTED" {
		t.Fatalf("precommitted label: %+v", r)
	}
	if got := c.loadState("d", "l2"); got != "PRECOMMITTED" {
		t.Fatalf("state %s", got)
	}
	if st, msg := c.txn2PC("d", map[string]string{"txn_operation": "abort", "label": "l2"}); st != "Success" ||
		msg != fmt.Sprintf("transaction [%d] abort successfully.", pre.TxnID) {
		t.Fatalf("abort: %s %s", st, msg)
	}
	if got := c.loadState("d", "l2"); got != "ABORTED" {
		t.Fatalf("state %s", got)
	}
	c.mustLoad("d", "kv", map[string]string{"label": "l2"}, "2\tz\n") // an aborted label is free
	expectRows(t, c.rows("d", "SELECT * FROM kv ORDER BY k"), "1|a\n2|z")
	if got := c.loadState("d", "nope"); got != "UNKNOWN" {
		t.Fatalf("state %s", got)
	}
	// Expiry: after LabelKeep the label is forgotten and reusable.
	deadline := time.Now().Add(5 * time.Second)
	for c.loadState("d", "l1") != "UNKNOWN" {
		if time.Now().After(deadline) {
			t.Fatal("label l1 never expired")
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.mustLoad("d", "kv", map[string]string{"label": "l1"}, "1\tc\n")
	expectRows(t, c.rows("d", "SELECT v FROM kv WHERE k = 1"), "c")
}

func TestLabelExistsNewForm(t *testing.T) {
	e := start(t, func(o *Options) { o.LabelExistsNewForm = true })
	c := newClient(t, e)
	setupKV(t, c)
	first := c.mustLoad("d", "kv", map[string]string{"label": "l1"}, "1\ta\n")
	r := c.load("d", "kv", map[string]string{"label": "l1"}, "1\tb\n")
	want := fmt.Sprintf("[LABEL_ALREADY_EXISTS]Label [l1] has already been used, relate to txn [%d], existing job status [FINISHED]", first.TxnID)
	if r.Status != "Fail" || r.Message != want {
		t.Fatalf("got %+v", r)
	}
}

func TestTwoPhaseCommit(t *testing.T) {
	e := start(t, func(o *Options) { o.PrecommitTimeout = 500 * time.Millisecond })
	c := newClient(t, e)
	setupKV(t, c)
	a := c.mustLoad("d", "kv", map[string]string{"label": "a", "two_phase_commit": "true"}, "1\ta\n")
	b := c.mustLoad("d", "kv", map[string]string{"label": "b", "two_phase_commit": "true"}, "1\tb\n2\tb\n")
	expectRows(t, c.rows("d", "SELECT count(*) FROM kv"), "0") // invisible until commit
	// Commit order decides: b first, then a overwrites key 1.
	if st, msg := c.txn2PC("d", map[string]string{"txn_operation": "commit", "txn_id": fmt.Sprint(b.TxnID)}); st != "Success" ||
		msg != fmt.Sprintf("transaction [%d] commit successfully.", b.TxnID) {
		t.Fatalf("commit: %s %s", st, msg)
	}
	if st, _ := c.txn2PC("d", map[string]string{"txn_operation": "commit", "label": "a"}); st != "Success" {
		t.Fatal("commit by label failed")
	}
	expectRows(t, c.rows("d", "SELECT * FROM kv ORDER BY k"), "1|a\n2|b")
	st, msg := c.txn2PC("d", map[string]string{"txn_operation": "commit", "txn_id": fmt.Sprint(b.TxnID)})
	if st != "Fail" || msg != fmt.Sprintf("errCode = 2, detailMessage = transaction [%d] is already visible, not pre-committed.", b.TxnID) {
		t.Fatalf("second commit: %s %s", st, msg)
	}
	if st, msg := c.txn2PC("d", map[string]string{"txn_operation": "abort", "txn_id": fmt.Sprint(a.TxnID)}); st != "Fail" || !strings.Contains(msg, "is already VISIBLE, could not abort.") {
		t.Fatalf("abort visible: %s %s", st, msg)
	}
	if st, msg := c.txn2PC("d", map[string]string{"txn_operation": "commit", "txn_id": "42"}); st != "Fail" || msg != "errCode = 2, detailMessage = transaction [42] not found" {
		t.Fatalf("unknown: %s %s", st, msg)
	}
	// The BE takes 2PC operations too, as in Doris.
	x := c.mustLoad("d", "kv", map[string]string{"two_phase_commit": "true"}, "3\tx\n")
	code, out := c.do("PUT", "http://"+e.BEAddr()+"/api/d/_stream_load_2pc", map[string]string{"txn_operation": "abort", "txn_id": fmt.Sprint(x.TxnID)}, nil)
	if code != 200 || !strings.Contains(string(out), "abort successfully") {
		t.Fatalf("abort on BE: %d %s", code, out)
	}
	st, msg = c.txn2PC("d", map[string]string{"txn_operation": "commit", "txn_id": fmt.Sprint(x.TxnID)})
	if st != "Fail" || !strings.Contains(msg, "is already aborted. abort reason: User Abort") {
		t.Fatalf("commit aborted: %s %s", st, msg)
	}
	// Precommit timeout aborts a forgotten transaction.
	y := c.mustLoad("d", "kv", map[string]string{"two_phase_commit": "true", "label": "y"}, "4\ty\n")
	deadline := time.Now().Add(5 * time.Second)
	for c.loadState("d", "y") != "ABORTED" {
		if time.Now().After(deadline) {
			t.Fatal("precommitted txn never timed out")
		}
		time.Sleep(50 * time.Millisecond)
	}
	st, msg = c.txn2PC("d", map[string]string{"txn_operation": "commit", "txn_id": fmt.Sprint(y.TxnID)})
	if st != "Fail" || !strings.Contains(msg, "abort reason: timeout by txn manager") {
		t.Fatalf("commit timed out: %s %s", st, msg)
	}
	expectRows(t, c.rows("d", "SELECT count(*) FROM kv"), "2")
}
