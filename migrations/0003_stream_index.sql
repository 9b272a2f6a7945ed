-- Read model of the built-in `stream_index` projection: one row per stream,
-- with its category, version and last event. It lets operators and services
-- list a tenant's aggregates by category, and it is the reference projection
-- that `ventanilla projections rebuild stream_index` replays.
--
-- Like every read model: tenant_id leads the primary key and every index, and
-- row-level security (enabled and forced) shows a transaction only the rows of
-- the tenant it set.

CREATE TABLE stream_index (
    tenant_id       uuid        NOT NULL,
    stream_id       text        NOT NULL,
    category        text        NOT NULL,
    version         bigint      NOT NULL,
    event_count     bigint      NOT NULL,
    last_event_type text        NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, stream_id)
);
CREATE INDEX stream_index_by_category ON stream_index (tenant_id, category, updated_at DESC);

ALTER TABLE stream_index ENABLE ROW LEVEL SECURITY;
ALTER TABLE stream_index FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON stream_index
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

GRANT SELECT, INSERT, UPDATE, DELETE ON stream_index TO ventanilla_app;
