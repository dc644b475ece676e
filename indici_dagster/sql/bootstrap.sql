-- indici-dagster: least-privilege roles and schemas, for a DBA with psql.
--
-- The same as `indici bootstrap` (indici_dagster/core/admin/bootstrap.py is the source of truth;
-- indici_dagster_tests/core/admin/test_least_privilege.py checks both leave the same privileges, tables and
-- columns behind). Run it as a superuser (rds_superuser on RDS: it creates an event trigger),
-- connected to the warehouse database; it is idempotent:
--
--   psql "host=... dbname=analytics user=admin" -v writer=indici_writer -v reader=indici_reader \
--        -f indici_dagster/sql/bootstrap.sql
--
-- Then set the passwords with psql's \password indici_writer (hashed on the client).
--
-- Afterwards: only the writer and the reader may connect (PUBLIC loses CONNECT and TEMPORARY);
-- the NOLOGIN role <writer>_owner owns indici_staging and rpt and every table in them, the
-- pipeline's own and the data tables alike. The writer owns nothing and creates nothing: it
-- creates and widens data tables only through the owner's SECURITY DEFINER functions
-- (indici_staging.create_data_table, add_data_column, create_staging_index,
-- add_rpt_primary_key, summarize_staging_index, sync_history; core/warehouse/owner_ddl.py renders the same text), may
-- SELECT/INSERT/DELETE staging data tables and SELECT/INSERT/UPDATE/DELETE rpt tables, only
-- INSERT and SELECT the audit log, SELECT/INSERT/UPDATE the ledger, row counts and locks,
-- SELECT/INSERT/DELETE rpt.indici_audit_daily (the daily audit summary), and
-- may run no DDL at all (event trigger indici_writer_ddl_guard). Every function pins
-- search_path = pg_catalog, pg_temp; PUBLIC may execute none of them. The reader has CONNECT,
-- USAGE on rpt, SELECT on every rpt table and view and EXECUTE on the histories' _as_of
-- functions, now and later (default privileges), and nothing
-- on indici_staging. Nobody but the owner creates in public. The reader's sessions have an
-- idle-in-transaction timeout, a statement timeout and a connection limit (psql variables
-- reader_idle_timeout, reader_statement_timeout, reader_connection_limit).

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
-- --reader-connection-limit; the same defaults, core/admin/session_limits.py)
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

-- refuse objects the pipeline never makes in its schemas (views, functions other than its
-- own, triggers, policies): a writer could have planted them before its DDL guard held
DO $$
DECLARE
    found text;
BEGIN
    SELECT string_agg(what, '; ' ORDER BY what) INTO found FROM (
        SELECT 'view or other relation ' || n.nspname || '.' || c.relname AS what
        FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname IN ('indici_staging', 'rpt')
          AND c.relkind NOT IN ('r', 'p', 'i', 'I', 'S', 't')
          -- a history's view is the pipeline's if it reads only rpt.<t> and rpt.<t>_past
          AND NOT (n.nspname = 'rpt' AND c.relkind = 'v' AND c.relname LIKE '%\_history' AND NOT EXISTS (
              SELECT FROM pg_catalog.pg_rewrite w JOIN pg_catalog.pg_depend d ON d.objid = w.oid
              WHERE w.ev_class = c.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                AND d.refobjid <> c.oid AND d.refobjid NOT IN (
                    SELECT t.oid FROM pg_catalog.pg_class t WHERE t.relnamespace = n.oid
                      AND t.relkind = 'r' AND t.relname IN (pg_catalog.left(c.relname, -8),
                                                            pg_catalog.left(c.relname, -8) || '_past'))))
        UNION ALL
        SELECT 'function ' || n.nspname || '.' || p.proname FROM pg_catalog.pg_proc p
        JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname IN ('indici_staging', 'rpt') AND NOT (n.nspname = 'indici_staging'
          AND p.proname IN ('create_data_table', 'add_data_column', 'create_staging_index', 'add_rpt_primary_key', 'summarize_staging_index', 'comment_data_table', 'ensure_analyst_view', 'sync_history', 'writer_ddl_guard'))
          -- a history's _as_of: plain SQL bound at creation, reading only rpt.<t> and rpt.<t>_past
          AND NOT (n.nspname = 'rpt' AND p.proname LIKE '%\_as\_of' AND p.prosqlbody IS NOT NULL
              AND NOT p.prosecdef AND p.proconfig IS NULL AND p.prokind = 'f' AND NOT EXISTS (
              SELECT FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                AND d.objid = p.oid AND d.deptype = 'n' AND (
                  (d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid NOT IN (
                      SELECT t.oid FROM pg_catalog.pg_class t WHERE t.relnamespace = n.oid
                        AND t.relkind = 'r' AND t.relname IN (pg_catalog.left(p.proname, -6),
                                                              pg_catalog.left(p.proname, -6) || '_past')))
                  OR (d.refclassid IN ('pg_catalog.pg_proc'::pg_catalog.regclass,
                                       'pg_catalog.pg_operator'::pg_catalog.regclass)
                      AND d.refobjid >= 16384))))
        UNION ALL
        SELECT 'trigger ' || t.tgname || ' on ' || n.nspname || '.' || c.relname
        FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname IN ('indici_staging', 'rpt') AND NOT t.tgisinternal
        UNION ALL
        SELECT 'policy ' || p.polname || ' on ' || n.nspname || '.' || c.relname
        FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname IN ('indici_staging', 'rpt')
    ) planted;
    IF found IS NOT NULL THEN
        RAISE EXCEPTION 'the pipeline''s schemas hold objects it never creates (%): they may have '
            'been planted to reach the audit log or the ledger. Check and drop them, then run '
            'bootstrap again', found;
    END IF;
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

