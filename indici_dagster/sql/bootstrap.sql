-- indici-dagster: least-privilege roles and schemas, for a DBA with psql.
--
-- The same as `indici bootstrap` (indici_dagster/core/bootstrap.py is the source of truth;
-- indici_dagster_tests/test_least_privilege.py checks both leave the same privileges, tables and
-- columns behind). Run it as a superuser (rds_superuser on RDS: it creates an event trigger),
-- connected to the warehouse database; it is idempotent:
--
--   psql "host=... dbname=analytics user=admin" -v writer=indici_writer -v reader=indici_reader \
--        -f indici_dagster/sql/bootstrap.sql
--
-- Then set the passwords with psql's \password indici_writer (hashed on the client).
--
-- Afterwards: only the writer and the reader may connect (PUBLIC loses CONNECT and TEMPORARY);
-- the NOLOGIN role <writer>_owner owns indici_staging and rpt and the pipeline's own tables;
-- the writer may create tables in both schemas (and owns those), may only INSERT and SELECT
-- the audit log, SELECT/INSERT/UPDATE the ledger, row counts and locks, and may run no DDL but
-- CREATE TABLE, CREATE INDEX and ALTER TABLE (event trigger indici_writer_ddl_guard). The
-- reader has CONNECT, USAGE on rpt and SELECT on every rpt table, now and later (default
-- privileges), and nothing on indici_staging. Nobody but the owner creates in public. The reader's
-- sessions have an idle-in-transaction timeout, a statement timeout and a connection limit
-- (psql variables reader_idle_timeout, reader_statement_timeout, reader_connection_limit).

\set ON_ERROR_STOP on
\if :{?writer}
\else
  \set writer indici_writer
\endif
\if :{?reader}
\else
  \set reader indici_reader
\endif
-- the reader's session limits (indici bootstrap --reader-idle-timeout, --reader-statement-timeout,
-- --reader-connection-limit; the same defaults, core/session_limits.py)
\if :{?reader_idle_timeout}
\else
  \set reader_idle_timeout 2min
\endif
\if :{?reader_statement_timeout}
\else
  \set reader_statement_timeout 30min
\endif
\if :{?reader_connection_limit}
\else
  \set reader_connection_limit 20
\endif

BEGIN;
-- psql variables do not reach inside DO blocks: pass them as transaction-local settings
SELECT set_config('indici.writer', :'writer', true), set_config('indici.reader', :'reader', true),
       set_config('indici.owner', :'writer' || '_owner', true),
       set_config('indici.reader_idle_timeout', :'reader_idle_timeout', true),
       set_config('indici.reader_statement_timeout', :'reader_statement_timeout', true),
       set_config('indici.reader_connection_limit', :'reader_connection_limit', true);
SET LOCAL lock_timeout = '60s';
SELECT pg_advisory_xact_lock(hashtext('indici_dagster:bootstrap'));

-- roles: create if missing, refuse an elevated existing role, or an owner that can log in
DO $$
DECLARE
    writer text := current_setting('indici.writer');
    reader text := current_setting('indici.reader');
    owner_role text := current_setting('indici.owner');
    role_name text;
BEGIN
    IF writer !~ '^[a-z_][a-z0-9_]{0,56}$' OR reader !~ '^[a-z_][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'role names must be lower-case identifiers (the writer 57 characters at most)';
    END IF;
    IF writer = reader OR reader = owner_role THEN
        RAISE EXCEPTION 'the writer and the reader must be different roles';
    END IF;
    IF current_user IN (writer, reader, owner_role) THEN
        RAISE EXCEPTION 'run bootstrap as an administrator, not as role %', current_user;
    END IF;
    FOREACH role_name IN ARRAY ARRAY[writer, reader] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
            EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE', role_name);
        ELSIF EXISTS (
            SELECT FROM pg_roles WHERE rolname = role_name
            AND (rolsuper OR rolcreatedb OR rolcreaterole OR rolbypassrls)
        ) THEN
            RAISE EXCEPTION 'role % exists with SUPERUSER, CREATEDB, CREATEROLE or BYPASSRLS; '
                'bootstrap will not grant to it', role_name;
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = owner_role) THEN
        EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT',
                       owner_role);
    ELSIF EXISTS (
        SELECT FROM pg_roles WHERE rolname = owner_role
        AND (rolsuper OR rolcreatedb OR rolcreaterole OR rolbypassrls OR rolcanlogin)
    ) THEN
        RAISE EXCEPTION 'role % exists and can log in or is elevated; the owner role must be '
            'NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS', owner_role;
    END IF;
END $$;

-- the reader's sessions: an idle-in-transaction timeout, a statement timeout (role defaults, in
-- every database) and a connection limit; a changed value replaces the old one
DO $$
DECLARE
    reader text := current_setting('indici.reader');
    setting text;
    value text;
    parts text[];
    milliseconds bigint;
