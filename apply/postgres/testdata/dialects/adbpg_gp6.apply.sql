-- The apply at adbpg (server_version_num 90426, Greenplum true, INSERT ... ON CONFLICT false): the statements of one batch, as the sink sends them.

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
DELETE FROM "shop"."orders" AS t WHERE t."region" = $1::text AND t."id" = $2::integer
  $1 = "eu"
  $2 = "3"
INSERT INTO "shop"."orders" ("region", "id", "ordered", "amount") SELECT $1::text, $2::integer, $3::date, $4::numeric(12,2)
  $1 = "eu"
  $2 = "3"
  $3 = "2024-01-03"
  $4 = "30.00"
DELETE FROM "shop"."orders" AS t WHERE t."region" = $1::text AND t."id" = $2::integer
  $1 = "eu"
  $2 = "10"
DELETE FROM "shop"."orders" AS t WHERE t."region" = $1::text AND t."id" = $2::integer
  $1 = "eu"
  $2 = "11"
INSERT INTO "shop"."orders" ("region", "id", "ordered", "amount") SELECT $1::text, $2::integer, $3::date, $4::numeric(12,2)
  $1 = "eu"
  $2 = "11"
  $3 = "2024-01-04"
  $4 = "11.00"
DELETE FROM "shop"."orders" AS t WHERE t."region" = $1::text AND t."id" = $2::integer
  $1 = "eu"
  $2 = "20"
DELETE FROM "shop"."orders" AS t WHERE t."region" = $1::text AND t."id" = $2::integer
  $1 = "us"
  $2 = "20"
INSERT INTO "shop"."orders" ("region", "id", "ordered", "amount") SELECT $1::text, $2::integer, $3::date, $4::numeric(12,2)
  $1 = "us"
  $2 = "20"
  $3 = "2024-01-05"
  $4 = "20.00"

-- a key change whose new row keeps an unchanged TOAST value (notes: primary key id)
DELETE FROM "shop"."notes" AS t WHERE t."id" = $1::bigint
  $1 = "2"
INSERT INTO "shop"."notes" ("id", "body") SELECT $1::bigint, t."body" FROM "shop"."notes" AS t WHERE t."id" = $2::bigint
  $1 = "2"
  $2 = "1"
DELETE FROM "shop"."notes" AS t WHERE t."id" = $1::bigint
  $1 = "1"

-- events, without a key (REPLICA IDENTITY FULL): an insert, an update, a delete
INSERT INTO "shop"."events" ("at", "level") SELECT $1::timestamp with time zone, $2::integer
  $1 = "2024-01-01 00:00:00+00"
  $2 = "1"
DELETE FROM "shop"."events" WHERE (gp_segment_id, ctid) IN (SELECT gp_segment_id, ctid FROM "shop"."events" WHERE "at"::text IS NOT DISTINCT FROM $1 AND "level"::text IS NOT DISTINCT FROM $2 LIMIT 1)
  $1 = "2024-01-01 00:00:00+00"
  $2 = "1"
INSERT INTO "shop"."events" ("at", "level") VALUES ($1::timestamp with time zone, $2::integer)
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
SELECT pg_advisory_xact_lock(7420002, hashtext($1::text))
  $1 = "t"
INSERT INTO sluice.apply_offsets (task, schema_name, table_name, shard, lsn, idx, epoch)
SELECT $1::text, u.s, u.t, u.h, '0/0', 0, 0 FROM unnest($2::text[], $3::text[], $4::int[]) AS u(s, t, h)
WHERE NOT EXISTS (SELECT 1 FROM sluice.apply_offsets o WHERE o.task = $1::text AND o.schema_name = u.s AND o.table_name = u.t AND o.shard = u.h)
  $1 = "t"
  $2 = "{shop,shop}"
  $3 = "{orders,orders}"
  $4 = "{0,1}"