-- schemas: owned by the owner role, with every table in them (the writer owns none); no
-- privilege for PUBLIC; the writer may use both and create nothing in them
DO $$
DECLARE
    writer text := current_setting('indici.writer');
    owner_role text := current_setting('indici.owner');
    schema_name text;
    table_name text;
BEGIN
    FOREACH schema_name IN ARRAY ARRAY['indici_staging', 'rpt'] LOOP
        IF NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = schema_name) THEN
            EXECUTE format('CREATE SCHEMA %I AUTHORIZATION %I', schema_name, owner_role);
        ELSE
            EXECUTE format('ALTER SCHEMA %I OWNER TO %I', schema_name, owner_role);
        END IF;
        FOR table_name IN
            SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = schema_name AND c.relkind IN ('r', 'p')
              AND c.relowner <> owner_role::regrole
        LOOP
            EXECUTE format('ALTER TABLE %I.%I OWNER TO %I', schema_name, table_name, owner_role);
        END LOOP;
        -- the histories' views and _as_of functions another role made (checked above)
        FOR table_name IN
            SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = schema_name AND c.relkind = 'v' AND c.relowner <> owner_role::regrole
        LOOP
            EXECUTE format('ALTER VIEW %I.%I OWNER TO %I', schema_name, table_name, owner_role);
        END LOOP;
        FOR table_name IN
            SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = schema_name AND n.nspname = 'rpt' AND p.proowner <> owner_role::regrole
        LOOP
            EXECUTE format('ALTER FUNCTION %I.%I(timestamptz) OWNER TO %I', schema_name, table_name,
                           owner_role);
        END LOOP;
        EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', schema_name);
        EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM %I', schema_name, writer);
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', schema_name, writer);
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
    staged_run_id text,
    rpt_run_id text,
    message text,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_key, etag)
);
-- ledgers made before runs recorded what they processed, and which runs staged and applied it
ALTER TABLE "indici_staging"."landing_ledger" ADD COLUMN IF NOT EXISTS run_id text;
ALTER TABLE "indici_staging"."landing_ledger" ADD COLUMN IF NOT EXISTS staged_run_id text;
ALTER TABLE "indici_staging"."landing_ledger" ADD COLUMN IF NOT EXISTS rpt_run_id text;
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
-- the daily audit summary (the indici/audit_summary asset): counts per date and dataset, in rpt
CREATE TABLE IF NOT EXISTS "rpt"."indici_audit_daily" (
    partition_key date NOT NULL,
    dataset text NOT NULL,
    files_received integer NOT NULL,
    files_loaded integer NOT NULL,
    files_empty integer NOT NULL,
    files_failed integer NOT NULL,
    files_no_rule integer NOT NULL,
    rows_read bigint NOT NULL,
    rows_loaded bigint NOT NULL,
    rows_inserted bigint NOT NULL,
    rows_updated bigint NOT NULL,
    rows_unchanged bigint NOT NULL,
    rows_rejected bigint NOT NULL,
    summarised_at timestamptz NOT NULL,
    PRIMARY KEY (partition_key, dataset)
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
    -- the summary: the writer replaces a date's rows (no UPDATE); the reader reads it
    EXECUTE format('ALTER TABLE rpt.indici_audit_daily OWNER TO %I', owner_role);
    EXECUTE format('REVOKE ALL ON rpt.indici_audit_daily FROM PUBLIC, %I, %I', writer, reader);
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON rpt.indici_audit_daily TO %I', writer);
    EXECUTE format('GRANT SELECT ON rpt.indici_audit_daily TO %I', reader);
END $$;

-- the owner's DDL functions (SECURITY DEFINER, search_path pinned, every name qualified): the
-- writer's only way to create and widen data tables; core/warehouse/owner_ddl.py renders the same text
-- (indici_dagster_tests/core/admin/test_writer_cannot_escape.py checks it is here verbatim)
CREATE OR REPLACE FUNCTION indici_staging.create_data_table(target_schema text, target_table text, column_names text[], column_types text[], primary_key text[])
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    definitions text[] := ARRAY[]::text[];
    keys text[] := ARRAY[]::text[];
    column_name text;
    column_type text;
    key_column text;
    existed boolean;
BEGIN
    IF target_schema IS NULL OR target_schema NOT IN ('indici_staging', 'rpt') THEN
        RAISE EXCEPTION 'indici: the schema must be indici_staging or rpt' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF target_table IS NULL OR target_table COLLATE "C" !~ '^[a-z_][a-z0-9_]{0,62}$'
       OR target_table = ANY (ARRAY['auditlog', 'auditlog_id_seq', 'auditlog_pkey', 'auditlog_run_idx', 'auditlog_source_file_idx', 'indici_audit_daily', 'indici_audit_daily_pkey', 'landing_ledger', 'landing_ledger_outcome_idx', 'landing_ledger_pkey', 'pipeline_locks', 'pipeline_locks_pkey', 'table_row_counts', 'table_row_counts_pkey']::text[]) THEN
        RAISE EXCEPTION 'indici: the table name is not the identifier of a data table' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF column_names IS NULL OR column_types IS NULL OR primary_key IS NULL
       OR pg_catalog.cardinality(column_names) <> pg_catalog.cardinality(column_types)
       OR pg_catalog.cardinality(column_names) > 1000 THEN
        RAISE EXCEPTION 'indici: the column names and types must be two arrays of the same length' USING ERRCODE = 'insufficient_privilege';
    END IF;
    FOR column_name, column_type IN
        SELECT c.n, c.t FROM ROWS FROM (
            pg_catalog.unnest(column_names), pg_catalog.unnest(column_types)) AS c (n, t)
    LOOP
        IF column_name IS NULL OR column_name COLLATE "C" !~ '^[a-z_][a-z0-9_]{0,62}$'
           OR column_name = ANY (ARRAY['_loaded_at', '_row_number', '_run_id', '_source_file', '_source_ts']::text[]) THEN
            RAISE EXCEPTION 'indici: a column name is not the identifier of a data column' USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF column_type IS NULL OR column_type COLLATE "C" !~ '^(?:smallint|integer|bigint|numeric(?:[(][0-9]{1,9}(?:,[0-9]{1,9})?[)])?|real|double precision|text|varchar[(][0-9]{1,9}[)]|char[(][0-9]{1,9}[)]|boolean|date|timestamp|timestamptz|time|uuid|json|jsonb|bytea)$' THEN
            RAISE EXCEPTION 'indici: a column type is not one the type registry allows' USING ERRCODE = 'insufficient_privilege';
        END IF;
        definitions := definitions || pg_catalog.format('%I %s', column_name, column_type);
    END LOOP;
    IF target_schema = 'indici_staging' AND pg_catalog.cardinality(primary_key) > 0 THEN
        RAISE EXCEPTION 'indici: a staging table has no primary key' USING ERRCODE = 'insufficient_privilege';
    END IF;
    FOREACH key_column IN ARRAY primary_key LOOP
        IF key_column IS NULL OR key_column COLLATE "C" !~ '^[a-z_][a-z0-9_]{0,62}$' THEN
            RAISE EXCEPTION 'indici: a primary-key column is not an identifier' USING ERRCODE = 'insufficient_privilege';
        END IF;
        keys := keys || pg_catalog.format('%I', key_column);
    END LOOP;
    IF NOT keys <@ (SELECT COALESCE(pg_catalog.array_agg(pg_catalog.format('%I', n)),
                    ARRAY[]::text[]) FROM pg_catalog.unnest(column_names) AS n) THEN
        RAISE EXCEPTION 'indici: a primary-key column is not one of the columns of the table' USING ERRCODE = 'insufficient_privilege';
    END IF;
    definitions := definitions || CASE WHEN target_schema = 'indici_staging'
        THEN ARRAY['_source_file text NOT NULL', '_source_ts timestamptz NOT NULL', '_row_number bigint NOT NULL', '_loaded_at timestamptz NOT NULL DEFAULT now()', '_run_id text']::text[]
        ELSE ARRAY['_source_file text NOT NULL', '_source_ts timestamptz NOT NULL', '_row_number bigint NOT NULL', '_loaded_at timestamptz NOT NULL']::text[] END;
    IF pg_catalog.cardinality(keys) > 0 THEN
        definitions := definitions
            || ('PRIMARY KEY (' || pg_catalog.array_to_string(keys, ', ') || ')');
    END IF;
    existed := pg_catalog.to_regclass(
        pg_catalog.format('%I.%I', target_schema, target_table)) IS NOT NULL;
    EXECUTE pg_catalog.format('CREATE TABLE IF NOT EXISTS %I.%I (%s)', target_schema,
        target_table, pg_catalog.array_to_string(definitions, ', '));
    RETURN NOT existed;
END
$fn$;
CREATE OR REPLACE FUNCTION indici_staging.add_data_column(target_schema text, target_table text, column_name text, column_type text)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    existed boolean;
BEGIN
    IF target_schema IS NULL OR target_schema NOT IN ('indici_staging', 'rpt') THEN
        RAISE EXCEPTION 'indici: the schema must be indici_staging or rpt' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF target_table IS NULL OR target_table COLLATE "C" !~ '^[a-z_][a-z0-9_]{0,62}$'
       OR target_table = ANY (ARRAY['auditlog', 'auditlog_id_seq', 'auditlog_pkey', 'auditlog_run_idx', 'auditlog_source_file_idx', 'indici_audit_daily', 'indici_audit_daily_pkey', 'landing_ledger', 'landing_ledger_outcome_idx', 'landing_ledger_pkey', 'pipeline_locks', 'pipeline_locks_pkey', 'table_row_counts', 'table_row_counts_pkey']::text[]) THEN
        RAISE EXCEPTION 'indici: the table name is not the identifier of a data table' USING ERRCODE = 'insufficient_privilege';
    END IF;
        IF column_name IS NULL OR column_name COLLATE "C" !~ '^[a-z_][a-z0-9_]{0,62}$'
           OR column_name = ANY (ARRAY['_loaded_at', '_row_number', '_run_id', '_source_file', '_source_ts']::text[]) THEN
            RAISE EXCEPTION 'indici: a column name is not the identifier of a data column' USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF column_type IS NULL OR column_type COLLATE "C" !~ '^(?:smallint|integer|bigint|numeric(?:[(][0-9]{1,9}(?:,[0-9]{1,9})?[)])?|real|double precision|text|varchar[(][0-9]{1,9}[)]|char[(][0-9]{1,9}[)]|boolean|date|timestamp|timestamptz|time|uuid|json|jsonb|bytea)$' THEN
            RAISE EXCEPTION 'indici: a column type is not one the type registry allows' USING ERRCODE = 'insufficient_privilege';
        END IF;
    existed := EXISTS (
        SELECT FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = pg_catalog.to_regclass(
                  pg_catalog.format('%I.%I', target_schema, target_table))
          AND a.attname = column_name AND a.attnum > 0 AND NOT a.attisdropped);
    EXECUTE pg_catalog.format('ALTER TABLE %I.%I ADD COLUMN IF NOT EXISTS %I %s',
        target_schema, target_table, column_name, column_type);
    RETURN NOT existed;
END
$fn$;
CREATE OR REPLACE FUNCTION indici_staging.create_staging_index(target_table text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF target_table IS NULL OR target_table COLLATE "C" !~ '^[a-z_][a-z0-9_]{0,62}$'
       OR target_table = ANY (ARRAY['auditlog', 'auditlog_id_seq', 'auditlog_pkey', 'auditlog_run_idx', 'auditlog_source_file_idx', 'indici_audit_daily', 'indici_audit_daily_pkey', 'landing_ledger', 'landing_ledger_outcome_idx', 'landing_ledger_pkey', 'pipeline_locks', 'pipeline_locks_pkey', 'table_row_counts', 'table_row_counts_pkey']::text[]) THEN
        RAISE EXCEPTION 'indici: the table name is not the identifier of a data table' USING ERRCODE = 'insufficient_privilege';
    END IF;
    EXECUTE pg_catalog.format(
        'CREATE INDEX IF NOT EXISTS %I ON indici_staging.%I USING brin (_source_ts) '
        'WITH (autosummarize = on)', pg_catalog.left(target_table, 45) || '__source_ts_brin', target_table);
END
$fn$;
CREATE OR REPLACE FUNCTION indici_staging.add_rpt_primary_key(target_table text, primary_key text[])
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    keys text[] := ARRAY[]::text[];
    key_column text;
BEGIN
    IF target_table IS NULL OR target_table COLLATE "C" !~ '^[a-z_][a-z0-9_]{0,62}$'
       OR target_table = ANY (ARRAY['auditlog', 'auditlog_id_seq', 'auditlog_pkey', 'auditlog_run_idx', 'auditlog_source_file_idx', 'indici_audit_daily', 'indici_audit_daily_pkey', 'landing_ledger', 'landing_ledger_outcome_idx', 'landing_ledger_pkey', 'pipeline_locks', 'pipeline_locks_pkey', 'table_row_counts', 'table_row_counts_pkey']::text[]) THEN
        RAISE EXCEPTION 'indici: the table name is not the identifier of a data table' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF primary_key IS NULL OR pg_catalog.cardinality(primary_key) = 0 THEN
        RAISE EXCEPTION 'indici: a primary key needs at least one column' USING ERRCODE = 'insufficient_privilege';
    END IF;
    FOREACH key_column IN ARRAY primary_key LOOP
        IF key_column IS NULL OR key_column COLLATE "C" !~ '^[a-z_][a-z0-9_]{0,62}$' THEN
            RAISE EXCEPTION 'indici: a primary-key column is not an identifier' USING ERRCODE = 'insufficient_privilege';
        END IF;
        keys := keys || pg_catalog.format('%I', key_column);
    END LOOP;
    EXECUTE pg_catalog.format('ALTER TABLE rpt.%I ADD PRIMARY KEY (%s)', target_table,
        pg_catalog.array_to_string(keys, ', '));
END
$fn$;
CREATE OR REPLACE FUNCTION indici_staging.summarize_staging_index(target_table text)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF target_table IS NULL OR target_table COLLATE "C" !~ '^[a-z_][a-z0-9_]{0,62}$'
       OR target_table = ANY (ARRAY['auditlog', 'auditlog_id_seq', 'auditlog_pkey', 'auditlog_run_idx', 'auditlog_source_file_idx', 'indici_audit_daily', 'indici_audit_daily_pkey', 'landing_ledger', 'landing_ledger_outcome_idx', 'landing_ledger_pkey', 'pipeline_locks', 'pipeline_locks_pkey', 'table_row_counts', 'table_row_counts_pkey']::text[]) THEN
        RAISE EXCEPTION 'indici: the table name is not the identifier of a data table' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN COALESCE(pg_catalog.brin_summarize_new_values(pg_catalog.to_regclass(
        pg_catalog.format('indici_staging.%I', pg_catalog.left(target_table, 45) || '__source_ts_brin'))), 0);
END
$fn$;
CREATE OR REPLACE FUNCTION indici_staging.sync_history(target_table text, primary_key text[])
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    keys text[] := ARRAY[]::text[];
    key_column text;
    rpt_table oid;
    past text := target_table || '_past';
    view_name text := target_table || '_history';
    function_name text := target_table || '_as_of';
    column_name text;
    column_type text;
    columns text[] := ARRAY[]::text[];
    results text[] := ARRAY[]::text[];
    business text[] := ARRAY[]::text[];
    changed boolean := false;
BEGIN
    IF target_table IS NULL OR target_table COLLATE "C" !~ '^[a-z_][a-z0-9_]{0,62}$'
       OR target_table = ANY (ARRAY['auditlog', 'auditlog_id_seq', 'auditlog_pkey', 'auditlog_run_idx', 'auditlog_source_file_idx', 'indici_audit_daily', 'indici_audit_daily_pkey', 'landing_ledger', 'landing_ledger_outcome_idx', 'landing_ledger_pkey', 'pipeline_locks', 'pipeline_locks_pkey', 'table_row_counts', 'table_row_counts_pkey']::text[]) THEN
        RAISE EXCEPTION 'indici: the table name is not the identifier of a data table' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF pg_catalog.length(target_table) > 55 THEN
        RAISE EXCEPTION 'indici: the table name is too long to have a history' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF primary_key IS NULL OR pg_catalog.cardinality(primary_key) = 0 THEN
        RAISE EXCEPTION 'indici: a history needs the primary key of its table' USING ERRCODE = 'insufficient_privilege';
    END IF;
    FOREACH key_column IN ARRAY primary_key LOOP
        IF key_column IS NULL OR key_column COLLATE "C" !~ '^[a-z_][a-z0-9_]{0,62}$' THEN
            RAISE EXCEPTION 'indici: a primary-key column is not an identifier' USING ERRCODE = 'insufficient_privilege';
        END IF;
        keys := keys || pg_catalog.format('%I', key_column);
    END LOOP;
    rpt_table := pg_catalog.to_regclass(pg_catalog.format('rpt.%I', target_table));
    IF rpt_table IS NULL OR NOT EXISTS (
        SELECT FROM pg_catalog.pg_constraint k WHERE k.conrelid = rpt_table AND k.contype = 'p'
          AND ARRAY(SELECT pg_catalog.format('%I', a.attname)
                    FROM pg_catalog.unnest(k.conkey) WITH ORDINALITY AS u (attnum, position)
                    JOIN pg_catalog.pg_attribute a
                      ON a.attrelid = rpt_table AND a.attnum = u.attnum
                    ORDER BY u.position) = keys) THEN
        RAISE EXCEPTION 'indici: the rpt table does not exist or has another primary key' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF EXISTS (SELECT FROM pg_catalog.pg_class c
        WHERE c.oid = pg_catalog.to_regclass(pg_catalog.format('rpt.%I', past))
          AND (c.relkind <> 'r' OR c.relowner <> (
              SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER))) OR EXISTS (SELECT FROM pg_catalog.pg_class c
        WHERE c.oid = pg_catalog.to_regclass(pg_catalog.format('rpt.%I', view_name))
          AND (c.relkind <> 'v' OR c.relowner <> (
              SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER))) OR EXISTS (
        SELECT FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'rpt' AND p.proname = function_name
          AND p.proowner <> (SELECT r.oid FROM pg_catalog.pg_roles r
                             WHERE r.rolname = CURRENT_USER)) THEN
        RAISE EXCEPTION 'indici: a history name is taken by an object of another kind or owner' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF pg_catalog.to_regclass(pg_catalog.format('rpt.%I', past)) IS NULL THEN
        EXECUTE pg_catalog.format('CREATE TABLE rpt.%I (LIKE rpt.%I, '
            'valid_from timestamptz NOT NULL, valid_to timestamptz, '
            'CONSTRAINT %I PRIMARY KEY (%s, valid_from, _source_file))', past, target_table,
            pg_catalog.left(past, 58) || '_pkey', pg_catalog.array_to_string(keys, ', '));
        EXECUTE pg_catalog.format('CREATE INDEX %I ON rpt.%I (%s) WHERE valid_to IS NULL',
            pg_catalog.left(past, 54) || '_open_idx', past,
            pg_catalog.array_to_string(keys, ', '));
        changed := true;
    END IF;
    FOR column_name, column_type IN
        SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)
        FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = rpt_table AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
    LOOP
        IF column_name COLLATE "C" !~ '^[a-z_][a-z0-9_]{0,62}$'
           OR column_name IN ('valid_from', 'valid_to') THEN
            RAISE EXCEPTION 'indici: an rpt column name cannot be placed in its history' USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute b
            WHERE b.attrelid = pg_catalog.to_regclass(pg_catalog.format('rpt.%I', past))
              AND b.attname = column_name AND b.attnum > 0 AND NOT b.attisdropped) THEN
            EXECUTE pg_catalog.format('ALTER TABLE rpt.%I ADD COLUMN %I %s', past,
                column_name, column_type);
            changed := true;
        END IF;
        columns := columns || pg_catalog.format('%I', column_name);
        IF NOT column_name = ANY (ARRAY['_source_file', '_source_ts', '_row_number', '_loaded_at', '_run_id']::text[]) THEN
            business := business || pg_catalog.format('%I', column_name);
            results := results || pg_catalog.format('%I %s', column_name, column_type);
        END IF;
    END LOOP;
    IF changed OR pg_catalog.to_regclass(pg_catalog.format('rpt.%I', view_name)) IS NULL
       OR pg_catalog.to_regprocedure(
           pg_catalog.format('rpt.%I(timestamptz)', function_name)) IS NULL
       OR ARRAY(SELECT pg_catalog.format('%I', a.attname) FROM pg_catalog.pg_attribute a
                WHERE a.attrelid = pg_catalog.to_regclass(
                          pg_catalog.format('rpt.%I', view_name))
                  AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum)
          IS DISTINCT FROM ARRAY['valid_from', 'valid_to'] || columns THEN
        EXECUTE pg_catalog.format('CREATE OR REPLACE VIEW rpt.%I AS '
            'SELECT r._source_ts AS valid_from, NULL::timestamptz AS valid_to, %s FROM rpt.%I r '
            'UNION ALL SELECT p.valid_from, p.valid_to, %s FROM rpt.%I p', view_name,
            'r.' || pg_catalog.array_to_string(columns, ', r.'), target_table,
            'p.' || pg_catalog.array_to_string(columns, ', p.'), past);
        EXECUTE pg_catalog.format('DROP FUNCTION IF EXISTS rpt.%I(timestamptz)', function_name);
        EXECUTE pg_catalog.format('CREATE FUNCTION rpt.%I(timestamptz) RETURNS TABLE (%s) '
            'LANGUAGE sql STABLE BEGIN ATOMIC '
            'SELECT %s FROM rpt.%I r WHERE r._source_ts <= $1 UNION ALL '
            'SELECT %s FROM rpt.%I p WHERE p.valid_from <= $1 AND p.valid_to > $1; END',
            function_name, pg_catalog.array_to_string(results, ', '),
            'r.' || pg_catalog.array_to_string(business, ', r.'), target_table,
            'p.' || pg_catalog.array_to_string(business, ', p.'), past);
        changed := true;
    END IF;
    RETURN changed;
