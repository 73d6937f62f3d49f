package capture

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/sluicedb/sluice/proto"
)

// Packs (proto/pack.go): at a flush, the small batches of the tables one
// apply group reads travel together, in one message on the group's pack
// subject, instead of one message per table. The capture learns which
// tables a group reads from the group consumers' subjects, read from the
// stream: a table is packed only when exactly one consumer filters its
// subject and that consumer also filters exactly one pack subject. So a
// pack never reaches a consumer that would drop it unread, whatever the
// version of Sluice that set the consumers up; with no such consumer,
// every batch goes as before, one message each.

// pack is a group's pack being filled during a flush.
type pack struct {
	subject string
	buf     []byte
	ids     []string // members' message ids, for the pack's id
}

// loadPacks reads the stream's consumers and sets which table subjects
// are packed, and where. Any doubt (an error, a consumer of every
// subject) leaves packing off for the session.
func (s *sessionState) loadPacks(ctx context.Context) {
	s.packOf = nil
	stream, err := s.c.cfg.JetStream.Stream(ctx, proto.StreamName(s.c.cfg.Task))
	if err != nil {
		s.c.cfg.Logger.Debug("packs off: stream not readable", "task", s.c.cfg.Task, "err", err)
		return
	}
	readers := map[string]int{} // table subject: consumers filtering it
	packOf := map[string]string{}
	list := stream.ListConsumers(ctx)
	for info := range list.Info() {
		cfg := info.Config
		subjects := cfg.FilterSubjects
		if cfg.FilterSubject != "" {
			subjects = append(subjects, cfg.FilterSubject)
		}
		if len(subjects) == 0 {
			return // a consumer of everything
		}
		var packs []string
		for _, sub := range subjects {
			if strings.ContainsAny(sub, "*>") {
				return // a wildcard: it may read a table it does not name
			}
			if proto.IsPackSubject(s.c.cfg.Task, sub) {
				packs = append(packs, sub)
			}
		}
		for _, sub := range subjects {
			if proto.IsPackSubject(s.c.cfg.Task, sub) {
				continue
			}
			readers[sub]++
			if len(packs) == 1 {
				packOf[sub] = packs[0]
			}
		}
	}
	if err := list.Err(); err != nil {
		s.c.cfg.Logger.Debug("packs off: consumers not readable", "task", s.c.cfg.Task, "err", err)
		return
	}
	for sub, n := range readers {
		if n != 1 {
			delete(packOf, sub)
		}
	}
	s.packOf = packOf
}

// packOrPublish puts a closed batch in its group's pack when it is small
// and its table is packed, and publishes it on its own otherwise.
func (s *sessionState) packOrPublish(ctx context.Context, b *openBatch) error {
	subject, ok := s.packOf[b.subject]
	if !ok || len(b.buf) > s.c.cfg.MaxBatchBytes/2 {
		return s.publishBatch(ctx, b)
	}
	p := s.packs[subject]
	if p == nil {
		name := subject[strings.LastIndexByte(subject, '.')+1:]
		// Sized for the largest pack: one published once it holds
		// MaxBatchBytes, whose last member was at most half that.
		p = &pack{subject: subject, buf: proto.AppendPackHeader(getBuffer(s.c.cfg.MaxBatchBytes*3/2+smallBuffer), proto.TableID{Schema: proto.ReservedSchema, Name: name})}
		if s.packs == nil {
			s.packs = map[string]*pack{}
		}
		s.packs[subject] = p
		s.packOrder = append(s.packOrder, subject)
	}
	p.buf = proto.AppendPackMember(p.buf, b.buf)
	p.ids = append(p.ids, proto.BatchMsgID(b.rel.table, b.first, b.last))
	putBuffer(b.buf)
	if len(p.buf) >= s.c.cfg.MaxBatchBytes {
		return s.publishPack(ctx, subject)
	}
	return nil
}

// publishPacks publishes the packs being filled, in the order they were
// started.
func (s *sessionState) publishPacks(ctx context.Context) error {
	for len(s.packOrder) > 0 {
		if err := s.publishPack(ctx, s.packOrder[0]); err != nil {
			return err
		}
	}
	return nil
}

func (s *sessionState) publishPack(ctx context.Context, subject string) error {
	p := s.packs[subject]
	delete(s.packs, subject)
	for i, sub := range s.packOrder {
		if sub == subject {
			s.packOrder = append(s.packOrder[:i], s.packOrder[i+1:]...)
			break
		}
	}
	// The id names exactly the rows of the pack (its members' ids): a pack
	// cut the same way after a restart is a duplicate, one cut otherwise
	// is not, and its rows applied already are skipped by position.
	sum := sha256.Sum256([]byte(strings.Join(p.ids, "|")))
	return s.pub.publish(ctx, subject, "pack:"+hex.EncodeToString(sum[:16]), p.buf)
}
