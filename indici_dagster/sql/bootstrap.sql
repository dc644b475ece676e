-- indici-dagster: least-privilege roles and schemas, for a DBA with psql.
--
-- The same as `indici bootstrap` (indici_dagster/core/bootstrap.py is the source of truth;
-- indici_dagster_tests/test_least_privilege.py checks both leave the same privileges behind).
-- Run it as an administrator, connected to the warehouse database; it is idempotent:
--
--   psql "host=... dbname=analytics user=admin" -v writer=indici_writer -v reader=indici_reader \
--        -f indici_dagster/sql/bootstrap.sql
--
-- Then set the passwords with psql's \password indici_writer (hashed on the client).
--
-- Afterwards: the writer owns indici_staging and rpt and their tables, has CONNECT on the
-- database and no CREATE on it, nothing on public; PUBLIC may not create in public. The reader
-- has CONNECT, USAGE on rpt and SELECT on every rpt table, now and later (default privileges),
-- and nothing on indici_staging. New roles are LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE; an
-- existing role is left as it is, or refused if it is SUPERUSER/CREATEDB/CREATEROLE/BYPASSRLS.

\set ON_ERROR_STOP on
\if :{?writer}
\else
  \set writer indici_writer
\endif
\if :{?reader}
\else
  \set reader indici_reader
\endif

BEGIN;
-- psql variables do not reach inside DO blocks: pass them as transaction-local settings
SELECT set_config('indici.writer', :'writer', true), set_config('indici.reader', :'reader', true);
SELECT pg_advisory_xact_lock(hashtext('indici_dagster:bootstrap'));

-- roles: create if missing, refuse an elevated existing role
DO $$
DECLARE
    writer text := current_setting('indici.writer');
    reader text := current_setting('indici.reader');
    role_name text;
BEGIN
    IF writer !~ '^[a-z_][a-z0-9_]{0,62}$' OR reader !~ '^[a-z_][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'role names must be lower-case identifiers';
    END IF;
    IF writer = reader THEN
        RAISE EXCEPTION 'the writer and the reader must be different roles';
    END IF;
    IF current_user IN (writer, reader) THEN
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
END $$;

-- database: CONNECT, and no CREATE (no other schemas); public: nobody creates there
DO $$
DECLARE
    writer text := current_setting('indici.writer');
    reader text := current_setting('indici.reader');
BEGIN
    EXECUTE format('REVOKE CREATE ON DATABASE %I FROM %I, %I', current_database(), writer, reader);
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I, %I', current_database(), writer, reader);
    IF EXISTS (SELECT FROM pg_namespace WHERE nspname = 'public') THEN
        REVOKE CREATE ON SCHEMA public FROM PUBLIC;
        EXECUTE format('REVOKE ALL ON SCHEMA public FROM %I, %I', writer, reader);
    END IF;
END $$;

-- schemas: owned by the writer, with every table in them; no privilege for PUBLIC
DO $$
DECLARE
    writer text := current_setting('indici.writer');
    schema_name text;
    owner_name text;
    table_name text;
BEGIN
    FOREACH schema_name IN ARRAY ARRAY['indici_staging', 'rpt'] LOOP
        SELECT pg_get_userbyid(nspowner) INTO owner_name
        FROM pg_namespace WHERE nspname = schema_name;
        IF NOT FOUND THEN
            EXECUTE format('CREATE SCHEMA %I AUTHORIZATION %I', schema_name, writer);
        ELSIF owner_name <> writer THEN
            EXECUTE format('ALTER SCHEMA %I OWNER TO %I', schema_name, writer);
        END IF;
        FOR table_name IN
            SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = schema_name AND c.relkind IN ('r', 'p')
              AND c.relowner <> writer::regrole
        LOOP
            EXECUTE format('ALTER TABLE %I.%I OWNER TO %I', schema_name, table_name, writer);
        END LOOP;
        EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', schema_name);
    END LOOP;
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