END
$fn$;
CREATE OR REPLACE FUNCTION indici_staging.comment_data_table(target_schema text, target_table text, table_comment text, column_names text[], column_comments text[])
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    relation regclass;
    column_name text;
    column_comment text;
BEGIN
    IF target_schema IS NULL OR target_schema NOT IN ('indici_staging', 'rpt') THEN
        RAISE EXCEPTION 'indici: the schema must be indici_staging or rpt' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF target_table IS NULL OR target_table COLLATE "C" !~ '^[a-z_][a-z0-9_]{0,62}$'
       OR target_table = ANY (ARRAY['auditlog', 'auditlog_id_seq', 'auditlog_pkey', 'auditlog_run_idx', 'auditlog_source_file_idx', 'indici_audit_daily', 'indici_audit_daily_pkey', 'landing_ledger', 'landing_ledger_outcome_idx', 'landing_ledger_pkey', 'pipeline_locks', 'pipeline_locks_pkey', 'table_row_counts', 'table_row_counts_pkey']::text[]) THEN
        RAISE EXCEPTION 'indici: the table name is not the identifier of a data table' USING ERRCODE = 'insufficient_privilege';
    END IF;
    relation := pg_catalog.to_regclass(pg_catalog.format('%I.%I', target_schema, target_table));
    IF relation IS NULL THEN
        RAISE EXCEPTION 'indici: the table does not exist' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF column_names IS NULL OR column_comments IS NULL
       OR pg_catalog.cardinality(column_names) <> pg_catalog.cardinality(column_comments) THEN
        RAISE EXCEPTION 'indici: the column names and comments must be two arrays of the same length' USING ERRCODE = 'insufficient_privilege';
    END IF;
    EXECUTE pg_catalog.format(CASE WHEN (SELECT c.relkind FROM pg_catalog.pg_class c
        WHERE c.oid = relation) = 'v' THEN 'COMMENT ON VIEW %I.%I IS %L'
        ELSE 'COMMENT ON TABLE %I.%I IS %L' END, target_schema, target_table, table_comment);
    FOR column_name, column_comment IN
        SELECT c.n, c.t FROM ROWS FROM (
            pg_catalog.unnest(column_names), pg_catalog.unnest(column_comments)) AS c (n, t)
    LOOP
        IF column_name IS NULL OR column_name COLLATE "C" !~ '^[a-z_][a-z0-9_]{0,62}$' THEN
            RAISE EXCEPTION 'indici: a column name is not an identifier' USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid = relation
                   AND a.attname = column_name AND a.attnum > 0 AND NOT a.attisdropped) THEN
            EXECUTE pg_catalog.format('COMMENT ON COLUMN %I.%I.%I IS %L', target_schema,
                target_table, column_name, column_comment);
        END IF;
    END LOOP;
