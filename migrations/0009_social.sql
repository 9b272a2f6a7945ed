-- The social service's tables.
--
-- Read models (rebuilt from the log):
--
-- social_accounts (projection `social_accounts`): the tenant's linked
-- accounts, from the `account-<uuid>` streams: network, the network's id of
-- the account, name, whether it is unlinked, and its health (JSON:
-- {"state":"ok"} or {"state":"degraded","reason":…,"until":…}).
--
-- social_messages (projection `social_conversations`): what the service
-- needs of each message a citizen wrote to answer it — the account it came
-- on, private or public, the thread, the author's id on the network, when
-- it was written — from the `social.message_received` events.
--
-- Write side (never rebuilt):
--
-- social_credentials: each account's credentials, AES-256-GCM encrypted with
-- the key from configuration (social.credentials_key); the nonce is stored
-- beside the ciphertext, and the tenant and account ids are the associated
-- data, so a row copied to another account does not decrypt. Never in the
-- log, never returned by any API.
--
-- social_deliveries: the replies waiting to go out (a queue): written by
-- the outbound reactor with its checkpoint, read and updated by the
-- delivery worker. The outcome of each attempt is in the delivery's stream.
--
-- social_parked: webhook deliveries acknowledged but not processed (the
-- account unlinked, the tenant suspended), kept with their raw body so that
-- nothing is lost.
--
-- Like every table: tenant_id leads the primary key and every index, and
-- row-level security (enabled and forced) shows a transaction only the rows
-- of the tenant it set, with two documented exceptions used only through
-- SECURITY DEFINER functions owned by ventanilla_log_reader (as in 0006 and
-- 0008): social_account_lookup(), which finds the tenant of the account a
-- webhook URL names (the request arrives before any tenant is known),
-- social_deliveries_due(), with which the delivery worker finds due replies
-- across tenants, and social_accounts_to_poll(), with which the mention
-- poller finds the accounts it polls. They return ids only.

CREATE TABLE social_accounts (
    tenant_id   uuid        NOT NULL,
    account_id  uuid        NOT NULL,
    network     text        NOT NULL,
    external_id text        NOT NULL,
    name        text        NOT NULL,
    human_agent boolean     NOT NULL,
    poll_mentions boolean   NOT NULL DEFAULT false,
    unlinked    boolean     NOT NULL DEFAULT false,
    health      jsonb       NOT NULL,
    linked_at   timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, account_id)
);
CREATE INDEX social_accounts_by_network ON social_accounts (tenant_id, network, external_id);
CREATE INDEX social_accounts_by_id ON social_accounts (account_id);

CREATE TABLE social_messages (
    tenant_id   uuid        NOT NULL,
    channel     text        NOT NULL,
    platform_id text        NOT NULL,
    account_id  uuid        NOT NULL,
    kind        text        NOT NULL,
    thread      text        NOT NULL,
    author_id   text        NOT NULL,
    sent_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, channel, platform_id)
);
CREATE INDEX social_messages_by_author ON social_messages (tenant_id, account_id, author_id, sent_at DESC);

CREATE TABLE social_credentials (
    tenant_id  uuid        NOT NULL,
    account_id uuid        NOT NULL,
    nonce      bytea       NOT NULL CHECK (length(nonce) = 12),
    ciphertext bytea       NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, account_id)
);

CREATE TABLE social_deliveries (
    tenant_id       uuid        NOT NULL,
    message_id      uuid        NOT NULL,
    ticket_id       uuid        NOT NULL,
    account_id      uuid        NOT NULL,
    channel         text        NOT NULL,
    target          jsonb       NOT NULL,
    body            text        NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    done            boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (tenant_id, message_id)
);
CREATE INDEX social_deliveries_due ON social_deliveries (next_attempt_at) WHERE NOT done;

CREATE TABLE social_parked (
    tenant_id   uuid        NOT NULL,
    parked_id   uuid        NOT NULL,
    account_id  uuid        NOT NULL,
    network     text        NOT NULL,
    reason      text        NOT NULL,
    body        bytea       NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, parked_id)
);

ALTER TABLE social_accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE social_accounts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON social_accounts
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY log_reader_sees_all ON social_accounts FOR SELECT TO ventanilla_log_reader USING (true);

ALTER TABLE social_messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE social_messages FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON social_messages
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE social_credentials ENABLE ROW LEVEL SECURITY;
ALTER TABLE social_credentials FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON social_credentials
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE social_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE social_deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON social_deliveries
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY log_reader_sees_all ON social_deliveries FOR SELECT TO ventanilla_log_reader USING (true);

ALTER TABLE social_parked ENABLE ROW LEVEL SECURITY;
ALTER TABLE social_parked FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON social_parked
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

GRANT SELECT, INSERT, UPDATE, DELETE
    ON social_accounts, social_messages, social_credentials, social_deliveries, social_parked
    TO ventanilla_app;
GRANT SELECT ON social_accounts, social_deliveries TO ventanilla_log_reader;

-- The tenant and network of the account a webhook URL names, if linked or
-- unlinked (ids only). SECURITY DEFINER: runs as ventanilla_log_reader.
CREATE FUNCTION social_account_lookup(p_account uuid)
RETURNS TABLE (tenant_id uuid, network text, unlinked boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT a.tenant_id, a.network, a.unlinked FROM public.social_accounts a WHERE a.account_id = p_account
$$;
ALTER FUNCTION social_account_lookup(uuid) OWNER TO ventanilla_log_reader;
REVOKE ALL ON FUNCTION social_account_lookup(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION social_account_lookup(uuid) TO ventanilla_app;

-- The linked accounts whose mentions are polled (ids only), for the
-- mention poller, which then reads each account's cursor from its stream.
CREATE FUNCTION social_accounts_to_poll()
RETURNS TABLE (tenant_id uuid, account_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT a.tenant_id, a.account_id FROM public.social_accounts a
    WHERE a.poll_mentions AND NOT a.unlinked
    ORDER BY a.tenant_id, a.account_id
$$;
ALTER FUNCTION social_accounts_to_poll() OWNER TO ventanilla_log_reader;
REVOKE ALL ON FUNCTION social_accounts_to_poll() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION social_accounts_to_poll() TO ventanilla_app;

-- The replies due to be sent at p_now, earliest first (ids only).
CREATE FUNCTION social_deliveries_due(p_now timestamptz, p_limit integer)
RETURNS TABLE (tenant_id uuid, message_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT d.tenant_id, d.message_id FROM public.social_deliveries d
    WHERE NOT d.done AND d.next_attempt_at <= p_now
    ORDER BY d.next_attempt_at
    LIMIT p_limit
$$;
ALTER FUNCTION social_deliveries_due(timestamptz, integer) OWNER TO ventanilla_log_reader;
REVOKE ALL ON FUNCTION social_deliveries_due(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION social_deliveries_due(timestamptz, integer) TO ventanilla_app;
