-- Read model of integrators' API keys (projection `api_keys`, fed by the
-- `api_key.*` events of the `apikey-<uuid>` streams).
--
-- One row per key, written in its tenant's scope. The secret itself is never
-- stored anywhere: the integrator sends `vk_<64 hex>`, the service keeps its
-- SHA-256 (secret_hash) and its first 12 characters (prefix, shown in lists
-- so admins can tell keys apart).
--
-- Like every read model: tenant_id leads the primary key, and row-level
-- security (enabled and forced) shows a transaction only the rows of the
-- tenant it set. One index does not lead with tenant_id: the UNIQUE index on
-- secret_hash. A request carrying an API key arrives before any tenant is
-- known — the key is what tells which tenant it is — so the key must be
-- found from its hash alone. That lookup is the only cross-tenant read, and
-- it goes only through api_key_lookup(), a SECURITY DEFINER function owned
-- by ventanilla_log_reader (the role with a read-all policy, as for the
-- event log in 0001): the application role may call it, but still sees only
-- the current tenant's rows of the table itself. The function returns the
-- tenant and the key's id, never the row; whether the key is revoked is then
-- read from the key's own stream, not from this table, which may lag.
--
-- last_used_at is not an event (it would be one per API call): the service
-- updates it directly, at most once a minute per key, in the tenant's scope.
-- A rebuild of the projection carries it over from the live table (see the
-- projection's code); uses recorded while the rebuild runs may be lost, and
-- the next use records them again.
--
-- api_key_lookup() has a string body on purpose: a BEGIN ATOMIC body would
-- make the function depend on the table and forbid the rebuild's
-- DROP TABLE of the live copy. The table is named schema-qualified, so the
-- function always reads the live table.

CREATE TABLE api_keys (
    tenant_id    uuid        NOT NULL,
    key_id       uuid        NOT NULL,
    name         text        NOT NULL,
    scope        text        NOT NULL CHECK (scope IN ('read', 'read_write')),
    prefix       text        NOT NULL,
    secret_hash  text        NOT NULL CHECK (secret_hash ~ '^[0-9a-f]{64}$'),
    created_by   uuid        NOT NULL,
    created_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    last_used_at timestamptz,
    PRIMARY KEY (tenant_id, key_id)
);
-- Finds a key from a presented secret before the tenant is known (see above).
CREATE UNIQUE INDEX api_keys_secret_hash ON api_keys (secret_hash);

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY log_reader_finds_keys ON api_keys FOR SELECT TO ventanilla_log_reader USING (true);

GRANT SELECT, INSERT, UPDATE, DELETE ON api_keys TO ventanilla_app;
GRANT SELECT ON api_keys TO ventanilla_log_reader;

-- The tenant and id of the key whose secret has this SHA-256 (hex), if any,
-- revoked or not. SECURITY DEFINER: runs as ventanilla_log_reader.
CREATE FUNCTION api_key_lookup(p_hash text) RETURNS TABLE (tenant_id uuid, key_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT k.tenant_id, k.key_id FROM public.api_keys k WHERE k.secret_hash = p_hash
$$;

ALTER FUNCTION api_key_lookup(text) OWNER TO ventanilla_log_reader;
REVOKE ALL ON FUNCTION api_key_lookup(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api_key_lookup(text) TO ventanilla_app;
