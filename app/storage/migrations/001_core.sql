-- Core tables. Every table is keyed tenant_id first so that a distributed Postgres (Citus) can
-- shard by tenant.

CREATE TABLE events (
    tenant_id    text        NOT NULL,
    message_id   text        NOT NULL,
    user_id      text        NOT NULL,
    type         text        NOT NULL,
    event        text,
    properties   jsonb       NOT NULL DEFAULT '{}',
    traits       jsonb       NOT NULL DEFAULT '{}',
    context      jsonb       NOT NULL DEFAULT '{}',
    ts           timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, message_id)
);
CREATE INDEX events_user_ts ON events (tenant_id, user_id, ts DESC);

CREATE TABLE tenants (
    tenant_id  text        NOT NULL PRIMARY KEY,
    traits     jsonb       NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    tenant_id  text        NOT NULL,
    user_id    text        NOT NULL,
    traits     jsonb       NOT NULL DEFAULT '{}',
    first_seen timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);

CREATE TABLE aliases (
    tenant_id   text NOT NULL,
    previous_id text NOT NULL,
    user_id     text NOT NULL,
    PRIMARY KEY (tenant_id, previous_id)
);

-- Per user, per day, per track event: counts that the signal windows (7/30/90 days) are summed from.
CREATE TABLE user_event_days (
    tenant_id text    NOT NULL,
    user_id   text    NOT NULL,
    day       date    NOT NULL,
    event     text    NOT NULL,
    n         integer NOT NULL,
    PRIMARY KEY (tenant_id, user_id, day, event)
);

-- Distinct things a user touched: features, templates, articles (kind, value).
CREATE TABLE user_facets (
    tenant_id text        NOT NULL,
    user_id   text        NOT NULL,
    kind      text        NOT NULL,
    value     text        NOT NULL,
    n         integer     NOT NULL,
    first_at  timestamptz NOT NULL,
    last_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, user_id, kind, value)
);

-- Integrations of a tenant: connected or disconnected, as of the latest event.
CREATE TABLE tenant_integrations (
    tenant_id   text        NOT NULL,
    integration text        NOT NULL,
    connected   boolean     NOT NULL,
    changed_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, integration)
);

-- What happened to each widget for a user: last view, dismissal, completion, view count.
CREATE TABLE user_widgets (
    tenant_id    text        NOT NULL,
    user_id      text        NOT NULL,
    widget_id    text        NOT NULL,
    views        integer     NOT NULL DEFAULT 0,
    last_viewed  timestamptz,
    dismissed_at timestamptz,
    completed_at timestamptz,
    PRIMARY KEY (tenant_id, user_id, widget_id)
);

CREATE TABLE preferences (
    tenant_id  text        NOT NULL,
    user_id    text        NOT NULL,
    body       jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id)
);

-- Tenant-scoped API keys (the deployment-wide keys come from configuration). Only a hash is kept.
CREATE TABLE api_keys (
    tenant_id  text        NOT NULL,
    key_hash   text        NOT NULL,
    kind       text        NOT NULL CHECK (kind IN ('secret', 'publishable')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key_hash)
);
CREATE UNIQUE INDEX api_keys_hash ON api_keys (key_hash);
