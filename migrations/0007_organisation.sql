-- Read models of a tenant's organisation (projection `organisation` of the
-- tenants service): what a citizen can address and when the tenant is open.
--
-- departments, officials, topics: the live entries of the tenant's
-- `directory` stream, one row each; a removed entry is deleted (the log keeps
-- its history). officials.department_id is NULL for an official outside any
-- department; it is not a foreign key because the projection applies events
-- in log order and the directory aggregate already refuses an unknown or
-- still-used department.
--
-- business_hours: one row per tenant once its hours are set, from the
-- `schedule` stream. week is a JSON array of seven arrays, Monday first, of
-- {"start": "HH:MM", "end": "HH:MM"} intervals in the tenant's time zone,
-- sorted and non-overlapping; an end of "00:00" means midnight at the end of
-- the day. holidays: one row per local date the tenant is closed.
--
-- portal_settings: one row per tenant once its portal is configured, from the
-- `portal` stream; settings is the whole PortalSettings value as recorded
-- (public_name, logo_url, primary_colour, accent_colour, languages,
-- social_links).
--
-- Like every read model: tenant_id leads the primary key and every index, and
-- row-level security (enabled and forced) shows a transaction only the rows of
-- the tenant it set.

CREATE TABLE departments (
    tenant_id     uuid        NOT NULL,
    department_id uuid        NOT NULL,
    name          text        NOT NULL,
    description   text,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, department_id)
);
CREATE INDEX departments_by_name ON departments (tenant_id, lower(name));

CREATE TABLE officials (
    tenant_id                uuid        NOT NULL,
    official_id              uuid        NOT NULL,
    name                     text        NOT NULL,
    role                     text        NOT NULL,
    department_id            uuid,
    accepts_public_questions boolean     NOT NULL,
    updated_at               timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, official_id)
);
CREATE INDEX officials_by_department ON officials (tenant_id, department_id);

CREATE TABLE topics (
    tenant_id   uuid        NOT NULL,
    topic_id    uuid        NOT NULL,
    name        text        NOT NULL,
    description text,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, topic_id)
);
CREATE INDEX topics_by_name ON topics (tenant_id, lower(name));

CREATE TABLE business_hours (
    tenant_id uuid  NOT NULL PRIMARY KEY,
    time_zone text  NOT NULL,
    week      jsonb NOT NULL CHECK (jsonb_typeof(week) = 'array' AND jsonb_array_length(week) = 7)
);

CREATE TABLE holidays (
    tenant_id uuid NOT NULL,
    date      date NOT NULL,
    name      text NOT NULL,
    PRIMARY KEY (tenant_id, date)
);

CREATE TABLE portal_settings (
    tenant_id  uuid        NOT NULL PRIMARY KEY,
    settings   jsonb       NOT NULL CHECK (jsonb_typeof(settings) = 'object'),
    updated_at timestamptz NOT NULL
);

ALTER TABLE departments ENABLE ROW LEVEL SECURITY;
ALTER TABLE departments FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON departments
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE officials ENABLE ROW LEVEL SECURITY;
ALTER TABLE officials FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON officials
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE topics ENABLE ROW LEVEL SECURITY;
ALTER TABLE topics FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON topics
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE business_hours ENABLE ROW LEVEL SECURITY;
ALTER TABLE business_hours FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON business_hours
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE holidays ENABLE ROW LEVEL SECURITY;
ALTER TABLE holidays FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON holidays
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE portal_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE portal_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON portal_settings
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

GRANT SELECT, INSERT, UPDATE, DELETE
    ON departments, officials, topics, business_hours, holidays, portal_settings
    TO ventanilla_app;
