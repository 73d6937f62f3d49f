package apply

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicedb/sluice/proto"
)

// Table groups bound the number of JetStream consumers: a task's tables
// are hashed into a fixed number of groups, each one durable consumer and
// one apply worker. The hash is stable, so a table stays in its group
// across restarts.

// DefaultGroups is the number of table groups of a task.
const DefaultGroups = 4

// GroupOf returns the group of a table.
func GroupOf(t proto.TableID, groups int) int {
	return groupOfKey(t.Key(), groups)
}

func groupOfKey(key string, groups int) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(groups))
}

// LinkedGroupOf is the group of a table whose foreign keys link it to
// others (linked: table key to its set's anchor, capture.LinkedTables):
// the anchor's group, so that linked tables share one.
func LinkedGroupOf(t proto.TableID, groups int, linked map[string]string) int {
	if anchor, ok := linked[t.Key()]; ok {
		return groupOfKey(anchor, groups)
	}
	return GroupOf(t, groups)
}

// ConsumerName is the durable consumer of a group.
func ConsumerName(group int) string { return fmt.Sprintf("%s%d", consumerPrefix, group) }

// consumerPrefix starts the names of the group consumers.
const consumerPrefix = "apply_"

// ConsumerConfig is the durable consumer of one table group: its tables'
// subjects plus the heartbeat, which every group sees so each can tell
// how far behind the source it is.
//
// linked (capture.LinkedTables) puts tables that foreign keys link in
// one group; it is fixed when the task starts, as a table must never
// change groups (subjects are only ever added to a consumer).
func ConsumerConfig(task string, group, groups int, tables []proto.TableID, linked map[string]string) jetstream.ConsumerConfig {
	// The group's pack subject: the capture packs small batches of the
	// group's tables there (proto/pack.go).
	subjects := []string{proto.Subject(task, proto.HeartbeatTable), proto.PackSubject(task, group)}
	for _, t := range tables {
		if LinkedGroupOf(t, groups, linked) == group {
			subjects = append(subjects, proto.Subject(task, t))
		}
	}
	return jetstream.ConsumerConfig{
		Durable:        ConsumerName(group),
		FilterSubjects: subjects,
		AckPolicy:      jetstream.AckAllPolicy,
		// Long enough for one apply of a full batch; a message not acked
		// by then is delivered again and skipped by position.
		AckWait:       2 * time.Minute,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: 100000,
		MaxDeliver:    -1,
	}
}

// StreamConfig is the task's change stream. Interest retention drops a
// message once every group consumer has acknowledged it; DiscardNew makes
// a full stream refuse new changes (capture then waits) rather than drop
// old ones.
// Replicas is how many brokers hold it (1, or 3 in a cluster).
func StreamConfig(task string, replicas int) jetstream.StreamConfig {
	if replicas < 1 {
		replicas = 1
	}
	return jetstream.StreamConfig{
		Name:       proto.StreamName(task),
		Subjects:   []string{proto.SubjectPrefix(task) + ">"},
		Retention:  jetstream.InterestPolicy,
		Discard:    jetstream.DiscardNew,
		Storage:    jetstream.FileStorage,
		Duplicates: 2 * time.Minute,
		Replicas:   replicas,
	}
}

// EnsureStream creates or updates the task's stream and its group
// consumers. The consumers must exist before capture publishes, or
// interest retention would drop the first changes.
func EnsureStream(ctx context.Context, js jetstream.JetStream, task string, groups, replicas int, tables []proto.TableID, linked map[string]string) error {
	stream, err := js.CreateOrUpdateStream(ctx, StreamConfig(task, replicas))
	if err != nil {
		return fmt.Errorf("create stream %s: %w", proto.StreamName(task), err)
	}
	for g := 0; g < groups; g++ {
		cfg := ConsumerConfig(task, g, groups, tables, linked)
		if c, err := stream.Consumer(ctx, ConsumerName(g)); err == nil {
			have := c.CachedInfo().Config
			if !widenConsumer(&cfg, have) {
				continue
			}
		}
		if _, err := stream.CreateOrUpdateConsumer(ctx, cfg); err != nil {
			return fmt.Errorf("create consumer %s: %w", ConsumerName(g), err)
		}
	}
	return nil
}

// widenConsumer adds to want the filter subjects of the consumer as it
// is (have): subjects are only ever added, since a table renamed or
// dropped by DDL sync may still have messages waiting under its old
// subject. It reports whether the consumer needs the update. Skipping an
// update that changes nothing matters with many tables: the server checks
// every pair of a consumer's filter subjects for overlap, about half a
// second of CPU for 5,000 tables at each start of the task.
func widenConsumer(want *jetstream.ConsumerConfig, have jetstream.ConsumerConfig) bool {
	wanted := make(map[string]bool, len(want.FilterSubjects))
	for _, s := range want.FilterSubjects {
		wanted[s] = true
	}
	kept := 0
	for _, s := range have.FilterSubjects {
		if wanted[s] {
			kept++
		} else {
			want.FilterSubjects = append(want.FilterSubjects, s)
		}
	}
	same := kept == len(wanted) && want.AckPolicy == have.AckPolicy && want.AckWait == have.AckWait &&
		want.DeliverPolicy == have.DeliverPolicy && want.MaxAckPending == have.MaxAckPending && want.MaxDeliver == have.MaxDeliver
	return !same
}

// DeleteStream removes the task's stream and consumers; gone is fine.
func DeleteStream(ctx context.Context, js jetstream.JetStream, task string) error {
	err := js.DeleteStream(ctx, proto.StreamName(task))
	if err != nil && err != jetstream.ErrStreamNotFound {
		return fmt.Errorf("delete stream %s: %w", proto.StreamName(task), err)
	}
	return nil
}

// StreamLastSeq is the sequence of the last message in the task's stream.
func StreamLastSeq(ctx context.Context, js jetstream.JetStream, task string) (uint64, error) {
	stream, err := js.Stream(ctx, proto.StreamName(task))
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", proto.StreamName(task), err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", proto.StreamName(task), err)
	}
	return info.State.LastSeq, nil
}

// AckFloors is, per group consumer of the task's stream, the stream
// sequence of the last message it acknowledged: a worker acknowledges
// a batch once it is applied, and every group sees every heartbeat, so
// each floor passes any message of the stream within a heartbeat once
// the group has applied everything before it.
func AckFloors(ctx context.Context, js jetstream.JetStream, task string) (map[string]uint64, error) {
	stream, err := js.Stream(ctx, proto.StreamName(task))
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", proto.StreamName(task), err)
	}
	floors := map[string]uint64{}
	list := stream.ListConsumers(ctx)
	for info := range list.Info() {
		if strings.HasPrefix(info.Name, consumerPrefix) {
			floors[info.Name] = info.AckFloor.Stream
		}
	}
	if err := list.Err(); err != nil {
		return nil, fmt.Errorf("consumers of stream %s: %w", proto.StreamName(task), err)
	}
	return floors, nil
}