END
$fn$;
CREATE OR REPLACE FUNCTION indici_staging.ensure_analyst_view(target_table text, view_columns text[], nhi_columns text[])
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    relation regclass;
    select_list text[] := ARRAY[]::text[];
    column_name text;
    as_of regprocedure;
BEGIN
    IF target_table IS NULL OR target_table COLLATE "C" !~ '^[a-z_][a-z0-9_]{0,62}$'
       OR target_table = ANY (ARRAY['auditlog', 'auditlog_id_seq', 'auditlog_pkey', 'auditlog_run_idx', 'auditlog_source_file_idx', 'indici_audit_daily', 'indici_audit_daily_pkey', 'landing_ledger', 'landing_ledger_outcome_idx', 'landing_ledger_pkey', 'pipeline_locks', 'pipeline_locks_pkey', 'table_row_counts', 'table_row_counts_pkey']::text[]) THEN
        RAISE EXCEPTION 'indici: the table name is not the identifier of a data table' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF pg_catalog.to_regnamespace('rpt_analyst') IS NULL THEN
        RETURN false;
    END IF;
    relation := pg_catalog.to_regclass(pg_catalog.format('rpt.%I', target_table));
    IF relation IS NULL THEN
        RAISE EXCEPTION 'indici: the table does not exist' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF view_columns IS NULL OR nhi_columns IS NULL OR pg_catalog.cardinality(view_columns) = 0
       OR NOT nhi_columns <@ view_columns THEN
        RAISE EXCEPTION 'indici: the view needs columns, and its NHI columns must be among them' USING ERRCODE = 'insufficient_privilege';
    END IF;
    FOREACH column_name IN ARRAY view_columns LOOP
        IF column_name IS NULL OR column_name COLLATE "C" !~ '^[a-z_][a-z0-9_]{0,62}$'
           OR column_name = ANY (ARRAY['_loaded_at', '_row_number', '_run_id', '_source_file', '_source_ts']::text[])
           OR NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid = relation
                          AND a.attname = column_name AND a.attnum > 0 AND NOT a.attisdropped) THEN
            RAISE EXCEPTION 'indici: a view column is not a data column of the table' USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF column_name = ANY (nhi_columns) THEN
            select_list := select_list || pg_catalog.format('pg_catalog.encode(pg_catalog.sha256(k.outer_key || pg_catalog.sha256(k.inner_key || pg_catalog.convert_to(pg_catalog.upper(pg_catalog.btrim(t.%1$I::text)), ''UTF8''))), ''hex'') AS %1$I', column_name);
        ELSE
            select_list := select_list || pg_catalog.format('t.%I', column_name);
        END IF;
    END LOOP;
    EXECUTE pg_catalog.format('DROP VIEW IF EXISTS rpt_analyst.%I CASCADE', target_table);
    EXECUTE pg_catalog.format('CREATE VIEW rpt_analyst.%I WITH (security_barrier) AS SELECT %s '
        'FROM rpt.%I AS t CROSS JOIN indici_keys.pseudonym_key AS k', target_table,
        pg_catalog.array_to_string(select_list, ', '), target_table);
    EXECUTE pg_catalog.format('COMMENT ON VIEW rpt_analyst.%I IS %L', target_table,
        'indici analyst view; nhi: ' || pg_catalog.array_to_string(nhi_columns, ','));
    as_of := pg_catalog.to_regprocedure(
        pg_catalog.format('rpt.%I(timestamptz)', target_table || '_as_of'));
    IF as_of IS NOT NULL THEN
        EXECUTE pg_catalog.format('CREATE FUNCTION rpt_analyst.%I(at_time timestamptz) '
            'RETURNS SETOF rpt_analyst.%I LANGUAGE sql STABLE SECURITY DEFINER '
            'SET search_path = pg_catalog, pg_temp AS %L', target_table || '_as_of', target_table,
            pg_catalog.format('SELECT %s FROM rpt.%I(at_time) AS t CROSS JOIN indici_keys.pseudonym_key AS k',
                pg_catalog.array_to_string(select_list, ', '), target_table || '_as_of'));
    END IF;
    RETURN true;