UPDATE sluice.apply_offsets AS o
SET lsn = CASE WHEN (u.l::pg_lsn, u.i) > (o.lsn, o.idx) THEN u.l::pg_lsn ELSE o.lsn END,
	idx = CASE WHEN (u.l::pg_lsn, u.i) > (o.lsn, o.idx) THEN u.i ELSE o.idx END,
	epoch = $2::bigint, updated_at = now()
FROM unnest($3::text[], $4::text[], $5::int[], $6::text[], $7::bigint[]) AS u(s, t, h, l, i)
WHERE o.task = $1::text AND o.schema_name = u.s AND o.table_name = u.t AND o.shard = u.h AND o.epoch <= $2::bigint
  $1 = "t"
  $2 = "7"
  $3 = "{shop,shop}"
  $4 = "{orders,orders}"
  $5 = "{0,1}"
  $6 = "{0/16B3748,0/16B3748}"
  $7 = "{4,4}"
INSERT INTO sluice.apply_offsets (task, schema_name, table_name, shard, lsn, idx, epoch)
SELECT $1::text, u.s, u.t, u.h, u.l::pg_lsn, u.i, $2::bigint FROM unnest($3::text[], $4::text[], $5::int[], $6::text[], $7::bigint[]) AS u(s, t, h, l, i)
WHERE NOT EXISTS (SELECT 1 FROM sluice.apply_offsets o WHERE o.task = $1::text AND o.schema_name = u.s AND o.table_name = u.t AND o.shard = u.h)
  $1 = "t"
  $2 = "7"
  $3 = "{shop,shop}"
  $4 = "{orders,orders}"
  $5 = "{0,1}"
  $6 = "{0/16B3748,0/16B3748}"
  $7 = "{4,4}"

-- sequences moved forward during incremental sync, never back (after a look-up of which exist)
WITH cur(i, last_value, is_called, inc) AS (SELECT 1::int8, last_value, is_called, increment_by FROM "shop"."ticket_seq")
		SELECT w.i, pg_catalog.setval(w.name::pg_catalog.regclass, w.last_value, w.is_called)
		FROM unnest($1::text[], $2::int8[], $3::bool[]) WITH ORDINALITY AS w(name, last_value, is_called, i)
		JOIN cur ON cur.i = w.i
		WHERE CASE WHEN cur.inc > 0 THEN (w.last_value::numeric + CASE WHEN w.is_called THEN cur.inc ELSE 0 END) > (cur.last_value::numeric + CASE WHEN cur.is_called THEN cur.inc ELSE 0 END) ELSE (w.last_value::numeric + CASE WHEN w.is_called THEN cur.inc ELSE 0 END) < (cur.last_value::numeric + CASE WHEN cur.is_called THEN cur.inc ELSE 0 END) END
  $1 = "{\"\\\"shop\\\".\\\"ticket_seq\\\"\"}"
  $2 = "{42}"
  $3 = "{t}"

-- full sync: a table bound to its copy plan
UPDATE sluice.copy_tables SET plan = $4::bigint, finished = false
		WHERE task = $1::text AND schema_name = $2::text AND table_name = $3::text AND plan <= $4::bigint
  $1 = "t"
  $2 = "shop"
  $3 = "orders"
  $4 = "3"
INSERT INTO sluice.copy_tables (task, schema_name, table_name, plan) SELECT $1::text, $2::text, $3::text, $4::bigint
		WHERE NOT EXISTS (SELECT 1 FROM sluice.copy_tables WHERE task = $1::text AND schema_name = $2::text AND table_name = $3::text)
  $1 = "t"
  $2 = "shop"
  $3 = "orders"
  $4 = "3"

-- full sync: a chunk into a table that keeps its rows (conflicting_tables: ignore), staged in pg_temp.sluice_keep
INSERT INTO "shop"."orders" ("region", "id", "amount") SELECT "region", "id", "amount" FROM pg_temp.sluice_keep AS k WHERE NOT EXISTS (SELECT 1 FROM "shop"."orders" AS d WHERE d."region" = k."region" AND d."id" = k."id")