BEGIN
    FOREACH setting IN ARRAY ARRAY['idle_in_transaction_session_timeout', 'statement_timeout'] LOOP
        value := current_setting(CASE setting
            WHEN 'statement_timeout' THEN 'indici.reader_statement_timeout'
            ELSE 'indici.reader_idle_timeout' END);
        parts := regexp_match(value, '^([1-9][0-9]{0,7})(ms|s|min|h)$');
        milliseconds := parts[1]::bigint * (CASE parts[2] WHEN 'ms' THEN 1 WHEN 's' THEN 1000
            WHEN 'min' THEN 60000 ELSE 3600000 END);
        IF parts IS NULL OR milliseconds NOT BETWEEN 1000 AND 86400000 THEN
            RAISE EXCEPTION 'reader % must be a whole number with a unit (ms, s, min or h) from '
                '1s to 24h, like 2min', setting;
        END IF;
        EXECUTE format('ALTER ROLE %I SET %I = %L', reader, setting, value);
        -- a setting of the reader for this database alone would win over the role's own
        IF EXISTS (
            SELECT FROM pg_catalog.pg_db_role_setting s, unnest(s.setconfig) AS c(item)
            WHERE s.setrole = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = reader)
              AND s.setdatabase = (SELECT oid FROM pg_catalog.pg_database
                                   WHERE datname = current_database())
              AND split_part(c.item, '=', 1) = setting
        ) THEN
            EXECUTE format('ALTER ROLE %I IN DATABASE %I RESET %I', reader, current_database(),
                           setting);
        END IF;
    END LOOP;
    value := current_setting('indici.reader_connection_limit');
    IF value !~ '^[1-9][0-9]{0,4}$' OR value::int > 10000 THEN
        RAISE EXCEPTION 'reader_connection_limit must be a whole number of connections from 1 '
            'to 10000';
    END IF;
    EXECUTE format('ALTER ROLE %I CONNECTION LIMIT %s', reader, value::int);
END $$;

-- database: only the writer and the reader connect; nobody creates schemas or temporary tables
DO $$
DECLARE
    writer text := current_setting('indici.writer');
    reader text := current_setting('indici.reader');
    owner_role text := current_setting('indici.owner');
BEGIN
    EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('REVOKE CREATE, TEMPORARY ON DATABASE %I FROM %I, %I, %I',
                   current_database(), writer, reader, owner_role);
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I, %I', current_database(), writer, reader);
    IF EXISTS (SELECT FROM pg_namespace WHERE nspname = 'public') THEN
        REVOKE CREATE ON SCHEMA public FROM PUBLIC;
        EXECUTE format('REVOKE ALL ON SCHEMA public FROM %I, %I, %I', writer, reader, owner_role);
    END IF;
END $$;

-- schemas: owned by the owner role; the pipeline's own tables too, every other table by the
-- writer; no privilege for PUBLIC; the writer may use and create in both
DO $$
DECLARE
    writer text := current_setting('indici.writer');
    owner_role text := current_setting('indici.owner');
    schema_name text;
    table_name text;
    wanted text;
BEGIN
    FOREACH schema_name IN ARRAY ARRAY['indici_staging', 'rpt'] LOOP
        IF NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = schema_name) THEN
            EXECUTE format('CREATE SCHEMA %I AUTHORIZATION %I', schema_name, owner_role);
        ELSE
            EXECUTE format('ALTER SCHEMA %I OWNER TO %I', schema_name, owner_role);
        END IF;
        FOR table_name, wanted IN
            SELECT c.relname,
                   CASE WHEN schema_name = 'indici_staging' AND c.relname IN
                        ('auditlog', 'landing_ledger', 'pipeline_locks', 'table_row_counts')
                   THEN owner_role ELSE writer END
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = schema_name AND c.relkind IN ('r', 'p')
        LOOP
            EXECUTE format('ALTER TABLE %I.%I OWNER TO %I', schema_name, table_name, wanted);
        END LOOP;
        EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', schema_name);
        EXECUTE format('GRANT USAGE, CREATE ON SCHEMA %I TO %I', schema_name, writer);
    END LOOP;
END $$;

-- the pipeline's own tables: the same statements as Warehouse.ensure_catalog
CREATE TABLE IF NOT EXISTS "indici_staging"."auditlog" (
    id bigserial PRIMARY KEY,
    logged_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    run_id text,
    dataset text,
    partition_key text,
    source_file text,
    source_key text,
    source_etag text,
    step text NOT NULL,
    status text NOT NULL,
    rows_read bigint,
    rows_loaded bigint,
    rows_inserted bigint,
    rows_updated bigint,
    rows_unchanged bigint,
    rows_rejected bigint,
    message text
);
CREATE INDEX IF NOT EXISTS auditlog_source_file_idx
    ON "indici_staging"."auditlog" (source_file, logged_at);
CREATE INDEX IF NOT EXISTS auditlog_run_idx ON "indici_staging"."auditlog" (run_id);
CREATE TABLE IF NOT EXISTS "indici_staging"."landing_ledger" (
    source_key text NOT NULL,
    etag text NOT NULL,
    size bigint,
    file_name text,
    dataset text,
    partition_key text,
    outcome text NOT NULL,
    run_key text,
    run_id text,
    message text,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_key, etag)
);
-- ledgers made before runs recorded what they processed
ALTER TABLE "indici_staging"."landing_ledger" ADD COLUMN IF NOT EXISTS run_id text;
CREATE INDEX IF NOT EXISTS landing_ledger_outcome_idx
    ON "indici_staging"."landing_ledger" (outcome);
