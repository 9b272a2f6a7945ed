-- "Avísame cuando…": subscriptions, announcements and the notifications
-- they cause (the tickets service's).
--
-- Read models (projection `notify`, rebuilt from the log):
--
-- notify_subscriptions: one row per subscription (stream
-- `subscription-<uuid>`): its target (a topic or a case), how the citizen is
-- told (via e-mail / social / webhook and the address, handle or URL), its
-- language, digest choice and status. subscriber_id groups the subscriptions
-- of one address in a tenant (UUID v5 of the address in the tenant's
-- namespace): what the citizen's "manage my subscriptions" link lists.
-- active_since is when it was confirmed: a cause reaches the subscriptions
-- active when it happened, so a redelivered or replayed announcement never
-- reaches someone who subscribed after it.
-- notify_announcements: the announcements published, for staff.
--
-- Write side (never rebuilt):
--
-- notify_contents: what a notification says, once per cause (an
-- announcement, a reply, a status change, a digest), shared by every
-- notification it causes: an announcement to 10,000 subscribers stores its
-- text once.
--
-- notify_outbox: one row per notification to one subscriber, its id derived
-- from the subscription and the cause, so the fan-out reactor, redelivered,
-- queues it once. Rows are written by the reactor in the same transaction as
-- its checkpoint (nothing accepted is lost) and sent by the notification
-- worker: state pending -> sending (claimed, with a lease: a crashed worker's
-- rows are claimed again when the lease ends, and sent with the same
-- Message-ID / webhook-id) -> sent | failed | dropped (the subscription ended
-- before it went out); a notification on a social network goes sending ->
-- handed (a notice-<id> event for the social service) -> sent | failed when
-- the social service's delivery.* event about it comes back. Digest subscribers' rows wait in state 'digest' until
-- digest_at, when the digest step folds them into one 'digest' notification
-- (their state becomes 'digested'). priority 0 (confirmations, case updates)
-- goes before 1 (announcements, digests): a large announcement never delays
-- a confirmation e-mail.
--
-- Isolation as everywhere: tenant_id leads every key and index, row-level
-- security enabled and forced. The worker claims due rows of every tenant
-- through notify_claim(), a SECURITY DEFINER function owned by the NOLOGIN
-- role ventanilla_notify_worker, which may read and update the outbox and
-- read the subscriptions, nothing else; it returns what the worker needs of
-- each claimed row. Outcomes are then written in the row's tenant.

DO $$
BEGIN
    CREATE ROLE ventanilla_notify_worker NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

CREATE TABLE notify_subscriptions (
    tenant_id        uuid        NOT NULL,
    subscription_id  uuid        NOT NULL,
    subscriber_id    uuid        NOT NULL,
    target_kind      text        NOT NULL CHECK (target_kind IN ('topic', 'case')),
    topic_id         uuid,
    ticket_id        uuid,
    via              text        NOT NULL CHECK (via IN ('email', 'social', 'webhook')),
    address          text        NOT NULL,
    channel          text,
    language         text        NOT NULL,
    daily_digest     boolean     NOT NULL,
    status           text        NOT NULL,
    expires_at       timestamptz,
    active_since     timestamptz,
    webhook_failures integer     NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, subscription_id)
);
CREATE INDEX notify_subscriptions_by_topic ON notify_subscriptions (tenant_id, topic_id, subscription_id) WHERE status = 'active';
CREATE INDEX notify_subscriptions_by_case ON notify_subscriptions (tenant_id, ticket_id) WHERE status = 'active';
CREATE INDEX notify_subscriptions_by_subscriber ON notify_subscriptions (tenant_id, subscriber_id, created_at);
-- Scanned across tenants by notify_expired() (the expiry timer).
CREATE INDEX notify_subscriptions_pending ON notify_subscriptions (expires_at) WHERE status = 'pending';

CREATE TABLE notify_announcements (
    tenant_id       uuid        NOT NULL,
    announcement_id uuid        NOT NULL,
    title           text        NOT NULL,
    topics          uuid[]      NOT NULL,
    language        text        NOT NULL,
    accounts        uuid[]      NOT NULL,
    published_by    uuid        NOT NULL,
    published_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, announcement_id)
);
CREATE INDEX notify_announcements_recent ON notify_announcements (tenant_id, published_at DESC, announcement_id);

CREATE TABLE notify_contents (
    tenant_id  uuid        NOT NULL,
    content_id uuid        NOT NULL,
    kind       text        NOT NULL,
    data       jsonb       NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, content_id)
);

CREATE TABLE notify_outbox (
    tenant_id       uuid        NOT NULL,
    notification_id uuid        NOT NULL,
    subscription_id uuid        NOT NULL,
    content_id      uuid        NOT NULL,
    kind            text        NOT NULL,
    via             text        NOT NULL,
    address         text        NOT NULL,
    channel         text,
    language        text        NOT NULL,
    priority        smallint    NOT NULL,
    state           text        NOT NULL CHECK (state IN ('pending', 'sending', 'handed', 'sent', 'failed', 'dropped', 'digest', 'digested')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    digest_at       timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL,
    sent_at         timestamptz,
    PRIMARY KEY (tenant_id, notification_id)
);
-- The worker's queue, across tenants (notify_claim()).
CREATE INDEX notify_outbox_due ON notify_outbox (priority, next_attempt_at) WHERE state IN ('pending', 'sending');
-- The digest step's, across tenants (notify_digests_due()).
CREATE INDEX notify_outbox_digest ON notify_outbox (digest_at) WHERE state = 'digest';
-- A cause's notifications (an announcement's delivery figures).
CREATE INDEX notify_outbox_by_content ON notify_outbox (tenant_id, content_id, state);
CREATE INDEX notify_outbox_by_subscription ON notify_outbox (tenant_id, subscription_id, state);

