// Package workload writes a mixed load into a source database for tests
// and the demo: inserts, updates (some changing primary keys, some leaving
// large TOASTed values unchanged), deletes and truncates, over a keyed
// table, a table without a key (REPLICA IDENTITY FULL, duplicate rows
// included) and a table of large documents. Every run is bounded in count
// and time.
package workload

import (
	"context"
	"fmt"
	"math/rand"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Tables the workload writes, as SQL names.
var Tables = []string{"public.accounts", "public.events", "public.docs"}

// Schema creates the workload's tables.
const Schema = `
CREATE TYPE account_kind AS ENUM ('personal', 'business');
CREATE TABLE accounts (
	id         bigint PRIMARY KEY,
	owner      text NOT NULL,
	kind       account_kind NOT NULL DEFAULT 'personal',
	balance    numeric(14,2) NOT NULL,
	tags       text[],
	updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE events (account_id bigint, kind text, payload jsonb, at timestamptz DEFAULT now());
ALTER TABLE events REPLICA IDENTITY FULL;
CREATE TABLE docs (id int PRIMARY KEY, title text NOT NULL, body text);
ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL; -- out of line, so updates leave it unchanged-TOAST
CREATE INDEX accounts_owner ON accounts (owner);
`

// Seed fills the tables with n accounts, 2n events and n/10 documents with
// bodies large enough to be TOASTed.
func Seed(ctx context.Context, conn *pgx.Conn, n int) error {
	_, err := conn.Exec(ctx, fmt.Sprintf(`
	INSERT INTO accounts (id, owner, kind, balance, tags)
		SELECT g, 'owner ' || g, CASE WHEN g %% 3 = 0 THEN 'business' ELSE 'personal' END::account_kind, g * 1.25, ARRAY['t' || (g %% 7), 'ü']
		FROM generate_series(1, %[1]d) g;
	INSERT INTO events (account_id, kind, payload)
		SELECT g %% %[1]d + 1, 'seed', jsonb_build_object('n', g, 'note', 'é€')
		FROM generate_series(1, %[1]d * 2) g;
	INSERT INTO docs (id, title, body)
		SELECT g, 'doc ' || g, repeat(md5(g::text), 200)
		FROM generate_series(1, greatest(%[1]d / 10, 1)) g`, n))
	return err
}

// Options bound a run.
type Options struct {
	// Transactions to run; the run also ends at Duration or ctx's end.
	Transactions int
	Duration     time.Duration
	// Seed for the random choices.
	Seed int64
	// Truncate allows truncating the events table now and then.
	Truncate bool
	// Progress, when set, is called after each transaction.
	Progress func(done int)
}

// Run writes transactions until one of the bounds is reached and returns
// how many it committed.
func Run(ctx context.Context, dsn string, opts Options) (int, error) {
	if opts.Transactions <= 0 {
		opts.Transactions = 1000
	}
	if opts.Duration <= 0 {
		opts.Duration = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Duration)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	rng := rand.New(rand.NewSource(opts.Seed))
	w := &writer{rng: rng}
	// The keys that exist now: the workload picks rows to change among
	// them and inserts above the largest.
	rows, err := conn.Query(ctx, `SELECT id FROM accounts`)
	if err != nil {
		return 0, err
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return 0, err
		}
		w.ids = append(w.ids, id)
		w.next = max(w.next, id)
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	w.next++
	if err := conn.QueryRow(ctx, `SELECT greatest(count(*), 1) FROM docs`).Scan(&w.docs); err != nil {
		return 0, err
	}
	done := 0
	for done < opts.Transactions {
		if ctx.Err() != nil {
			break
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			for i := 0; i < 1+rng.Intn(5); i++ {
				if err := w.op(ctx, tx, opts.Truncate); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return done, err
		}
		w.commit()
		done++
		if opts.Progress != nil {
			opts.Progress(done)
		}
	}
	return done, nil
}

type writer struct {
	rng  *rand.Rand
	ids  []int64 // existing account ids
	next int64
	docs int
	// changes of the current transaction, kept until it commits
	added   []int64
	removed map[int64]bool
}

func (w *writer) commit() {
	if len(w.removed) > 0 {
		kept := w.ids[:0]
		for _, id := range w.ids {
			if !w.removed[id] {
				kept = append(kept, id)
			}
		}
		w.ids = kept
	}
	w.ids = append(w.ids, w.added...)
	w.added, w.removed = nil, nil
}

// pick returns an existing account id not yet removed in this transaction.
func (w *writer) pick() (int64, bool) {
	for tries := 0; tries < 5 && len(w.ids) > 0; tries++ {
		id := w.ids[w.rng.Intn(len(w.ids))]
		if !w.removed[id] {
			return id, true
		}
	}
	return 0, false
}

func (w *writer) remove(id int64) {
	if w.removed == nil {
		w.removed = map[int64]bool{}
	}
	w.removed[id] = true
}

func (w *writer) op(ctx context.Context, tx pgx.Tx, truncate bool) error {
	var err error
	switch r := w.rng.Intn(100); {
	case r < 30:
		id := w.next
		w.next++
		w.added = append(w.added, id)
		_, err = tx.Exec(ctx, `INSERT INTO accounts (id, owner, balance, tags) VALUES ($1, $2, $3, $4)`,
			id, fmt.Sprintf("owner %d", id), float64(w.rng.Intn(100000))/100, []string{"new", strings.Repeat("n", w.rng.Intn(5))})
	case r < 50:
		if id, ok := w.pick(); ok {
			_, err = tx.Exec(ctx, `UPDATE accounts SET balance = balance + $2, updated_at = now() WHERE id = $1`, id, w.rng.Intn(100))
		}
	case r < 57:
		// A primary key change.
		if id, ok := w.pick(); ok {
			nid := w.next
			w.next++
			w.remove(id)
			w.added = append(w.added, nid)
			_, err = tx.Exec(ctx, `UPDATE accounts SET id = $2, kind = 'business' WHERE id = $1`, id, nid)
		}
	case r < 65:
		if id, ok := w.pick(); ok {
			w.remove(id)
			_, err = tx.Exec(ctx, `DELETE FROM accounts WHERE id = $1`, id)
		}
	case r < 80:
		// Duplicate rows on purpose: the keyless table must keep them.
		n := 1 + w.rng.Intn(2)
		_, err = tx.Exec(ctx, `INSERT INTO events (account_id, kind, payload) SELECT $1, 'op', jsonb_build_object('v', $2::int) FROM generate_series(1, $3)`,
			w.rng.Int63n(1000), w.rng.Intn(10), n)
	case r < 85:
		_, err = tx.Exec(ctx, `UPDATE events SET kind = 'updated' WHERE ctid = (SELECT ctid FROM events WHERE account_id = $1 LIMIT 1)`, w.rng.Int63n(1000))
	case r < 89:
		_, err = tx.Exec(ctx, `DELETE FROM events WHERE ctid = (SELECT ctid FROM events WHERE account_id = $1 LIMIT 1)`, w.rng.Int63n(1000))
	case r < 97:
		// The large body stays untouched: an unchanged-TOAST update.
		_, err = tx.Exec(ctx, `UPDATE docs SET title = title || '+' WHERE id = $1`, 1+w.rng.Intn(w.docs))
	case r < 99:
		// A key change of a row with an unchanged TOASTed value.
		id := 1 + w.rng.Intn(w.docs)
		_, err = tx.Exec(ctx, `UPDATE docs SET id = -id WHERE id = $1`, id)
		if err == nil {
			_, err = tx.Exec(ctx, `UPDATE docs SET id = -id WHERE id = $1`, -id)
		}
	default:
		if truncate {
			_, err = tx.Exec(ctx, `TRUNCATE events`)
		}
	}
	return err
}
