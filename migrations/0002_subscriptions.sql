-- Durable, named subscriptions and their consumer groups.
--
-- A subscription has a fixed number of partitions; a stream belongs to
-- partition stream_hash % partitions, so one stream's events are always
-- handled by one member, in order. Each partition has its own checkpoint
-- (a position in the log's global order) and, while a member holds it, an
-- owner and a lease. Members heartbeat; the live members split the partitions
-- between them, and a partition whose owner stopped heartbeating is taken over
-- when its lease runs out. A member commits a batch only while it still owns
-- the partitions (checked under a row lock in the batch's own transaction), so
-- a member that lost its lease cannot apply anything.
--
-- These rows describe the platform's machinery, not any tenant's data: they
-- have no tenant_id and no row-level security.

CREATE TABLE subscriptions (
    name        text        PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 100),
    partitions  integer     NOT NULL CHECK (partitions BETWEEN 1 AND 1024),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE subscription_partitions (
    subscription        text        NOT NULL REFERENCES subscriptions (name) ON DELETE CASCADE,
    partition           integer     NOT NULL CHECK (partition >= 0),
    checkpoint_commit   bigint      NOT NULL DEFAULT 0,
    checkpoint_sequence bigint      NOT NULL DEFAULT 0,
    owner               text,
    lease_until         timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscription, partition)
);

CREATE TABLE subscription_members (
    subscription text        NOT NULL REFERENCES subscriptions (name) ON DELETE CASCADE,
    member       text        NOT NULL,
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscription, member)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON subscriptions, subscription_partitions, subscription_members
    TO ventanilla_app;
