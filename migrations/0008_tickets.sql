-- The tickets service's tables.
--
-- Write side (not read models, never rebuilt):
--
-- ticket_reference_counters, ticket_references: the human references
-- (`DEMO-2026-000123`). A reference is drawn once per ticket id: drawing it
-- again for the same ticket (a retried request, a redelivered social message)
-- gives the same number, so a retry never burns a number nor changes the
-- reference of a ticket already opened. Numbers run per tenant and year,
-- without gaps unless a ticket's opening fails after its number was drawn.
--
-- ticket_conversations: which ticket a conversation on a channel continues,
-- written by the inbound reactor in the same transaction as its checkpoint
-- (keys `thread:<platform thread>` and `author:<platform user id>`).
--
-- Read models (projection `inbox`, rebuilt from the log):
--
-- tickets: one row per ticket, what the inbox lists and filters. due_at is
-- the earliest due instant of the ticket's running clocks (NULL when none
-- runs); due_order is due_at with 'infinity' for none, what "sort by due
-- time" orders by (tickets with no running clock last, and a page's cursor
-- one range of tickets_by_due); next_breach_at is the earliest
-- of them not yet recorded as breached, what the breach timer looks for.
-- breached is true once any clock of the ticket was recorded as breached.
--
-- ticket_messages: the conversation, one row per message in or out, in the
-- order of the ticket's stream (seq = the event's version), with a reply's
-- delivery state. ticket_timeline: every event of the ticket's stream, for
-- its history (internal notes included; the API shows notes to staff only),
-- at the instant the event records (not when the log stored it).
--
-- Like every read model: tenant_id leads the primary key and every index, and
-- row-level security (enabled and forced) shows a transaction only the rows of
-- the tenant it set. One index does not lead with tenant_id:
-- tickets_next_breach, which the breach timer scans across tenants through
-- tickets_overdue(), a SECURITY DEFINER function owned by
-- ventanilla_log_reader (as api_key_lookup() in 0006). The function returns
-- ids only; the timer then records each breach in the ticket's own stream,
-- in the ticket's tenant, where the decider checks it again.

CREATE TABLE ticket_reference_counters (
    tenant_id uuid    NOT NULL,
    year      integer NOT NULL,
    last      bigint  NOT NULL,
    PRIMARY KEY (tenant_id, year)
);

CREATE TABLE ticket_references (
    tenant_id uuid    NOT NULL,
    ticket_id uuid    NOT NULL,
    year      integer NOT NULL,
    number    bigint  NOT NULL,
    PRIMARY KEY (tenant_id, ticket_id),
    UNIQUE (tenant_id, year, number)
);

CREATE TABLE ticket_conversations (
    tenant_id  uuid        NOT NULL,
    channel    text        NOT NULL,
    key        text        NOT NULL,
    ticket_id  uuid        NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, channel, key)
);

CREATE TABLE tickets (
    tenant_id                    uuid        NOT NULL,
    ticket_id                    uuid        NOT NULL,
    reference                    text        NOT NULL,
    kind                         text        NOT NULL CHECK (kind IN ('question', 'suggestion', 'question_for')),
    addressee_department_id      uuid,
    addressee_official_id        uuid,
    status                       text        NOT NULL,
    channel                      text        NOT NULL,
    contact                      jsonb       NOT NULL,
    subject                      text        NOT NULL,
    tracking_hash                text        NOT NULL,
    notify_citizen               boolean     NOT NULL,
    department_id                uuid,
    assignee_id                  uuid,
    tags                         text[]      NOT NULL DEFAULT '{}',
    priority                     text        NOT NULL,
    opened_at                    timestamptz NOT NULL,
    last_activity_at             timestamptz NOT NULL,
    last_inbound_at              timestamptz,
    awaiting_reply               boolean     NOT NULL,
    messages_count               integer     NOT NULL DEFAULT 0,
    notes_count                  integer     NOT NULL DEFAULT 0,
    first_response_at            timestamptz,
    first_response_business_secs bigint,
    first_response_due           timestamptz,
    first_response_breached      boolean     NOT NULL DEFAULT false,
    resolution_due               timestamptz,
    resolution_breached          boolean     NOT NULL DEFAULT false,
    due_at                       timestamptz,
    due_order                    timestamptz NOT NULL DEFAULT 'infinity',
    next_breach_at               timestamptz,
    breached                     boolean     NOT NULL DEFAULT false,
    resolved_at                  timestamptz,
    closed_at                    timestamptz,
    reopened_count               integer     NOT NULL DEFAULT 0,
    merged_into                  uuid,
    version                      bigint      NOT NULL,
    PRIMARY KEY (tenant_id, ticket_id)
);
CREATE UNIQUE INDEX tickets_by_reference ON tickets (tenant_id, reference);
CREATE INDEX tickets_by_tracking ON tickets (tenant_id, tracking_hash);
CREATE INDEX tickets_by_activity ON tickets (tenant_id, last_activity_at DESC, ticket_id DESC);
CREATE INDEX tickets_by_status ON tickets (tenant_id, status, last_activity_at DESC, ticket_id DESC);
CREATE INDEX tickets_by_assignee ON tickets (tenant_id, assignee_id, last_activity_at DESC, ticket_id DESC);
CREATE INDEX tickets_by_department ON tickets (tenant_id, department_id, last_activity_at DESC, ticket_id DESC);
CREATE INDEX tickets_by_due ON tickets (tenant_id, due_order, ticket_id);
CREATE INDEX tickets_by_opening ON tickets (tenant_id, opened_at);
CREATE INDEX tickets_next_breach ON tickets (next_breach_at) WHERE next_breach_at IS NOT NULL;