ALTER TABLE notify_subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE notify_subscriptions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON notify_subscriptions
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY log_reader_sees_all ON notify_subscriptions FOR SELECT TO ventanilla_log_reader USING (true);
CREATE POLICY worker_sees_all ON notify_subscriptions FOR SELECT TO ventanilla_notify_worker USING (true);

ALTER TABLE notify_announcements ENABLE ROW LEVEL SECURITY;
ALTER TABLE notify_announcements FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON notify_announcements
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE notify_contents ENABLE ROW LEVEL SECURITY;
ALTER TABLE notify_contents FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON notify_contents
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE notify_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE notify_outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON notify_outbox
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY worker_sees_all ON notify_outbox TO ventanilla_notify_worker USING (true) WITH CHECK (true);
CREATE POLICY log_reader_sees_all ON notify_outbox FOR SELECT TO ventanilla_log_reader USING (true);

GRANT SELECT, INSERT, UPDATE, DELETE
    ON notify_subscriptions, notify_announcements, notify_contents, notify_outbox
    TO ventanilla_app;
GRANT SELECT ON notify_subscriptions, notify_outbox TO ventanilla_log_reader;
GRANT SELECT ON notify_subscriptions TO ventanilla_notify_worker;
GRANT SELECT, UPDATE ON notify_outbox TO ventanilla_notify_worker;

-- Claims up to p_limit notifications due at p_now (pending, or sending with
-- an ended lease), most urgent first, rows another worker holds skipped:
-- each becomes 'sending' with one more attempt and a lease until
-- p_lease_until. Returns what the worker needs, with the subscription's
-- current status (NULL when the read model does not show it yet).
-- A string body on purpose (see tickets_overdue in 0008): a rebuild of the
-- projection swaps notify_subscriptions.
CREATE FUNCTION notify_claim(p_now timestamptz, p_lease_until timestamptz, p_limit integer)
RETURNS TABLE (tenant_id uuid, notification_id uuid, subscription_id uuid, content_id uuid,
               kind text, via text, address text, channel text, language text, attempts integer,
               status text)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH due AS (
        SELECT o.tenant_id, o.notification_id FROM public.notify_outbox o
        WHERE o.state IN ('pending', 'sending') AND o.next_attempt_at <= p_now
        ORDER BY o.priority, o.next_attempt_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE public.notify_outbox o
        SET state = 'sending', attempts = o.attempts + 1, next_attempt_at = p_lease_until
        FROM due
        WHERE o.tenant_id = due.tenant_id AND o.notification_id = due.notification_id
        RETURNING o.tenant_id, o.notification_id, o.subscription_id, o.content_id, o.kind,
                  o.via, o.address, o.channel, o.language, o.attempts
    )
    SELECT c.tenant_id, c.notification_id, c.subscription_id, c.content_id, c.kind,
           c.via, c.address, c.channel, c.language, c.attempts, s.status
    FROM claimed c
    LEFT JOIN public.notify_subscriptions s
      ON s.tenant_id = c.tenant_id AND s.subscription_id = c.subscription_id
$$;
ALTER FUNCTION notify_claim(timestamptz, timestamptz, integer) OWNER TO ventanilla_notify_worker;
REVOKE ALL ON FUNCTION notify_claim(timestamptz, timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION notify_claim(timestamptz, timestamptz, integer) TO ventanilla_app;

-- The subscribers whose daily digest is due at p_now (ids only).
CREATE FUNCTION notify_digests_due(p_now timestamptz, p_limit integer)
RETURNS TABLE (tenant_id uuid, subscription_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT DISTINCT o.tenant_id, o.subscription_id FROM public.notify_outbox o
    WHERE o.state = 'digest' AND o.digest_at <= p_now
    LIMIT p_limit
$$;
ALTER FUNCTION notify_digests_due(timestamptz, integer) OWNER TO ventanilla_log_reader;
REVOKE ALL ON FUNCTION notify_digests_due(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION notify_digests_due(timestamptz, integer) TO ventanilla_app;

-- The unconfirmed e-mail subscriptions past their expiry (ids only).
CREATE FUNCTION notify_expired(p_now timestamptz, p_limit integer)
RETURNS TABLE (tenant_id uuid, subscription_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.tenant_id, s.subscription_id FROM public.notify_subscriptions s
    WHERE s.status = 'pending' AND s.expires_at <= p_now
    ORDER BY s.expires_at
    LIMIT p_limit
$$;
ALTER FUNCTION notify_expired(timestamptz, integer) OWNER TO ventanilla_log_reader;
REVOKE ALL ON FUNCTION notify_expired(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION notify_expired(timestamptz, integer) TO ventanilla_app;
