package kafka

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/IBM/sarama"

	"github.com/sluicedb/sluice/proto"
)

// heartbeatKey is a heartbeat message's key: the task, so that a
// compacted heartbeat topic keeps each task's newest heartbeat, and
// tasks can share the topic.
type heartbeatKey struct {
	Task string `json:"task"`
}

// heartbeatPositionKey is the offsets log's key of the last heartbeat written
// (the source's heartbeat table: no synced table can have its name).
var heartbeatPositionKey = proto.HeartbeatTable.Key()

// WriteHeartbeat writes hb as a heartbeat message (the format's heartbeat
// encoding: its position and commit time) to the heartbeat topic, when
// destination.heartbeat is on and this sink's unit is the task's
// heartbeat writer (Options.Heartbeats), at most once per
// destination.heartbeat_interval; other calls do nothing. The message
// and the heartbeat's position are written together (with exactly_once,
// in a transaction of the unit's producer, so a fenced owner cannot
// write it): a heartbeat at or below the last one written, such as one
// of a batch that comes again after a restart or to a new owner, is not
// written twice. epoch is not compared: positions are stored per table,
// by the table's group, and a heartbeat writer's epoch is not comparable
// with another group's.
func (s *Sink) WriteHeartbeat(ctx context.Context, task string, epoch uint64, hb proto.Row) error {
	if !s.opts.Heartbeats || !s.opts.Config.Heartbeat {
		return nil
	}
	now := s.now()
	s.mu.Lock()
	due := s.lastHeartbeat.IsZero() || now.Sub(s.lastHeartbeat) >= s.opts.Config.HeartbeatEvery()
	s.mu.Unlock()
	if !due {
		return nil
	}
	if last, ok := s.log.table(task, heartbeatPositionKey); ok && !last.pos.Less(hb.Pos) {
		return nil // written already
	}
	topic := s.opts.Config.HeartbeatTopicName()
	if err := s.ensureTopic(topic, 1, map[string]*string{"cleanup.policy": ptr("compact")}); err != nil {
		return err
	}
	// The encoders read only the position and commit time of a heartbeat.
	ev := &Event{Database: s.opts.Database, Heartbeat: true, Row: &proto.Row{Pos: hb.Pos, CommitTimeUS: hb.CommitTimeUS}}
	_, value, err := s.enc.Encode(ctx, topic, ev)
	if err != nil {
		return fmt.Errorf("encode heartbeat at %s: %w", hb.Pos, err)
	}
	key, err := json.Marshal(heartbeatKey{Task: task})
	if err != nil {
		return err
	}
	s.mu.Lock()
	n := s.partitions[topic]
	s.mu.Unlock()
	m := &sarama.ProducerMessage{Topic: topic, Partition: keyPartition(key, n), Key: sarama.ByteEncoder(key), Value: sarama.ByteEncoder(value)}
	pos := s.log.message(recordKey{Task: task, Kind: "pos", Table: heartbeatPositionKey}, posRecord(hb.Pos, epoch))
	if err := s.write([]*sarama.ProducerMessage{m, pos}); err != nil {
		return fmt.Errorf("write heartbeat to %s: %w", topic, err)
	}
	s.log.remember(task, map[string]proto.Position{heartbeatPositionKey: hb.Pos}, epoch)
	s.mu.Lock()
	s.lastHeartbeat = now
	s.mu.Unlock()
	return nil
}

// keyPartition places a key in one of n partitions, always the same: a
// heartbeat topic created by the user may have several, and compaction
// works per partition.
func keyPartition(key []byte, n int) int32 {
	if n <= 1 {
		return 0
	}
	return int32(fnvAdd(fnvOffset, key) % uint32(n))
}
