package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/IBM/sarama"

	"github.com/sluicedb/sluice/proto"
)

// ensureTopic creates topic with the given partitions when it is missing.
// Brokers that do not allow it leave the user to create it: the error
// says so.
func (s *Sink) ensureTopic(topic string, partitions int, configs map[string]*string) error {
	s.mu.Lock()
	_, known := s.partitions[topic]
	s.mu.Unlock()
	if known {
		return nil
	}
	// Described by the admin client, which answers "unknown topic" at
	// once: a client's metadata refresh retries a missing topic for
	// seconds before giving up.
	admin, err := s.clusterAdmin()
	if err != nil {
		return err
	}
	if n, err := describePartitions(admin, topic); err != nil || n > 0 {
		if err == nil {
			s.setPartitions(topic, n)
		}
		return err
	}
	n := int32(max(1, partitions))
	err = admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: n, ReplicationFactor: replicationFactor(s.opts.Config), ConfigEntries: configs}, false)
	switch {
	case errors.Is(err, sarama.ErrTopicAlreadyExists): // created meanwhile, by another unit
		got, err := describePartitions(admin, topic)
		if err != nil || got == 0 {
			return fmt.Errorf("topic %s: created by another writer, but not described: %v", topic, err)
		}
		n = int32(got)
	case err != nil:
		return fmt.Errorf("topic %s does not exist and cannot be created (%w): create it, or let Sluice's user create topics", topic, err)
	}
	s.setPartitions(topic, int(n))
	return nil
}

// describePartitions is topic's partition count, 0 if it does not exist.
func describePartitions(admin sarama.ClusterAdmin, topic string) (int, error) {
	md, err := admin.DescribeTopics([]string{topic})
	if err != nil {
		return 0, fmt.Errorf("describe topic %s: %w", topic, err)
	}
	for _, t := range md {
		switch {
		case t.Name != topic:
		case errors.Is(t.Err, sarama.ErrUnknownTopicOrPartition):
			return 0, nil
		case t.Err != sarama.ErrNoError:
			return 0, fmt.Errorf("describe topic %s: %w", topic, t.Err)
		default:
			return len(t.Partitions), nil
		}
	}
	return 0, nil
}

func (s *Sink) setPartitions(topic string, n int) {
	s.mu.Lock()
	s.partitions[topic] = n
	s.mu.Unlock()
}

func (s *Sink) clusterAdmin() (sarama.ClusterAdmin, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin != nil {
		return s.admin, nil
	}
	a, err := sarama.NewClusterAdmin(s.opts.Config.Brokers, s.cfg)
	if err != nil {
		return nil, fmt.Errorf("kafka admin connection: %w", err)
	}
	s.admin = a
	return a, nil
}

// placement is where one table's rows (of one column description) go:
// the topic, its partition count, and the columns hashed for a row's
// partition, worked out once per segment or chunk.
type placement struct {
	topic      string
	partitions int
	hashed     []int
	tableHash  uint32 // of schema.table, for partitioning table
}

// place makes table t's placement, creating its topic if needed.
func (s *Sink) place(t proto.TableID, cols []proto.Column) (placement, error) {
	r := s.opts.route(t)
	if err := s.ensureTopic(r.Topic, r.Partitions, nil); err != nil {
		return placement{}, err
	}
	s.mu.Lock()
	n := s.partitions[r.Topic]
	s.mu.Unlock()
	return placement{topic: r.Topic, partitions: n, hashed: partitionColumns(r, cols), tableHash: fnvAdd(fnvOffset, []byte(t.String()))}, nil
}

// partitionOf places a row: everything in partition 0 (single), a table
// in one partition (table), or by the hash of its partition key columns
// (primary-key: the table's key unless the route names columns; every
// column for a table without a key). A key's changes thus stay in one
// partition, in order.
func (s *Sink) partitionOf(pl placement, ev *Event) int32 {
	if pl.partitions <= 1 {
		return 0
	}
	h := fnvOffset
	switch choice(s.opts.Config.Partitioning, Partitionings) {
	case "single":
		return 0
	case "table":
		h = pl.tableHash
	default:
		row := ev.Row
		t := row.New
		if row.Op == proto.OpDelete || t.Len() == 0 {
			t = row.Old
		}
		for _, i := range pl.hashed {
			if i < t.Len() {
				h = fnvAdd(fnvAdd(h, t.Kinds[i:i+1]), t.Values[i])
				h = fnvAdd(h, []byte{0})
			}
		}
	}
	return int32(h % uint32(pl.partitions))
}

// FNV-1a (32 bits), worked inline: hashing each row's key with
// hash/fnv would allocate a hasher and escape every slice written to it.
const (
	fnvOffset uint32 = 2166136261
	fnvPrime  uint32 = 16777619
)

func fnvAdd(h uint32, b []byte) uint32 {
	for _, c := range b {
		h = (h ^ uint32(c)) * fnvPrime
	}
	return h
}

// partitionColumns are the indexes of the columns hashed for a row.
func partitionColumns(r Route, cols []proto.Column) []int {
	var out []int
	if len(r.PartitionKey) > 0 {
		for _, name := range r.PartitionKey {
			for i, c := range cols {
				if c.Name == name {
					out = append(out, i)
				}
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	for i, c := range cols {
		if c.Key {
			out = append(out, i)
		}
	}
	if len(out) > 0 {
		return out
	}
	for i := range cols {
		out = append(out, i)
	}
	return out
}

// ApplyPreData creates the tables' topics and the DDL topic.
func (s *Sink) ApplyPreData(_ context.Context, sc *proto.Schema) error {
	for i := range sc.Tables {
		r := s.opts.route(sc.Tables[i].ID)
		if err := s.ensureTopic(r.Topic, r.Partitions, nil); err != nil {
			return err
		}
	}
	if t := s.opts.Config.DDLTopic; t != "" {
		return s.ensureTopic(t, 1, nil)
	}
	return nil
}

// ApplyPostData has nothing to do: topics have no indexes.
func (s *Sink) ApplyPostData(context.Context, *proto.Schema) error { return nil }

// SyncSequences has nothing to do: topics have no sequences.
func (s *Sink) SyncSequences(context.Context, *proto.Schema) error { return nil }

// ExistingTables: topics are shared and appended to, so no table
// conflicts with what a topic holds.
func (s *Sink) ExistingTables(context.Context, []proto.TableID) ([]proto.TableID, error) {
	return nil, nil
}
