-- The event log: the system of record. Everything else is derived from it.
--
-- Design (docs/eventlog.md explains it at length):
-- * One table, append-only. A stream is (tenant_id, stream_id); its events are
--   numbered 0, 1, 2... and the primary key makes a second writer of the same
--   version fail: that is the optimistic concurrency check.
-- * (tenant_id, event_id) is unique: appending an id that is stored already is
--   a no-op (INSERT ... ON CONFLICT DO NOTHING on that index), which is how a
--   webhook delivered twice is stored once.
-- * Gap-safe global order: every row records the id of the transaction that
--   wrote it (pg_current_xact_id()). A reader of "everything after P" orders by
--   (transaction_id, global_position) and reads only rows whose transaction id
--   is below the oldest transaction still running, so an event whose
--   transaction commits late can never appear behind a reader's checkpoint.
-- * Isolation: row-level security, enabled and forced, keyed on the tenant set
--   for the current transaction (app.tenant_id). The application connects as
--   ventanilla_app, which owns nothing. Reading every tenant's events in global
--   order (for subscriptions) goes only through eventlog_read_all(), a
--   SECURITY DEFINER function owned by ventanilla_log_reader, the one role with
--   a policy that sees all rows, and it can only read.

-- Roles are cluster-wide: create them once, tolerating a concurrent creator.
DO $$
BEGIN
    CREATE ROLE ventanilla_app LOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

DO $$
BEGIN
    CREATE ROLE ventanilla_log_reader NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

CREATE TABLE events (
    tenant_id       uuid        NOT NULL,
    stream_id       text        NOT NULL CHECK (length(stream_id) BETWEEN 1 AND 200),
    stream_version  bigint      NOT NULL CHECK (stream_version >= 0),
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL CHECK (length(event_type) BETWEEN 1 AND 100),
    schema_version  smallint    NOT NULL CHECK (schema_version >= 1),
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    -- FNV-1a of stream_id (computed by the writer; see StreamId::partition_hash):
    -- spreads streams over a consumer group's partitions.
    stream_hash     bigint      NOT NULL CHECK (stream_hash BETWEEN 0 AND 4294967295),
    -- xid8 of the writing transaction, as bigint (xid8 never wraps).
    transaction_id  bigint      NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    global_position bigint      GENERATED ALWAYS AS IDENTITY,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, stream_id, stream_version)
);

CREATE UNIQUE INDEX events_event_id ON events (tenant_id, event_id);
-- The global order. The one index that does not lead with tenant_id: it serves
-- the cross-tenant subscription read, which only eventlog_read_all() performs.
CREATE UNIQUE INDEX events_global_order ON events (transaction_id, global_position);

-- Append-only, even for the owner.
CREATE FUNCTION events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();

ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ALTER TABLE events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON events
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY log_reader_sees_all ON events FOR SELECT TO ventanilla_log_reader USING (true);

GRANT SELECT, INSERT ON events TO ventanilla_app;
GRANT SELECT ON events TO ventanilla_log_reader;

-- Appends events to one stream in one statement (one round trip, so appends
-- group-commit as well as plain inserts do). The common case of one event to a
-- new stream or at an exact version skips this function: the client sends one
-- INSERT (see PgEventLog) and falls back to it only to classify a refusal. p_expected: -2 any, -1 no stream,
-- n >= 0 the exact current version. Raises VE001 when the stream is not at the
-- expected version and VE002 when the ids are partly stored (not a retry). A
-- second writer of the same version gets unique_violation on events_pkey,
-- which the caller reports as a conflict. Returns the appended rows, or, when
-- every id was stored already, the stored rows with already_stored = true.
CREATE FUNCTION eventlog_append(
    p_tenant      uuid,
    p_stream      text,
    p_stream_hash bigint,
    p_expected    bigint,
    p_ids         uuid[],
    p_types       text[],
    p_schemas     smallint[],
    p_data        jsonb[],
    p_metadata    jsonb[]
) RETURNS TABLE (
    event_id        uuid,
    stream_version  bigint,
    transaction_id  bigint,
    global_position bigint,
    already_stored  boolean
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_current  bigint;
    v_inserted bigint;
    v_stored   bigint;
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true);

    IF p_expected = -2 THEN
        -- Writers with no expectation take turns on a stream instead of
        -- failing each other (released at commit).
        PERFORM pg_advisory_xact_lock(hashtextextended(p_tenant::text || '/' || p_stream, 0));
        SELECT coalesce(max(e.stream_version), -1) INTO v_current
          FROM events e WHERE e.tenant_id = p_tenant AND e.stream_id = p_stream;
    ELSIF p_expected = -1 THEN
        v_current := -1;
    ELSE
        IF NOT EXISTS (SELECT 1 FROM events e
                        WHERE e.tenant_id = p_tenant AND e.stream_id = p_stream
                          AND e.stream_version = p_expected) THEN
            SELECT max(e.stream_version) INTO v_current
              FROM events e WHERE e.tenant_id = p_tenant AND e.stream_id = p_stream;
            RAISE EXCEPTION 'stream % is not at version %', p_stream, p_expected
                USING ERRCODE = 'VE001', DETAIL = coalesce(v_current::text, 'none');
        END IF;
        v_current := p_expected;
    END IF;

    RETURN QUERY
    WITH ins AS (
        INSERT INTO events AS e (tenant_id, stream_id, stream_version, event_id, event_type,
                                 schema_version, data, metadata, stream_hash)
        SELECT p_tenant, p_stream, v_current + u.ord, u.id, u.t, u.s, u.d, u.m, p_stream_hash
          FROM unnest(p_ids, p_types, p_schemas, p_data, p_metadata)
               WITH ORDINALITY AS u(id, t, s, d, m, ord)
         ORDER BY u.ord
        ON CONFLICT (tenant_id, event_id) DO NOTHING
        RETURNING e.event_id, e.stream_version, e.transaction_id, e.global_position
    )
    SELECT ins.event_id, ins.stream_version, ins.transaction_id, ins.global_position, false
      FROM ins;
    GET DIAGNOSTICS v_inserted = ROW_COUNT;

    IF v_inserted = cardinality(p_ids) THEN
        RETURN;
    END IF;
    IF v_inserted > 0 THEN
        RAISE EXCEPTION 'some of these event ids are stored already, some are not'
            USING ERRCODE = 'VE002';
    END IF;

    -- Nothing inserted: every id is stored. A retry of one append only if they
    -- are all on this stream.
    SELECT count(*) INTO v_stored FROM events e
     WHERE e.tenant_id = p_tenant AND e.event_id = ANY(p_ids) AND e.stream_id = p_stream;
    IF v_stored <> cardinality(p_ids) THEN
        RAISE EXCEPTION 'these event ids are stored on another stream'
            USING ERRCODE = 'VE002';
    END IF;
    RETURN QUERY
    SELECT e.event_id, e.stream_version, e.transaction_id, e.global_position, true
      FROM events e
     WHERE e.tenant_id = p_tenant AND e.event_id = ANY(p_ids)
     ORDER BY e.stream_version;
