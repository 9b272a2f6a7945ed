-- What a network needs, besides a message's platform id, to answer it
-- (Bluesky: the post's cid and its thread's root), carried by
-- social.message_received (`reply_context`, optional) and kept with the
-- message by the conversations projection. NULL for the networks that need
-- nothing more.
ALTER TABLE social_messages ADD COLUMN reply_context jsonb;

-- The linked mailbox an address names (ids only), for the SMTP receiver,
-- which learns the tenant from the recipient. SECURITY DEFINER: runs as
-- ventanilla_log_reader (see social_account_lookup in 0009).
CREATE FUNCTION social_mailbox_lookup(p_address text)
RETURNS TABLE (tenant_id uuid, account_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT a.tenant_id, a.account_id FROM public.social_accounts a
    WHERE a.network = 'email' AND lower(a.external_id) = lower(p_address) AND NOT a.unlinked
$$;
ALTER FUNCTION social_mailbox_lookup(text) OWNER TO ventanilla_log_reader;
REVOKE ALL ON FUNCTION social_mailbox_lookup(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION social_mailbox_lookup(text) TO ventanilla_app;
