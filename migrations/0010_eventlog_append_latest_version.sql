-- eventlog_append() found a stream's current version with max(), which
-- under row-level security cannot use the min/max shortcut and read every
-- event of the stream: appends with no expected version (webhook intake,
-- one stream per linked account) slowed as the stream grew (1.7-2.0 ms at
-- 3,000 events, held under the stream's advisory lock). The same function,
-- reading the last version with ORDER BY ... DESC LIMIT 1: one index entry
-- whatever the stream's length. Nothing else changes (CREATE OR REPLACE
-- keeps the owner and grants).

CREATE OR REPLACE FUNCTION eventlog_append(
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
        SELECT e.stream_version INTO v_current
          FROM events e WHERE e.tenant_id = p_tenant AND e.stream_id = p_stream
         ORDER BY e.stream_version DESC LIMIT 1;
        v_current := coalesce(v_current, -1);
    ELSIF p_expected = -1 THEN
        v_current := -1;
    ELSE
        IF NOT EXISTS (SELECT 1 FROM events e
                        WHERE e.tenant_id = p_tenant AND e.stream_id = p_stream
                          AND e.stream_version = p_expected) THEN
            SELECT e.stream_version INTO v_current
              FROM events e WHERE e.tenant_id = p_tenant AND e.stream_id = p_stream
             ORDER BY e.stream_version DESC LIMIT 1;
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
