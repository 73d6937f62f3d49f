package postgrestest

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// WorkingCopySchema is a schema with Pagila's features, for the tests of
// a working copy: a partitioned table whose partitions carry their own
// foreign keys and indexes, views on views, a materialized view, SQL and
// PL/pgSQL functions (one returning a table's row type), a procedure,
// triggers, rules, an aggregate, an operator, comments, used and unused
// domains and enums, a generated column, a view that calls an
// extension's function (pg_trgm, which the destination must create).
//
// Two of its objects would change replicated rows if they fired at the
// destination: the last_updated triggers (which rewrite last_update) and
// the rental_log rule (which writes a second log row): a destination
// where they fire on replicated rows differs from the source by content.
const WorkingCopySchema = `
CREATE SCHEMA shop;
COMMENT ON SCHEMA shop IS 'the shop';
CREATE DOMAIN shop.year AS integer CONSTRAINT year_check CHECK (VALUE >= 1901 AND VALUE <= 2155);
CREATE DOMAIN shop.unused_email AS text CONSTRAINT email_check CHECK (VALUE LIKE '%@%');
CREATE TYPE shop.mpaa_rating AS ENUM ('G', 'PG', 'PG-13', 'R', 'NC-17');
CREATE TYPE shop.unused_mood AS ENUM ('sad', 'ok', 'happy');
COMMENT ON TYPE shop.mpaa_rating IS 'film ratings';

CREATE FUNCTION shop.last_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	NEW.last_update = now();
	RETURN NEW;
END $$;

CREATE TABLE shop.customer (
	customer_id serial PRIMARY KEY,
	first_name text NOT NULL,
	last_name text NOT NULL,
	email text,
	active boolean NOT NULL DEFAULT true,
	last_update timestamptz NOT NULL DEFAULT now(),
	full_name text GENERATED ALWAYS AS (first_name || ' ' || last_name) STORED
);
CREATE TABLE shop.film (
	film_id serial PRIMARY KEY,
	title text NOT NULL,
	release_year shop.year,
	rating shop.mpaa_rating DEFAULT 'G',
	rental_rate numeric(4,2) NOT NULL DEFAULT 4.99,
	last_update timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE shop.rental (
	rental_id serial PRIMARY KEY,
	rental_date timestamptz NOT NULL,
	film_id integer NOT NULL REFERENCES shop.film,
	customer_id integer NOT NULL REFERENCES shop.customer,
	return_date timestamptz,
	last_update timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_rental_customer ON shop.rental (customer_id);
CREATE TABLE shop.rental_log (id bigserial PRIMARY KEY, rental_id integer, note text);
CREATE TABLE shop.payment (
	payment_id serial,
	customer_id integer NOT NULL,
	rental_id integer,
	amount numeric(5,2) NOT NULL,
	payment_date timestamptz NOT NULL,
	PRIMARY KEY (payment_date, payment_id)
) PARTITION BY RANGE (payment_date);
CREATE TABLE shop.payment_p2022_01 PARTITION OF shop.payment FOR VALUES FROM ('2022-01-01 00:00:00+00') TO ('2022-02-01 00:00:00+00');
CREATE TABLE shop.payment_p2022_02 PARTITION OF shop.payment FOR VALUES FROM ('2022-02-01 00:00:00+00') TO ('2022-03-01 00:00:00+00');
CREATE TABLE shop.payment_p2022_03 PARTITION OF shop.payment FOR VALUES FROM ('2022-03-01 00:00:00+00') TO ('2022-04-01 00:00:00+00');
CREATE TABLE shop.payment_p2022_04 PARTITION OF shop.payment FOR VALUES FROM ('2022-04-01 00:00:00+00') TO ('2022-05-01 00:00:00+00');
CREATE TABLE shop.payment_p2022_05 PARTITION OF shop.payment FOR VALUES FROM ('2022-05-01 00:00:00+00') TO ('2022-06-01 00:00:00+00');
CREATE TABLE shop.payment_later PARTITION OF shop.payment FOR VALUES FROM ('2022-06-01 00:00:00+00') TO (MAXVALUE) PARTITION BY HASH (payment_id);
CREATE TABLE shop.payment_later_0 PARTITION OF shop.payment_later FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE shop.payment_later_1 PARTITION OF shop.payment_later FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE TABLE shop.payment_old PARTITION OF shop.payment DEFAULT;
ALTER TABLE shop.payment_p2022_01 ADD CONSTRAINT payment_p2022_01_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES shop.customer (customer_id);
ALTER TABLE shop.payment_p2022_02 ADD CONSTRAINT payment_p2022_02_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES shop.customer (customer_id);
ALTER TABLE shop.payment_p2022_01 ADD CONSTRAINT payment_p2022_01_rental_id_fkey FOREIGN KEY (rental_id) REFERENCES shop.rental (rental_id);
ALTER TABLE shop.payment_p2022_03 ADD CONSTRAINT payment_p2022_03_amount_check CHECK (amount >= 0);
CREATE INDEX idx_payment_p2022_01_customer ON shop.payment_p2022_01 (customer_id);
CREATE INDEX idx_payment_p2022_02_customer ON shop.payment_p2022_02 (customer_id);
CREATE INDEX idx_payment_amount ON shop.payment (amount);

CREATE TRIGGER last_updated BEFORE UPDATE ON shop.customer FOR EACH ROW EXECUTE FUNCTION shop.last_updated();
CREATE TRIGGER last_updated BEFORE UPDATE ON shop.film FOR EACH ROW EXECUTE FUNCTION shop.last_updated();
CREATE TRIGGER last_updated BEFORE UPDATE ON shop.rental FOR EACH ROW EXECUTE FUNCTION shop.last_updated();
CREATE RULE rental_log_rule AS ON INSERT TO shop.rental DO ALSO INSERT INTO shop.rental_log (rental_id, note) VALUES (NEW.rental_id, 'rented');

CREATE FUNCTION shop.film_in_stock(p_film_id integer) RETURNS SETOF integer LANGUAGE sql STABLE AS $$
	SELECT rental_id FROM shop.rental WHERE film_id = $1 AND return_date IS NOT NULL
$$;
CREATE FUNCTION shop.customer_balance(p_customer_id integer) RETURNS numeric LANGUAGE plpgsql STABLE AS $$
DECLARE
	v numeric;
BEGIN
	SELECT coalesce(sum(amount), 0) INTO v FROM shop.payment WHERE customer_id = p_customer_id;
	RETURN v;
END $$;
CREATE FUNCTION shop.rewards_report(min_total numeric) RETURNS SETOF shop.customer LANGUAGE sql STABLE AS $$
	SELECT c.* FROM shop.customer c WHERE shop.customer_balance(c.customer_id) >= min_total
$$;
CREATE PROCEDURE shop.close_rental(p_rental_id integer) LANGUAGE plpgsql AS $$
BEGIN
	UPDATE shop.rental SET return_date = now() WHERE rental_id = p_rental_id;
END $$;
CREATE FUNCTION shop._group_concat(text, text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE WHEN $2 IS NULL THEN $1 WHEN $1 IS NULL THEN $2 ELSE $1 || ', ' || $2 END
$$;
CREATE AGGREGATE shop.group_concat(text) (SFUNC = shop._group_concat, STYPE = text);
CREATE FUNCTION shop.approx_eq(numeric, numeric) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT abs($1 - $2) < 0.01 $$;
CREATE OPERATOR shop.=~= (FUNCTION = shop.approx_eq, LEFTARG = numeric, RIGHTARG = numeric, COMMUTATOR = OPERATOR(shop.=~=));
COMMENT ON FUNCTION shop.customer_balance(integer) IS 'what a customer paid';
COMMENT ON AGGREGATE shop.group_concat(text) IS 'comma list';

CREATE VIEW shop.customer_list AS
	SELECT c.customer_id AS id, c.full_name AS name, c.email, CASE WHEN c.active THEN 'active' ELSE '' END AS notes
	FROM shop.customer c;
CREATE VIEW shop.active_customers AS SELECT * FROM shop.customer_list WHERE notes = 'active';
CREATE VIEW shop.film_list WITH (security_barrier) AS
	SELECT f.film_id, f.title, f.rating, shop.group_concat(c.full_name ORDER BY c.full_name) AS renters
	FROM shop.film f LEFT JOIN shop.rental r ON r.film_id = f.film_id LEFT JOIN shop.customer c ON c.customer_id = r.customer_id
	GROUP BY f.film_id, f.title, f.rating;
CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
CREATE VIEW shop.film_titles AS SELECT f.film_id, public.similarity(f.title, 'film 1') AS like_film_1 FROM shop.film f;
CREATE MATERIALIZED VIEW shop.sales_by_rating AS
	SELECT f.rating, count(*) AS rentals, sum(p.amount) AS total
	FROM shop.payment p JOIN shop.rental r ON r.rental_id = p.rental_id JOIN shop.film f ON f.film_id = r.film_id
	GROUP BY f.rating;
CREATE UNIQUE INDEX sales_by_rating_rating ON shop.sales_by_rating (rating);
CREATE RULE customer_list_delete AS ON DELETE TO shop.customer_list DO INSTEAD DELETE FROM shop.customer WHERE customer_id = OLD.id;
COMMENT ON TABLE shop.film IS 'films';
COMMENT ON COLUMN shop.film.title IS 'the title';
COMMENT ON VIEW shop.customer_list IS 'customers';
COMMENT ON MATERIALIZED VIEW shop.sales_by_rating IS 'sales';
COMMENT ON TRIGGER last_updated ON shop.film IS 'keeps last_update';
COMMENT ON CONSTRAINT rental_film_id_fkey ON shop.rental IS 'rented film';
COMMENT ON INDEX shop.idx_rental_customer IS 'by customer';

INSERT INTO shop.customer (first_name, last_name, email) SELECT 'first' || g, 'last' || g, 'c' || g || '@x' FROM generate_series(1, 50) g;
INSERT INTO shop.film (title, release_year, rating) SELECT 'film ' || g, 2000 + g % 20, (ARRAY['G', 'PG', 'PG-13', 'R', 'NC-17'])[1 + g % 5]::shop.mpaa_rating FROM generate_series(1, 40) g;
INSERT INTO shop.rental (rental_date, film_id, customer_id) SELECT '2022-01-01'::timestamptz + g * interval '1 day', 1 + g % 40, 1 + g % 50 FROM generate_series(1, 200) g;
INSERT INTO shop.payment (customer_id, rental_id, amount, payment_date) SELECT 1 + g % 50, g, (g % 10) + 0.99, '2022-01-01'::timestamptz + g * interval '1 day' FROM generate_series(1, 200) g;
REFRESH MATERIALIZED VIEW shop.sales_by_rating;
`

