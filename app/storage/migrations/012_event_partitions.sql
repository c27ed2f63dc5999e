-- Retention windows (layouts/retention.yaml): events are partitioned by their window in days
-- (keep_days, 0: kept) and windowed events further by calendar month (UTC) of their time, so an
-- expired month is a table dropped, never rows deleted (app.storage.partitions makes and drops
-- the partitions). A retry is told by its messageId in event_ids, partitioned by the week it was
-- received and kept for the dedup window. Events stored before this are kept (keep_days 0).
ALTER TABLE events RENAME TO events_unpartitioned;

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
    keep_days    integer     NOT NULL DEFAULT 0 CHECK (keep_days >= 0)
) PARTITION BY LIST (keep_days);
CREATE TABLE events_keep PARTITION OF events FOR VALUES IN (0);

INSERT INTO events (tenant_id, message_id, user_id, type, event, properties, traits, context, ts,
                    received_at, keep_days)
SELECT tenant_id, message_id, user_id, type, event, properties, traits, context, ts, received_at, 0
  FROM events_unpartitioned;

CREATE TABLE event_ids (
    tenant_id  text NOT NULL,
    message_id text NOT NULL,
    received   date NOT NULL,
    PRIMARY KEY (tenant_id, message_id, received)
) PARTITION BY RANGE (received);

-- One partition per week received (from its Monday, UTC): this week's and the two before.
DO $$
DECLARE
    monday date;
BEGIN
    FOR monday IN SELECT generate_series(date_trunc('week', now() AT TIME ZONE 'UTC')::date - 14,
                                         date_trunc('week', now() AT TIME ZONE 'UTC')::date,
                                         interval '7 days')::date
    LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF event_ids FOR VALUES FROM (%L) TO (%L)',
                       'event_ids_' || to_char(monday, 'YYYYMMDD'), monday, monday + 7);
    END LOOP;
END $$;

INSERT INTO event_ids (tenant_id, message_id, received)
SELECT tenant_id, message_id, date_trunc('week', received_at AT TIME ZONE 'UTC')::date
  FROM events_unpartitioned
 WHERE received_at >= date_trunc('week', now() AT TIME ZONE 'UTC') - interval '14 days'
ON CONFLICT DO NOTHING;

DROP TABLE events_unpartitioned;

CREATE INDEX events_user_ts ON events (tenant_id, user_id, ts DESC);
CREATE INDEX events_received ON events USING brin (received_at);
CREATE INDEX events_group ON events (tenant_id, ts) WHERE type = 'group';

-- Statistics for the planner at once (autovacuum analyzes partitions, never a partitioned table).
ANALYZE events;