CREATE TABLE IF NOT EXISTS "indici_staging"."table_row_counts" (
    table_schema text NOT NULL,
    table_name text NOT NULL,
    row_count bigint NOT NULL,
    counted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_schema, table_name)
);
CREATE TABLE IF NOT EXISTS "indici_staging"."pipeline_locks" (
    name text PRIMARY KEY,
    first_locked_at timestamptz NOT NULL DEFAULT now()
);

-- ... owned by the owner role; the writer may append to the audit log and read it, and read,
-- insert and update the ledger, row counts and locks; nothing more for anyone else
DO $$
DECLARE
    writer text := current_setting('indici.writer');
    reader text := current_setting('indici.reader');
    owner_role text := current_setting('indici.owner');
    table_name text;
    privileges text;
    sequence_name text;
BEGIN
    FOR table_name, privileges IN VALUES
        ('auditlog', 'SELECT, INSERT'),
        ('landing_ledger', 'SELECT, INSERT, UPDATE'),
        ('table_row_counts', 'SELECT, INSERT, UPDATE'),
        ('pipeline_locks', 'SELECT, INSERT, UPDATE')
    LOOP
        EXECUTE format('ALTER TABLE indici_staging.%I OWNER TO %I', table_name, owner_role);
        EXECUTE format('REVOKE ALL ON indici_staging.%I FROM PUBLIC, %I, %I',
                       table_name, writer, reader);
        EXECUTE format('GRANT %s ON indici_staging.%I TO %I', privileges, table_name, writer);
        FOR sequence_name IN
            SELECT s.relname FROM pg_depend d JOIN pg_class s ON s.oid = d.objid
            WHERE d.refobjid = format('indici_staging.%I', table_name)::regclass
              AND s.relkind = 'S' AND d.deptype IN ('a', 'i')
        LOOP
            EXECUTE format('REVOKE ALL ON SEQUENCE indici_staging.%I FROM PUBLIC, %I, %I',
                           sequence_name, writer, reader);
            EXECUTE format('GRANT USAGE ON SEQUENCE indici_staging.%I TO %I',
                           sequence_name, writer);
        END LOOP;
    END LOOP;
END $$;

-- the writer may run no DDL but CREATE TABLE, CREATE INDEX and ALTER TABLE: no GRANT, REVOKE,
-- ALTER DEFAULT PRIVILEGES, functions, views, triggers or DROP (a superuser's event trigger)
CREATE OR REPLACE FUNCTION indici_staging.writer_ddl_guard() RETURNS event_trigger
LANGUAGE plpgsql AS $guard$
BEGIN
    IF TG_TAG NOT IN ('CREATE TABLE', 'CREATE INDEX', 'ALTER TABLE') AND EXISTS (
        SELECT FROM pg_namespace n WHERE n.nspname IN ('indici_staging', 'rpt')
        AND has_schema_privilege(current_user, n.oid, 'CREATE')
        AND NOT pg_has_role(current_user, n.nspowner, 'USAGE')
    ) THEN
        RAISE EXCEPTION 'role % may not run % in this database: the pipeline''s writer may only '
            'create and alter tables and indexes (indici bootstrap)', current_user, TG_TAG
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$guard$;
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION indici_staging.writer_ddl_guard() OWNER TO %I',
                   current_setting('indici.owner'));
    REVOKE ALL ON FUNCTION indici_staging.writer_ddl_guard() FROM PUBLIC;
    IF NOT EXISTS (SELECT FROM pg_event_trigger WHERE evtname = 'indici_writer_ddl_guard') THEN
        CREATE EVENT TRIGGER indici_writer_ddl_guard ON ddl_command_start
            EXECUTE FUNCTION indici_staging.writer_ddl_guard();
    END IF;
END $$;

-- reader: nothing on indici_staging; USAGE on rpt and SELECT only on its tables, now and later
DO $$
DECLARE
    writer text := current_setting('indici.writer');
    reader text := current_setting('indici.reader');
BEGIN
    EXECUTE format('REVOKE ALL ON SCHEMA indici_staging FROM %I', reader);
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA indici_staging FROM %I', reader);
    EXECUTE format(
        'ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA indici_staging REVOKE ALL ON TABLES FROM %I',
        writer, reader);

    EXECUTE format('REVOKE ALL ON SCHEMA rpt FROM %I', reader);
    EXECUTE format('GRANT USAGE ON SCHEMA rpt TO %I', reader);
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA rpt FROM %I', reader);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA rpt TO %I', reader);
    EXECUTE format(
        'ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA rpt REVOKE ALL ON TABLES FROM %I',
        writer, reader);
    EXECUTE format(
        'ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA rpt GRANT SELECT ON TABLES TO %I',
        writer, reader);
END $$;

COMMIT;
