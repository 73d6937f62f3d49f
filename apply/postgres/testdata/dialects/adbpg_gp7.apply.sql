-- The apply at adbpg (server_version_num 120012, Greenplum true, INSERT ... ON CONFLICT true): the statements of one batch, as the sink sends them.

-- orders (primary key region, id; distributed by region at AnalyticDB): an update, a delete, an insert, a key change and a distribution-key change, set-based
DELETE FROM "shop"."orders" AS t USING unnest($1::text[], $2::text[]) AS u(c0, c1) WHERE t."region" = u.c0::text AND t."id" = u.c1::integer
  $1 = {"eu", "eu", "eu"}
  $2 = {"2", "10", "20"}
COPY "shop"."orders" ("region", "id", "ordered", "amount") FROM STDIN
  eu	3	2024-01-03	30.00
  eu	11	2024-01-04	11.00
  us	20	2024-01-05	20.00
UPDATE "shop"."orders" AS t SET "ordered" = $3::date, "amount" = $4::numeric(12,2) WHERE t."region" = $1::text AND t."id" = $2::integer
  $1 = "eu"
  $2 = "1"
  $3 = "2024-01-02"
  $4 = "10.00"

-- the same rows row by row (the retry after a unique violation), each a possible upsert
UPDATE "shop"."orders" AS t SET "ordered" = $3::date, "amount" = $4::numeric(12,2) WHERE t."region" = $1::text AND t."id" = $2::integer
  $1 = "eu"
  $2 = "1"
  $3 = "2024-01-02"
  $4 = "10.00"
DELETE FROM "shop"."orders" AS t WHERE t."region" = $1::text AND t."id" = $2::integer
  $1 = "eu"
  $2 = "2"
INSERT INTO "shop"."orders" ("region", "id", "ordered", "amount") OVERRIDING SYSTEM VALUE SELECT u.c0::text, u.c1::integer, u.c2::date, u.c3::numeric(12,2) FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(c0, c1, c2, c3) ON CONFLICT ("region", "id") DO UPDATE SET "ordered" = EXCLUDED."ordered", "amount" = EXCLUDED."amount"
  $1 = {"eu"}
  $2 = {"3"}
  $3 = {"2024-01-03"}
  $4 = {"30.00"}
DELETE FROM "shop"."orders" AS t WHERE t."region" = $1::text AND t."id" = $2::integer
  $1 = "eu"
  $2 = "10"
INSERT INTO "shop"."orders" ("region", "id", "ordered", "amount") OVERRIDING SYSTEM VALUE SELECT u.c0::text, u.c1::integer, u.c2::date, u.c3::numeric(12,2) FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(c0, c1, c2, c3) ON CONFLICT ("region", "id") DO UPDATE SET "ordered" = EXCLUDED."ordered", "amount" = EXCLUDED."amount"
  $1 = {"eu"}
  $2 = {"11"}
  $3 = {"2024-01-04"}
  $4 = {"11.00"}
DELETE FROM "shop"."orders" AS t WHERE t."region" = $1::text AND t."id" = $2::integer
  $1 = "eu"
  $2 = "20"
INSERT INTO "shop"."orders" ("region", "id", "ordered", "amount") OVERRIDING SYSTEM VALUE SELECT u.c0::text, u.c1::integer, u.c2::date, u.c3::numeric(12,2) FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(c0, c1, c2, c3) ON CONFLICT ("region", "id") DO UPDATE SET "ordered" = EXCLUDED."ordered", "amount" = EXCLUDED."amount"
  $1 = {"us"}
  $2 = {"20"}
  $3 = {"2024-01-05"}
  $4 = {"20.00"}

-- a key change whose new row keeps an unchanged TOAST value (notes: primary key id)
INSERT INTO "shop"."notes" ("id", "body") OVERRIDING SYSTEM VALUE SELECT $1::bigint, t."body" FROM "shop"."notes" AS t WHERE t."id" = $2::bigint ON CONFLICT ("id") DO UPDATE SET "body" = EXCLUDED."body"
  $1 = "2"
  $2 = "1"
DELETE FROM "shop"."notes" AS t WHERE t."id" = $1::bigint
  $1 = "1"

-- events, without a key (REPLICA IDENTITY FULL): an insert, an update, a delete
INSERT INTO "shop"."events" ("at", "level") OVERRIDING SYSTEM VALUE SELECT $1::timestamp with time zone, $2::integer
  $1 = "2024-01-01 00:00:00+00"
  $2 = "1"
DELETE FROM "shop"."events" WHERE (gp_segment_id, ctid) IN (SELECT gp_segment_id, ctid FROM "shop"."events" WHERE "at"::text IS NOT DISTINCT FROM $1 AND "level"::text IS NOT DISTINCT FROM $2 LIMIT 1)
  $1 = "2024-01-01 00:00:00+00"
  $2 = "1"
