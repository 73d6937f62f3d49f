package pipeline

import (
	"errors"
	"testing"
	"time"

	"github.com/sluicedb/sluice/apply/kafka"
	"github.com/sluicedb/sluice/apply/postgres"
	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/proto"
)

func retryTask(name, src, dst string, other time.Duration) coordinator.Task {
	t := coordinator.Task{State: proto.StateRunning}
	t.Spec.Name, t.Spec.Source.DSN = name, src
	t.Spec.Destination = proto.NewDestination(postgres.Destination.Kind().Type, &postgres.Config{DSN: dst})
	t.Spec.Retry.Other = proto.Duration(other)
	return t
}

// The shortest window among tasks sharing a source or destination server
// applies; tasks on other servers do not matter.
func TestRetryWindowSharedEndpoint(t *testing.T) {
	a := retryTask("a", "postgres://u@10.0.0.1:5432/shop", "postgres://u@10.0.0.9:5432/wh", 10*time.Minute)
	b := retryTask("b", "postgres://u@10.0.0.2:5432/crm", "postgres://u@10.0.0.9:5432/wh2", 2*time.Minute)
	c := retryTask("c", "postgres://u@10.0.0.3:5432/x", "postgres://u@10.0.0.4:5432/y", time.Minute)
	all := []coordinator.Task{a, b, c}
	if got := WindowFor(&a, all, proto.ErrorOther); got != 2*time.Minute {
		t.Fatalf("a shares its destination server with b: window %v, want 2m", got)
	}
	if got := WindowFor(&c, all, proto.ErrorOther); got != time.Minute {
		t.Fatalf("c: window %v", got)
	}
}

// Tasks writing to one Kafka cluster share its window too: the Kafka
// destination names its brokers as its endpoints.
func TestRetryWindowSharedBrokers(t *testing.T) {
	kafkaTask := func(name string, other time.Duration, brokers ...string) coordinator.Task {
		task := coordinator.Task{State: proto.StateRunning}
		task.Spec.Name, task.Spec.Source.DSN = name, "postgres://u@10.0.0."+name+":5432/db"
		task.Spec.Destination = proto.NewDestination(kafka.Destination.Kind().Type, &kafka.Config{Brokers: brokers})
		task.Spec.Retry.Other = proto.Duration(other)
		return task
	}
	a := kafkaTask("1", 10*time.Minute, "k1:9092", "k2:9092")
	b := kafkaTask("2", 3*time.Minute, "k2:9092")
	c := kafkaTask("3", time.Minute, "k9:9092")
	all := []coordinator.Task{a, b, c}
	if got := WindowFor(&a, all, proto.ErrorOther); got != 3*time.Minute {
		t.Fatalf("a shares broker k2 with b: window %v, want 3m", got)
	}
	if got := WindowFor(&c, all, proto.ErrorOther); got != time.Minute {
		t.Fatalf("c: window %v", got)
	}
}

// A unit that fails on a new node goes on with the window the task's
// state records instead of opening a fresh one, and closes it in time.
func TestRetryWindowContinuesFromState(t *testing.T) {
	task := retryTask("a", "postgres://u@h:1/d", "postgres://u@h:2/d", time.Minute)
	task.State = proto.StateRetrying
	task.LastError = &proto.TaskError{Kind: proto.ErrorOther, RetryUntil: time.Now().Add(-time.Second)}
	rw := NewRetryWindow(RetryConfig{MinBackoff: time.Second, MaxBackoff: time.Second})
	terr, closed := rw.Fail(errors.New("boom"), 0, &task, nil)
	if !closed || terr.Kind != proto.ErrorOther {
		t.Fatalf("window recorded as ended a second ago is still open: %+v", terr)
	}
	task.LastError.RetryUntil = time.Now().Add(30 * time.Second)
	rw = NewRetryWindow(RetryConfig{MinBackoff: time.Second, MaxBackoff: time.Second})
	terr, closed = rw.Fail(errors.New("boom"), 0, &task, nil)
	if closed || terr.RetryUntil.Sub(task.LastError.RetryUntil).Abs() > time.Second {
		t.Fatalf("window not continued: until %v, state says %v", terr.RetryUntil, task.LastError.RetryUntil)
	}
}
