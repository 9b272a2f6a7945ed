// The gateway driven through GraphQL clients we did not write: queries and
// mutations with `graphql-request`, live subscriptions with `graphql-ws`
// (the `graphql-transport-ws` protocol, on `ws`). No HTTP or WebSocket
// framing is written here: if these widely used clients cannot talk to the
// gateway, integrators' clients cannot either.
//
// `services/gateway/tests/clients.rs` runs this file (`node --test`) against
// a gateway it serves on a real port, on a fresh database, with two councils
// — so run that, not this: `cargo test -p ventanilla-gateway --test clients`.
// It passes, in the environment:
//   GATEWAY_HTTP_URL   the GraphQL endpoint, http://127.0.0.1:PORT/graphql
//   GATEWAY_WS_URL     the subscriptions, ws://127.0.0.1:PORT/graphql/ws
//   STAFF_TOKEN        a session of the first council's admin
//   OTHER_STAFF_TOKEN  a session of the second council's admin
//   TICKET_ID          the global id of a NEW ticket of the first council
//   TICKET_SUBJECT     its subject
// The packages are installed by `make test` (or `npm ci --prefix tests/clients`).

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientError, GraphQLClient } from 'graphql-request';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

/** How long a live change may take to arrive. */
const LIVE_TIMEOUT_MS = 10_000;

