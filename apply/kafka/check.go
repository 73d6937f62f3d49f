package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/internal/secret"
	"github.com/sluicedb/sluice/proto"
)

// Precheck checks a Kafka destination for a task: the names its tables
// get, then what the task needs of the brokers (probe).
func (destination) Precheck(ctx context.Context, spec *proto.TaskSpec, src *proto.SourceFacts, c *proto.Checks) {
	cfg := configOf(spec)
	apply.CheckNaming(spec, src.Tables, c)
	topics := map[string]int{}
	for _, t := range src.Tables {
		topics[topicFor(spec, cfg, t)] = partitionsFor(spec, cfg, t)
	}
	if t := cfg.DDLTopic; t != "" && spec.Sync.DDLEnabled() {
		topics[t] = max(topics[t], 1)
	}
	topics[cfg.OffsetsTopicName()] = 1
	if cfg.Heartbeat && spec.Sync.IncrementalEnabled() {
		topics[cfg.HeartbeatTopicName()] = max(topics[cfg.HeartbeatTopicName()], 1)
	}
	probe(ctx, Options{Task: spec.Name, Config: *cfg}, topics, c)
}

// probe checks what a task needs of the brokers, creating nothing: they
// answer, the topics exist or may be created (topics: name → partitions),
// transactions work when exactly_once is on, and the schema registry
// answers.
func probe(ctx context.Context, opts Options, topics map[string]int, c *proto.Checks) {
	fail, pass := c.Fail, c.Pass
	cfg, err := opts.saramaConfig("")
	if err != nil {
		fail("destination.connect", err.Error(), "fix the destination's settings")
		return
	}
	client, err := connect(ctx, opts.Config.Brokers, cfg)
	if err != nil {
		fail("destination.connect", err.Error(), "check destination.brokers and that the brokers are reachable from every Sluice node; with TLS or SASL, check destination.tls and destination.sasl")
		return
	}
	defer client.Close()
	pass("destination.connect", fmt.Sprintf("connected to %d broker(s) at %s", len(client.Brokers()), strings.Join(opts.Config.Brokers, ",")))

	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		fail("destination.topics", "cannot open an admin connection: "+err.Error(), "")
		return
	}
	var created, existing, refused []string
	for _, topic := range slices.Sorted(maps.Keys(topics)) {
		if ps, err := client.Partitions(topic); err == nil && len(ps) > 0 {
			existing = append(existing, topic)
			continue
		}
		err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: int32(max(1, topics[topic])), ReplicationFactor: replicationFactor(opts.Config)}, true)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			refused = append(refused, fmt.Sprintf("%s (%v)", topic, err))
			continue
		}
		created = append(created, topic)
	}
	if len(refused) > 0 {
		fail("destination.topics", "these topics do not exist and cannot be created: "+strings.Join(refused, "; "),
			"create them, or allow Sluice's Kafka user to create topics (CREATE on the cluster)")
	} else {
		found := "topics exist: " + strings.Join(existing, ", ")
		if len(created) > 0 {
			found = "topics to create: " + strings.Join(created, ", ")
			if len(existing) > 0 {
				found += "; exist: " + strings.Join(existing, ", ")
			}
		}
		pass("destination.topics", found)
	}

	if opts.Config.ExactlyOnceEnabled() {
		pcfg, err := opts.saramaConfig("sluice." + opts.Task + ".precheck")
		if err == nil {
			var p sarama.SyncProducer
			if p, err = sarama.NewSyncProducer(opts.Config.Brokers, pcfg); err == nil {
				p.Close()
			}
		}
		if err != nil {
			fail("destination.transactions", "a transactional producer cannot start: "+err.Error(),
				"allow Sluice's Kafka user transactions (WRITE and DESCRIBE on transactional ids sluice.*, IDEMPOTENT_WRITE on the cluster), or set exactly_once: false")
		} else {
			pass("destination.transactions", "a transactional producer starts (exactly_once)")
		}
	}
	if url := opts.Config.SchemaRegistry; url != "" {
		if resolved, err := secret.ResolveField(url); err != nil {
			fail("destination.schema_registry", err.Error(), "give the registry's password inline or by ${env:NAME} / ${file:/path} present on every node")
		} else if err := pingRegistry(ctx, resolved); err != nil {
			fail("destination.schema_registry", err.Error(), "check destination.schema_registry: the URL of a Confluent-compatible schema registry")
		} else {
			pass("destination.schema_registry", "the schema registry answers")
		}
	}
}

func replicationFactor(k Config) int16 {
	if k.ReplicationFactor == 0 {
		return -1 // the brokers' default.replication.factor
	}
	return int16(k.ReplicationFactor)
}

func pingRegistry(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(url, "/")+"/subjects", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("schema registry: %s", proto.RedactText(err.Error()))
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("schema registry %s answers %s", proto.RedactDSN(url), resp.Status)
	}
	return nil
}