// DescribeObjects describes the working-copy objects of a database's
// schemas (not its tables' columns and keys, which other tests compare)
// as sorted lines, so that two databases compare line by line. Triggers'
// and rules' firing states are left out (DescribeFiring has them).
func DescribeObjects(t testing.TB, conn *pgx.Conn, schemas ...string) []string {
	t.Helper()
	return queryLines(t, conn, `
		WITH ns AS (SELECT oid, nspname FROM pg_namespace WHERE nspname = ANY($1::text[]))
		SELECT 'view ' || c.oid::regclass || ' ' || c.relkind::text || ' ' || coalesce(array_to_string(c.reloptions, ','), '') || ': ' || pg_get_viewdef(c.oid)
		FROM pg_class c JOIN ns ON ns.oid = c.relnamespace WHERE c.relkind IN ('v', 'm')
		UNION ALL SELECT 'matview populated ' || c.oid::regclass || ' ' || c.relispopulated
		FROM pg_class c JOIN ns ON ns.oid = c.relnamespace WHERE c.relkind = 'm'
		UNION ALL SELECT 'routine ' || pg_get_functiondef(p.oid)
		FROM pg_proc p JOIN ns ON ns.oid = p.pronamespace WHERE p.prokind <> 'a'
		UNION ALL SELECT 'aggregate ' || a.aggfnoid::regprocedure || ' ' || a.aggtransfn::regproc || ' ' || format_type(a.aggtranstype, NULL)
		FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid JOIN ns ON ns.oid = p.pronamespace
		UNION ALL SELECT 'operator ' || o.oid::regoperator || ' ' || o.oprcode::regproc || ' ' || o.oprcom::regoperator
		FROM pg_operator o JOIN ns ON ns.oid = o.oprnamespace
		UNION ALL SELECT 'trigger ' || pg_get_triggerdef(tg.oid)
		FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN ns ON ns.oid = c.relnamespace WHERE NOT tg.tgisinternal AND tg.tgparentid = 0
		UNION ALL SELECT 'rule ' || pg_get_ruledef(rw.oid)
		FROM pg_rewrite rw JOIN pg_class c ON c.oid = rw.ev_class JOIN ns ON ns.oid = c.relnamespace WHERE rw.rulename <> '_RETURN'
		UNION ALL SELECT 'type ' || t.oid::regtype || ' ' || t.typtype::text || ' ' || coalesce((SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum WHERE enumtypid = t.oid), '')
		       || coalesce((SELECT string_agg(pg_get_constraintdef(k.oid), ',') FROM pg_constraint k WHERE k.contypid = t.oid), '')
		FROM pg_type t JOIN ns ON ns.oid = t.typnamespace WHERE t.typtype IN ('e', 'd')
		UNION ALL SELECT 'partition ' || pt.relid::regclass || ' of ' || coalesce(pt.parentrelid::regclass::text, '') || ' ' || coalesce(pg_get_expr(c.relpartbound, c.oid), '')
		       || coalesce(' BY ' || CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END, '')
		FROM pg_class r JOIN ns ON ns.oid = r.relnamespace CROSS JOIN LATERAL pg_partition_tree(r.oid) pt JOIN pg_class c ON c.oid = pt.relid
		WHERE r.relkind = 'p' AND NOT r.relispartition
		UNION ALL SELECT 'partition constraint ' || k.conrelid::regclass || ' ' || k.conname || ' ' || pg_get_constraintdef(k.oid)
		FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN ns ON ns.oid = c.relnamespace WHERE c.relispartition
		UNION ALL SELECT 'partition index ' || pg_get_indexdef(i.indexrelid)
		FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN ns ON ns.oid = c.relnamespace WHERE c.relispartition
		UNION ALL SELECT 'matview index ' || pg_get_indexdef(i.indexrelid)
		FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN ns ON ns.oid = c.relnamespace WHERE c.relkind = 'm'
		UNION ALL SELECT 'comment ' || io.type || ' ' || io.identity || ': ' || d.description
		FROM pg_description d CROSS JOIN LATERAL pg_identify_object(d.classoid, d.objoid, d.objsubid) io
		WHERE io.schema = ANY($1::text[]) OR (io.type = 'schema' AND io.identity = ANY($1::text[]))
		   OR io.identity LIKE ANY (SELECT '% on ' || quote_ident(s) || '.%' FROM unnest($1::text[]) s)
		ORDER BY 1`, schemas)
}

// DescribeFiring lists the triggers and rules of a database's schemas with
// their firing state (tgenabled, ev_enabled).
func DescribeFiring(t testing.TB, conn *pgx.Conn, schemas ...string) []string {
	t.Helper()
	return queryLines(t, conn, `
		SELECT 'trigger ' || tg.tgname || ' on ' || tg.tgrelid::regclass || ' ' || tg.tgenabled::text
		FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = ANY($1::text[]) AND NOT tg.tgisinternal AND tg.tgparentid = 0
		UNION ALL SELECT 'rule ' || rw.rulename || ' on ' || rw.ev_class::regclass || ' ' || rw.ev_enabled::text
		FROM pg_rewrite rw JOIN pg_class c ON c.oid = rw.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = ANY($1::text[]) AND rw.rulename <> '_RETURN'
		ORDER BY 1`, schemas)
}

func queryLines(t testing.TB, conn *pgx.Conn, sql string, schemas []string) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql, schemas)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

// LineDiff lists the lines only one side has ("- " want only, "+ " got
// only), "" when both hold the same.
func LineDiff(want, got []string) string {
	var out []string
	for _, l := range want {
		if !slices.Contains(got, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range got {
		if !slices.Contains(want, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}