END
$$;

-- Reads one stream of the tenant given, in version order.
CREATE FUNCTION eventlog_read_stream(p_tenant uuid, p_stream text, p_from bigint, p_limit integer)
RETURNS SETOF events LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true);
    RETURN QUERY
    SELECT * FROM events e
     WHERE e.tenant_id = p_tenant AND e.stream_id = p_stream AND e.stream_version >= p_from
     ORDER BY e.stream_version
     LIMIT p_limit;
END
$$;

-- Reads every tenant's events after (p_after_tx, p_after_pos) in global order,
-- only below the oldest running transaction (gap safety), optionally only the
-- streams of some partitions. SECURITY DEFINER: runs as ventanilla_log_reader.
CREATE FUNCTION eventlog_read_all(
    p_after_tx  bigint,
    p_after_pos bigint,
    p_limit     integer,
    p_count     bigint,
    p_parts     bigint[]
) RETURNS SETOF events
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM public.events e
     WHERE (e.transaction_id, e.global_position) > (p_after_tx, p_after_pos)
       AND e.transaction_id < (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint)
       AND (p_parts IS NULL OR e.stream_hash % p_count = ANY (p_parts))
     ORDER BY e.transaction_id, e.global_position
     LIMIT p_limit
$$;

-- The last position eventlog_read_all can return now.
CREATE FUNCTION eventlog_head(OUT transaction_id bigint, OUT global_position bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT e.transaction_id, e.global_position FROM public.events e
     WHERE e.transaction_id < (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint)
     ORDER BY e.transaction_id DESC, e.global_position DESC
     LIMIT 1
$$;

-- The transaction id of the newest committed event, readable or not yet:
-- a rebuild replays at least up to it.
CREATE FUNCTION eventlog_last_commit() RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT max(e.transaction_id) FROM public.events e
$$;

-- The position of the newest committed event, readable or not yet: a reader
-- that must see everything written so far waits until it has passed it.
CREATE FUNCTION eventlog_last_position(OUT transaction_id bigint, OUT global_position bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT e.transaction_id, e.global_position FROM public.events e
     ORDER BY e.transaction_id DESC, e.global_position DESC
     LIMIT 1
$$;

ALTER FUNCTION eventlog_last_position() OWNER TO ventanilla_log_reader;
REVOKE ALL ON FUNCTION eventlog_last_position() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eventlog_last_position() TO ventanilla_app;
ALTER FUNCTION eventlog_last_commit() OWNER TO ventanilla_log_reader;
REVOKE ALL ON FUNCTION eventlog_last_commit() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eventlog_last_commit() TO ventanilla_app;
ALTER FUNCTION eventlog_read_all(bigint, bigint, integer, bigint, bigint[]) OWNER TO ventanilla_log_reader;
ALTER FUNCTION eventlog_head() OWNER TO ventanilla_log_reader;
REVOKE ALL ON FUNCTION eventlog_read_all(bigint, bigint, integer, bigint, bigint[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventlog_head() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eventlog_read_all(bigint, bigint, integer, bigint, bigint[]) TO ventanilla_app;
GRANT EXECUTE ON FUNCTION eventlog_head() TO ventanilla_app;
GRANT EXECUTE ON FUNCTION eventlog_append(uuid, text, bigint, bigint, uuid[], text[], smallint[], jsonb[], jsonb[]) TO ventanilla_app;
GRANT EXECUTE ON FUNCTION eventlog_read_stream(uuid, text, bigint, integer) TO ventanilla_app;