INSERT INTO "shop"."events" ("at", "level") OVERRIDING SYSTEM VALUE VALUES ($1::timestamp with time zone, $2::integer)
  $1 = "2024-01-01 00:00:00+00"
  $2 = "2"
DELETE FROM "shop"."events" WHERE (gp_segment_id, ctid) IN (SELECT gp_segment_id, ctid FROM "shop"."events" WHERE "at"::text IS NOT DISTINCT FROM $1 AND "level"::text IS NOT DISTINCT FROM $2 LIMIT 1)
  $1 = "2024-01-01 00:00:00+00"
  $2 = "2"

-- calc, whose generated column total AnalyticDB computes after the write
COPY "shop"."calc" ("id", "a", "b") FROM STDIN
  1	2	3
UPDATE "shop"."calc" AS t SET "a" = $2::integer, "b" = $3::integer WHERE t."id" = $1::integer
  $1 = "2"
  $2 = "5"
  $3 = "5"
UPDATE "shop"."calc" SET "total" = ((a + b)) FROM unnest($1::text[]) AS sluice_keys(k0) WHERE "shop"."calc"."id" = sluice_keys.k0::integer
  $1 = {"1", "2"}

-- the batch's positions: rows created at zero where missing, then stored (both in the batch's transaction)
INSERT INTO sluice.apply_offsets (task, schema_name, table_name, shard, lsn, idx, epoch)
SELECT $1, u.s, u.t, u.h, '0/0', 0, 0 FROM unnest($2::text[], $3::text[], $4::int[]) AS u(s, t, h)
ON CONFLICT DO NOTHING
  $1 = "t"
  $2 = "{shop,shop}"
  $3 = "{orders,orders}"
  $4 = "{0,1}"
INSERT INTO sluice.apply_offsets AS o (task, schema_name, table_name, shard, lsn, idx, epoch)
SELECT $1, u.s, u.t, u.h, u.l::pg_lsn, u.i, $2 FROM unnest($3::text[], $4::text[], $5::int[], $6::text[], $7::bigint[]) AS u(s, t, h, l, i)
ON CONFLICT (task, schema_name, table_name, shard) DO UPDATE
SET lsn = CASE WHEN (EXCLUDED.lsn, EXCLUDED.idx) > (o.lsn, o.idx) THEN EXCLUDED.lsn ELSE o.lsn END,
	idx = CASE WHEN (EXCLUDED.lsn, EXCLUDED.idx) > (o.lsn, o.idx) THEN EXCLUDED.idx ELSE o.idx END,
	epoch = EXCLUDED.epoch, updated_at = now()
WHERE o.epoch <= EXCLUDED.epoch
  $1 = "t"
  $2 = "7"
  $3 = "{shop,shop}"
  $4 = "{orders,orders}"
  $5 = "{0,1}"
  $6 = "{0/16B3748,0/16B3748}"
  $7 = "{4,4}"

-- sequences moved forward during incremental sync, never back (after a look-up of which exist)
WITH cur(i, last_value, is_called) AS (SELECT 1::int8, last_value, is_called FROM "shop"."ticket_seq")
		SELECT w.i, pg_catalog.setval(w.name::pg_catalog.regclass, w.last_value, w.is_called)
		FROM unnest($1::text[], $2::int8[], $3::bool[]) WITH ORDINALITY AS w(name, last_value, is_called, i)
		JOIN cur ON cur.i = w.i
		JOIN pg_catalog.pg_sequence q ON q.seqrelid = w.name::pg_catalog.regclass
		WHERE CASE WHEN q.seqincrement > 0 THEN (w.last_value::numeric + CASE WHEN w.is_called THEN q.seqincrement ELSE 0 END) > (cur.last_value::numeric + CASE WHEN cur.is_called THEN q.seqincrement ELSE 0 END) ELSE (w.last_value::numeric + CASE WHEN w.is_called THEN q.seqincrement ELSE 0 END) < (cur.last_value::numeric + CASE WHEN cur.is_called THEN q.seqincrement ELSE 0 END) END
  $1 = "{\"\\\"shop\\\".\\\"ticket_seq\\\"\"}"
  $2 = "{42}"
  $3 = "{t}"

-- full sync: a table bound to its copy plan
INSERT INTO sluice.copy_tables AS c (task, schema_name, table_name, plan) VALUES ($1, $2, $3, $4)
			ON CONFLICT (task, schema_name, table_name) DO UPDATE SET plan = EXCLUDED.plan, finished = false
			WHERE c.plan <= EXCLUDED.plan
  $1 = "t"
  $2 = "shop"
  $3 = "orders"
  $4 = "3"

-- full sync: a chunk into a table that keeps its rows (conflicting_tables: ignore), staged in pg_temp.sluice_keep
INSERT INTO "shop"."orders" ("region", "id", "amount") SELECT "region", "id", "amount" FROM pg_temp.sluice_keep ON CONFLICT DO NOTHING