END
$fn$;
DO $$
DECLARE
    writer text := current_setting('indici.writer');
    owner_role text := current_setting('indici.owner');
BEGIN
    EXECUTE format('ALTER FUNCTION indici_staging.create_data_table(text, text, text[], text[], text[]) OWNER TO %I', owner_role);
    REVOKE ALL ON FUNCTION indici_staging.create_data_table(text, text, text[], text[], text[]) FROM PUBLIC;
    EXECUTE format('GRANT EXECUTE ON FUNCTION indici_staging.create_data_table(text, text, text[], text[], text[]) TO %I', writer);
    EXECUTE format('ALTER FUNCTION indici_staging.add_data_column(text, text, text, text) OWNER TO %I', owner_role);
    REVOKE ALL ON FUNCTION indici_staging.add_data_column(text, text, text, text) FROM PUBLIC;
    EXECUTE format('GRANT EXECUTE ON FUNCTION indici_staging.add_data_column(text, text, text, text) TO %I', writer);
    EXECUTE format('ALTER FUNCTION indici_staging.create_staging_index(text) OWNER TO %I', owner_role);
    REVOKE ALL ON FUNCTION indici_staging.create_staging_index(text) FROM PUBLIC;
    EXECUTE format('GRANT EXECUTE ON FUNCTION indici_staging.create_staging_index(text) TO %I', writer);
    EXECUTE format('ALTER FUNCTION indici_staging.add_rpt_primary_key(text, text[]) OWNER TO %I', owner_role);
    REVOKE ALL ON FUNCTION indici_staging.add_rpt_primary_key(text, text[]) FROM PUBLIC;
    EXECUTE format('GRANT EXECUTE ON FUNCTION indici_staging.add_rpt_primary_key(text, text[]) TO %I', writer);
    EXECUTE format('ALTER FUNCTION indici_staging.summarize_staging_index(text) OWNER TO %I', owner_role);
    REVOKE ALL ON FUNCTION indici_staging.summarize_staging_index(text) FROM PUBLIC;
    EXECUTE format('GRANT EXECUTE ON FUNCTION indici_staging.summarize_staging_index(text) TO %I', writer);
    EXECUTE format('ALTER FUNCTION indici_staging.comment_data_table(text, text, text, text[], text[]) OWNER TO %I', owner_role);
    REVOKE ALL ON FUNCTION indici_staging.comment_data_table(text, text, text, text[], text[]) FROM PUBLIC;
    EXECUTE format('GRANT EXECUTE ON FUNCTION indici_staging.comment_data_table(text, text, text, text[], text[]) TO %I', writer);
    EXECUTE format('ALTER FUNCTION indici_staging.ensure_analyst_view(text, text[], text[]) OWNER TO %I', owner_role);
    REVOKE ALL ON FUNCTION indici_staging.ensure_analyst_view(text, text[], text[]) FROM PUBLIC;
    EXECUTE format('GRANT EXECUTE ON FUNCTION indici_staging.ensure_analyst_view(text, text[], text[]) TO %I', writer);
    EXECUTE format('ALTER FUNCTION indici_staging.sync_history(text, text[]) OWNER TO %I', owner_role);
    REVOKE ALL ON FUNCTION indici_staging.sync_history(text, text[]) FROM PUBLIC;
    EXECUTE format('GRANT EXECUTE ON FUNCTION indici_staging.sync_history(text, text[]) TO %I', writer);