function env(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: run this through cargo test -p ventanilla-gateway --test clients`,
    );
  }
  return value;
}

const HTTP_URL = env('GATEWAY_HTTP_URL');
const WS_URL = env('GATEWAY_WS_URL');
const TOKEN = env('STAFF_TOKEN');
const OTHER_TOKEN = env('OTHER_STAFF_TOKEN');
const TICKET_ID = env('TICKET_ID');
const TICKET_SUBJECT = env('TICKET_SUBJECT');

const staff = new GraphQLClient(HTTP_URL, {
  headers: { Authorization: `Bearer ${TOKEN}` },
});
const otherStaff = new GraphQLClient(HTTP_URL, {
  headers: { Authorization: `Bearer ${OTHER_TOKEN}` },
});
const anonymous = new GraphQLClient(HTTP_URL);

/** The graphql-ws clients opened, disposed of at the end (or node keeps running). */
const sockets = [];
after(async () => {
  await Promise.all(sockets.map((client) => client.dispose()));
});

/** A graphql-ws client; `connected` resolves once the server acknowledged it. */
function liveClient(token, options = {}) {
  let acknowledged;
  const connected = new Promise((resolve) => {
    acknowledged = resolve;
  });
  const client = createClient({
    url: WS_URL,
    webSocketImpl: WebSocket,
    connectionParams: token === undefined ? undefined : { Authorization: `Bearer ${token}` },
    retryAttempts: 0,
    on: { connected: () => acknowledged(true) },
    ...options,
  });
  sockets.push(client);
  return { client, connected };
}

/** Describes what a graphql-ws sink's `error` received. */
function describe(error) {
  if (error && typeof error.code === 'number' && 'reason' in error) {
    return `closed ${error.code} "${error.reason}"`;
  }
  return error instanceof Error ? error.stack : JSON.stringify(error);
}

/**
 * Subscribes on `client` and keeps what is heard; `until(predicate, what)`
 * waits for a result that matches.
 */
function listen(client, query, variables) {
  const heard = [];
  const waiters = new Set();
  let ended;
  let failure;
  const wake = () => waiters.forEach((check) => check());
  const stop = client.subscribe(
    { query, variables },
    {
      next: (result) => {
        heard.push(result);
        wake();
      },
      error: (error) => {
        failure = error;
        ended = `failed: ${describe(error)}`;
        wake();
      },
      complete: () => {
        ended = 'completed';
        wake();
      },
    },
  );
  const until = (predicate, what, ms = LIVE_TIMEOUT_MS) =>
    new Promise((resolve, reject) => {
      const finish = (settle, value) => {
        clearTimeout(timer);
        waiters.delete(check);
        settle(value);
      };
      const timer = setTimeout(
        () => finish(reject, new Error(`no ${what} within ${ms} ms; heard ${JSON.stringify(heard)}`)),
        ms,
      );
      const check = () => {
        const found = heard.find(predicate);
        if (found) {
          finish(resolve, found);
        } else if (ended) {
          finish(reject, new Error(`no ${what}: the subscription ${ended}; heard ${JSON.stringify(heard)}`));
        }
      };
      waiters.add(check);
      check();
    });
  return { heard, until, stop, ended: () => ended, failure: () => failure };
}

/** The error a graphql-request call fails with (it must fail with a ClientError). */
async function refusal(call) {
  const error = await call.then(
    (data) => assert.fail(`expected an error, got ${JSON.stringify(data)}`),
    (e) => e,
  );
  assert.ok(error instanceof ClientError, `not a ClientError: ${error?.stack ?? error}`);
  return error.response;
}

const INBOX = /* GraphQL */ `
  query Inbox($first: Int!) {
    viewer { kind role staffId tenant { name } }
    inbox(first: $first) {
      nodes { id reference subject status messagesCount }
      pageInfo { hasNextPage endCursor }
    }
  }
`;

test('a query through graphql-request: viewer and the inbox', async () => {
  const data = await staff.request(INBOX, { first: 10 });
  assert.equal(data.viewer.kind, 'STAFF');
  assert.equal(data.viewer.role, 'ADMIN');
  assert.match(data.viewer.staffId, /^[0-9a-f-]{36}$/);
  assert.equal(typeof data.viewer.tenant.name, 'string');
  const ticket = data.inbox.nodes.find((t) => t.id === TICKET_ID);
  assert.ok(ticket, `the ticket is not in the inbox: ${JSON.stringify(data.inbox)}`);
  assert.equal(ticket.subject, TICKET_SUBJECT);
  assert.equal(ticket.status, 'NEW');
  assert.equal(ticket.messagesCount, 1);
  assert.equal(data.inbox.pageInfo.hasNextPage, false);

  // The other council's inbox does not have it.
  const other = await otherStaff.request(INBOX, { first: 10 });
  assert.ok(!other.inbox.nodes.some((t) => t.id === TICKET_ID), JSON.stringify(other));
});

test('a mutation through graphql-request is heard live through graphql-ws', async () => {
  const { client, connected } = liveClient(TOKEN);
  const inbox = listen(client, 'subscription { inboxChanged { ticketId event at } }');
  const ticket = listen(
    client,
    'subscription Ticket($id: ID!) { ticketUpdated(id: $id) { id status tags messages { direction body } } }',
    { id: TICKET_ID },
  );
  const other = liveClient(OTHER_TOKEN);
  const stranger = listen(other.client, 'subscription { inboxChanged { ticketId event } }');
  assert.equal(await connected, true);
  assert.equal(await other.connected, true);

  // The server gives no sign that a subscription is listening, so change the
  // ticket until both have heard something: then they are.
  let listening = false;
  for (let attempt = 1; attempt <= 10 && !listening; attempt++) {
    const tagged = await staff.request(
      'mutation Tag($id: ID!, $tag: String!) { tag(ticketId: $id, tag: $tag) { tags } }',
      { id: TICKET_ID, tag: `probe-${attempt}` },
    );
    assert.ok(tagged.tag.tags.includes(`probe-${attempt}`), JSON.stringify(tagged));
    listening = await Promise.all([
      inbox.until((r) => r.data?.inboxChanged?.ticketId === TICKET_ID, 'inboxChanged', 1_500),
      ticket.until((r) => r.data?.ticketUpdated?.tags?.length > 0, 'ticketUpdated', 1_500),
    ]).then(
      () => true,
      () => false,
    );
  }
  assert.ok(listening, `the subscriptions heard nothing: ${inbox.ended() ?? ''} ${ticket.ended() ?? ''}`);

  const body = 'Mañana pasa la brigada a cambiarla. ¿Nos confirma el número?';
  const replied = await staff.request(
    /* GraphQL */ `
      mutation Reply($id: ID!, $body: String!) {
        reply(ticketId: $id, body: $body, waitForCitizen: true) {
          id status awaitingReply messagesCount messages { direction body }
        }
      }
    `,
    { id: TICKET_ID, body },
  );
  assert.equal(replied.reply.id, TICKET_ID);
  assert.equal(replied.reply.status, 'WAITING_ON_CITIZEN');
  assert.equal(replied.reply.awaitingReply, false);
  assert.equal(replied.reply.messagesCount, 2);
  assert.deepEqual(replied.reply.messages.at(-1), { direction: 'OUT', body });

  const told = await inbox.until(
    (r) => r.data?.inboxChanged?.ticketId === TICKET_ID && r.data.inboxChanged.event === 'ticket.replied',
    'inboxChanged naming the ticket as replied',
  );
  assert.ok(!Number.isNaN(Date.parse(told.data.inboxChanged.at)), JSON.stringify(told));
  const updated = await ticket.until(
    (r) => r.data?.ticketUpdated?.messages?.some((m) => m.body === body),
    'ticketUpdated with the reply',
  );
  assert.equal(updated.data.ticketUpdated.id, TICKET_ID);
  assert.equal(updated.errors, undefined, JSON.stringify(updated));
  assert.ok(
    inbox.heard.every((r) => r.errors === undefined) && ticket.heard.every((r) => r.errors === undefined),
    JSON.stringify({ inbox: inbox.heard, ticket: ticket.heard }),
  );

  // Another council hears none of it.
  assert.deepEqual(stranger.heard, []);
  assert.equal(stranger.ended(), undefined);
  inbox.stop();
  ticket.stop();
  stranger.stop();
});

test('refusals reach graphql-request as a ClientError with extensions.code', async () => {
  // Another council's ticket: not found, its existence not revealed.
  const notFound = await refusal(
    otherStaff.request('query Ticket($id: ID!) { ticket(id: $id) { subject } }', { id: TICKET_ID }),
  );
  assert.equal(notFound.errors[0].extensions.code, 'NOT_FOUND', JSON.stringify(notFound));
  assert.equal(notFound.status, 200);

  // A mutation on it: the same, and nothing written.
  const COUNT = 'query Count($id: ID!) { ticket(id: $id) { messagesCount } }';
  const before = await staff.request(COUNT, { id: TICKET_ID });
  const notYours = await refusal(
    otherStaff.request('mutation Reply($id: ID!) { reply(ticketId: $id, body: "hola") { id } }', {
      id: TICKET_ID,
    }),
  );
  assert.equal(notYours.errors[0].extensions.code, 'NOT_FOUND', JSON.stringify(notYours));
  assert.deepEqual(await staff.request(COUNT, { id: TICKET_ID }), before);

  // A variable of the wrong type.
  const invalid = await refusal(staff.request(INBOX, { first: 'ten' }));
  assert.equal(invalid.errors[0].extensions.code, 'VALIDATION', JSON.stringify(invalid));

  // A field that does not exist.
  const unknown = await refusal(staff.request('{ viewer { kind nickname } }'));
  assert.equal(unknown.errors[0].extensions.code, 'VALIDATION', JSON.stringify(unknown));
  assert.match(unknown.errors[0].message, /nickname/);

  // No token where one is needed.
  const anonymousInbox = await refusal(anonymous.request(INBOX, { first: 10 }));
  assert.equal(anonymousInbox.errors[0].extensions.code, 'UNAUTHENTICATED', JSON.stringify(anonymousInbox));
  const viewer = await anonymous.request('{ viewer { kind tenant { name } } }');
  assert.deepEqual(viewer, { viewer: { kind: 'ANONYMOUS', tenant: null } });

  // A token that is no token.
  const forged = new GraphQLClient(HTTP_URL, { headers: { Authorization: 'Bearer not-a-token' } });
  const badToken = await refusal(forged.request('{ viewer { kind } }'));
  assert.equal(badToken.errors[0].extensions.code, 'UNAUTHENTICATED', JSON.stringify(badToken));
});

test('graphql-ws: a bad token is refused at connection_init, not acknowledged', async () => {
  const { client } = liveClient('not-a-token');
  let acknowledged = false;
  client.on('connected', () => {
    acknowledged = true;
  });
  const live = listen(client, 'subscription { inboxChanged { ticketId } }');
  await assert.rejects(live.until(() => true, 'answer'), /the subscription failed: closed (\d+)/);
  assert.equal(acknowledged, false);
  assert.deepEqual(live.heard, []);
  // As docs/graphql.md says: closed with 4403 (Forbidden) and a reason that says what to do.
  assert.match(live.ended(), /^failed: closed 4403 ".*neither a valid session nor a valid API key/);
});

test('graphql-ws: a subscription without a token, for another council ticket, or invalid is refused', async () => {
  // No token: acknowledged (a client may still ask nothing), but staff's
  // subscriptions are refused.
  const anonymousLive = liveClient(undefined);
  const nobody = listen(anonymousLive.client, 'subscription { inboxChanged { ticketId } }');
  await nobody.until(() => true, 'answer').catch(() => {});
  assert.equal(await anonymousLive.connected, true);
  assert.equal(
    firstCode(nobody),
    'UNAUTHENTICATED',
    `heard ${JSON.stringify(nobody.heard)}, ${nobody.ended()}`,
  );

  // Another council's ticket: NOT_FOUND at once, then complete.
  const other = liveClient(OTHER_TOKEN);
  const notYours = listen(
    other.client,
    'subscription Ticket($id: ID!) { ticketUpdated(id: $id) { status } }',
    { id: TICKET_ID },
  );
  await notYours.until(() => true, 'answer').catch(() => {});
  assert.equal(firstCode(notYours), 'NOT_FOUND', `heard ${JSON.stringify(notYours.heard)}, ${notYours.ended()}`);

  // A subscription that does not validate is refused, the error naming the
  // field. (The gateway sends it as a `next` with `data: null`, then
  // `complete`, and without the `extensions.code` — `VALIDATION` — that the
  // same error gets over HTTP; the protocol would have an `error` message,
  // which graphql-ws hands to the sink's `error`. Either is accepted here.)
  const unknown = listen(other.client, 'subscription { inboxChanged { ticketId mood } }');
  await unknown.until(() => true, 'answer').catch(() => {});
  const errors = unknown.heard[0]?.errors ?? unknown.failure();
  assert.ok(Array.isArray(errors), `no errors: heard ${JSON.stringify(unknown.heard)}, ${unknown.ended()}`);
  assert.match(errors[0].message, /Unknown field "mood"/);
  assert.ok(unknown.heard.every((r) => r.data == null), JSON.stringify(unknown.heard));
});

/** The `extensions.code` of the first error a subscription got. */
function firstCode(live) {
  return live.heard[0]?.errors?.[0]?.extensions?.code;
}