-- ticket_status_counts: how many of the tenant's tickets are in each
-- status, kept by the projection as tickets open and move, so the inbox's
-- counts are a few rows read whatever the tenant's size.
CREATE TABLE ticket_status_counts (
    tenant_id uuid   NOT NULL,
    status    text   NOT NULL,
    tickets   bigint NOT NULL,
    PRIMARY KEY (tenant_id, status)
);

CREATE TABLE ticket_messages (
    tenant_id            uuid        NOT NULL,
    ticket_id            uuid        NOT NULL,
    message_id           uuid        NOT NULL,
    seq                  bigint      NOT NULL,
    direction            text        NOT NULL CHECK (direction IN ('in', 'out')),
    channel              text        NOT NULL,
    body                 text        NOT NULL,
    platform_id          text,
    author_id            uuid,
    delivery_state       text        CHECK (delivery_state IN ('pending', 'sent', 'failed')),
    delivery_platform_id text,
    failure_reason       text,
    at                   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, ticket_id, message_id)
);
CREATE INDEX ticket_messages_in_order ON ticket_messages (tenant_id, ticket_id, seq);
CREATE INDEX ticket_messages_inbound ON ticket_messages (tenant_id, at) WHERE direction = 'in';

CREATE TABLE ticket_timeline (
    tenant_id  uuid        NOT NULL,
    ticket_id  uuid        NOT NULL,
    version    bigint      NOT NULL,
    event_type text        NOT NULL,
    actor      jsonb       NOT NULL,
    data       jsonb       NOT NULL,
    at         timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, ticket_id, version)
);
CREATE INDEX ticket_timeline_moves ON ticket_timeline (tenant_id, at)
    WHERE event_type = 'ticket.status_changed';

ALTER TABLE ticket_reference_counters ENABLE ROW LEVEL SECURITY;
ALTER TABLE ticket_reference_counters FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ticket_reference_counters
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE ticket_references ENABLE ROW LEVEL SECURITY;
ALTER TABLE ticket_references FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ticket_references
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE ticket_conversations ENABLE ROW LEVEL SECURITY;
ALTER TABLE ticket_conversations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ticket_conversations
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE tickets ENABLE ROW LEVEL SECURITY;
ALTER TABLE tickets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tickets
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY log_reader_sees_all ON tickets FOR SELECT TO ventanilla_log_reader USING (true);

ALTER TABLE ticket_status_counts ENABLE ROW LEVEL SECURITY;
ALTER TABLE ticket_status_counts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ticket_status_counts
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE ticket_messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE ticket_messages FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ticket_messages
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE ticket_timeline ENABLE ROW LEVEL SECURITY;
ALTER TABLE ticket_timeline FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ticket_timeline
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

GRANT SELECT, INSERT, UPDATE, DELETE
    ON ticket_reference_counters, ticket_references, ticket_conversations,
       tickets, ticket_status_counts, ticket_messages, ticket_timeline
    TO ventanilla_app;
GRANT SELECT ON tickets TO ventanilla_log_reader;

-- The tickets whose next running clock is due at or before p_now, earliest
-- first: tenant and id only. SECURITY DEFINER: runs as ventanilla_log_reader.
-- A string body on purpose (see api_key_lookup in 0006): the rebuild swaps
-- the table.
CREATE FUNCTION tickets_overdue(p_now timestamptz, p_limit integer)
RETURNS TABLE (tenant_id uuid, ticket_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT t.tenant_id, t.ticket_id FROM public.tickets t
    WHERE t.next_breach_at IS NOT NULL AND t.next_breach_at <= p_now
    ORDER BY t.next_breach_at
    LIMIT p_limit
$$;

ALTER FUNCTION tickets_overdue(timestamptz, integer) OWNER TO ventanilla_log_reader;
REVOKE ALL ON FUNCTION tickets_overdue(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tickets_overdue(timestamptz, integer) TO ventanilla_app;
