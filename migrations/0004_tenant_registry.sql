-- Read models of the tenants service's platform side: the registry of
-- tenants and the plan catalogue (projection `tenant_registry`).
--
-- tenant_registry: one row per tenant, written in that tenant's scope (its
-- events live in its own streams). Row-level security shows a tenant its own
-- row, and shows (only shows) every row to the operator scope — the platform's id, the nil
-- UUID — which only operator code paths set. The slug index does not lead
-- with tenant_id: finding a tenant by slug is the operator's and the portal's
-- way in, before any tenant is known.
--
-- plans: the catalogue, written in the operator scope; readable by every
-- tenant (a council may see its plan's limits), writable only in the operator
-- scope.

CREATE TABLE tenant_registry (
    tenant_id        uuid        PRIMARY KEY,
    slug             text        NOT NULL,
    name             text        NOT NULL,
    kind             text        NOT NULL CHECK (kind IN ('council', 'business')),
    plan             text        NOT NULL,
    status           text        NOT NULL CHECK (status IN ('active', 'suspended', 'closed')),
    status_reason    text,
    time_zone        text        NOT NULL,
    default_language text        NOT NULL,
    languages        text[]      NOT NULL,
    contact_email    text        NOT NULL,
    provisioned_at   timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE UNIQUE INDEX tenant_registry_slug ON tenant_registry (slug);

ALTER TABLE tenant_registry ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_registry FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_registry
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
-- The operator scope reads every row, and changes none.
CREATE POLICY operator_reads ON tenant_registry FOR SELECT
    USING (NULLIF(current_setting('app.tenant_id', true), '')::uuid = '00000000-0000-0000-0000-000000000000');
GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_registry TO ventanilla_app;

CREATE TABLE plans (
    tenant_id               uuid    NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000'
                                    CHECK (tenant_id = '00000000-0000-0000-0000-000000000000'),
    code                    text    NOT NULL,
    name                    text    NOT NULL,
    agents                  integer NOT NULL,
    channel_accounts        integer NOT NULL,
    tickets_per_month       integer NOT NULL,
    api_requests_per_minute integer NOT NULL,
    public                  boolean NOT NULL,
    retired                 boolean NOT NULL DEFAULT false,
    updated_at              timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, code)
);

ALTER TABLE plans ENABLE ROW LEVEL SECURITY;
ALTER TABLE plans FORCE ROW LEVEL SECURITY;
CREATE POLICY anyone_reads ON plans FOR SELECT
    USING (NULLIF(current_setting('app.tenant_id', true), '') IS NOT NULL);
CREATE POLICY operator_writes ON plans FOR ALL
    USING (NULLIF(current_setting('app.tenant_id', true), '')::uuid = tenant_id)
    WITH CHECK (NULLIF(current_setting('app.tenant_id', true), '')::uuid = tenant_id);
GRANT SELECT, INSERT, UPDATE, DELETE ON plans TO ventanilla_app;