END $$;

-- the writer may run no DDL of its own: no CREATE, ALTER, GRANT, REVOKE, ALTER DEFAULT
-- PRIVILEGES, functions, views, triggers or DROP (a superuser's event trigger; its function
-- reads only qualified catalog names under a pinned search_path)
CREATE OR REPLACE FUNCTION indici_staging.writer_ddl_guard() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $guard$
BEGIN
    IF EXISTS (
        SELECT FROM pg_catalog.pg_namespace n
        WHERE n.nspname IN ('indici_staging', 'rpt')
          AND NOT pg_catalog.pg_has_role(CURRENT_USER, n.nspowner, 'USAGE')
          AND (pg_catalog.has_schema_privilege(CURRENT_USER, n.oid, 'CREATE')
               OR EXISTS (SELECT FROM pg_catalog.pg_proc p
                          WHERE p.pronamespace = n.oid AND p.proname = 'create_data_table'
                            AND pg_catalog.has_function_privilege(CURRENT_USER, p.oid, 'EXECUTE')))
    ) THEN
        RAISE EXCEPTION 'role % may not run % in this database: the pipeline''s writer changes '
            'tables only through the owner''s functions (indici bootstrap)', CURRENT_USER, TG_TAG
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

-- data tables: the writer may SELECT, INSERT and DELETE in staging (loads append, a re-sent
-- file replaces its rows) and also UPDATE in rpt (upserts), now and for tables the owner's
-- functions create later; no TRUNCATE, REFERENCES, TRIGGER or MAINTAIN. PUBLIC (and the
-- reader) may execute no function in either schema, nor any the owner or the writer create
DO $$
DECLARE
    writer text := current_setting('indici.writer');
    reader text := current_setting('indici.reader');
    owner_role text := current_setting('indici.owner');
    schema_name text;
    privileges text;
    table_name text;
    grantor text;
