-- Metrics (layouts/metrics.yaml): per-unit results, refreshed incrementally in the background, so
-- that a dashboard groups at most one row per unit and metric and never scans the events.

-- What each unit is, for breakdowns: a user (unit 'user') or a tenant (unit 'tenant', unit_id '').
CREATE TABLE metric_units (
    tenant_id      text        NOT NULL,
    unit           text        NOT NULL CHECK (unit IN ('user', 'tenant')),
    unit_id        text        NOT NULL,
    signup_at      timestamptz NOT NULL,
    first_event_at timestamptz NOT NULL,
    cohort         date        NOT NULL,  -- the Monday of the sign-up week (UTC)
    role           text        NOT NULL DEFAULT '',
    plan           text        NOT NULL DEFAULT '',
    industry       text        NOT NULL DEFAULT '',
    seat_band      text        NOT NULL DEFAULT '',
    stage          text        NOT NULL DEFAULT '',  -- the lifecycle stage at the refresh
    PRIMARY KEY (tenant_id, unit, unit_id)
);

-- One row per metric and unit in the metric's population: where its window starts and ends, and
-- what happened in it. `value`: 1/0 (conversion, retention's headline week), seconds (time_to,
-- duration; NULL: never), a count. `detail`: retention's active weeks, a funnel's steps.
CREATE TABLE metric_values (
    tenant_id  text             NOT NULL,
    metric     text             NOT NULL,
    unit_id    text             NOT NULL,
    anchor_at  timestamptz      NOT NULL,
    window_end timestamptz      NOT NULL,
    reached_at timestamptz,
    value      double precision,
    detail     jsonb,
    PRIMARY KEY (tenant_id, metric, unit_id)
);
CREATE INDEX metric_values_metric ON metric_values (metric, anchor_at);

-- The first time each user was shown each widget (widget_viewed), for exposure breakdowns.
CREATE TABLE metric_exposures (
    tenant_id   text        NOT NULL,
    user_id     text        NOT NULL,
    widget_id   text        NOT NULL,
    widget_type text        NOT NULL DEFAULT '',
    first_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, user_id, widget_id)
);

-- Which definition each metric's rows were computed with, and how far the refresh has read.
CREATE TABLE metric_definitions (
    metric       text        NOT NULL PRIMARY KEY,
    digest       text        NOT NULL,
    refreshed_at timestamptz NOT NULL
);
CREATE TABLE metric_refresh (
    id           integer     NOT NULL PRIMARY KEY CHECK (id = 1),
    watermark    timestamptz NOT NULL,  -- events received before this are in the rows
    refreshed_at timestamptz NOT NULL,
    tenants      integer     NOT NULL,  -- refreshed the last time
    seconds      double precision NOT NULL
);

-- Events received since the last refresh are found by their receive time: a block range index,
-- tiny and cheap to keep up as events arrive in that order.
CREATE INDEX events_received ON events USING brin (received_at);
