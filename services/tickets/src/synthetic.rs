//! Synthetic tickets for the scale tests and the benchmark: one statement
//! that fills the inbox read model (`tickets`) with rows whose every value
//! derives from the tenant and the ticket's number (hashes), so the spread
//! is realistic and the rows reproducible — 55 % closed, 15 % resolved,
//! 12 % open, 8 % waiting on the citizen, 10 % new; three kinds, 13
//! channels, 20 departments, 50 agents (70 % assigned), tags, priorities,
//! due instants and breaches. Kept here, beside the table's projection, so
//! a new column is added to the one statement both use.
//!
//! What this module must not do: run anything, or be used by the service
//! itself (the projection writes real tickets).

/// The statement loading synthetic tickets. `src` is the body of a CTE
/// yielding `(tenant_id uuid, prefix text, n bigint)`, one row per ticket;
/// `last_activity_at` an expression over those, the row's hashes `h` and
/// `h2` and its `status`, giving the ticket's last activity; `subject` an
/// expression giving its subject; `tail` what follows the `SELECT` (an
/// `ORDER BY`, or nothing). Placeholders in `src` are the caller's.
#[must_use]
pub fn load_tickets(src: &str, last_activity_at: &str, subject: &str, tail: &str) -> String {
    format!(
        "
WITH src AS ({src}
), x AS MATERIALIZED (
    SELECT s.*,
           hashtext(s.tenant_id::text || s.n) & 2147483647 AS h,
           hashtext(s.n::text || s.tenant_id::text) & 2147483647 AS h2
      FROM src s
), y AS MATERIALIZED (
    SELECT x.*,
           CASE WHEN h % 100 < 55 THEN 'closed' WHEN h % 100 < 70 THEN 'resolved'
                WHEN h % 100 < 82 THEN 'open' WHEN h % 100 < 90 THEN 'waiting_on_citizen'
                ELSE 'new' END AS status,
           {last_activity_at} AS last_activity_at
      FROM x
)
INSERT INTO tickets (tenant_id, ticket_id, reference, kind, addressee_department_id, status, channel, contact,
    subject, tracking_hash, notify_citizen, department_id, assignee_id, tags, priority, opened_at,
    last_activity_at, last_inbound_at, awaiting_reply, messages_count, notes_count, first_response_at,
    first_response_due, first_response_breached, resolution_due, resolution_breached, due_at, due_order,
    next_breach_at, breached, resolved_at, closed_at, version)
SELECT tenant_id, md5('ticket-' || tenant_id || '-' || n)::uuid, prefix || '-2026-' || lpad(n::text, 6, '0'),
    (ARRAY['question', 'question', 'question', 'suggestion', 'question_for'])[1 + h % 5],
    CASE WHEN h % 5 = 4 THEN md5(tenant_id::text || 'dept' || (h2 % 20))::uuid END,
    status,
    (ARRAY['web', 'web', 'web', 'email', 'email', 'api', 'x', 'facebook', 'instagram', 'telegram',
           'whatsapp', 'mastodon', 'bluesky'])[1 + h2 % 13],
    jsonb_build_object('name', 'Vecina ' || n, 'email', 'v' || n || '@correo.es'),
    {subject},
    md5('track-' || tenant_id || n),
    h % 2 = 0,
    CASE WHEN h2 % 10 < 8 THEN md5(tenant_id::text || 'dept' || (h2 % 20))::uuid END,
    CASE WHEN h % 10 < 7 THEN md5(tenant_id::text || 'agent' || (h2 % 50))::uuid END,
    CASE h2 % 4 WHEN 0 THEN '{{}}'::text[] WHEN 1 THEN ARRAY['tag' || (h % 30)]
         ELSE ARRAY['tag' || (h % 30), 'tag' || (h2 % 30 + 30)] END,
    (ARRAY['low', 'normal', 'normal', 'normal', 'high', 'urgent'])[1 + h % 6],
    last_activity_at - make_interval(secs => h % (30 * 86400)),
    last_activity_at,
    last_activity_at - interval '1 hour',
    status IN ('new', 'open'),
    1 + h % 7, h % 3,
    CASE WHEN status <> 'new' THEN last_activity_at - make_interval(secs => h % (30 * 86400)) + interval '2 hours' END,
    CASE WHEN status = 'new' THEN last_activity_at + interval '1 day' END,
    status = 'new' AND h % 20 = 0,
    CASE WHEN status IN ('new', 'open', 'waiting_on_citizen') THEN last_activity_at + interval '10 days' END,
    status IN ('open', 'waiting_on_citizen') AND h % 25 = 0,
    CASE WHEN status = 'new' THEN last_activity_at + interval '1 day'
         WHEN status IN ('open', 'waiting_on_citizen') THEN last_activity_at + interval '10 days' END,
    CASE WHEN status = 'new' THEN last_activity_at + interval '1 day'
         WHEN status IN ('open', 'waiting_on_citizen') THEN last_activity_at + interval '10 days'
         ELSE 'infinity'::timestamptz END,
    CASE WHEN status = 'new' AND h % 20 <> 0 THEN last_activity_at + interval '1 day'
         WHEN status IN ('open', 'waiting_on_citizen') AND h % 25 <> 0 THEN last_activity_at + interval '10 days' END,
    (status = 'new' AND h % 20 = 0) OR (status IN ('open', 'waiting_on_citizen') AND h % 25 = 0)
        OR (status = 'closed' AND h % 30 = 0),
    CASE WHEN status IN ('resolved', 'closed') THEN last_activity_at END,
    CASE WHEN status = 'closed' THEN last_activity_at END,
    1 + h % 12
  FROM y
{tail}"
    )
}