BEGIN
    FOR schema_name, privileges IN VALUES
        ('indici_staging', 'SELECT, INSERT, DELETE'),
        ('rpt', 'SELECT, INSERT, UPDATE, DELETE')
    LOOP
        FOR table_name IN
            SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = schema_name AND c.relkind IN ('r', 'p')
              AND NOT (schema_name = 'indici_staging' AND c.relname IN
                       ('auditlog', 'landing_ledger', 'pipeline_locks', 'table_row_counts'))
              AND NOT (schema_name = 'rpt' AND c.relname IN ('indici_audit_daily'))
        LOOP
            EXECUTE format('REVOKE ALL ON %I.%I FROM %I', schema_name, table_name, writer);
            EXECUTE format('GRANT %s ON %I.%I TO %I', privileges, schema_name, table_name, writer);
        END LOOP;
        FOREACH grantor IN ARRAY ARRAY[writer, owner_role] LOOP
            EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I '
                           'REVOKE ALL ON TABLES FROM %I, %I', grantor, schema_name, writer, reader);
        END LOOP;
        EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT %s ON TABLES TO %I',
                       owner_role, schema_name, privileges, writer);
        EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA %I FROM PUBLIC, %I',
                       schema_name, reader);
    END LOOP;
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC',
                   owner_role);
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC',
                   writer);
END $$;

-- reader: nothing on indici_staging; USAGE on rpt and SELECT only on its tables, now and later
DO $$
DECLARE
    reader text := current_setting('indici.reader');
    owner_role text := current_setting('indici.owner');
BEGIN
    EXECUTE format('REVOKE ALL ON SCHEMA indici_staging FROM %I', reader);
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA indici_staging FROM %I', reader);

    EXECUTE format('REVOKE ALL ON SCHEMA rpt FROM %I', reader);
    EXECUTE format('GRANT USAGE ON SCHEMA rpt TO %I', reader);
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA rpt FROM %I', reader);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA rpt TO %I', reader);
    EXECUTE format(
        'ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA rpt GRANT SELECT ON TABLES TO %I',
        owner_role, reader);
    -- the only functions in rpt are the histories' _as_of (refused otherwise, above); the
    -- writer may call them too (indici as-of runs as it)
    EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA rpt TO %I, %I', reader,
                   current_setting('indici.writer'));
    EXECUTE format(
        'ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA rpt GRANT EXECUTE ON FUNCTIONS TO %I, %I',
        owner_role, reader, current_setting('indici.writer'));
END $$;

COMMIT;
