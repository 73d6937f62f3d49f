-- Schema sync at adbpg (server_version_num 120012, Greenplum true), rendered from testdata/dialects/schema.sql.

-- pre-data (before the full sync)

-- create schema "shop"
CREATE SCHEMA IF NOT EXISTS "shop";

-- create sequence shop.ticket_seq
CREATE SEQUENCE IF NOT EXISTS "shop"."ticket_seq" AS bigint INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1 NO CYCLE;

-- create type shop.mood
CREATE TYPE "shop"."mood" AS ENUM ('sad', 'ok', 'happy');

-- create routines and operators

-- create table shop.codes
CREATE TABLE IF NOT EXISTS "shop"."codes" (
	"code" text NOT NULL,
	"label" text,
	CONSTRAINT "codes_pkey" PRIMARY KEY (code)
) USING heap DISTRIBUTED BY ("code");

-- create table shop.customers
CREATE TABLE IF NOT EXISTS "shop"."customers" (
	"id" bigint NOT NULL,
	"region" text NOT NULL,
	"email" text NOT NULL,
	"first_name" text,
	"last_name" text,
	"full_name" text,
	"mood" shop.mood,
	"born" date,
	CONSTRAINT "customers_pkey" PRIMARY KEY (id),
	CONSTRAINT "customers_id_email_key" UNIQUE (id, email)
) USING heap DISTRIBUTED BY ("id");

-- mark generated column "full_name" of shop.customers
COMMENT ON COLUMN "shop"."customers"."full_name" IS $sluice$sluice: generated as ((first_name || ' '::text) || last_name)$sluice$;

-- create table shop.events
CREATE TABLE IF NOT EXISTS "shop"."events" (
	"at" timestamp with time zone,
	"payload" json,
	"level" integer
) USING heap DISTRIBUTED RANDOMLY;

-- create table shop.orders
CREATE TABLE IF NOT EXISTS "shop"."orders" (
	"region" text NOT NULL,
	"id" integer NOT NULL,
	"customer_id" bigint,
	"ordered" date DEFAULT CURRENT_DATE NOT NULL,
	"flags" bit(5),
	"tags" bit varying(10),
	"ref" uuid,
	"doc" tsvector,
	"q" tsquery,
	"snap" txid_snapshot,
	"mac" macaddr8,
	"spans" text,
	"ticket" integer DEFAULT nextval('shop.ticket_seq'::regclass),
	"amount" numeric(12,2),
	CONSTRAINT "orders_pkey" PRIMARY KEY (region, id),
	CONSTRAINT "orders_amount_check" CHECK ((amount >= (0)::numeric))
) USING heap DISTRIBUTED BY ("region");

-- create table shop.payments
CREATE TABLE IF NOT EXISTS "shop"."payments" (
	"id" integer NOT NULL,
	"paid" date NOT NULL,
	"amount" numeric,
	CONSTRAINT "payments_pkey" PRIMARY KEY (id, paid)
) USING heap DISTRIBUTED BY ("id", "paid");

-- create table shop.tokens
CREATE TABLE IF NOT EXISTS "shop"."tokens" (
	"token" text NOT NULL,
	"user_id" bigint,
	CONSTRAINT "tokens_token_key" UNIQUE (token)
) USING heap DISTRIBUTED BY ("token");

-- post-data (after it)

-- create index "customers_region" on shop.customers
CREATE INDEX IF NOT EXISTS "customers_region" ON "shop"."customers" USING btree (region);

-- create index "orders_customer" on shop.orders
CREATE INDEX IF NOT EXISTS "orders_customer" ON "shop"."orders" USING btree (customer_id DESC NULLS LAST, lower(region));

-- create index "orders_doc" on shop.orders
CREATE INDEX IF NOT EXISTS "orders_doc" ON "shop"."orders" USING gin (doc);

-- create views, triggers, rules and comments

-- Sluice's own tables (positions, copy plans, conflicts), made when a sink opens
CREATE SCHEMA IF NOT EXISTS sluice;
CREATE TABLE IF NOT EXISTS sluice.apply_offsets (
	task        text        NOT NULL,
	schema_name text        NOT NULL,
	table_name  text        NOT NULL,
	shard       int         NOT NULL,
	lsn         pg_lsn      NOT NULL,
	idx         bigint      NOT NULL,
	epoch       bigint      NOT NULL,
	updated_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (task, schema_name, table_name, shard)
) USING heap;
CREATE TABLE IF NOT EXISTS sluice.copy_tables (
	task        text    NOT NULL,
	schema_name text    NOT NULL,
	table_name  text    NOT NULL,
	plan        bigint  NOT NULL,
	finished    boolean NOT NULL DEFAULT false,
	PRIMARY KEY (task, schema_name, table_name)
) USING heap;
CREATE TABLE IF NOT EXISTS sluice.copy_chunks (
	task        text        NOT NULL,
	schema_name text        NOT NULL,
	table_name  text        NOT NULL,
	chunk       int         NOT NULL,
	plan        bigint      NOT NULL,
	rows        bigint      NOT NULL,
	copied_at   timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (task, schema_name, table_name, chunk)
) USING heap;
CREATE TABLE IF NOT EXISTS sluice.conflicts (
	id                   bigserial   PRIMARY KEY,
	detected_at          timestamptz NOT NULL DEFAULT now(),
	task                 text        NOT NULL,
	direction            text        NOT NULL,
	table_name           text        NOT NULL,
	key                  jsonb       NOT NULL,
	kind                 text        NOT NULL,
	resolution           text        NOT NULL,
	local_row            jsonb,
	incoming_row         jsonb,
	local_commit_time    timestamptz,
	incoming_commit_time timestamptz NOT NULL,
	local_lsn            pg_lsn,
	incoming_lsn         pg_lsn      NOT NULL
) USING heap;
CREATE TABLE IF NOT EXISTS sluice.held_objects (
	task      text NOT NULL,
	table_oid oid  NOT NULL,
	kind      text NOT NULL,
	name      text NOT NULL,
	restore   text NOT NULL,
	PRIMARY KEY (task, table_oid, kind, name)
) USING heap;

CREATE TABLE IF NOT EXISTS sluice.object_barrier (
	task text   NOT NULL,
	grp  int    NOT NULL,
	lsn  pg_lsn NOT NULL,
	idx  bigint NOT NULL,
	PRIMARY KEY (task, grp)
) USING heap;

CREATE TABLE IF NOT EXISTS sluice.deferred_keys (
	task       text NOT NULL,
	table_oid  oid  NOT NULL,
	name       text NOT NULL,
	definition text NOT NULL,
	PRIMARY KEY (task, table_oid, name)
) USING heap;
;
