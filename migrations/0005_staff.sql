-- Read models of a tenant's staff (projection `staff_directory`, fed by the
-- `staff-<uuid>` streams of the tenants service).
--
-- staff: one row per staff member, for listing the team, finding a member by
-- e-mail at login, counting agents against the plan's quota and keeping the
-- last administrator. The address is stored lowercased and is unique within
-- the tenant (the service makes the uniqueness atomic with a claim stream per
-- address; the index here is the read model's own guard). No secret is kept
-- here: neither password hashes nor invitation tokens.
--
-- staff_sessions: one row per open session, deleted when the session ends
-- (logout, revocation, expiry noticed at the next login, eviction,
-- deactivation). It maps a presented session id to its member; whether the
-- session is still valid is decided on the member's own stream, which is
-- always current, so a row that lags behind never lets anyone in. Only the
-- SHA-256 digest of the token is kept, never the token.
--
-- Like every read model: tenant_id leads the primary key and every index, and
-- row-level security (enabled and forced) shows a transaction only the rows of
-- the tenant it set.

CREATE TABLE staff (
    tenant_id      uuid        NOT NULL,
    staff_id       uuid        NOT NULL,
    email          text        NOT NULL,
    name           text        NOT NULL,
    role           text        NOT NULL CHECK (role IN ('admin', 'agent')),
    status         text        NOT NULL CHECK (status IN ('invited', 'active', 'deactivated')),
    invited_at     timestamptz NOT NULL,
    activated_at   timestamptz,
    deactivated_at timestamptz,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, staff_id),
    CONSTRAINT staff_email_unique UNIQUE (tenant_id, email)
);
CREATE INDEX staff_by_role_status ON staff (tenant_id, role, status);

ALTER TABLE staff ENABLE ROW LEVEL SECURITY;
ALTER TABLE staff FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON staff
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

GRANT SELECT, INSERT, UPDATE, DELETE ON staff TO ventanilla_app;

CREATE TABLE staff_sessions (
    tenant_id  uuid        NOT NULL,
    session_id uuid        NOT NULL,
    staff_id   uuid        NOT NULL,
    token_hash text        NOT NULL CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    expires_at timestamptz NOT NULL,
    started_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, session_id)
);
CREATE INDEX staff_sessions_by_staff ON staff_sessions (tenant_id, staff_id);

ALTER TABLE staff_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE staff_sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON staff_sessions
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

GRANT SELECT, INSERT, UPDATE, DELETE ON staff_sessions TO ventanilla_app;
